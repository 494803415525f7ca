"""One list of gateway scenarios, run against the offline simulator and against real peers.

Each :class:`Scenario` is data: a model, a request, what the raw HTTP exchange must look like
(:class:`Wire`, the gateway's side) and what our public classes must make of it
(:class:`Client`, our side). ``tests/test_conformance_sim.py`` runs the list against the
simulator in the default suite; ``tests/peers/test_conformance_peers.py`` runs it against a real
LiteLLM proxy and real llama.cpp servers. A scenario whose wire check fails on the simulator
records how the simulator differs from the real software (``sim_gap``); a client check that
fails marks a defect of ours (``xfail``), each with its reason, strict, so a fix shows up as an
unexpected pass.

The models come from the registry: SJTU's catalog (its gateway is a LiteLLM proxy) plus a few
``sjtu:peer-*`` entries whose model server misbehaves on purpose, and a ``llamacpp`` provider
describing the llama.cpp servers. :func:`conformance_registry` adds those entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydantic
import pytest

import campusllm
import campusllm.errors as errors
from campusllm.registry import get_registry, reset_registry

# ----------------------------------------------------------------------------- registry

LIMITED_RPM = 2  # the LiteLLM proxy's per-key limit for its "limited" key (and the simulator's)
EMBED_DIM = 576  # SmolLM2-135M's hidden size: llama-server's mean-pooled embeddings
LLAMA_CONTEXT = 512  # per slot: llama-server -c 1024 -np 2

_PLAIN = {"family": "deepseek", "context_window": 32768, "tools": True, "json_schema": True,
          "json_mode": True}  # fmt: skip

# Models only the conformance proxy has; its router sends each to a model server that fails
# in one way (tests/peers/upstream.py).
PEER_SJTU_MODELS: list[dict[str, Any]] = [
    {"id": "peer-slow", **_PLAIN, "note": "Its model server answers after LiteLLM's timeout."},
    {"id": "peer-dies", **_PLAIN, "note": "Its model server dies mid-stream."},
    {"id": "peer-context", **_PLAIN, "note": "Its model server says the prompt is too long."},
    {"id": "peer-badcred", **_PLAIN, "note": "The gateway's own upstream key is wrong."},
    {"id": "peer-toolstrict", **_PLAIN, "note": "Its model server rejects content: null."},
    {"id": "peer-router-rpm", **_PLAIN, "note": "The router allows 1 request per minute."},
    {"id": "peer-drop", **_PLAIN, "note": "The connection drops halfway through the answer."},
]

_THINK_ON = {"toggle": "enable_thinking", "default_on": True}
LLAMACPP_PROVIDER: dict[str, Any] = {
    "name": "llamacpp",
    "display_name": "llama.cpp llama-server",
    "base_url": "http://127.0.0.1:8080/v1",
    "key_env": ["LLAMACPP_API_KEY"],
    "reachability": "public",
    "models": [
        {"id": "smollm2-chat", "context_window": LLAMA_CONTEXT, "json_schema": True,
         "json_mode": True},
        # --reasoning-format deepseek: reasoning_content; none: the tags stay in content, and
        # llama-server writes out the <think> the template opened.
        {"id": "smollm2-think", "context_window": LLAMA_CONTEXT,
         "reasoning": {"shape": "reasoning_content", **_THINK_ON}},
        {"id": "smollm2-think-tags", "context_window": LLAMA_CONTEXT,
         "reasoning": {"shape": "think_tags", **_THINK_ON}},
        {"id": "smollm2-embed", "kind": "embedding", "dimensions": EMBED_DIM,
         "max_input_tokens": LLAMA_CONTEXT},
        {"id": "smollm2-rerank", "kind": "rerank", "rerank_shape": "jina"},
        # llama-cpp-python's server, --chat_format chatml-function-calling
        {"id": "smollm2-tools", "context_window": 2048, "tools": True},
    ],
}  # fmt: skip


@contextlib.contextmanager
def conformance_registry() -> Iterator[None]:
    """The process registry with the conformance entries added; restored afterwards."""
    reset_registry()
    for spec in PEER_SJTU_MODELS:
        campusllm.register_model("sjtu", spec)
    campusllm.register_provider(LLAMACPP_PROVIDER)
    try:
        yield
    finally:
        reset_registry()


def _ensure_registry() -> None:
    reg = get_registry()
    if not any(p.name == "llamacpp" for p in reg.providers()):
        raise RuntimeError("run scenarios inside conformance_registry()")


# ----------------------------------------------------------------------------- data

HI = ({"role": "user", "content": "What is the capital of France?"},)
STORY = ({"role": "user", "content": "Write a long story about a dragon."},)
LONG = ({"role": "user", "content": "word " * 900},)  # > llama-server's 512-token slot
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON = ({"role": "user", "content": "Give a person named Ann aged 31 as JSON."},)
WEATHER_CALL = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
# A tool loop's second request, the assistant turn written with content: null.
TOOL_TURN_NULL = (
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
)


@dataclass(frozen=True)
class Wire:
    """What the raw HTTP exchange must show (the gateway's behaviour)."""

    status: int = 200
    content: bool = False  # a non-empty answer
    reasoning_field: bool | None = None  # message/delta carry a non-empty reasoning_content
    content_has: tuple[str, ...] = ()
    content_lacks: tuple[str, ...] = ()
    leading_ws: bool = False  # the answer starts with whitespace (blank lines)
    json_content: bool = False
    provider_specific_fields: bool = False
    numeric_headers: tuple[str, ...] = ()  # present, a number of seconds > 0
    error_says: tuple[str, ...] = ()  # lower-case words in the error message
    stream_error_event: bool = False  # a ``data: {"error": ...}`` event, no [DONE]
    embedding_dim: int | None = None
    rerank_scores: bool = False
    drops: bool = False  # the connection breaks before the response is complete


@dataclass(frozen=True)
class Client:
    """What our classes must make of it."""

    error: str | None = None  # class name in campusllm.errors
    content: bool = False
    reasoning: bool | None = None  # reasoning non-empty (True) / empty (False)
    no_tags: bool = False  # no <think>/</think> left in the content
    no_leading_ws: bool = False  # the answer does not start with whitespace
    json_content: bool = False
    retry_after_min: float | None = None
    says: tuple[str, ...] = ()  # lower-case words in str(error) (message + hint)
    never_says: tuple[str, ...] = ()
    partial: bool = False  # StreamInterruptedError kept the text that had arrived
    max_attempts: int | None = None  # requests that reached the model server
    sent: tuple[tuple[str, Any], ...] = ()  # (dotted path, value) in the model server's request
    max_retries: int = 0
    timeout: float = 60.0
    vias: tuple[str, ...] = ("caller", "langchain", "llamaindex")


@dataclass(frozen=True)
class Scenario:
    id: str
    what: str
    model: str  # "provider:model" as a user writes it
    peer: str  # "litellm", "llama:<instance>" (tests/peers/servers.py) or "upstream" (bare)
    endpoint: str = "chat"  # chat | embeddings | rerank
    key: str = "good"  # good | bad | limited
    messages: tuple[dict[str, Any], ...] = HI
    stream: bool = False
    body: Mapping[str, Any] = field(default_factory=dict)  # extra request keys
    thinking: bool | None = None
    attempts: int = 1  # send up to this many, stop at the first failure (limits)
    upstream: str | None = None  # the stub model behind LiteLLM (counts attempts)
    wire: Wire | None = Wire()  # None: nothing to check on the raw exchange
    client: Client = Client()
    sim_setup: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # Simulator method calls
    sim_gap: str | None = None  # how the simulator differs from the real software
    sim_client_fails: bool = False  # ...so that our classes cannot show the behaviour there
    xfail: Mapping[str, str] = field(default_factory=dict)  # "sim|peer|*:wire|via" -> why

    def why_xfail(self, target: str, check: str) -> str | None:
        for key in (f"{target}:{check}", f"*:{check}"):
            if key in self.xfail:
                return self.xfail[key]
        if target == "sim" and self.sim_gap and (check == "wire" or self.sim_client_fails):
            return "the simulator differs from the real software: " + self.sim_gap
        return None


_GREEDY = {"temperature": 0, "max_tokens": 24}
_REASON = {"temperature": 0, "max_tokens": 24}

SCENARIOS: list[Scenario] = [
    # ---------------------------------------------------------------- LiteLLM (SJTU-like)
    Scenario(
        "chat", "plain chat through the LiteLLM proxy", "sjtu:deepseek-chat", "litellm",
        wire=Wire(content=True, reasoning_field=False),
        client=Client(content=True, reasoning=False),
    ),
    Scenario(
        "chat-stream", "streamed plain chat", "sjtu:deepseek-chat", "litellm", stream=True,
        wire=Wire(content=True, reasoning_field=False),
        client=Client(content=True, reasoning=False),
    ),
    Scenario(
        "reasoning-content", "DeepSeek thinking: reasoning_content through LiteLLM",
        "sjtu:deepseek-reasoner", "litellm", upstream="reasoner",
        wire=Wire(content=True, reasoning_field=True, content_lacks=("<think>",)),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "reasoning-content-stream", "streamed reasoning_content through LiteLLM",
        "sjtu:deepseek-reasoner", "litellm", stream=True, upstream="reasoner",
        wire=Wire(content=True, reasoning_field=True),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "think-tags", "MiniMax: <think> tags from the model server, through LiteLLM",
        "sjtu:minimax-m2.7", "litellm", upstream="think",
        # LiteLLM itself moves the tags' text into reasoning_content when not streaming.
        wire=Wire(content=True, reasoning_field=True, content_lacks=("<think>", "</think>")),
        client=Client(content=True, reasoning=True, no_tags=True),
        sim_gap="its non-streamed answers keep <think> in content; LiteLLM moves it into "
        "reasoning_content (it leaves the tags inline only when streaming)",
    ),
    Scenario(
        "think-tags-stream", "streamed <think> tags through LiteLLM",
        "sjtu:minimax-m2.7", "litellm", stream=True, upstream="think",
        wire=Wire(content=True, content_has=("</think>",)),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "reasoning-field", "a model server's `reasoning` field arrives as reasoning_content "
        "through LiteLLM", "sjtu:qwen3.5-27b", "litellm", thinking=True, upstream="reasoning",
        wire=Wire(content=True, reasoning_field=True),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "reasoning-field-stream", "streamed `reasoning` arrives as reasoning_content",
        "sjtu:qwen3.5-27b", "litellm", thinking=True, stream=True, upstream="reasoning",
        wire=Wire(content=True, reasoning_field=True),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "thinking-off-switch-model", "thinking=False on deepseek-reasoner sends deepseek-chat",
        "sjtu:deepseek-reasoner", "litellm", thinking=False, wire=None,
        client=Client(content=True, reasoning=False),
    ),
    Scenario(
        "thinking-off-template-kwargs", "thinking=False on GLM reaches the model server through "
        "LiteLLM as chat_template_kwargs", "sjtu:glm-5.1", "litellm", thinking=False,
        upstream="reasoner", wire=None,
        client=Client(content=True, sent=(("chat_template_kwargs.enable_thinking", False),)),
    ),
    Scenario(
        "provider-fields", "LiteLLM adds provider_specific_fields to each choice (as SJTU does)",
        "sjtu:deepseek-reasoner", "litellm", upstream="reasoner",
        wire=Wire(content=True, provider_specific_fields=True),
        client=Client(content=True, reasoning=True),
        sim_gap="its SJTU answers carry no provider_specific_fields",
    ),
    Scenario(
        "bad-key", "a wrong key is a 401 naming the key", "sjtu:deepseek-chat", "litellm",
        key="bad",
        wire=Wire(status=401),
        client=Client(error="AuthenticationError", says=("sjtu_api_key",)),
    ),
    Scenario(
        "unknown-model", "a model the gateway lacks: 400 from LiteLLM, with the model-id hint",
        "sjtu:deepseek-chatt", "litellm",
        wire=Wire(status=400, error_says=("invalid model name",)),
        client=Client(error="BadRequestError", says=("campusllm models sjtu",)),
        sim_gap="it answers 404 model_not_found where LiteLLM answers 400 'Invalid model name'",
        xfail={"peer:caller": "the model-id hint is given only for a 404, not for LiteLLM's "
               "400 'Invalid model name'",
               "peer:langchain": "the model-id hint is given only for a 404, not for a 400",
               "peer:llamaindex": "the model-id hint is given only for a 404, not for a 400"},
    ),
    Scenario(
        "key-rpm", "the key's own RPM limit: 429 with retry-after", "sjtu:deepseek-chat",
        "litellm", key="limited", attempts=LIMITED_RPM + 2,
        wire=Wire(status=429, numeric_headers=("retry-after",)),
        client=Client(error="RateLimitError", retry_after_min=1.0,
                      vias=("langchain", "llamaindex")),
        sim_setup=(("set_limits", {"provider": "sjtu", "rpm": LIMITED_RPM, "window_s": 60.0}),),
    ),
    Scenario(
        "router-rpm", "LiteLLM's router limit: 429 with only llm_provider-retry-after",
        "sjtu:peer-router-rpm", "litellm", attempts=3,
        wire=Wire(status=429, numeric_headers=("llm_provider-retry-after",)),
        client=Client(error="RateLimitError", retry_after_min=1.0,
                      vias=("langchain", "llamaindex")),
        sim_gap="it has no router-level limit; its 429s carry retry-after only",
        sim_client_fails=True,
        xfail={"peer:langchain": "llm_provider-retry-after is not read: retry_after is None",
               "peer:llamaindex": "llm_provider-retry-after is not read: retry_after is None"},
    ),
    Scenario(
        "gateway-408", "the model server is slower than LiteLLM's timeout: HTTP 408",
        "sjtu:peer-slow", "litellm", upstream="slow",
        wire=Wire(status=408, error_says=("timeout",)),
        client=Client(error="TimeoutError", says=("slow",), max_attempts=2, max_retries=3,
                      vias=("langchain", "llamaindex")),
        sim_gap="it has no gateway timeout (408); a slow model only delays its first byte",
        sim_client_fails=True,
        xfail={"peer:langchain": "a 408 is retried like a 5xx (every retry starts a new "
               "generation) and ends as BadRequestError with no hint",
               "peer:llamaindex": "a 408 is retried like a 5xx and ends as BadRequestError"},
    ),
    Scenario(
        "dies-mid-stream", "the model server dies mid-stream: LiteLLM sends an error event",
        "sjtu:peer-dies", "litellm", stream=True, upstream="dies",
        wire=Wire(stream_error_event=True),
        client=Client(error="StreamInterruptedError", partial=True),
        sim_setup=(("inject", {"kind": "reset_mid_stream", "after_chunks": 3}),),
        sim_gap="it resets the connection where LiteLLM sends data: {\"error\": {...}} in-band",
        xfail={"peer:llamaindex": "LiteLLM's in-band error event becomes ProtocolError "
               "('not valid JSON/SSE') and the partial answer is lost",
               "peer:caller": "ChatCaller turns LiteLLM's in-band error event into "
               "BadRequestError and the partial answer is lost"},
    ),
    Scenario(
        "context-vllm", "a prompt over the context window, as vLLM words it through LiteLLM",
        "sjtu:peer-context", "litellm", upstream="context",
        wire=Wire(status=400, error_says=("context",)),
        client=Client(error="BadRequestError", says=("context window",)),
        sim_gap="it does not check prompts against the context window",
        sim_client_fails=True,
    ),
    Scenario(
        "backend-credentials", "the gateway's own upstream key fails: not the user's key",
        "sjtu:peer-badcred", "litellm", upstream="badcred",
        wire=Wire(status=401, error_says=("authenticationerror",)),
        client=Client(error="AuthenticationError", says=("gateway",),
                      never_says=("sjtu_api_key",)),
        sim_gap="it has no upstream behind its gateway",
        sim_client_fails=True,
        xfail={"peer:caller": "a 401 always tells the user to check their own key, even when "
               "LiteLLM says its upstream rejected the gateway's key",
               "peer:langchain": "a 401 always tells the user to check their own key",
               "peer:llamaindex": "a 401 always tells the user to check their own key"},
    ),
    Scenario(
        "validation-500", "a 500 whose body rejects our request is not 'gateway overloaded'",
        "sjtu:peer-toolstrict", "litellm", upstream="toolstrict", messages=TOOL_TURN_NULL,
        wire=Wire(status=500, error_says=("valid string",)),
        client=Client(error="BadRequestError", never_says=("overloaded",), max_attempts=1,
                      vias=("caller",)),
        sim_gap="it accepts an assistant message with content: null",
        sim_client_fails=True,
        xfail={"peer:caller": "every 500 is retried as 'gateway overloaded', even one that "
               "says our request is invalid"},
    ),
    Scenario(
        "connection-drop", "the connection drops halfway through the answer",
        "sjtu:peer-drop", "upstream", upstream="drop",
        wire=Wire(drops=True),
        client=Client(
            error="UnreachableError",
            says=("broke",),
            never_says=("cannot connect",),
            vias=("langchain", "llamaindex"),  # ChatCaller cannot turn retries off
        ),
        sim_setup=(("inject", {"kind": "reset", "times": 10}),),
        xfail={"*:langchain": "langchain-openai wraps the SDK's APIConnectionError one level "
               "deeper than the mapping looks: a dropped connection reads 'Cannot connect' "
               "with the VPN hint"},
    ),
    # ---------------------------------------------------------------- llama.cpp
    Scenario(
        "llama-chat", "plain chat on llama-server", "llamacpp:smollm2-chat", "llama:chat",
        body=_GREEDY,
        wire=Wire(content=True, reasoning_field=False),
        client=Client(content=True, reasoning=False),
    ),
    Scenario(
        "llama-chat-stream", "streamed chat on llama-server", "llamacpp:smollm2-chat",
        "llama:chat", stream=True, body=_GREEDY,
        wire=Wire(content=True, reasoning_field=False),
        client=Client(content=True, reasoning=False),
    ),
    Scenario(
        "llama-reasoning-content", "--reasoning-format deepseek: reasoning_content",
        "llamacpp:smollm2-think", "llama:think-deepseek", messages=STORY, body=_REASON,
        wire=Wire(content=True, reasoning_field=True, content_lacks=("<think>", "</think>")),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "llama-reasoning-content-stream", "streamed reasoning_content from llama-server",
        "llamacpp:smollm2-think", "llama:think-deepseek", messages=STORY, body=_REASON,
        stream=True,
        wire=Wire(content=True, reasoning_field=True, content_lacks=("<think>", "</think>")),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "llama-reasoning-leading-newlines", "the answer after reasoning_content is trimmed as "
        "it is after </think>", "llamacpp:smollm2-think", "llama:think-deepseek",
        messages=STORY, body=_REASON,
        wire=Wire(content=True, reasoning_field=True, leading_ws=True),
        client=Client(content=True, reasoning=True, no_leading_ws=True),
        xfail={"peer:caller": "the reasoning_content path keeps the leading '\\n\\n' that the "
               "tag path strips",
               "peer:langchain": "the reasoning_content path keeps the leading '\\n\\n'",
               "peer:llamaindex": "the reasoning_content path keeps the leading '\\n\\n'"},
        sim_gap="its answers after reasoning_content never start with blank lines",
    ),
    Scenario(
        "llama-think-tags", "--reasoning-format none: <think>...</think> stays in content",
        "llamacpp:smollm2-think-tags", "llama:think-none", messages=STORY, body=_REASON,
        wire=Wire(content=True, reasoning_field=False, content_has=("<think>", "</think>")),
        client=Client(content=True, reasoning=True, no_tags=True, no_leading_ws=True),
    ),
    Scenario(
        "llama-think-tags-stream", "streamed inline tags from llama-server",
        "llamacpp:smollm2-think-tags", "llama:think-none", messages=STORY, body=_REASON,
        stream=True,
        wire=Wire(content=True, content_has=("</think>",)),
        client=Client(content=True, reasoning=True, no_tags=True),
    ),
    Scenario(
        "llama-thinking-off", "enable_thinking=false: the template closes the block at once",
        "llamacpp:smollm2-think-tags", "llama:think-none", messages=HI, body=_GREEDY,
        thinking=False,
        wire=Wire(content=True, content_has=("</think>",)),
        client=Client(content=True, reasoning=False, no_tags=True),
        sim_gap="with thinking off it sends no tags; llama-server echoes the empty "
        "<think></think> block the template wrote",
    ),
    Scenario(
        "llama-json-schema", "response_format json_schema is enforced by a grammar",
        "llamacpp:smollm2-chat", "llama:chat", messages=PERSON,
        body={"temperature": 0, "max_tokens": 60, "response_format": {
            "type": "json_schema", "json_schema": {"name": "Person", "schema": PERSON_SCHEMA}}},
        wire=Wire(content=True, json_content=True),
        client=Client(content=True, json_content=True),
    ),
    Scenario(
        "llama-json-mode", "response_format json_object", "llamacpp:smollm2-chat", "llama:chat",
        messages=PERSON,
        body={"temperature": 0, "max_tokens": 60, "response_format": {"type": "json_object"}},
        wire=Wire(content=True),
        client=Client(content=True),
    ),
    Scenario(
        "llama-context", "a prompt over llama-server's context: 400 exceed_context_size_error",
        "llamacpp:smollm2-chat", "llama:chat", messages=LONG, body=_GREEDY,
        wire=Wire(status=400, error_says=("context size",)),
        client=Client(error="BadRequestError", says=("context window",)),
        sim_gap="it does not check prompts against the context window",
        xfail={"peer:caller": "llama.cpp says 'exceeds the available context size'; the "
               "context hint looks for 'length'",
               "peer:langchain": "the context hint looks for 'length', llama.cpp says 'size'",
               "peer:llamaindex": "the context hint looks for 'length', llama.cpp says 'size'"},
        sim_client_fails=True,
    ),
    Scenario(
        "llama-embeddings", "--embeddings --pooling mean", "llamacpp:smollm2-embed",
        "llama:embed", endpoint="embeddings",
        wire=Wire(embedding_dim=EMBED_DIM),
        client=Client(vias=("langchain", "llamaindex")),
    ),
    Scenario(
        "llama-rerank", "--reranking: Jina-style /rerank", "llamacpp:smollm2-rerank",
        "llama:rerank", endpoint="rerank",
        wire=Wire(rerank_scores=True),
        client=Client(vias=("langchain", "llamaindex")),
    ),
]  # fmt: skip

BY_ID = {s.id: s for s in SCENARIOS}
assert len(BY_ID) == len(SCENARIOS), "scenario ids must be unique"


# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    """Where a scenario runs: the simulator or the real peers."""

    name: str  # "sim" | "peer"
    base_url: Callable[[Scenario], str]  # ends at /v1 (the API root)
    keys: Mapping[str, str]
    prepare: Callable[[Scenario], None] = lambda s: None
    attempts: Callable[[Scenario], int | None] = lambda s: None
    requests: Callable[[Scenario], list[dict[str, Any]]] = lambda s: []
    """Chat request bodies that reached the model server, oldest first."""


def params(check: str, target: str, vias: bool = False) -> list[Any]:
    """pytest params for ``check`` ("wire" or "client") on ``target``, xfails attached."""
    out = []
    for s in SCENARIOS:
        if not vias and s.wire is None:
            continue
        for via in s.client.vias if vias else ("wire",):
            reason = s.why_xfail(target, via)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            ident = f"{s.id}-{via}" if vias else s.id
            out.append(pytest.param(s, via, id=ident, marks=marks))
    return out


# ----------------------------------------------------------------------------- wire check


def _request(s: Scenario) -> tuple[str, dict[str, Any]]:
    model = s.model.split(":", 1)[1]
    if s.endpoint == "embeddings":
        return "/embeddings", {"model": model, "input": ["hello world", "a dragon"]}
    if s.endpoint == "rerank":
        docs = ["Paris is the capital of France.", "Bananas are yellow."]
        return "/rerank", {"model": model, "query": "capital of France", "documents": docs}
    body: dict[str, Any] = {"model": model, "messages": list(s.messages), "stream": s.stream}
    body.update(s.body)
    if s.thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": s.thinking}
    return "/chat/completions", body


def _send(client: httpx.Client, url: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """Status, headers, parsed body (non-stream) or events (stream), done flag."""
    out: dict[str, Any] = {"events": [], "done": False, "broken": None}
    if not stream:
        try:
            r = client.post(url, json=body)
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            out.update(status=None, headers={}, broken=type(e).__name__)
            return out
        out.update(status=r.status_code, headers=r.headers, text=r.text)
        with contextlib.suppress(ValueError):
            out["json"] = r.json()
        return out
    with client.stream("POST", url, json=body) as r:
        out.update(status=r.status_code, headers=r.headers)
        if r.status_code >= 400:
            r.read()
            out["text"] = r.text
            with contextlib.suppress(ValueError):
                out["json"] = r.json()
            return out
        try:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    out["done"] = True
                    continue
                out["events"].append(json.loads(data))
        except httpx.HTTPError as e:
            out["broken"] = type(e).__name__
    return out


def run_wire(s: Scenario, target: Target) -> None:
    _ensure_registry()
    path, body = _request(s)
    headers = {"Authorization": f"Bearer {target.keys[s.key]}"}
    target.prepare(s)
    with httpx.Client(base_url=target.base_url(s), headers=headers, timeout=60.0) as client:
        for _ in range(s.attempts):
            got = _send(client, path.lstrip("/"), body, s.stream)
            if got["status"] != 200:
                break
    assert s.wire is not None
    check_wire(s.wire, got)


def _error_message(got: Mapping[str, Any]) -> str:
    data = got.get("json")
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))
    return str(got.get("text", ""))


