"""A simulated assistant turn and how it is written: a JSON body or an SSE stream.

Pure functions without I/O so the routes only decide *what* to answer. Everything here is
deterministic for a given request (ids come from a counter the caller passes in); streams are
cut into pieces small enough that reasoning tags and tool-call arguments straddle chunks, as
they do on the real gateways.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..tokens import estimate_tokens

__all__ = [
    "DONE",
    "SHAPES",
    "Reply",
    "SimToolCall",
    "completion_body",
    "input_tokens",
    "message_text",
    "prompt_tokens",
    "split_pieces",
    "stream_events",
    "text_completion_body",
    "text_completion_events",
]

# Reasoning shapes the renderer knows; "think_open" is think_tags with the opening tag already
# emitted by the chat template (only "</think>" reaches the client).
SHAPES = ("none", "reasoning_content", "reasoning", "think_tags", "think_open")


@dataclass
class SimToolCall:
    """One tool call the simulated model makes.

    Example:
        >>> SimToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}').name
        'get_weather'
    """

    id: str
    name: str
    arguments: str  # raw JSON text, as on the wire


@dataclass
class Reply:
    """A complete assistant turn before it is rendered as JSON or SSE.

    Example:
        >>> r = Reply(content="hi", model="m", id="chatcmpl-1")
        >>> completion_body(r, prompt_tokens=3)["choices"][0]["message"]["content"]
        'hi'
    """

    content: str
    model: str
    id: str
    reasoning: str = ""
    shape: str = "reasoning_content"
    tool_calls: list[SimToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    chunks: int | None = None  # ~number of content/reasoning chunks when streamed
    delay_s: float = 0.0  # pause between streamed chunks
    created: int = 0

    def __post_init__(self) -> None:
        if not self.created:
            self.created = int(time.time())
        if self.finish_reason is None:
            self.finish_reason = "tool_calls" if self.tool_calls else "stop"

    def completion_tokens(self) -> int:
        n = 0
        for part in (self.content, self.reasoning, *(t.arguments for t in self.tool_calls)):
            if part:
                n += estimate_tokens(part)
        return n

    def reasoning_tokens(self) -> int:
        return estimate_tokens(self.reasoning) if self.reasoning else 0


# --------------------------------------------------------------------------- requests


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
        return "\n".join(parts)
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens a chat request costs against TPM: the text of every message (and tool calls)."""
    total = 0
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        text = message_text(m.get("content"))
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict):
                text += str(fn.get("name", "")) + str(fn.get("arguments", ""))
        if text:
            total += estimate_tokens(text)
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        total += estimate_tokens(prompt)
    elif isinstance(prompt, list):
        total += sum(estimate_tokens(p) for p in prompt if isinstance(p, str) and p)
    return max(total, 1)


def input_tokens(body: Any) -> int:
    """Tokens an embedding or rerank request costs against TPM: its inputs, query, documents."""
    if not isinstance(body, dict):
        return 0
    texts: list[str] = []
    inp = body.get("input")
    if isinstance(inp, str):
        texts.append(inp)
    elif isinstance(inp, list):
        texts.extend(x for x in inp if isinstance(x, str))
    if isinstance(body.get("query"), str):
        texts.append(body["query"])
    for d in body.get("documents") or body.get("texts") or []:
        texts.append(d if isinstance(d, str) else str((d or {}).get("text", "")))
    return sum(estimate_tokens(t) for t in texts if t)


# --------------------------------------------------------------------------- rendering


