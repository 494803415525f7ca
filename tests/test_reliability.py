"""Reliability: rate-limit storms, transient failures, broken streams, fuzzed wire data,
heavy concurrency through one limiter, and API keys never leaking.

Every test runs against the offline simulator (or an in-process mock transport) on
127.0.0.1 and is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from campusllm.errors import (
    AuthenticationError,
    CampusLLMError,
    RateLimitError,
    StreamInterruptedError,
)
from campusllm.sim import SIM_KEY

REASONER = "ecnu:ecnu-reasoner"
CHAT = "ecnu:ecnu-plus"
PROMPT = "How do rate limits work on the campus gateway?"
# A key shaped like no known pattern, so only explicit secret registration can redact it.
SECRET = "sk-sim-SECRET-abcdef123456"
PLAIN_SECRET = "campusSECRETabcdef123456"
FAST_RETRY = {"max_retries": 4, "backoff_base": 0.01, "backoff_max": 0.05}


# ------------------------------------------------------------------------- helpers


def _model_of(kind: str) -> str:
    """``"provider:id"`` of a catalogued model of ``kind`` (prefers oneapi, never custom)."""
    from campusllm.registry import get_registry

    found = [
        (p.name, m.id)
        for p, m in get_registry().models(kind=kind)
        if p.name != "custom" and m.status != "deprecated"
    ]
    if not found:
        pytest.skip(f"no catalogued {kind} model")
    found.sort(key=lambda pm: pm[0] != "oneapi")
    return f"{found[0][0]}:{found[0][1]}"


def _chat(sim: Any, model: str = REASONER, key: str = SIM_KEY, **kw: Any) -> Any:
    from langchain_campusllm import ChatCampusLLM

    return ChatCampusLLM(model=model, base_url=sim.url(model.split(":")[0]), api_key=key, **kw)


def _client(sim: Any, model: str = CHAT, key: str = SIM_KEY, **retry: Any) -> Any:
    """A core client on the simulator with a fast retry policy (tests stay short)."""
    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits, resolve
    from campusllm.transport import RetryPolicy

    resolved = resolve(model, base_url=sim.url(model.split(":")[0]))
    policy = RetryPolicy(**{**FAST_RETRY, **retry})
    return CampusClient(resolved, key, retry=policy, limits=RateLimits())


def _post_chat(client: Any, **body: Any) -> httpx.Response:
    resolved = client_resolved(client)
    payload = {"model": resolved.wire_model, "messages": [{"role": "user", "content": PROMPT}]}
    payload.update(body)
    return client.http.post(resolved.base_url.rstrip("/") + "/chat/completions", json=payload)


def client_resolved(client: Any) -> Any:
    return client.resolved


def _collect(stream: Iterator[Any]) -> tuple[str, str]:
    reasoning, content = [], []
    for ch in stream:
        content.append(ch.content if isinstance(ch.content, str) else "")
        reasoning.append(ch.additional_kwargs.get("reasoning_content") or "")
    return "".join(reasoning), "".join(content)


def _secret_free(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text, f"secret leaked into: {text[:300]!r}"


# ------------------------------------------------------------------------- 429 storms


def test_retry_after_is_honoured_on_a_429_storm(sim: Any) -> None:
    # Retry-After (0.3 s) is far longer than the policy's own backoff (<= 0.05 s): the
    # elapsed time shows which one the transport obeyed.
    sim.inject("status", status=429, times=3, retry_after_s=0.3)
    client = _client(sim)
    t0 = time.monotonic()
    r = _post_chat(client)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert sim.stats["429"] == 3
    assert sim.stats["requests"] == 4
    assert 0.85 <= elapsed < 5.0


def test_429_storm_without_retry_after_uses_backoff(sim: Any) -> None:
    sim.retry_after = False  # reset() does not touch it: restore below
    try:
        sim.inject("status", status=429, times=3)
        client = _client(sim)
        t0 = time.monotonic()
        r = _post_chat(client)
        assert r.status_code == 200
        assert sim.stats["requests"] == 4
        assert "retry-after" not in {k.lower() for k in r.headers}
        assert time.monotonic() - t0 < 3.0
    finally:
        sim.retry_after = True


def test_429_storm_longer_than_the_retries_surfaces_rate_limit_error(sim: Any) -> None:
    sim.inject("status", status=429, times=50, retry_after_s=0.01)
    llm = _chat(sim, CHAT, max_retries=2)
    with pytest.raises(RateLimitError) as ei:
        llm.invoke(PROMPT)
    assert sim.stats["requests"] == 3  # first try + 2 retries, then stop
    assert ei.value.status_code == 429
    assert ei.value.retry_after is not None


async def test_concurrent_storm_against_unannounced_limits_all_succeed(fresh_sim: Any) -> None:
    # The gateway enforces limits the client was not told about: every request must still
    # succeed (429 -> Retry-After -> retry), in order, with nothing surfaced.
    from campusllm.registry import RateLimits

    # A 1 s window: 24 requests sent at once reach the gateway inside it even with both cores
    # busy, so the storm (429s) happens for sure.
    fresh_sim.set_limits("ecnu", rpm=8, window_s=1.0)
    llm = _chat(fresh_sim, CHAT, max_retries=10, rate_limits=RateLimits())
    prompts = [f"Question {i}: what is a sliding window?" for i in range(24)]
    t0 = time.monotonic()
    out = await asyncio.wait_for(llm.abatch(prompts), timeout=60)
    elapsed = time.monotonic() - t0
    assert [f"Question {i}:" in m.content for i, m in enumerate(out)] == [True] * 24
    assert fresh_sim.stats["429"] > 0  # the storm did happen
    assert elapsed >= (24 / 8 - 1) * 1.0 * 0.9  # and the budget was respected overall


async def test_announced_limits_prevent_429s(fresh_sim: Any) -> None:
    from campusllm.registry import RateLimits

    # The client's window is four times the gateway's: a request granted in the client's next
    # window reaches the gateway at least 0.9 s after the gateway's window of the request it
    # replaces has closed, so no delay between grant and arrival on a loaded machine can put
    # seven requests in one gateway window. 12 requests at once: the limiter must hold 6 back.
    fresh_sim.set_limits("ecnu", rpm=6, window_s=0.3)
    llm = _chat(fresh_sim, CHAT, rate_limits=RateLimits(rpm=6, window_s=1.2))
    t0 = time.monotonic()
    out = await asyncio.wait_for(llm.abatch([f"q{i}" for i in range(12)]), timeout=60)
    assert [f"q{i}" in m.content for i, m in enumerate(out)] == [True] * 12
    assert fresh_sim.stats.get("429", 0) == 0
    assert time.monotonic() - t0 >= 1.2  # the second six waited for the client's window


# ------------------------------------------------------------------------- transient failures


@pytest.mark.parametrize(
    ("kind", "status"),
    [("status", 500), ("status", 502), ("status", 503), ("status", 504), ("reset", 0)],
)
def test_failure_before_first_byte_is_retried(sim: Any, kind: str, status: int) -> None:
    sim.inject(kind, status=status, times=2)
    client = _client(sim)
    r = _post_chat(client)
    assert r.status_code == 200
    assert sim.stats["requests"] == 3
    assert sim.stats["faults"] == 2


def test_failures_exhausting_retries_surface_typed_errors(sim: Any) -> None:
    from campusllm.errors import ServerError, UnreachableError

    sim.inject("status", status=503, times=10, retry_after_s=0.01)
    llm = _chat(sim, CHAT, max_retries=1)
    with pytest.raises(ServerError) as ei:
        llm.invoke(PROMPT)
    assert ei.value.status_code == 503
    sim.reset()
    sim.inject("reset", times=10)
    with pytest.raises(UnreachableError):
        llm.invoke(PROMPT)


def test_chat_invoke_and_stream_recover_from_errors_before_first_byte(sim: Any) -> None:
    llm = _chat(sim, REASONER, max_retries=3)
    expected = llm.invoke(PROMPT)
    sim.inject("status", status=502, times=1, retry_after_s=0.01)
    again = llm.invoke(PROMPT)
    assert again.content == expected.content
    assert again.additional_kwargs.get("reasoning_content") == (
        expected.additional_kwargs.get("reasoning_content")
    )
    sim.inject("reset", times=1, path_contains="/chat/completions")
    reasoning, content = _collect(llm.stream(PROMPT))
    assert content == expected.content  # nothing lost, nothing duplicated by the retry
    assert reasoning == expected.additional_kwargs.get("reasoning_content")


def _interrupted_stream(sim: Any, llm: Any) -> tuple[StreamInterruptedError, str, str, str, str]:
    extra = {"sim": {"chunks": 40}}
    full_r, full_c = _collect(llm.stream(PROMPT, extra_body=extra))
    sim.inject("reset_mid_stream", after_chunks=30)
    before = sim.stats["requests"]
    got_r: list[str] = []
    got_c: list[str] = []
    with pytest.raises(StreamInterruptedError) as ei:
        for ch in llm.stream(PROMPT, extra_body=extra):
            got_c.append(ch.content if isinstance(ch.content, str) else "")
            got_r.append(ch.additional_kwargs.get("reasoning_content") or "")
    assert sim.stats["requests"] - before == 1  # never retried once output had started
    return ei.value, full_r, full_c, "".join(got_r), "".join(got_c)


def test_reset_mid_stream_raises_with_the_partial_text_and_nothing_duplicated(sim: Any) -> None:
    llm = _chat(sim, REASONER, max_retries=3)
    err, full_r, full_c, got_r, got_c = _interrupted_stream(sim, llm)
    assert err.partial_reasoning == got_r
    assert err.partial_content == got_c
    assert got_r and got_c  # the cut fell inside the content, after all the reasoning
    assert full_r == got_r
    assert full_c.startswith(got_c) and len(got_c) < len(full_c)


async def test_async_reset_mid_stream_raises_with_the_partial_text(sim: Any) -> None:
    llm = _chat(sim, REASONER, max_retries=3)
    sim.inject("reset_mid_stream", after_chunks=10)
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as ei:
        async for ch in llm.astream(PROMPT, extra_body={"sim": {"chunks": 40}}):
            got.append(ch.additional_kwargs.get("reasoning_content") or "")
            got.append(ch.content if isinstance(ch.content, str) else "")
    err = ei.value
    assert err.partial_reasoning + err.partial_content == "".join(got)
    assert err.partial_reasoning
    assert sim.stats["requests"] == 1


def test_llama_index_reset_mid_stream_raises_with_the_partial_text(sim: Any) -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_campusllm import CampusLLM

    llm = CampusLLM(REASONER, base_url=sim.url("ecnu"), api_key=SIM_KEY, max_retries=3)
    msgs = [ChatMessage(role="user", content=PROMPT)]
    full = llm.chat(msgs, sim={"chunks": 40}).message.content or ""
    sim.inject("reset_mid_stream", after_chunks=30)
    deltas: list[str] = []
    with pytest.raises(StreamInterruptedError) as ei:
        for r in llm.stream_chat(msgs, sim={"chunks": 40}):
            deltas.append(r.delta or "")
    assert ei.value.partial_content == "".join(deltas)
    assert ei.value.partial_content and full.startswith(ei.value.partial_content)
    assert len(ei.value.partial_content) < len(full)


def test_one_instance_survives_successive_event_loops(sim: Any) -> None:
    # Scripts (and LlamaIndex's sync wrappers) call asyncio.run again and again; pooled
    # connections of a finished loop must not be reused ("Event loop is closed").
    from campusllm.client import CampusClient
    from campusllm.registry import resolve

    llm = _chat(sim, CHAT, max_retries=0)
    emb = _model_of("embedding")
    client = CampusClient(resolve(emb, base_url=sim.url(emb.split(":")[0])), SIM_KEY)
    for i in range(3):
        msg = asyncio.run(llm.ainvoke(f"Question {i}: still there?"))
        assert f"Question {i}:" in msg.content
        assert len(asyncio.run(client.aembed(["a", "b", "c"]))) == 3


def test_non_stream_body_cut_short_is_a_typed_error_or_a_clean_retry(sim: Any) -> None:
    llm = _chat(sim, CHAT, max_retries=2)
    expected = llm.invoke(PROMPT).content
    sim.inject("reset_mid_stream", times=1)
    try:
        got = llm.invoke(PROMPT).content
    except CampusLLMError:
        return
    assert got == expected


# ------------------------------------------------------------------------- fuzzed wire data


def _completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "<think>a</think>hello",
                    "reasoning_content": "because",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 1}'},
                        }
                    ],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek-reasoner",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


_VALID_CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning_content": "thin"}),
    _chunk({"content": "<thi"}),
    _chunk({"content": "nk>x</think>hi"}),
    _chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x": 1}'}}]}),
    _chunk({}, "stop"),
    {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1, "total_tokens": 2}},
]

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one node somewhere replaced, deleted or retyped."""
    value = json.loads(json.dumps(value))
    node, path = value, []
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = draw(st.sampled_from(keys))
        path.append((node, k))
        node = node[k]
    if not path:
        return draw(_json)
    parent, k = path[-1]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[k]
    else:
        parent[k] = draw(_json)
    return value