def check_wire(w: Wire, got: Mapping[str, Any]) -> None:
    if w.drops:
        assert got["broken"], f"the response arrived complete (HTTP {got['status']})"
        return
    assert got["status"] == w.status, (got["status"], got.get("text", "")[:500])
    for h in w.numeric_headers:
        assert h in got["headers"], f"no {h} header: {dict(got['headers'])}"
        assert float(got["headers"][h]) > 0
    if w.error_says:
        msg = _error_message(got).lower()
        for word in w.error_says:
            assert word in msg, (word, msg)
    if w.status != 200:
        return
    content, reasoning, psf = "", "", False
    if got["events"] or got.get("done") or got.get("broken"):
        errors_seen = [e for e in got["events"] if "error" in e]
        if w.stream_error_event:
            assert errors_seen, f"no in-band error event (stream broke: {got['broken']})"
            assert not got["done"], "an error event must not be followed by [DONE]"
            return
        assert got["done"] and not errors_seen and not got["broken"], got
        for e in got["events"]:
            for ch in e.get("choices") or []:
                d = ch.get("delta") or {}
                content += d.get("content") or ""
                reasoning += d.get("reasoning_content") or ""
                psf = psf or "provider_specific_fields" in ch
    elif w.stream_error_event:
        raise AssertionError("expected a stream")
    else:
        data = got["json"]
        if w.embedding_dim is not None:
            vecs = [d["embedding"] for d in data["data"]]
            assert len(vecs) == 2 and all(len(v) == w.embedding_dim for v in vecs)
            return
        if w.rerank_scores:
            results = data["results"]
            assert sorted(r["index"] for r in results) == [0, 1]
            assert all(isinstance(r["relevance_score"], float) for r in results)
            return
        ch = data["choices"][0]
        content = ch["message"].get("content") or ""
        reasoning = ch["message"].get("reasoning_content") or ""
        psf = "provider_specific_fields" in ch
    if w.content:
        assert content.strip(), "empty answer"
    if w.reasoning_field is True:
        assert reasoning.strip(), "no reasoning_content"
    if w.reasoning_field is False:
        assert not reasoning, f"unexpected reasoning_content {reasoning!r}"
    for text in w.content_has:
        assert text in content, (text, content)
    for text in w.content_lacks:
        assert text not in content, (text, content)
    if w.leading_ws:
        assert content != content.lstrip(), f"no leading whitespace: {content!r}"
    if w.json_content:
        json.loads(content)
    if w.provider_specific_fields:
        assert psf, "no provider_specific_fields in the choice"