def completion_body(reply: Reply, *, prompt_tokens: int) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` with reasoning in ``reply.shape``."""
    message: dict[str, Any] = {"role": "assistant"}
    content = reply.content
    if reply.reasoning and reply.shape == "think_tags":
        content = f"<think>\n{reply.reasoning}</think>\n\n{content}"
    elif reply.reasoning and reply.shape == "think_open":
        content = f"{reply.reasoning}</think>\n\n{content}"
    message["content"] = content if (content or not reply.tool_calls) else None
    if reply.shape == "reasoning_content" and reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    elif reply.shape == "reasoning" and reply.reasoning:
        message["reasoning"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in reply.tool_calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage_body(reply, prompt_tokens),
    }


def usage_body(reply: Reply, prompt_tokens: int) -> dict[str, Any]:
    completion = reply.completion_tokens()
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    if reply.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens()}
    return usage


def split_pieces(text: str, n: int) -> list[str]:
    """``text`` cut into about ``n`` pieces (never empty pieces)."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = len(text) / n
    cuts = [round(i * size) for i in range(n + 1)]
    return [text[cuts[i] : cuts[i + 1]] for i in range(n) if cuts[i] < cuts[i + 1]]


_DEFAULT_PIECE = 6  # chars per streamed piece: small enough that tags straddle chunks
_FILLER = " The simulator pads this answer so the stream has the requested number of chunks."


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def _plan(reply: Reply) -> tuple[list[str], list[str]]:
    """Reasoning pieces and content pieces (think tags already folded into content)."""
    reasoning, content = reply.reasoning, reply.content
    if reasoning and reply.shape == "think_tags":
        content, reasoning = f"<think>\n{reasoning}</think>\n\n{content}", ""
    elif reasoning and reply.shape == "think_open":
        content, reasoning = f"{reasoning}</think>\n\n{content}", ""
    elif reply.shape == "none":
        reasoning = ""
    total = len(reasoning) + len(content)
    if reply.chunks:
        want = max(1, reply.chunks)
        if not reply.tool_calls and total < want:
            pad = (_FILLER * (1 + (want - total) // len(_FILLER)))[: want - total]
            content += pad
            reply.content += pad
            total = want
        if total == 0:
            return [], []
        n_r = round(want * len(reasoning) / total) if reasoning else 0
        if reasoning:
            n_r = max(1, n_r)
        n_c = max(1, want - n_r) if content else 0
    else:
        n_r = math.ceil(len(reasoning) / _DEFAULT_PIECE)
        n_c = math.ceil(len(content) / _DEFAULT_PIECE)
    return split_pieces(reasoning, n_r), split_pieces(content, n_c)


def stream_events(
    reply: Reply,
    *,
    include_usage: bool,
    prompt_tokens: int,
    done: bool = True,
    first_content: str | None = "",
) -> list[bytes]:
    """Every SSE event of a streamed chat completion, ``data: [DONE]`` last.

    ``first_content``: the ``content`` of the first, role-only chunk (llama-server: ``None``).
    """
    base = {"id": reply.id, "object": "chat.completion.chunk", "created": reply.created}
    base["model"] = reply.model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    r_key = "reasoning" if reply.shape == "reasoning" else "reasoning_content"
    r_pieces, c_pieces = _plan(reply)
    events = [chunk({"role": "assistant", "content": first_content})]
    events.extend(chunk({r_key: p}) for p in r_pieces)
    events.extend(chunk({"content": p}) for p in c_pieces)
    events.extend(_tool_call_events(reply, chunk))
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        events.append(_event({**base, "choices": [], "usage": usage_body(reply, prompt_tokens)}))
    if done:
        events.append(DONE)
    return events


def _tool_call_events(reply: Reply, chunk: Any) -> list[bytes]:
    """Tool calls streamed by index: id+name first, arguments in fragments.

    The last fragment of one call and the header of the next share a chunk, as vLLM does
    for parallel calls, so clients must assemble by ``index`` rather than by chunk.
    """
    events: list[bytes] = []
    carry: list[dict[str, Any]] = []
    for i, tc in enumerate(reply.tool_calls):
        head = {
            "index": i,
            "id": tc.id,
            "type": "function",
            "function": {"name": tc.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [*carry, head]}))
        carry = []
        frags = split_pieces(tc.arguments, max(2, min(4, len(tc.arguments))))
        for frag in frags[:-1]:
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}))
        if frags:
            carry = [{"index": i, "function": {"arguments": frags[-1]}}]
    if carry:
        events.append(chunk({"tool_calls": carry}))
    return events


def text_completion_body(
    *, text: str, model: str, id: str, prompt_tokens: int, finish_reason: str = "stop"
) -> dict[str, Any]:
    """A non-streamed legacy ``text_completion`` (MaaS ``/v1/completions``)."""
    completion = estimate_tokens(text) if text else 0
    return {
        "id": id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


def text_completion_events(
    *,
    text: str,
    model: str,
    id: str,
    prompt_tokens: int,
    chunks: int | None,
    include_usage: bool,
    finish_reason: str = "stop",
) -> list[bytes]:
    created = int(time.time())
    n = chunks or math.ceil(len(text) / _DEFAULT_PIECE)
    events = []
    base = {"id": id, "object": "text_completion", "created": created, "model": model}
    for piece in split_pieces(text, n):
        events.append(
            _event(
                {
                    **base,
                    "choices": [
                        {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
                    ],
                }
            )
        )
    events.append(
        _event(
            {
                **base,
                "choices": [
                    {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )
    )
    if include_usage:
        body = text_completion_body(text=text, model=model, id=id, prompt_tokens=prompt_tokens)
        events.append(_event({**base, "choices": [], "usage": body["usage"]}))
    events.append(DONE)
    return events
