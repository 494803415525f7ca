"""Live smoke tests of the LlamaIndex classes: opt-in (CAMPUSLLM_LIVE=1 plus a key env var)."""

from __future__ import annotations

import pytest

from campusllm.testing import live_model

pytestmark = pytest.mark.live


def test_live_chat_stream_with_thinking() -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_campusllm import CampusLLM

    llm = CampusLLM(model=live_model("chat"), max_tokens=256)
    msgs = [ChatMessage(role="user", content="1+1=? Answer with one number.")]
    assert "2" in (llm.chat(msgs).message.content or "")
    last = None
    for last in llm.stream_chat(msgs):
        assert "<think>" not in (last.message.content or "")
    assert last is not None and "2" in (last.message.content or "")
    assert llm.metadata.context_window != 3900


async def test_live_function_agent() -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from llama_index_campusllm import CampusLLM

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = FunctionAgent(tools=[add], llm=CampusLLM(model=live_model("chat")))
    out = await agent.run("Use add to compute 19+23.")
    assert "42" in str(out)


def test_live_embedding_and_rerank() -> None:
    from llama_index.core.schema import NodeWithScore, TextNode

    from llama_index_campusllm import CampusLLMEmbedding, CampusLLMRerank

    emb = CampusLLMEmbedding(model=live_model("embedding"))
    assert len(emb.get_text_embedding("上海交通大学")) == len(emb.get_query_embedding("交大?"))
    rr = CampusLLMRerank(model=live_model("rerank"), top_n=1)
    nodes = [NodeWithScore(node=TextNode(text=t)) for t in ("Pandas live in Sichuan.", "SJTU")]
    best = rr.postprocess_nodes(nodes, query_str="Where do pandas live?")
    assert best[0].node.get_content().startswith("Pandas")
