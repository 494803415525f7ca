"""Embedding and rerank calls: what the user hands in is checked before anything is sent, the
gateway's per-request limit is kept, and a job whose batches fail keeps what it received.

The fault matrix covers the async paths against a hostile gateway (``embed_batches_fail``);
these tests cover the sync path, when to stop sending after a failure, and the checks made
before any request.
"""

from __future__ import annotations

import base64
import struct
import warnings
from typing import Any

import pytest

from campusllm.client import CampusClient
from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ProtocolError,
    RateLimitError,
    ServerError,
)
from campusllm.registry import resolve
from campusllm.sim import SIM_KEY, Simulator
from campusllm.transport import RetryPolicy
from campusllm.wire.responses import embedding_vectors, rerank_results

EMBED = "oneapi:qwen3-embedding-8b"
RERANK = "oneapi:qwen3-reranker-8b"
TEXTS = [f"text {i}" for i in range(6)]


def _client(sim: Simulator, model: str = EMBED, **kw: Any) -> CampusClient:
    retry = RetryPolicy(max_retries=0)
    return CampusClient(resolve(model, base_url=sim.url("oneapi")), SIM_KEY, retry=retry, **kw)


def _embedding_requests(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests if r["path"].endswith("/embeddings")]


# ----------------------------------------------------------------------------- partial results


def test_a_failed_batch_keeps_the_vectors_of_the_others_sync(sim: Simulator) -> None:
    sim.inject("status", status=500, times=1, path_contains="/embeddings")
    with _client(sim) as client, pytest.raises(ServerError) as ei:
        client.embed(TEXTS, batch_size=2)
    e = ei.value
    assert e.failed_indices == [0, 1]
    assert e.partial_embeddings is not None and len(e.partial_embeddings) == 6
    assert e.partial_embeddings[:2] == [None, None]
    assert all(v is not None for v in e.partial_embeddings[2:])
    with _client(sim) as client:  # the kept vectors are the ones a full run returns
        assert e.partial_embeddings[2:] == client.embed(TEXTS[2:], batch_size=2)
    assert "2 of 6 texts were not embedded" in str(e) and "partial_embeddings" in str(e)
    assert len(_embedding_requests(sim)) == 3 + 2  # every batch was tried


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError), (429, RateLimitError)])
def test_a_failure_every_batch_would_meet_stops_sending(
    sim: Simulator, status: int, error: type[Exception]
) -> None:
    sim.inject("status", status=status, times=1, path_contains="/embeddings")
    with _client(sim) as client, pytest.raises(error) as ei:
        client.embed(TEXTS, batch_size=2)
    assert len(_embedding_requests(sim)) == 1, "batches were sent after a rejected key"
    assert ei.value.failed_indices == list(range(6))  # type: ignore[attr-defined]
    assert "2 not sent after it" in str(ei.value)


async def test_async_failed_batch_keeps_the_others(sim: Simulator) -> None:
    sim.inject("status", status=502, times=1, path_contains="/embeddings")
    async with _client(sim) as client:
        with pytest.raises(ServerError) as ei:
            await client.aembed(TEXTS, batch_size=2, max_concurrency=1)
    assert ei.value.failed_indices == [0, 1]
    assert ei.value.partial_embeddings is not None
    assert sum(v is not None for v in ei.value.partial_embeddings) == 4


def test_errors_of_other_calls_carry_no_partial_embeddings() -> None:
    e = ServerError("HTTP 500")
    assert e.partial_embeddings is None and e.failed_indices == []


# ----------------------------------------------------------------------------- batch size


def test_batch_size_above_the_limit_is_lowered_with_one_warning(sim: Simulator) -> None:
    texts = [f"t{i}" for i in range(40)]
    with _client(sim) as client:
        with pytest.warns(UserWarning, match="above the 32 texts"):
            assert len(client.embed(texts, batch_size=1000)) == 40
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once per model and size
            client.embed(texts, batch_size=1000)
    assert max(len(r["json"]["input"]) for r in _embedding_requests(sim)) == 32


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_a_batch_size_that_is_not_a_positive_whole_number_is_refused(
    sim: Simulator, size: Any
) -> None:
    with _client(sim) as client, pytest.raises(ConfigError, match="batch_size"):
        client.embed(TEXTS, batch_size=size)
    assert not _embedding_requests(sim)


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        ([b"bytes"], "input 0 is bytes"),
        (["ok", 3], "input 1 is int"),
        ("one string", "not one str"),
    ],
)
def test_texts_of_the_wrong_type_are_a_type_error_before_any_request(
    sim: Simulator, texts: Any, says: str
) -> None:
    with _client(sim) as client, pytest.raises(TypeError, match="embed") as ei:
        client.embed(texts)
    assert says in str(ei.value)
    assert not sim.requests


def test_a_lone_surrogate_is_refused_naming_input_and_position(sim: Simulator) -> None:
    with _client(sim) as client, pytest.raises(BadRequestError) as ei:
        client.embed(["fine", "bad \udcff here"])
    assert "input 1" in str(ei.value) and "position 5" in str(ei.value)
    assert "surrogate" in str(ei.value)
    with _client(sim, RERANK) as client, pytest.raises(BadRequestError, match="the query"):
        client.rerank("where \ud800?", ["a", "b"])
    with _client(sim, RERANK) as client, pytest.raises(TypeError, match="rerank"):
        client.rerank("where?", ["a", b"b"])  # type: ignore[list-item]
    assert not sim.requests


# ----------------------------------------------------------------------------- answers


def test_nan_or_infinity_in_an_answer_is_a_protocol_error() -> None:
    r = resolve(EMBED, base_url="http://127.0.0.1:9/v1")
    nan_b64 = base64.b64encode(struct.pack("<2f", 0.5, float("nan"))).decode()
    for vector in ([0.1, float("inf")], nan_b64):
        with pytest.raises(ProtocolError, match="NaN or Infinity"):
            embedding_vectors({"data": [{"index": 0, "embedding": vector}]}, r, 1)
    rr = resolve(RERANK, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ProtocolError, match="NaN or Infinity"):
        rerank_results(
            {"results": [{"index": 0, "relevance_score": float("nan")}]}, rr, offset=0, n=1
        )
