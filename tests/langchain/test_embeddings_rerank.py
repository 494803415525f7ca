"""CampusLLMEmbeddings and CampusLLMRerank against the simulator, alone and in a RAG chain."""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.load import dumps
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from lc_helpers import find_model, last_chat_request

from campusllm.sim import SIM_KEY
from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank

DOCS = [
    "Shanghai Jiao Tong University (SJTU) is in Minhang, Shanghai.",
    "East China Normal University (ECNU) has campuses in Putuo and Minhang.",
    "The Yangtze river delta is one of the most populous regions.",
    "Pandas are native to Sichuan province.",
    "SJTU runs a local large-model API for students and staff.",
]


@pytest.fixture
def embed_model() -> str:
    return find_model(lambda m: True, kind="embedding")


@pytest.fixture
def rerank_model() -> str:
    return find_model(lambda m: True, kind="rerank")


def _emb(sim: Any, model: str, **kw: Any) -> CampusLLMEmbeddings:
    kw.setdefault("api_key", SIM_KEY)
    return CampusLLMEmbeddings(model=model, base_url=sim.url(model.split(":")[0]), **kw)


def _rerank(sim: Any, model: str, **kw: Any) -> CampusLLMRerank:
    kw.setdefault("api_key", SIM_KEY)
    return CampusLLMRerank(model=model, base_url=sim.url(model.split(":")[0]), **kw)


def _embed_requests(sim: Any) -> list[dict[str, Any]]:
    return [r["json"] for r in sim.requests if r["path"].endswith("/embeddings")]


def test_embed_documents_and_query(sim: Any, embed_model: str) -> None:
    emb = _emb(sim, embed_model)
    vecs = emb.embed_documents(DOCS)
    assert len(vecs) == len(DOCS)
    assert len({len(v) for v in vecs}) == 1 and len(vecs[0]) > 8
    assert vecs[0] != vecs[3]
    q = emb.embed_query("Where is SJTU?")
    assert len(q) == len(vecs[0])
    assert emb.embed_documents([]) == []


def test_query_instruction_only_on_queries(sim: Any) -> None:
    model = find_model(lambda m: bool(m.query_instruction), kind="embedding")
    emb = _emb(sim, model)
    emb.embed_documents(["plain document"])
    assert _embed_requests(sim)[-1]["input"] == ["plain document"]
    emb.embed_query("Where is SJTU?")
    sent = _embed_requests(sim)[-1]["input"]
    text = sent[0] if isinstance(sent, list) else sent
    assert text != "Where is SJTU?" and text.endswith("Where is SJTU?")
    assert emb.resolved.model.default_task in text

    custom = _emb(sim, model, task="Find the campus")
    assert "Find the campus" in custom.format_query("x")
    assert _emb(sim, model, query_instruction="").format_query("x") == "x"
    templ = _emb(sim, model, query_instruction="Q[{task}]: {text}", task="t")
    assert templ.format_query("x") == "Q[t]: x"


def test_dimensions_are_sent_and_honoured(sim: Any) -> None:
    model = find_model(lambda m: bool(m.dimensions) and m.dimensions > 64, kind="embedding")
    emb = _emb(sim, model, dimensions=64)
    vec = emb.embed_query("hello")
    assert _embed_requests(sim)[-1].get("dimensions") == 64
    assert len(vec) == 64


def test_batching_splits_requests(sim: Any, embed_model: str) -> None:
    emb = _emb(sim, embed_model, batch_size=2)
    vecs = emb.embed_documents(DOCS)
    assert len(vecs) == len(DOCS)
    assert [len(r["input"]) for r in _embed_requests(sim)] == [2, 2, 1]
    # order is kept across batches
    assert vecs == _emb(sim, embed_model).embed_documents(DOCS)


async def test_async_embeddings(sim: Any, embed_model: str) -> None:
    emb = _emb(sim, embed_model, batch_size=2)
    sync = emb.embed_documents(DOCS)
    assert await emb.aembed_documents(DOCS) == sync
    assert await emb.aembed_documents([]) == []
    assert await emb.aembed_query("Where is SJTU?") == emb.embed_query("Where is SJTU?")


def test_embeddings_secret_hidden(sim: Any, embed_model: str) -> None:
    secret = "sk-sim-embedding-secret-77"
    emb = _emb(sim, embed_model, api_key=secret)
    for text in (repr(emb), str(emb), dumps(emb), str(emb.model_dump())):
        assert secret not in text


def test_rerank_orders_copies_and_keeps_input(sim: Any, rerank_model: str) -> None:
    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(DOCS)]
    rr = _rerank(sim, rerank_model, top_n=3)
    out = rr.compress_documents(docs, "SJTU large model API")
    assert len(out) == 3
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    assert out[0].page_content == DOCS[4] or out[0].page_content == DOCS[0]
    assert all("relevance_score" not in d.metadata for d in docs)  # input untouched
    assert {d.metadata["i"] for d in out} <= set(range(len(DOCS)))
    assert rr.compress_documents([], "q") == []
    everything = _rerank(sim, rerank_model, top_n=None).compress_documents(docs, "pandas")
    assert len(everything) == len(DOCS) and everything[0].page_content == DOCS[3]


async def test_async_rerank(sim: Any, rerank_model: str) -> None:
    docs = [Document(page_content=t) for t in DOCS]
    rr = _rerank(sim, rerank_model, top_n=2)
    got = await rr.acompress_documents(docs, "ECNU campuses")
    want = rr.compress_documents(docs, "ECNU campuses")
    assert [d.page_content for d in got] == [d.page_content for d in want]
    assert all(math.isfinite(d.metadata["relevance_score"]) for d in got)


def test_rag_chain_with_vector_store_and_rerank(
    sim: Any, make_chat: Any, embed_model: str, rerank_model: str
) -> None:
    store = InMemoryVectorStore.from_texts(DOCS, _emb(sim, embed_model))
    retriever = store.as_retriever(search_kwargs={"k": 4})
    rr = _rerank(sim, rerank_model, top_n=2)

    def retrieve(question: str) -> str:
        docs = rr.compress_documents(retriever.invoke(question), question)
        return "\n".join(d.page_content for d in docs)

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context.\n{context}"), ("user", "{question}")]
    )
    chain = (
        {"context": RunnableLambda(retrieve), "question": RunnablePassthrough()}
        | prompt
        | make_chat("sjtu:deepseek-chat")
        | StrOutputParser()
    )
    answer = chain.invoke("Where is the SJTU large model API?")
    assert "SJTU large model API" in answer
    system = last_chat_request(sim)["messages"][0]["content"]
    assert "SJTU" in system
    assert sum(t in system for t in DOCS) == 2


def test_contextual_compression_retriever(sim: Any, embed_model: str, rerank_model: str) -> None:
    module = None
    for name in ("langchain_classic.retrievers", "langchain.retrievers"):
        try:
            module = importlib.import_module(name)
            break
        except ImportError:
            continue
    if module is None or not hasattr(module, "ContextualCompressionRetriever"):
        pytest.skip("neither langchain_classic nor langchain.retrievers is installed")
    store = InMemoryVectorStore.from_texts(DOCS, _emb(sim, embed_model))
    retriever = module.ContextualCompressionRetriever(
        base_compressor=_rerank(sim, rerank_model, top_n=2),
        base_retriever=store.as_retriever(search_kwargs={"k": 5}),
    )
    docs = retriever.invoke("pandas Sichuan")
    assert len(docs) == 2 and docs[0].page_content == DOCS[3]
    assert "relevance_score" in docs[0].metadata
