"""The ``/chat/completions`` route: what the simulated model says, and in which shape.

A request is answered, in this order, by the documented example it repeats
(:mod:`campusllm.sim.replays`), by a reply scripted for its model, or by the default
behaviour: call the tools the user names, quote tool results back, follow the
``response_format``, else echo the question. Reasoning comes in the model's registry shape
(overridable per request with the ``X-Sim-Reasoning-Shape`` header) and only when thinking is
on for that request; the gateways' own refusals (no vision, no tools, DeepSeek's missing
``reasoning_content``, a prompt over the context window) are reproduced word for word. The
provider's gateway software (:mod:`campusllm.sim.gateways`) then shapes the answer as it
reaches the client: LiteLLM moves a non-streamed think block into ``reasoning_content`` and
adds its fields, llama-server keeps the blank lines after ``</think>``. An explicit
``X-Sim-Reasoning-Shape`` asks for a wire shape as the client gets it, so it skips that step.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..registry import ModelSpec, ProviderSpec
from ..tokens import estimate_tokens
from ..wire import has_image
from .faults import Fault, send_body, send_events, send_raw_sse
from .gateways import GATEWAYS, Gateway
from .http import Handler, error_body
from .replays import (
    find_replay,
    fixture_bytes,
    fixture_sse,
    replayed_tokens,
    reply_from_fixture,
)
from .replies import (
    SHAPES,
    Reply,
    SimToolCall,
    completion_body,
    message_text,
    prompt_tokens,
    stream_events,
)
from .routes import check_context, lookup_model
from .sampling import choose_tools, sample_from_schema
from .state import SimState

__all__ = ["SHAPE_HEADER", "chat"]

SHAPE_HEADER = "x-sim-reasoning-shape"

DEEPSEEK_MISSING_REASONING = (
    "Missing `reasoning_content` field in the assistant message at message index {index}. "
    "For more information, please refer to "
    "https://api-docs.deepseek.com/guides/thinking_mode#tool-calls"
)
VLLM_NO_TOOLS = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)


def chat(
    state: SimState,
    h: Handler,
    provider: ProviderSpec,
    body: dict[str, Any],
    fault: Fault | None,
    gateway: Gateway = GATEWAYS["vllm"],
) -> int:
    """``POST /chat/completions``, streamed or not.

    Returns the tokens of the answer sent (0 when none was), for the quota's TPM.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        h.send_json(400, error_body("messages must be a non-empty list", param="messages"))
        return 0
    stream = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    replay = find_replay(provider, body)
    if replay is not None:
        state.count("replays")
        rp, synthesise = replay
        if not synthesise and rp.stream:
            send_raw_sse(h, fixture_sse(rp.fixture), fault, gateway)
            return replayed_tokens(rp.fixture)
        reply = reply_from_fixture(rp.fixture, state.next_id("chatcmpl"))
        if not synthesise:
            send_body(h, fixture_bytes(rp.fixture), fault)
            return reply.completion_tokens()
        events = stream_events(
            reply, include_usage=include_usage, prompt_tokens=prompt_tokens(body)
        )
        send_events(h, events, fault, gateway=gateway)
        return reply.completion_tokens()

    name = str(body.get("model", ""))
    spec = lookup_model(h, provider, name, "chat", gateway)
    tools = body.get("tools") or []
    if has_image(messages) and not spec.vision:
        h.send_json(
            400, error_body(f"{name} is not a multimodal model; image input is not supported.")
        )
        return 0
    if tools and not spec.tools:
        h.send_json(400, error_body(VLLM_NO_TOOLS))
        return 0
    check_context(h, spec, name, body, gateway)
    thinking, shape, as_asked = _thinking(h, spec, name, body)
    if thinking and spec.reasoning.passback == "reasoning_content":
        for i, m in enumerate(messages):
            if (
                isinstance(m, dict)
                and m.get("role") == "assistant"
                and m.get("tool_calls")
                and "reasoning_content" not in m
            ):
                h.send_json(400, error_body(DEEPSEEK_MISSING_REASONING.format(index=i)))
                return 0
    sim_opts = body.get("sim") if isinstance(body.get("sim"), dict) else {}
    assert isinstance(sim_opts, dict)
    reply = Reply(content="", model=name, id=state.next_id("chatcmpl"), shape=shape)
    scripted = state.take_script([name, spec.id])
    if scripted is not None:
        _apply_script(reply, scripted)
    elif spec.requires_user_message and not any(
        isinstance(m, dict) and m.get("role") == "user" for m in messages
    ):
        pass  # DeepSeek V3.2 answers a system-only request with nothing at all
    else:
        _default_reply(reply, spec, body, thinking)
    if sim_opts.get("chunks"):
        reply.chunks = int(sim_opts["chunks"])
    if sim_opts.get("delay_s"):
        reply.delay_s = float(sim_opts["delay_s"])
    if not thinking and scripted is None:
        reply.reasoning = ""
    if reply.reasoning and reply.shape == "none":
        reply.shape = "reasoning_content"
    if not as_asked:
        _as_the_gateway_sends_it(reply, gateway, spec, thinking)
    ptoks = prompt_tokens(body)
    if stream:
        events = stream_events(
            reply,
            include_usage=include_usage,
            prompt_tokens=ptoks,
            first_content=None if gateway.null_first_delta and not as_asked else "",
        )
        send_events(h, events, fault, reply.delay_s, gateway)
    else:
        out = completion_body(reply, prompt_tokens=ptoks)
        send_body(h, out if as_asked else gateway.finish_body(out), fault)
    return reply.completion_tokens()