_status = st.sampled_from([200] * 6 + [400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503])


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[int, bytes]:
    kind = draw(st.sampled_from(["mutated", "json", "bytes", "truncated"]))
    if kind == "mutated":
        raw = json.dumps(draw(_mutated(_completion()))).encode()
    elif kind == "json":
        raw = json.dumps(draw(_json)).encode()
    elif kind == "bytes":
        raw = draw(st.binary(max_size=64))
    else:
        full = json.dumps(_completion()).encode()
        raw = full[: draw(st.integers(0, len(full) - 1))]
    return draw(_status), raw


@st.composite
def _sse_bodies(draw: st.DrawFn) -> bytes:
    events = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["valid", "mutated", "json", "text", "comment", "done"]))
        if kind == "valid":
            events.append("data: " + json.dumps(draw(st.sampled_from(_VALID_CHUNKS))))
        elif kind == "mutated":
            events.append(
                "data: " + json.dumps(draw(_mutated(draw(st.sampled_from(_VALID_CHUNKS)))))
            )
        elif kind == "json":
            events.append("data: " + json.dumps(draw(_json)))
        elif kind == "text":
            events.append(
                draw(st.sampled_from(["data: ", "event: error\ndata: ", ""]))
                + draw(st.text(max_size=20)).replace("\r", "")
            )
        elif kind == "comment":
            events.append(": keep-alive")
        else:
            events.append("data: [DONE]")
    return ("\n\n".join(events) + "\n\n").encode()