# ----------------------------------------------------------------------------- client check


@dataclass
class Outcome:
    content: str = ""
    reasoning: str = ""
    error: BaseException | None = None
    vectors: list[list[float]] | None = None
    ranked: list[str] | None = None


def _caller(s: Scenario, url: str, key: str) -> Outcome:
    from campusllm.chat import ChatCaller

    out = Outcome()
    with ChatCaller(s.model, api_key=key, base_url=url, timeout=s.client.timeout) as caller:
        msgs = list(s.messages)
        if s.stream:
            for d in caller.stream(msgs, thinking=s.thinking, **s.body):
                out.content += d.content
                out.reasoning += d.reasoning
        else:
            msg = caller.invoke(msgs, thinking=s.thinking, **s.body)
            out.content, out.reasoning = msg.content, msg.reasoning
    return out


def _langchain(s: Scenario, url: str, key: str) -> Outcome:
    common = {"api_key": key, "base_url": url, "max_retries": s.client.max_retries,
              "timeout": s.client.timeout}  # fmt: skip
    if s.endpoint == "embeddings":
        from langchain_campusllm import CampusLLMEmbeddings

        emb = CampusLLMEmbeddings(model=s.model, **common)
        return Outcome(vectors=emb.embed_documents(["hello world", "a dragon"]))
    if s.endpoint == "rerank":
        from langchain_core.documents import Document

        from langchain_campusllm import CampusLLMRerank

        rr = CampusLLMRerank(model=s.model, top_n=2, **common)
        docs = [Document(page_content=t) for t in ("Bananas are yellow.", "Paris is in France.")]
        got = rr.compress_documents(docs, "capital of France")
        return Outcome(ranked=[d.page_content for d in got])
    from langchain_campusllm import ChatCampusLLM

    extra = dict(s.body)
    kw = {k: extra.pop(k) for k in ("temperature", "max_tokens") if k in extra}
    llm = ChatCampusLLM(model=s.model, thinking=s.thinking, model_kwargs=extra, **kw, **common)
    out = Outcome()
    msgs = [(m["role"], m["content"]) for m in s.messages]
    if s.stream:
        for chunk in llm.stream(msgs):
            out.content += chunk.content if isinstance(chunk.content, str) else ""
            out.reasoning += chunk.additional_kwargs.get("reasoning_content") or ""
    else:
        msg = llm.invoke(msgs)
        out.content = msg.content if isinstance(msg.content, str) else ""
        out.reasoning = msg.additional_kwargs.get("reasoning_content") or ""
    return out