def _as_the_gateway_sends_it(
    reply: Reply, gateway: Gateway, spec: ModelSpec, thinking: bool
) -> None:
    """What the provider's gateway software does to the model's turn on its way out."""
    rs = spec.reasoning
    if gateway.name == "litellm" and reply.shape == "reasoning":
        reply.shape = "reasoning_content"  # LiteLLM names both fields reasoning_content
    if gateway.blank_after_reasoning and reply.reasoning and reply.content:
        if reply.shape in ("reasoning_content", "reasoning"):
            # The model wrote "</think>\n\n"; the reasoning parser took only the tag away.
            reply.content = "\n\n" + reply.content
    closes_at_once = rs.shape != "none" and rs.toggle in ("enable_thinking", "thinking")
    if gateway.echo_closed_think and not thinking and closes_at_once and not reply.reasoning:
        # With thinking off the template writes an empty block; llama-server passes it on
        # (its reasoning parser, when there is one, removes only the tags).
        tags = reply.shape in ("think_tags", "think_open")
        reply.content = ("<think>\n\n</think>\n\n" if tags else "\n\n") + reply.content


def _thinking(
    h: Handler, spec: ModelSpec, name: str, body: dict[str, Any]
) -> tuple[bool, str, bool]:
    """Whether this request thinks, the reasoning shape its answer uses, and whether that
    shape was asked for with ``X-Sim-Reasoning-Shape``."""
    rs = spec.reasoning
    explicit: bool | None = None
    ctk = body.get("chat_template_kwargs")
    if isinstance(ctk, dict):
        for k in ("enable_thinking", "thinking"):
            if k in ctk:
                explicit = bool(ctk[k])
    if isinstance(body.get("enable_thinking"), bool):
        explicit = body["enable_thinking"]
    th = body.get("thinking")
    if isinstance(th, dict) and th.get("type") in ("enabled", "disabled"):
        explicit = th["type"] == "enabled"
    elif isinstance(th, bool):
        explicit = th
    if rs.toggle == "model_switch":
        low = name.lower()
        if rs.thinking_model and low == rs.thinking_model.lower():
            base = True
        elif rs.non_thinking_model and low == rs.non_thinking_model.lower():
            base = False
        else:
            base = rs.default_on
    else:
        base = rs.default_on
    if rs.toggle in ("enable_thinking", "thinking") and explicit is not None:
        on = explicit
    else:
        # a model without a body switch can only be turned off, never on, by a flag
        on = base and explicit is not False
    shape: str = rs.shape
    if shape == "think_tags" and rs.opens_in_template:
        shape = "think_open"
    override = (h.headers.get(SHAPE_HEADER) or "").strip().lower()
    if override in SHAPES:
        shape = override
        on = explicit is not False and override != "none"
    if shape == "none":
        on = False
    return on, shape, override in SHAPES