class _Reply:
    """A mutable canned answer the mock transport returns for every request."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.content_type = "application/json"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            self.status, content=self.body, headers={"content-type": self.content_type}
        )


def _mock_http(model: str, reply: _Reply) -> tuple[Any, httpx.Client, httpx.AsyncClient]:
    """(resolved, sync client, async client) going through campusllm's transports to a mock."""
    from campusllm.registry import resolve
    from campusllm.transport import AsyncCampusTransport, CampusTransport, RetryPolicy

    resolved = resolve(model, base_url="http://127.0.0.1:9/v1")
    key = SecretStr(SIM_KEY)
    policy = RetryPolicy(max_retries=0)
    sync = httpx.Client(
        transport=CampusTransport(
            resolved.provider, key, limiter=None, retry=policy, inner=httpx.MockTransport(reply)
        )
    )
    asyn = httpx.AsyncClient(
        transport=AsyncCampusTransport(
            resolved.provider, key, limiter=None, retry=policy, inner=httpx.MockTransport(reply)
        )
    )
    return resolved, sync, asyn


def _only_campus_errors(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except CampusLLMError:
        pass


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def fuzz_chat() -> tuple[_Reply, Any]:
    from langchain_campusllm import ChatCampusLLM

    reply = _Reply()
    _, sync, asyn = _mock_http(REASONER, reply)
    llm = ChatCampusLLM(
        model=REASONER,
        base_url="http://127.0.0.1:9/v1",
        api_key=SIM_KEY,
        max_retries=0,
        http_client=sync,
        http_async_client=asyn,
    )
    return reply, llm


def _with_usage(usage: Any) -> bytes:
    body = _completion()
    body["usage"] = usage
    return json.dumps(body).encode()


@_FUZZ
@given(case=_bodies())
# Shapes the random search has found before: pinned so every run checks them.
@example(case=(200, b""))
@example(case=(200, b"null"))
@example(case=(200, _with_usage([])))
@example(case=(200, _with_usage({"prompt_tokens": [None], "total_tokens": 7})))
@example(case=(200, _with_usage({"completion_tokens": "many"})))
def test_fuzzed_completion_bodies_raise_only_campusllm_errors(
    fuzz_chat: tuple[_Reply, Any], case: tuple[int, bytes]
) -> None:
    reply, llm = fuzz_chat
    reply.status, reply.body = case
    reply.content_type = "application/json"
    _only_campus_errors(lambda: llm.invoke(PROMPT))


@_FUZZ
@given(body=_sse_bodies(), status=_status)
@example(body=b"data: null\n\n", status=200)
@example(body=b"data: \n\n", status=200)
@example(body=b'data: {"choices": [], "usage": []}\n\ndata: [DONE]\n\n', status=200)
def test_fuzzed_sse_streams_raise_only_campusllm_errors(
    fuzz_chat: tuple[_Reply, Any], body: bytes, status: int
) -> None:
    reply, llm = fuzz_chat
    reply.status, reply.body = status, body
    reply.content_type = "text/event-stream"
    _only_campus_errors(lambda: list(llm.stream(PROMPT)))


@_FUZZ
@given(body=_sse_bodies())
@example(body=b"data: null\n\n")
def test_fuzzed_sse_streams_async_raise_only_campusllm_errors(
    fuzz_chat: tuple[_Reply, Any], body: bytes
) -> None:
    reply, llm = fuzz_chat
    reply.status, reply.body = 200, body
    reply.content_type = "text/event-stream"

    async def consume() -> None:
        async for _ in llm.astream(PROMPT):
            pass

    _only_campus_errors(lambda: asyncio.run(consume()))


@pytest.fixture(scope="module")
def fuzz_client() -> tuple[_Reply, Any, Any]:
    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits
    from campusllm.transport import RetryPolicy

    emb, rr = _model_of("embedding"), _model_of("rerank")
    reply = _Reply()
    out = []
    for model in (emb, rr):
        resolved, sync, asyn = _mock_http(model, reply)
        c = CampusClient(resolved, SIM_KEY, retry=RetryPolicy(max_retries=0), limits=RateLimits())
        c.http, c.ahttp = sync, asyn
        out.append(c)
    return reply, out[0], out[1]


def _embedding_body() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 0, "embedding": [0.3, 0.4]},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }


