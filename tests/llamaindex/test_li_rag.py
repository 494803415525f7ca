"""CampusLLMEmbedding and CampusLLMRerank: batches, query instruction, rerank shapes, RAG."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from campusllm.errors import TimeoutError as CampusTimeoutError

REASONER = "sjtu:deepseek-reasoner"

DOCS = [
    "The main library opens at 8 am and closes at 10 pm on weekdays.",
    "The campus shuttle runs every 15 minutes between Minhang and Xuhui.",
    "Dining halls serve breakfast from 6:30 am; the library cafe opens at 9 am.",
    "Student ID cards are issued by the registrar's office in building 3.",
    "The gym requires a booking through the campus app for evening slots.",
    "Visitors must register at the east gate and show a valid ID.",
]


def _embedding_model(find_model: Any) -> str:
    return str(find_model(lambda s: True, kind="embedding"))


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# --------------------------------------------------------------------------- embeddings


async def test_embedding_batches_keep_order_sync_and_async(
    make_embed: Any, find_model: Any, requests_to: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    emb = make_embed(_embedding_model(find_model), embed_batch_size=3)
    texts = [f"{i}: {d}" for i, d in enumerate(DOCS * 2)]
    batch = emb.get_text_embedding_batch(texts)
    assert len(requests_to("/embeddings")) == math.ceil(len(texts) / 3)
    singles = [emb.get_text_embedding(t) for t in texts[:4]]
    assert batch[:4] == singles
    assert len({tuple(v) for v in batch}) == len(texts)  # distinct texts, distinct vectors
    abatch = await emb.aget_text_embedding_batch(texts, show_progress=True)
    assert abatch == batch
    assert f"{len(texts)}/{len(texts)}" in capsys.readouterr().err  # the progress bar ran
    assert await emb.aget_text_embedding(texts[5]) == batch[5]


async def test_async_embedding_concurrency_is_bounded(
    make_embed: Any, find_model: Any, requests_to: Any
) -> None:
    emb = make_embed(_embedding_model(find_model), embed_batch_size=2, max_concurrency=2)
    client = emb.campus_client
    real = client._apost
    in_flight = peak = 0

    async def counting(*a: Any, **k: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # let every worker that may start, start
            return await real(*a, **k)
        finally:
            in_flight -= 1

    client._apost = counting
    texts = [f"{i}: {d}" for i, d in enumerate(DOCS * 2)]
    vecs = await emb.aget_text_embedding_batch(texts)
    assert len(requests_to("/embeddings")) == 6  # 12 texts in batches of 2
    assert peak == 2  # concurrent, but never more than max_concurrency
    assert vecs == emb.get_text_embedding_batch(texts)


def test_query_instruction_only_on_queries(
    make_embed: Any, find_model: Any, requests_to: Any
) -> None:
    name = find_model(lambda s: bool(s.query_instruction), kind="embedding")
    emb = make_embed(name)
    q = "When does the library open?"
    qvec = emb.get_query_embedding(q)
    sent_query = requests_to("/embeddings")[-1]["input"]
    tvec = emb.get_text_embedding(q)
    sent_text = requests_to("/embeddings")[-1]["input"]
    assert sent_text in ([q], q)
    sent = sent_query[0] if isinstance(sent_query, list) else sent_query
    assert sent != q and sent.endswith(q)
    assert emb.resolved.model.default_task in sent
    assert qvec != tvec
    custom = make_embed(name, query_task="Find campus rules")
    custom.get_query_embedding(q)
    assert "Find campus rules" in str(requests_to("/embeddings")[-1]["input"])


async def test_async_query_embedding_matches_sync(make_embed: Any, find_model: Any) -> None:
    emb = make_embed(_embedding_model(find_model))
    q = "shuttle timetable"
    assert await emb.aget_query_embedding(q) == emb.get_query_embedding(q)


def test_embedding_dimensions(make_embed: Any, find_model: Any, requests_to: Any) -> None:
    name = find_model(lambda s: (s.dimensions or 0) > 8, kind="embedding")
    emb = make_embed(name, dimensions=8)
    assert len(emb.get_text_embedding("hello")) == 8
    assert requests_to("/embeddings")[-1]["dimensions"] == 8


def test_embedding_key_never_serialised(make_embed: Any, find_model: Any) -> None:
    secret = "sk-sim-" + "Emb3dK3yZ9x8c7v6"
    emb = make_embed(_embedding_model(find_model), api_key=secret)
    assert all(secret not in s for s in (repr(emb), emb.to_json(), str(emb.to_dict())))
    assert emb.get_text_embedding("ok")


# --------------------------------------------------------------------------- rerank


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=d, id_=f"n{i}"), score=round(0.9 - i * 0.1, 2))
        for i, d in enumerate(DOCS)
    ]


@pytest.fixture
def tei_reranker() -> Iterator[None]:
    """A TEI-shaped rerank model on a catalogued provider, for as long as one test runs.

    The packaged catalog may carry no TEI reranker; the wire shape still has to work.
    """
    from campusllm.registry import get_registry

    reg = get_registry()
    if any(m.rerank_shape == "tei" for _, m in reg.models(kind="rerank")):
        yield
        return
    provider = next(p for p, _ in reg.models(kind="rerank"))
    original = reg.provider(provider.name)
    reg.register_model(
        provider.name,
        {
            "id": "test-tei-reranker",
            "kind": "rerank",
            "rerank_shape": "tei",
            "rerank_path": "/tei/rerank",  # the simulator's TEI route
        },
    )
    try:
        yield
    finally:
        reg.register_provider(original)


def _rerank_model(find_model: Any, shape: str) -> str:
    return str(find_model(lambda s: s.rerank_shape == shape, kind="rerank"))


@pytest.mark.parametrize("shape", ["jina", "tei"])
def test_rerank_scores_order_and_retrieval_score(
    make_rerank: Any, find_model: Any, shape: str, sim: Any, tei_reranker: None
) -> None:
    rerank = make_rerank(_rerank_model(find_model, shape), top_n=3)
    nodes = _nodes()
    original = {n.node.node_id: n.score for n in nodes}
    out = rerank.postprocess_nodes(nodes, query_str="When does the library open?")
    assert len(out) == 3
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True)
    assert "library" in out[0].node.get_content()
    assert all("retrieval_score" not in n.node.metadata for n in nodes)  # inputs untouched
    for n in out:
        assert n.node.metadata["retrieval_score"] == original[n.node.node_id]
        assert n.score != original[n.node.node_id]
        # the bookkeeping key does not leak into what the LLM or embedder reads
        assert "retrieval_score" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    assert [r["path"] for r in sim.requests][-1].endswith("/rerank")
    # the same scores as the core client reports
    direct = rerank.campus_client.rerank("When does the library open?", DOCS, top_n=3)
    assert [r.score for r in direct] == scores


@pytest.fixture
def batched_reranker(find_model: Any) -> Iterator[str]:
    """A copy of a catalogued jina reranker that accepts at most 2 documents per request."""
    from campusllm.registry import get_registry, resolve

    name = _rerank_model(find_model, "jina")
    resolved = resolve(name)
    original = get_registry().provider(resolved.provider.name)
    spec = resolved.model.model_copy(
        update={"id": "li-batched-reranker", "aliases": [], "max_documents": 2}
    )
    get_registry().register_model(resolved.provider.name, spec)
    try:
        yield f"{resolved.provider.name}:li-batched-reranker"
    finally:
        get_registry().register_provider(original)


async def test_rerank_batches_by_max_documents(
    make_rerank: Any, find_model: Any, batched_reranker: str, requests_to: Any
) -> None:
    query = "When does the library open?"
    whole = make_rerank(_rerank_model(find_model, "jina"), top_n=3)
    expected = [
        (n.node.node_id, n.score) for n in whole.postprocess_nodes(_nodes(), query_str=query)
    ]
    batched = make_rerank(batched_reranker, top_n=3)
    for run in (
        lambda: batched.postprocess_nodes(_nodes(), query_str=query),
        lambda: batched.apostprocess_nodes(_nodes(), query_str=query),
    ):
        before = len(requests_to("/rerank"))
        out = run()
        if asyncio.iscoroutine(out):
            out = await out
        sent = requests_to("/rerank")[before:]
        assert [len(b["documents"]) for b in sent] == [2, 2, 2]
        # scores from separate batches merge into one global order
        assert [(n.node.node_id, n.score) for n in out] == expected


@pytest.mark.parametrize("shape", ["jina", "tei"])
async def test_async_rerank_is_really_async(
    make_rerank: Any,
    find_model: Any,
    shape: str,
    monkeypatch: pytest.MonkeyPatch,
    tei_reranker: None,
) -> None:
    rerank = make_rerank(_rerank_model(find_model, shape))

    def no_threads(*a: Any, **k: Any) -> Any:
        raise AssertionError("async rerank must not fall back to a worker thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    out = await rerank.apostprocess_nodes(
        _nodes(), QueryBundle("Which office issues student ID cards?")
    )
    assert len(out) == len(DOCS)  # top_n=None keeps every node, reordered
    assert "registrar" in out[0].node.get_content()
    assert await rerank.apostprocess_nodes([], query_str="x") == []


def test_rerank_timeout(make_rerank: Any, find_model: Any, sim: Any) -> None:
    rerank = make_rerank(_rerank_model(find_model, "jina"), timeout=0.2)
    sim.inject("slow_first_byte", delay_s=1.0)
    with pytest.raises(CampusTimeoutError):
        rerank.postprocess_nodes(_nodes(), query_str="library")


def test_rerank_key_never_serialised(make_rerank: Any, find_model: Any) -> None:
    secret = "sk-sim-" + "R3rankK3yQ1w2e3r"
    rerank = make_rerank(_rerank_model(find_model, "jina"), api_key=secret)
    assert all(secret not in s for s in (repr(rerank), rerank.to_json(), str(rerank.to_dict())))
    assert rerank.postprocess_nodes(_nodes()[:2], query_str="library")


def test_rerank_needs_a_query(make_rerank: Any, find_model: Any) -> None:
    rerank = make_rerank(_rerank_model(find_model, "jina"))
    with pytest.raises(ValueError):
        rerank.postprocess_nodes(_nodes())


# --------------------------------------------------------------------------- end to end


async def test_vector_index_and_rerank_query_engine(
    make_embed: Any,
    make_rerank: Any,
    make_llm: Any,
    find_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emb = make_embed(_embedding_model(find_model))
    monkeypatch.setattr(Settings, "_embed_model", emb)
    assert Settings.embed_model is emb
    index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS])
    rerank = make_rerank(_rerank_model(find_model, "jina"), top_n=2)
    engine = index.as_query_engine(
        llm=make_llm(REASONER), similarity_top_k=4, node_postprocessors=[rerank]
    )
    for response in (
        engine.query("When does the main library open?"),
        await engine.aquery("When does the main library open?"),
    ):
        assert "Simulated answer" in str(response)
        src = response.source_nodes
        assert len(src) == 2
        assert src[0].score is not None and src[1].score is not None
        assert src[0].score >= src[1].score
        assert all("retrieval_score" in n.node.metadata for n in src)
        assert "library" in src[0].node.get_content()