def _apply_script(reply: Reply, s: dict[str, Any]) -> None:
    reply.content = str(s.get("content") or "")
    reply.reasoning = str(s.get("reasoning") or "")
    for i, tc in enumerate(s.get("tool_calls") or []):
        args = tc.get("arguments", {})
        reply.tool_calls.append(
            SimToolCall(
                id=str(tc.get("id") or f"call_{reply.id[-6:]}_{i}"),
                name=str(tc["name"]),
                arguments=args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
            )
        )
    reply.finish_reason = s.get("finish_reason") or ("tool_calls" if reply.tool_calls else "stop")
    if s.get("chunks"):
        reply.chunks = int(s["chunks"])
    if s.get("delay_s"):
        reply.delay_s = float(s["delay_s"])


def _default_reply(reply: Reply, spec: ModelSpec, body: dict[str, Any], thinking: bool) -> None:
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    users = [m for m in messages if m.get("role") == "user"]
    user_text = message_text(users[-1].get("content")) if users else ""
    last_role = messages[-1].get("role") if messages else None
    tools = body.get("tools") or []
    short = user_text.strip().replace("\n", " ")
    short = short[:160] + ("…" if len(short) > 160 else "")
    ignore_tools = spec.reasoning.tools_only_without_thinking and thinking
    if tools and last_role in ("user", "system") and not ignore_tools:
        fns = choose_tools(tools, body.get("tool_choice"), user_text, parallel=spec.parallel_tools)
        for i, fn in enumerate(fns):
            args = sample_from_schema(fn.get("parameters") or {}, hint_text=user_text)
            reply.tool_calls.append(
                SimToolCall(
                    id=f"call_{reply.id[-6:]}_{i}",
                    name=fn["name"],
                    arguments=json.dumps(args if args is not None else {}, ensure_ascii=False),
                )
            )
        if reply.tool_calls:
            names = ", ".join(t.name for t in reply.tool_calls)
            reply.reasoning = f"The user asks: {short} I should call {names} first."
            reply.finish_reason = "tool_calls"
            return
    if last_role == "tool":
        results = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            results.append(message_text(m.get("content")))
        quoted = "; ".join(reversed(results))
        reply.reasoning = "I have the tool results now; I will summarise them for the user."
        reply.content = f"Based on the tool results: {quoted}"
    else:
        reply.reasoning = (
            f"The user asks: {short} Let me think about it briefly and answer clearly."
        )
        reply.content = _answer_text(reply.model, body, user_text, short)
    reply.finish_reason = "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and estimate_tokens(reply.content) > limit:
        text = reply.content
        while text and estimate_tokens(text) > limit:
            text = text[: max(0, min(len(text) - 1, int(len(text) * 0.9)))]
        reply.content = text
        reply.finish_reason = "length"


def _answer_text(model: str, body: dict[str, Any], user_text: str, short: str) -> str:
    """The answer's text, following ``response_format`` when one is asked for."""
    rf = body.get("response_format")
    rf_type = rf.get("type") if isinstance(rf, dict) else None
    if rf_type == "json_schema":
        js = (rf or {}).get("json_schema") or {}
        schema = js.get("schema") if isinstance(js, dict) else None
        value = sample_from_schema(schema or {}, hint_text=user_text)
        return json.dumps(value, ensure_ascii=False)
    if rf_type == "json_object":
        # Like a model following "return JSON with 'a' and 'b' keys": use the quoted
        # names the prompt asks for, else one "answer" key.
        asked = re.findall(r"['\"`]([A-Za-z_][A-Za-z0-9_]{0,40})['\"`]", user_text)
        keys = list(dict.fromkeys(asked)) or ["answer"]
        return json.dumps({k: f"Simulated {k} for: {short}" for k in keys}, ensure_ascii=False)
    return f"Simulated answer from {model}: {short}".rstrip(": ")
