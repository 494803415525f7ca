"""Live smoke tests against real gateways: opt-in (CAMPUSLLM_LIVE=1 plus a key env var)."""

from __future__ import annotations

import pytest

from campusllm.testing import live_model as _live_model

pytestmark = pytest.mark.live


def test_live_reasoning_chat_and_stream() -> None:
    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=_live_model("chat"), max_tokens=256)
    msg = llm.invoke("1+1=? Answer with one number.")
    assert "2" in msg.text and "<think>" not in msg.text
    full = None
    for chunk in llm.stream("1+1=? Answer with one number."):
        full = chunk if full is None else full + chunk
    assert full is not None and "2" in full.text and full.usage_metadata


def test_live_tool_loop() -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = create_agent(ChatCampusLLM(model=_live_model("chat")), tools=[add])
    out = agent.invoke({"messages": [{"role": "user", "content": "Use add to compute 19+23."}]})
    assert "42" in out["messages"][-1].text


def test_live_embeddings() -> None:
    from langchain_campusllm import CampusLLMEmbeddings

    emb = CampusLLMEmbeddings(model=_live_model("embedding"))
    vecs = emb.embed_documents(["上海交通大学", "East China Normal University"])
    assert len(vecs) == 2 and len(vecs[0]) == len(emb.embed_query("交大在哪里?"))


def test_live_rerank() -> None:
    from langchain_core.documents import Document

    from langchain_campusllm import CampusLLMRerank

    rr = CampusLLMRerank(model=_live_model("rerank"), top_n=1)
    docs = [Document(page_content="Pandas live in Sichuan."), Document(page_content="SJTU")]
    assert rr.compress_documents(docs, "Where do pandas live?")[0].page_content.startswith("Pandas")
