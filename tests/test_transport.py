"""Core limiter, retrying transport, typed errors and CampusClient, on the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from campusllm.client import CampusClient
from campusllm.clock import ManualClock
from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    ProtocolError,
    RateLimitError,
    ServerError,
    UnreachableError,
)
from campusllm.limiter import RateLimiter, limiter_for
from campusllm.registry import RateLimits, resolve
from campusllm.sim import SIM_KEY
from campusllm.transport import CampusTransport, RetryPolicy, error_from_response

EMB = "oneapi:qwen3-embedding-8b"
RR = "oneapi:qwen3-reranker-8b"
FAST = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.02)


def _client(sim: Any, model: str = "ecnu:ecnu-plus", **kw: Any) -> CampusClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("limits", RateLimits())
    return CampusClient(resolve(model, base_url=sim.url(model.split(":")[0])), SIM_KEY, **kw)


def _chat_body(c: CampusClient, **extra: Any) -> dict[str, Any]:
    return {
        "model": c.resolved.wire_model,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


def _post_chat(c: CampusClient, **extra: Any) -> httpx.Response:
    return c.http.post(c.resolved.base_url + "/chat/completions", json=_chat_body(c, **extra))


# ------------------------------------------------------------------------- limiter


def test_limiter_is_exact_across_threads() -> None:
    # Grants are checked by the stamps the store gave them (what the window is measured on),
    # not by the time a thread got round to noting them: on a loaded machine that comes late
    # at will, and would make a correct limiter look wrong.
    lim = RateLimiter(rpm=5, tpm=None, window_s=0.2)
    grants: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            g = lim.acquire()
            with lock:
                grants.append(g.ts)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(grants) == 20
    stamps = sorted(grants)
    # no six grants in one window; so 20 at 5 per window span at least three windows
    assert all(stamps[i + 5] - stamps[i] >= 0.2 for i in range(len(stamps) - 5))
    assert stamps[-1] - stamps[0] >= 0.6


async def test_limiter_tpm_budget_and_async_share_with_sync() -> None:
    lim = RateLimiter(rpm=None, tpm=100, window_s=0.2)
    grants: list[tuple[float, int]] = []

    async def one(n: int) -> None:
        g = await lim.aacquire(n)
        grants.append((g.ts, n))  # the store's stamp: see test_limiter_is_exact_across_threads

    await asyncio.gather(*(one(40) for _ in range(6)))
    g = lim.acquire(40)  # a sync caller waits on the same window
    grants.append((g.ts, 40))
    grants.sort()
    for i, (t, _) in enumerate(grants):
        assert sum(n for s, n in grants[: i + 1] if s > t - 0.2) <= 100


def test_oversized_request_is_admitted_alone_and_penalize_blocks() -> None:
    lim = RateLimiter(rpm=None, tpm=10, window_s=0.1)
    first = lim.acquire(50)  # bigger than the whole budget: slow, never stuck
    second = lim.acquire(50)
    assert second.ts - first.ts >= 0.1  # alone: the first had left the window
    t1 = time.monotonic()  # read before the pause starts, so the wait is at least the pause
    lim.penalize(0.15)
    lim.acquire(1)
    assert time.monotonic() - t1 >= 0.15


def test_limiter_for_is_shared_per_provider_key_and_budget() -> None:
    limits = RateLimits(rpm=7)
    a = limiter_for("sjtu", "sk-one-aaaaaaaa", limits)
    assert a is limiter_for("sjtu", "sk-one-aaaaaaaa", RateLimits(rpm=7))
    assert a is not limiter_for("sjtu", "sk-two-bbbbbbbb", limits)
    assert a is not limiter_for("ecnu", "sk-one-aaaaaaaa", limits)
    assert "sk-one" not in repr(a)


def test_registry_limits_apply_by_default(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPUSLLM_CLIENT_LIMITS", raising=False)
    r = resolve("sjtu:deepseek-chat", base_url=sim.url("sjtu"))
    c = CampusClient(r, f"sk-sim-{uuid.uuid4().hex[:8]}")
    assert c.limiter is not None and c.limiter.rpm == r.provider.limits.rpm
    monkeypatch.setenv("CAMPUSLLM_CLIENT_LIMITS", "off")
    assert CampusClient(r, SIM_KEY).limiter is None
    c.close()


def test_client_limiter_prevents_429_from_the_gateway() -> None:
    # The gateway and the client measure the window on one virtual clock: the limiter's waits
    # move it, so whatever the machine's load, a request arrives at the moment it was granted
    # and the test cannot race the real time between grant and arrival.
    from campusllm.clock import ManualClock
    from campusllm.sim import Simulator

    clock = ManualClock()
    with Simulator(window_s=60.0, clock=clock) as sim:
        sim.set_limits("ecnu", rpm=4, window_s=60.0)
        r = resolve("ecnu:ecnu-plus", base_url=sim.url("ecnu"))
        limiter = RateLimiter(rpm=4, window_s=60.0, clock=clock)
        with CampusClient(
            r, f"sk-sim-{uuid.uuid4().hex[:8]}", retry=RetryPolicy(max_retries=0), limiter=limiter
        ) as c:
            for _ in range(10):
                assert _post_chat(c).status_code == 200
        assert sim.stats.get("429", 0) == 0
        assert sim.stats["requests"] == 10
    assert clock.monotonic() >= 120.0  # 10 requests at 4 per 60 s window: two full waits


def _slow_connect(clock: ManualClock, seconds: float) -> Any:
    """A trace hook under which opening a connection takes ``seconds`` of the shared clock."""

    def hook(event: str, info: Any) -> None:
        if event == "connection.connect_tcp.complete":
            clock.advance(seconds)

    return hook


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_slow_connection_does_not_cost_a_429_at_the_window_edge(is_async: bool) -> None:
    # Gateway and limiter share one virtual clock. The first request is admitted at 0.0 but
    # reaches the gateway at 0.5 (its connection took that long). Dated at admission, its slot
    # would leave our window at 1.05 and the second request would arrive while the gateway
    # still counts the first: a 429. Dated from the send, the second goes at 1.55.
    from campusllm.sim import Simulator

    clock = ManualClock()
    slow = _slow_connect(clock, 0.5)

    async def atrace(event: str, info: Any) -> None:  # async connections await their hooks
        slow(event, info)

    async def apost_twice(c: CampusClient, url: str, body: Any) -> list[int]:
        return [
            (await c.ahttp.post(url, json=body, extensions={"trace": atrace})).status_code
            for _ in range(2)
        ]

    def post_twice(c: CampusClient, url: str, body: Any) -> list[int]:
        if is_async:  # one event loop: the second request reuses the connection
            return asyncio.run(apost_twice(c, url, body))
        return [
            c.http.post(url, json=body, extensions={"trace": slow}).status_code for _ in range(2)
        ]

    with Simulator(window_s=1.0, clock=clock) as sim:
        sim.set_limits("ecnu", rpm=1, window_s=1.0)
        r = resolve("ecnu:ecnu-plus", base_url=sim.url("ecnu"))
        limiter = RateLimiter(rpm=1, window_s=1.0, clock=clock)
        key = f"sk-sim-{uuid.uuid4().hex[:8]}"
        with CampusClient(r, key, retry=RetryPolicy(max_retries=0), limiter=limiter) as c:
            url, body = c.resolved.base_url + "/chat/completions", _chat_body(c)
            codes = post_twice(c, url, body)
        assert codes == [200, 200]
        assert sim.stats.get("429", 0) == 0
    assert 1.55 <= clock.monotonic() < 1.56  # 0.5 connecting + 1 s window + 0.05 margin


# ------------------------------------------------------------------------- retries


def test_5xx_is_retried_then_succeeds(sim: Any) -> None:
    sim.inject("status", status=503, times=2)
    c = _client(sim)
    assert _post_chat(c).status_code == 200
    assert sim.stats["requests"] == 3


def test_other_4xx_is_never_retried(sim: Any) -> None:
    sim.inject("status", status=400, times=1)
    c = _client(sim)
    assert _post_chat(c).status_code == 400
    assert sim.stats["requests"] == 1


def test_exhausted_retries_return_the_last_response(sim: Any) -> None:
    sim.inject("status", status=502, times=10)
    c = _client(sim, retry=RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.01))
    r = _post_chat(c)
    assert r.status_code == 502 and sim.stats["requests"] == 3
    err = error_from_response(r, c.resolved)
    assert isinstance(err, ServerError) and err.status_code == 502


def test_huge_retry_after_is_surfaced_not_slept(sim: Any) -> None:
    sim.inject("status", status=429, times=1, retry_after_s=3600)
    c = _client(sim)
    t0 = time.monotonic()
    r = _post_chat(c)
    assert time.monotonic() - t0 < 2 and r.status_code == 429
    err = error_from_response(r, c.resolved)
    assert isinstance(err, RateLimitError) and err.retry_after and err.retry_after > 3000
    assert "rpm" in (err.hint or "")


def test_reset_before_first_byte_is_retried(sim: Any) -> None:
    sim.inject("reset", times=1)
    c = _client(sim)
    assert _post_chat(c).status_code == 200
    assert sim.stats["requests"] >= 2


def test_stream_broken_mid_way_is_not_retried(sim: Any) -> None:
    sim.inject("reset_mid_stream", after_chunks=2)
    c = _client(sim)
    with pytest.raises(httpx.HTTPError):
        with c.http.stream(
            "POST", c.resolved.base_url + "/chat/completions", json=_chat_body(c, stream=True)
        ) as resp:
            assert resp.status_code == 200
            for _ in resp.iter_lines():
                pass
    assert sim.stats["requests"] == 1  # nothing resent: no duplicated output


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_refused_loopback_says_so_and_not_vpn() -> None:
    # A campus provider, but the user pointed it at this machine: the VPN is not the problem.
    r = resolve("sjtu:deepseek-chat", base_url=f"http://127.0.0.1:{_free_port()}/api/v1")
    c = CampusClient(r, SIM_KEY, retry=FAST, limits=RateLimits())
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as ei:
        c.list_models()
    assert time.monotonic() - t0 < 5
    text = str(ei.value)
    assert "VPN" not in text and "campus" not in text.lower()
    assert "this machine" in text and "running" in text


def test_vpn_hint_only_for_the_campus_gateways_own_host_when_connecting_failed() -> None:
    from campusllm.transport import error_from_exception

    campus = resolve("sjtu:deepseek-chat")  # the catalogued, campus-only address
    refused = error_from_exception(httpx.ConnectError("refused"), campus)
    assert isinstance(refused, UnreachableError)
    assert "VPN" in str(refused) and "campus" in str(refused)
    # the gateway accepted the connection and then dropped it: not a VPN problem
    dropped = error_from_exception(httpx.RemoteProtocolError("Server disconnected"), campus)
    assert "VPN" not in str(dropped) and "broke" in str(dropped)
    # a base URL of the user's own: say so plainly
    own = resolve("sjtu:deepseek-chat", base_url="https://llm.example.edu.cn/v1")
    err = error_from_exception(httpx.ConnectError("refused"), own)
    assert "VPN" not in str(err) and "https://llm.example.edu.cn/v1" in str(err.hint)


# ------------------------------------------------------------------------- auth + errors


def test_auth_header_follows_the_provider_scheme(sim: Any) -> None:
    _client(sim, "ecnu:ecnu-plus").list_models()
    _client(sim, EMB).list_models()
    bearer, raw = (req["headers"]["authorization"] for req in sim.requests[-2:])
    schemes = {
        resolve("ecnu:ecnu-plus").provider.auth: bearer,
        resolve(EMB).provider.auth: raw,
    }
    for scheme, header in schemes.items():
        assert header.startswith("Bearer ") if scheme == "bearer" else header == "***"


def test_401_names_the_env_var_and_never_the_key(sim: Any) -> None:
    r = resolve("sjtu:deepseek-chat", base_url=sim.url("sjtu"))
    secret = "sk-sim-bad"
    c = CampusClient(r, secret, retry=FAST, limits=RateLimits())
    with pytest.raises(AuthenticationError) as ei:
        c.list_models()
    assert "SJTU_API_KEY" in str(ei.value) and ei.value.status_code == 401
    assert secret not in str(ei.value) + repr(ei.value.args) + str(ei.value.body)
    assert secret not in repr(c)


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def test_error_mapping_passes_gateway_messages_through() -> None:
    r = resolve("sjtu:deepseek-reasoner", base_url="http://127.0.0.1:9/v1")
    msg = "Missing `reasoning_content` field in the assistant message at message index 2."
    err = error_from_response(_response(400, {"error": {"message": msg}}), r)
    assert isinstance(err, BadRequestError) and msg in str(err)
    assert "reasoning" in (err.hint or "")
    oneapi = error_from_response(_response(400, {"success": False, "message": "额度不足"}), r)
    assert "额度不足" in str(oneapi)
    limited = error_from_response(_response(429, {"error": "slow down"}, {"Retry-After": "7"}), r)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7.0


def test_http_200_error_body_is_a_bad_request(sim: Any) -> None:
    sim.inject("error_200", path_contains="embeddings")
    with pytest.raises(BadRequestError):
        _client(sim, EMB).embed(["a"])


def test_malformed_json_is_a_protocol_error(sim: Any) -> None:
    sim.inject("malformed_json", path_contains="embeddings")
    with pytest.raises(ProtocolError):
        _client(sim, EMB).embed(["a"])


# ------------------------------------------------------------------------- embeddings


def test_embed_batches_by_count_and_tokens_and_keeps_order(sim: Any) -> None:
    c = _client(sim, EMB)
    texts = [f"document number {i} " + "word " * (i % 7) for i in range(45)]
    one_by_one = [c.embed([t])[0] for t in texts[:3]]
    sim.reset()
    vecs = c.embed(texts, batch_size=10)
    assert len(vecs) == 45 and vecs[:3] == one_by_one
    bodies = [q["json"] for q in sim.requests if q["path"].endswith("/embeddings")]
    assert [len(b["input"]) for b in bodies] == [10, 10, 10, 10, 5]
    assert all(b["encoding_format"] == "float" for b in bodies)
    assert c.embed([]) == []


def test_embedding_batches_respect_the_token_cap(sim: Any) -> None:
    c = _client(sim, EMB)
    cap = c.resolved.provider.embedding_batch_tokens
    long = "x" * (cap * 2)  # ~cap/2 tokens each
    spans = c.embedding_batches([long] * 5)
    assert all(b - a <= 2 for a, b in spans) and spans[-1][1] == 5


def test_dimensions_and_query_instruction(sim: Any) -> None:
    c = _client(sim, EMB)
    (vec,) = c.embed(["hi"], dimensions=64)
    assert len(vec) == 64
    assert sim.requests[-1]["json"]["dimensions"] == 64
    q = c.format_query("where is SJTU?")
    assert q.startswith("Instruct: ") and q.endswith("\nQuery:where is SJTU?")
    assert _client(sim, "ecnu:ecnu-plus").format_query("x") == "x"


def test_base64_vectors_are_decoded() -> None:
    vec = [0.5, -1.25, 3.0]
    b64 = base64.b64encode(struct.pack("<3f", *vec)).decode()
    body = {"data": [{"index": 0, "embedding": b64}]}
    r = resolve(EMB, base_url="http://127.0.0.1:9/v1")
    c = CampusClient(r, SIM_KEY, limits=RateLimits())
    c.http = httpx.Client(transport=httpx.MockTransport(lambda req: _response(200, body)))
    assert c.embed(["a"]) == [vec]


async def test_aembed_bounded_concurrency_and_order(sim: Any) -> None:
    c = _client(sim, EMB)
    texts = [f"t{i}" for i in range(40)]
    expected = c.embed(texts, batch_size=5)
    got = await c.aembed(texts, batch_size=5, max_concurrency=3)
    assert got == expected
    await c.aclose()


def test_async_calls_work_across_event_loops(sim: Any) -> None:
    c = _client(sim, EMB)
    for _ in range(3):  # each asyncio.run is a new loop; pooled connections must not leak over
        assert len(asyncio.run(c.aembed(["a", "b"]))) == 2
    c.close()


# ------------------------------------------------------------------------- rerank


def test_rerank_sorted_top_n_and_batched(sim: Any) -> None:
    from campusllm.registry import get_registry

    c = _client(sim, RR)
    docs = ["pandas live in Sichuan", "SJTU is in Shanghai", "cats", "Shanghai metro", "tea"]
    full = c.rerank("Where is SJTU in Shanghai?", docs)
    assert [r.score for r in full] == sorted((r.score for r in full), reverse=True)
    assert sorted(r.index for r in full) == list(range(5))
    assert c.rerank("Where is SJTU in Shanghai?", docs, top_n=2) == full[:2]
    assert c.rerank("q", []) == []

    get_registry().register_model(
        "oneapi",
        {"id": "tei-rr", "kind": "rerank", "rerank_shape": "tei", "rerank_path": "/tei/rerank",
         "max_documents": 2},
    )  # fmt: skip
    tei = _client(sim, "oneapi:tei-rr")
    sim.reset()
    merged = tei.rerank("Where is SJTU in Shanghai?", docs)
    assert len([q for q in sim.requests if q["path"].endswith("/tei/rerank")]) == 3
    assert {r.index for r in merged} == set(range(5))
    assert [r.score for r in merged] == sorted((r.score for r in merged), reverse=True)
    assert asyncio.run(tei.arerank("Where is SJTU in Shanghai?", docs)) == merged


def test_sdk_clients_share_the_limiter_and_map_their_errors(sim: Any) -> None:
    from campusllm.openai_sdk import sdk_http_library
    from campusllm.transport import error_from_exception

    lib = sdk_http_library()
    c = _client(sim, limits=RateLimits(rpm=1000))
    sdk_http, _ = c.connection.http_clients(lib)
    assert isinstance(sdk_http, lib.Client)
    sdk_t, core_t = sdk_http._transport, c.http._transport
    assert isinstance(sdk_t, CampusTransport) and isinstance(core_t, CampusTransport)
    assert sdk_t.limiter is c.limiter is core_t.limiter
    sim.inject("status", status=503, times=1)
    r = sdk_http.post(c.resolved.base_url + "/chat/completions", json=_chat_body(c))
    assert r.status_code == 200 and sim.stats["requests"] == 2  # retried by our transport
    # connection failures from the SDK's library get the same types and hints
    err = lib.ConnectError("refused")
    assert isinstance(error_from_exception(err, c.resolved), UnreachableError)
    c.close()


def test_a_429_gives_its_limiter_slot_back(sim: Any) -> None:
    # rpm=3 in a window far longer than the test: a 429, its retry and one more request take
    # 3 slots without the refund and 2 with it, so one slot must still be free. Counting slots
    # instead of timing a wait keeps a loaded machine from deciding the outcome.
    c = _client(
        sim,
        limits=RateLimits(rpm=3, window_s=600.0),
        retry=RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.01),
    )
    sim.inject("status", status=429, times=1, retry_after_s=0.05)
    assert _post_chat(c).status_code == 200
    assert _post_chat(c).status_code == 200
    assert sim.stats["requests"] == 3
    assert c.limiter is not None
    assert c.limiter.try_acquire() is not None, "the 429's slot was not given back"
    assert c.limiter.try_acquire() is None  # and that was the only one
    clock = ManualClock()
    lim = RateLimiter(rpm=1, tpm=None, window_s=10, clock=clock)
    lim.refund(lim.acquire())
    lim.acquire()  # the refunded slot is free again at once
    assert clock.slept == [] and clock.monotonic() == 0.0