def _rerank_body() -> dict[str, Any]:
    return {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]}


@_FUZZ
@given(data=st.data(), status=_status)
def test_fuzzed_embedding_and_rerank_bodies_raise_only_campusllm_errors(
    fuzz_client: tuple[_Reply, Any, Any], data: st.DataObject, status: int
) -> None:
    reply, emb, rr = fuzz_client
    reply.status = status
    reply.content_type = "application/json"
    reply.body = json.dumps(data.draw(_mutated(_embedding_body()))).encode()
    _only_campus_errors(lambda: emb.embed(["a", "b"]))
    reply.body = json.dumps(data.draw(_mutated(_rerank_body()))).encode()
    _only_campus_errors(lambda: rr.rerank("q", ["a", "b"]))


def test_fuzz_harness_sees_valid_answers(fuzz_chat: tuple[_Reply, Any]) -> None:
    # Guards the fuzz tests above: with an intact body the mock path really answers.
    reply, llm = fuzz_chat
    reply.status, reply.content_type = 200, "application/json"
    reply.body = json.dumps(_completion()).encode()
    msg = llm.invoke(PROMPT)
    assert "hello" in msg.content
    reply.content_type = "text/event-stream"
    reply.body = (
        "".join(f"data: {json.dumps(c)}\n\n" for c in _VALID_CHUNKS) + "data: [DONE]\n\n"
    ).encode()
    reasoning, content = _collect(llm.stream(PROMPT))
    assert "thin" in reasoning and "hi" in content


