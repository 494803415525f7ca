"""One list of gateway scenarios, run against the offline simulator and against real peers.

Each :class:`Scenario` is data: a model, a request, what the raw HTTP exchange must look like
(:class:`Wire`, the gateway's side) and what our public classes must make of it
(:class:`Client`, our side); ``conformance_checks.py`` runs them. ``test_conformance_sim.py``
runs the list against the simulator in the default suite, ``peers/test_conformance_peers.py``
against a real LiteLLM proxy and real llama.cpp servers. A scenario whose wire check fails on
the simulator records how the simulator differs from the real software (``sim_gap``); a client
check that fails marks a defect of ours (``xfail``), each with its reason, strict, so a fix
shows up as an unexpected pass.

The models come from the registry: SJTU's catalog (its gateway is a LiteLLM proxy) plus a few
``sjtu:peer-*`` entries whose model server misbehaves on purpose, and a ``llamacpp`` provider
describing the llama.cpp servers. :func:`conformance_registry` adds those entries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import campusllm
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


def require_registry() -> None:
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
# Valid OpenAI (an assistant turn as content parts) that a strict model server refuses: the
# client sends it as given, so the gateway's validation 500 is what the user meets.
TOOL_TURN_PARTS = (
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me check."}],
        "tool_calls": [WEATHER_CALL],
    },
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
        sim_setup=(("inject", {"kind": "router_429", "times": 10}),),
    ),
    Scenario(
        "gateway-408", "the model server is slower than LiteLLM's timeout: HTTP 408",
        "sjtu:peer-slow", "litellm", upstream="slow",
        wire=Wire(status=408, error_says=("timeout",)),
        client=Client(error="TimeoutError", says=("slow",), max_attempts=2, max_retries=3,
                      vias=("langchain", "llamaindex")),
        sim_setup=(("inject", {"kind": "gateway_408", "times": 10, "delay_s": 0.2}),),
    ),
    Scenario(
        # An error event in a stream is the gateway's error for its code (LiteLLM: "500"),
        # carrying what arrived before it, on every path alike.
        "dies-mid-stream", "the model server dies mid-stream: LiteLLM sends an error event",
        "sjtu:peer-dies", "litellm", stream=True, upstream="dies",
        wire=Wire(stream_error_event=True),
        client=Client(error="ServerError", partial=True),
        # the role chunk and three pieces of the answer, then LiteLLM's error event
        sim_setup=(("inject", {"kind": "error_mid_stream", "after_chunks": 4}),),
    ),
    Scenario(
        "context-vllm", "a prompt over the context window, as vLLM words it through LiteLLM",
        "sjtu:peer-context", "litellm", upstream="context",
        body={"max_tokens": 40000},  # with the prompt, over the 32768 tokens of the model
        wire=Wire(status=400, error_says=("context",)),
        client=Client(error="BadRequestError", says=("context window",)),
    ),
    Scenario(
        "backend-credentials", "the gateway's own upstream key fails: not the user's key",
        "sjtu:peer-badcred", "litellm", upstream="badcred",
        wire=Wire(status=401, error_says=("authenticationerror",)),
        client=Client(error="AuthenticationError", says=("gateway",),
                      never_says=("sjtu_api_key",)),
        sim_setup=(("inject", {"kind": "upstream_401", "times": 10}),),
    ),
    Scenario(
        "validation-500", "a 500 whose body rejects our request is not 'gateway overloaded'",
        "sjtu:peer-toolstrict", "litellm", upstream="toolstrict", messages=TOOL_TURN_PARTS,
        wire=Wire(status=500, error_says=("valid string",)),
        client=Client(error="BadRequestError", never_says=("overloaded",), max_attempts=1,
                      vias=("caller",)),
        sim_setup=(("inject", {"kind": "reject_null_content", "times": 10}),),
    ),
    Scenario(
        "connection-drop", "the connection drops halfway through the answer",
        "sjtu:peer-drop", "upstream", upstream="drop",
        wire=Wire(drops=True),
        client=Client(
            # the gateway had answered: a broken answer, not a failure to connect
            error="ProtocolError",
            says=("broke",),
            never_says=("cannot connect", "vpn"),
            vias=("langchain", "llamaindex"),  # ChatCaller cannot turn retries off
        ),
        sim_setup=(("inject", {"kind": "reset_mid_stream"}),),  # half the body, then hang up
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