def _llamaindex(s: Scenario, url: str, key: str) -> Outcome:
    common = {"api_key": key, "base_url": url, "max_retries": s.client.max_retries,
              "timeout": s.client.timeout}  # fmt: skip
    if s.endpoint == "embeddings":
        from llama_index_campusllm import CampusLLMEmbedding

        emb = CampusLLMEmbedding(model=s.model, **common)
        return Outcome(vectors=emb.get_text_embedding_batch(["hello world", "a dragon"]))
    if s.endpoint == "rerank":
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

        from llama_index_campusllm import CampusLLMRerank

        rr = CampusLLMRerank(model=s.model, top_n=2, **common)
        nodes = [NodeWithScore(node=TextNode(text=t)) for t in
                 ("Bananas are yellow.", "Paris is in France.")]  # fmt: skip
        got = rr.postprocess_nodes(nodes, query_bundle=QueryBundle("capital of France"))
        return Outcome(ranked=[n.node.get_content() for n in got])
    from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

    from llama_index_campusllm import CampusLLM

    body = dict(s.body)
    kw: dict[str, Any] = {"thinking": s.thinking}
    for name in ("temperature", "max_tokens"):
        if name in body:
            kw[name] = body.pop(name)
    msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in s.messages]

    async def run() -> Outcome:
        llm = CampusLLM(model=s.model, additional_kwargs=body, **kw, **common)
        out = Outcome()
        try:
            if s.stream:
                last = None
                async for r in await llm.astream_chat(msgs):
                    out.content += r.delta or ""
                    out.reasoning += r.additional_kwargs.get("thinking_delta") or ""
                    last = r
                assert last is not None
            else:
                r = await llm.achat(msgs)
                out.content = r.message.content or ""
                out.reasoning = "".join(
                    b.content or "" for b in r.message.blocks if isinstance(b, ThinkingBlock)
                )
        finally:
            await llm.aclose()
        return out

    return asyncio.run(run())