def test_simulated_malformed_responses_are_protocol_errors(sim: Any) -> None:
    from campusllm.errors import ProtocolError

    llm = _chat(sim, CHAT, max_retries=0)
    sim.inject("malformed_json")
    with pytest.raises(ProtocolError):
        llm.invoke(PROMPT)
    sim.inject("malformed_sse", after_chunks=2)
    with pytest.raises(CampusLLMError):
        list(llm.stream(PROMPT))


# ------------------------------------------------------------------------- one limiter, 200 streams


async def test_200_concurrent_streams_share_one_limiter_exactly(sim: Any) -> None:
    from campusllm.limiter import limiter_for
    from campusllm.registry import RateLimits

    key = f"sk-sim-limiter-{uuid.uuid4().hex[:10]}"
    window = 0.25

    # Grants are recorded with the store's own time stamps (what the window is measured on),
    # not the time the recording coroutine got to run, which a loaded machine delays at will;
    # with the tokens they were admitted with (settling later lowers grant.tokens) and the
    # stamp they were admitted with (a request sent late has its slot re-dated later).
    def recorder(limiter: Any, grants: list[Any]) -> None:
        orig_async, orig_sync = limiter.aacquire, limiter.acquire

        async def aacquire(tokens: int = 0, **kw: Any) -> Any:
            g = await orig_async(tokens, **kw)
            grants.append((g, g.tokens, g.ts))
            return g

        def acquire(tokens: int = 0, **kw: Any) -> Any:
            g = orig_sync(tokens, **kw)
            grants.append((g, g.tokens, g.ts))
            return g

        limiter.aacquire, limiter.acquire = aacquire, acquire

    # Probe how many tokens one request is charged, to make the TPM budget bind too.
    probe_limits = RateLimits(rpm=10**6, tpm=10**9, window_s=window)
    probe: list[Any] = []
    recorder(limiter_for("ecnu", key, probe_limits), probe)
    await _chat(sim, CHAT, key=key, rate_limits=probe_limits).ainvoke("q0")
    assert len(probe) == 1 and probe[0][1] > 0
    per_request = probe[0][1]  # admitted with: input + expected output

    rpm, tpm = 60, per_request * 50
    limits = RateLimits(rpm=rpm, tpm=tpm, window_s=window)
    grants: list[Any] = []
    recorder(limiter_for("ecnu", key, limits), grants)
    llm = _chat(sim, CHAT, key=key, rate_limits=limits, max_retries=0)

    async def one(i: int) -> str:
        parts = []
        async for ch in llm.astream(f"q{i}"):
            parts.append(ch.content)
        return "".join(parts)

    t0 = time.monotonic()
    answers = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), timeout=60)
    elapsed = time.monotonic() - t0
    assert all(a.endswith(f"q{i}") for i, a in enumerate(answers))
    assert len(grants) == 200  # one charge per request: nothing lost, nothing double-charged
    times = sorted(ts for _, _, ts in grants)
    eps = 1e-6
    # no window of `window` seconds ever held more than rpm requests or tpm tokens
    assert all(times[i + rpm] - times[i] >= window - eps for i in range(len(times) - rpm))
    # tokens as settled (a grant counted at least this while it was in the window)
    assert all(g.tokens < admitted for g, admitted, _ in grants)  # every stream was settled
    ordered = sorted((ts, g.tokens) for g, _, ts in grants)
    lo, used = 0, 0
    for t, n in ordered:
        used += n
        while ordered[lo][0] <= t - window + eps:
            used -= ordered[lo][1]
            lo += 1
        assert used <= tpm
    # ...and the budget was used, not wasted: close to the theoretical minimum time
    need = max(200 / rpm, sum(n for _, n in ordered) / tpm)
    assert elapsed < (need + 1) * window + 10
    assert sim.stats.get("429", 0) == 0


# ------------------------------------------------------------------------- keys never leak


def _instances(sim: Any, key: str) -> list[Any]:
    from campusllm.client import CampusClient
    from campusllm.limiter import limiter_for
    from campusllm.registry import RateLimits, resolve
    from campusllm.transport import AsyncCampusTransport, CampusTransport, RetryPolicy
    from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank, ChatCampusLLM
    from llama_index_campusllm import CampusLLM, CampusLLMEmbedding
    from llama_index_campusllm import CampusLLMRerank as LlamaRerank

    emb, rr = _model_of("embedding"), _model_of("rerank")
    url = sim.url
    resolved = resolve(CHAT, base_url=url("ecnu"))
    limits = RateLimits(rpm=100, window_s=1.0)
    return [
        ChatCampusLLM(model=REASONER, base_url=url("ecnu"), api_key=key),
        CampusLLMEmbeddings(model=emb, base_url=url(emb.split(":")[0]), api_key=SecretStr(key)),
        CampusLLMRerank(model=rr, base_url=url(rr.split(":")[0]), api_key=SecretStr(key)),
        CampusLLM(REASONER, base_url=url("ecnu"), api_key=key),
        CampusLLMEmbedding(model=emb, base_url=url(emb.split(":")[0]), api_key=key),
        LlamaRerank(model=rr, base_url=url(rr.split(":")[0]), api_key=key),
        CampusClient(resolved, key),
        CampusTransport(resolved.provider, SecretStr(key), limiter=None, retry=RetryPolicy()),
        AsyncCampusTransport(resolved.provider, SecretStr(key), limiter=None, retry=RetryPolicy()),
        limiter_for("ecnu", key, limits),
    ]