VIAS: dict[str, Callable[[Scenario, str, str], Outcome]] = {
    "caller": _caller,
    "langchain": _langchain,
    "llamaindex": _llamaindex,
}


def run_client(s: Scenario, via: str, target: Target) -> None:
    _ensure_registry()
    target.prepare(s)
    before = target.attempts(s)
    out = Outcome()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown-model warnings are part of the scenario
        for _ in range(s.attempts):
            try:
                out = VIAS[via](s, target.base_url(s), target.keys[s.key])
            except errors.CampusLLMError as e:
                out = Outcome(error=e)
                break
    after = target.attempts(s)
    check_client(s.client, out)
    if s.client.sent:
        sent = target.requests(s)
        assert sent, "no request reached the model server"
        for path, value in s.client.sent:
            got: Any = sent[-1]
            for part in path.split("."):
                got = got.get(part) if isinstance(got, dict) else None
            assert got == value, f"the model server got {path}={got!r}, not {value!r}"
    if s.client.max_attempts is not None and before is not None and after is not None:
        assert after - before <= s.client.max_attempts, (
            f"{after - before} generations started on the model server"
        )


def check_client(c: Client, out: Outcome) -> None:
    if c.error is not None:
        assert out.error is not None, f"expected {c.error}, got an answer {out.content!r}"
        expected = getattr(errors, c.error)
        assert isinstance(out.error, expected), (
            f"expected {c.error}, got {type(out.error).__name__}: {out.error}"
        )
        text = str(out.error).lower()
        for word in c.says:
            assert word in text, (word, text)
        for word in c.never_says:
            assert word not in text, (word, text)
        if c.retry_after_min is not None:
            ra = getattr(out.error, "retry_after", None)
            assert ra is not None and ra >= c.retry_after_min, f"retry_after={ra}"
        if c.partial:
            assert getattr(out.error, "partial_content", ""), "the partial answer was lost"
        return
    assert out.error is None, f"{type(out.error).__name__}: {out.error}"
    if out.vectors is not None:
        assert len(out.vectors) == 2 and len({len(v) for v in out.vectors}) == 1
        assert out.vectors[0] != out.vectors[1]
        return
    if out.ranked is not None:
        assert sorted(out.ranked) == ["Bananas are yellow.", "Paris is in France."]
        return
    if c.content:
        assert out.content.strip(), "empty answer"
    if c.reasoning is True:
        assert out.reasoning.strip(), "no reasoning"
    if c.reasoning is False:
        assert not out.reasoning.strip(), f"unexpected reasoning {out.reasoning!r}"
    if c.no_tags:
        assert "<think>" not in out.content and "</think>" not in out.content, out.content
    if c.no_leading_ws:
        assert out.content == out.content.lstrip(), f"leading whitespace: {out.content!r}"
    if c.json_content:
        json.loads(out.content)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ----------------------------------------------------------------------------- adapter checks