def _renderings(obj: Any) -> Iterator[str]:
    from langchain_core.load import dumps

    yield repr(obj)
    yield str(obj)
    try:
        yield dumps(obj)
    except (TypeError, ValueError, NotImplementedError):
        pass
    for name in ("model_dump_json", "to_json", "json"):
        fn = getattr(obj, name, None)
        if callable(fn):
            try:
                yield str(fn())
            except (TypeError, ValueError, NotImplementedError):
                pass
    for name in ("model_dump", "to_dict", "dict"):
        fn = getattr(obj, name, None)
        if callable(fn):
            try:
                yield repr(fn())
            except (TypeError, ValueError, NotImplementedError):
                pass


def test_keys_absent_from_every_rendering_of_every_public_class(sim: Any) -> None:
    objs = _instances(sim, SECRET)
    assert len({type(o) for o in objs}) == len(objs)
    for obj in objs:
        for text in _renderings(obj):
            _secret_free(text, SECRET)


def _exercise_all(sim: Any, key: str) -> Iterator[Callable[[], Any]]:
    from langchain_core.documents import Document
    from llama_index.core.llms import ChatMessage
    from llama_index.core.schema import NodeWithScore, TextNode

    from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank, ChatCampusLLM
    from llama_index_campusllm import CampusLLM, CampusLLMEmbedding
    from llama_index_campusllm import CampusLLMRerank as LlamaRerank

    emb, rr = _model_of("embedding"), _model_of("rerank")
    url = sim.url
    docs = [Document(page_content="SJTU is in Shanghai"), Document(page_content="cats")]
    nodes = [
        NodeWithScore(node=TextNode(text="SJTU is in Shanghai")),
        NodeWithScore(node=TextNode(text="cats")),
    ]
    lc = ChatCampusLLM(model=REASONER, base_url=url("ecnu"), api_key=key, max_retries=0)
    li = CampusLLM(REASONER, base_url=url("ecnu"), api_key=key, max_retries=0)
    lce = CampusLLMEmbeddings(
        model=emb, base_url=url(emb.split(":")[0]), api_key=SecretStr(key), max_retries=0
    )
    lie = CampusLLMEmbedding(model=emb, base_url=url(emb.split(":")[0]), api_key=key, max_retries=0)
    lcr = CampusLLMRerank(
        model=rr, base_url=url(rr.split(":")[0]), api_key=SecretStr(key), max_retries=0
    )
    lir = LlamaRerank(model=rr, base_url=url(rr.split(":")[0]), api_key=key, max_retries=0)
    msgs = [ChatMessage(role="user", content=PROMPT)]
    yield lambda: lc.invoke(PROMPT)
    yield lambda: list(lc.stream(PROMPT))
    yield lambda: li.chat(msgs)
    yield lambda: list(li.stream_chat(msgs))
    yield lambda: lce.embed_documents(["a", "b"])
    yield lambda: lie.get_text_embedding("a")
    yield lambda: lcr.compress_documents(docs, "Where is SJTU?")
    yield lambda: lir.postprocess_nodes(nodes, query_str="Where is SJTU?")