#
# Framework features that a single request/response cannot show: a tool loop's history and
# structured output. Each runs on both targets like the scenarios above.


@dataclass(frozen=True)
class AdapterCheck:
    id: str
    what: str
    scenario: Scenario  # model, peer, upstream: where it runs
    run: Callable[[Scenario, Target], None]
    xfail: Mapping[str, str] = field(default_factory=dict)  # "sim" | "peer" | "*" -> why


def _assistant_turns(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages", []) if m.get("role") == "assistant"]


def _tool_loop_langchain(s: Scenario, target: Target) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    @tool
    def get_weather(city: str) -> str:
        """The weather of a city."""
        return "sunny"

    llm = ChatCampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                        max_retries=2, timeout=60.0).bind_tools([get_weather])  # fmt: skip
    history = [
        HumanMessage("What is the weather in Paris?"),
        AIMessage(
            "", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]
        ),  # fmt: skip
        ToolMessage("sunny", tool_call_id="call_1"),
    ]
    before = target.attempts(s)
    answer = llm.invoke(history)
    _check_tool_turn(s, target, before)
    assert isinstance(answer.content, str) and answer.content.strip()


def _tool_loop_llamaindex(s: Scenario, target: Target) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from llama_index_campusllm import CampusLLM

    async def run() -> str:
        llm = CampusLLM(model=s.model, api_key=target.keys["good"],
                        base_url=target.base_url(s), max_retries=2, timeout=60.0)  # fmt: skip
        history = [
            ChatMessage(role=MessageRole.USER, content="What is the weather in Paris?"),
            ChatMessage(
                role=MessageRole.ASSISTANT,
                content="",
                additional_kwargs={"tool_calls": [WEATHER_CALL]},
            ),  # fmt: skip
            ChatMessage(
                role=MessageRole.TOOL, content="sunny", additional_kwargs={"tool_call_id": "call_1"}
            ),  # fmt: skip
        ]
        try:
            r = await llm.achat(history)
        finally:
            await llm.aclose()
        return r.message.content or ""

    before = target.attempts(s)
    answer = asyncio.run(run())
    _check_tool_turn(s, target, before)
    assert answer.strip()


def _check_tool_turn(s: Scenario, target: Target, before: int | None) -> None:
    sent = target.requests(s)
    assert sent, "no request reached the model server"
    turns = _assistant_turns(sent[-1])
    assert turns and turns[0].get("tool_calls"), sent[-1]
    # "" (or no content key at all) is what strict OpenAI-compatible servers accept.
    assert turns[0].get("content", "") is not None, "assistant tool-call turn sent content: null"
    after = target.attempts(s)
    if before is not None and after is not None:
        assert after - before == 1, f"{after - before} requests for one tool-loop step"


class Person(pydantic.BaseModel):
    name: str
    age: int


def _structured_langchain(s: Scenario, target: Target) -> None:
    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                        max_retries=0, temperature=0, max_tokens=60)  # fmt: skip
    got = llm.with_structured_output(Person, method="json_schema").invoke(PERSON[0]["content"])
    assert isinstance(got, Person) and got.name


def _structured_llamaindex(s: Scenario, target: Target) -> None:
    from llama_index.core.prompts import PromptTemplate

    from llama_index_campusllm import CampusLLM

    llm = CampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                    max_retries=0, temperature=0, max_tokens=60)  # fmt: skip
    try:
        got = llm.structured_predict(Person, PromptTemplate(PERSON[0]["content"]))
    finally:
        llm.close() if hasattr(llm, "close") else None
    assert isinstance(got, Person) and got.name
    body = target.requests(s)[-1]
    assert body.get("response_format", {}).get("type") == "json_schema", body