def test_keys_absent_from_debug_logs_of_successful_requests(
    sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    calls = list(_exercise_all(sim, SECRET))
    for call in calls:
        call()
    assert sim.stats["requests"] >= len(calls)
    assert caplog.records  # httpx/openai do log at DEBUG: the check below has teeth
    _secret_free(caplog.text, SECRET)
    for rec in caplog.records:
        _secret_free(rec.getMessage(), SECRET)


def test_keys_absent_from_authentication_errors(sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for call in _exercise_all(sim, PLAIN_SECRET):  # the simulator answers 401
        with pytest.raises(AuthenticationError) as ei:
            call()
        err = ei.value
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        _secret_free(text, PLAIN_SECRET)
        _secret_free(repr(err) + repr(err.args) + str(err.body) + str(err.hint), PLAIN_SECRET)
    _secret_free(caplog.text, PLAIN_SECRET)


def test_keys_echoed_by_the_gateway_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    # Some gateways echo the key they rejected; it must not reach messages or tracebacks.
    from langchain_campusllm import ChatCampusLLM

    caplog.set_level(logging.DEBUG)
    reply = _Reply()
    reply.status = 401
    reply.body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {PLAIN_SECRET}", "code": 401}}
    ).encode()
    resolved, sync, asyn = _mock_http(REASONER, reply)
    llm = ChatCampusLLM(
        model=REASONER,
        base_url="http://127.0.0.1:9/v1",
        api_key=PLAIN_SECRET,
        max_retries=0,
        http_client=sync,
        http_async_client=asyn,
    )
    for call in (lambda: llm.invoke(PROMPT), lambda: list(llm.stream(PROMPT))):
        with pytest.raises(AuthenticationError) as ei:
            call()
        err = ei.value
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        _secret_free(text + repr(err) + str(err.body), PLAIN_SECRET)
    _secret_free(caplog.text, PLAIN_SECRET)