_TOOLSTRICT = Scenario("tool-loop", "", "sjtu:peer-toolstrict", "litellm", upstream="toolstrict")
_JSONCHAT = Scenario("structured", "", "llamacpp:smollm2-chat", "llama:chat")
_NULL = ("LangChain sends the assistant tool-call turn with content: null; strict servers "
         "(llama-cpp-python, and this model server) answer 500, which is retried")  # fmt: skip

ADAPTER_CHECKS: list[AdapterCheck] = [
    AdapterCheck("tool-loop-langchain", "a LangChain tool loop's history is accepted",
                 _TOOLSTRICT, _tool_loop_langchain, {"*": _NULL}),
    AdapterCheck("tool-loop-llamaindex", "a LlamaIndex tool loop's history is accepted",
                 _TOOLSTRICT, _tool_loop_llamaindex),
    AdapterCheck("json-schema-langchain", "with_structured_output(method='json_schema')",
                 _JSONCHAT, _structured_langchain),
    AdapterCheck("json-schema-llamaindex", "structured_predict on a json_schema model without "
                 "tools uses response_format json_schema", _JSONCHAT, _structured_llamaindex,
                 {"*": "LlamaIndex has no json_schema structured-output path; a model without "
                  "tools gets a text-completion prompt and parsing"}),
]  # fmt: skip


def adapter_params(target: str) -> list[Any]:
    out = []
    for c in ADAPTER_CHECKS:
        reason = c.xfail.get(target) or c.xfail.get("*")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def run_adapter(c: AdapterCheck, target: Target) -> None:
    _ensure_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.run(c.scenario, target)
