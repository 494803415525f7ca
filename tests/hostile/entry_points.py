"""Every public entry point a user calls, run the way a user runs it, with one normalised result.

An entry point is built from public names only (``ChatCampusLLM``, ``CampusLLM``, ``ChatCaller``,
``CampusClient``, the embedding and rerank classes), configured from a
:class:`~hostile.scenarios.Scenario`, called once, and closed. What came back is an
:class:`Observed`: the answer (chat: content, reasoning and tool calls; embeddings: vectors;
rerank: ``(index, score)`` best first) or the exception, plus what a streaming caller had
already been shown.

Example:
    >>> [e.name for e in ENTRIES if e.family == "rerank"][:4]
    ['lc.compress', 'lc.acompress', 'li.postprocess', 'li.apostprocess']
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scenarios import DOCS, EMBED_MODEL, RERANK_MODEL, Scenario

__all__ = ["Answer", "Observed", "Entry", "ENTRIES", "ENTRY", "run_entry"]


@dataclass(frozen=True)
class Answer:
    """A chat answer as the user received it."""

    content: str
    reasoning: str = ""
    tools: tuple[tuple[str, str], ...] = ()


@dataclass
class Observed:
    """What one call produced."""

    value: Any = None
    error: BaseException | None = None
    streamed: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    unsupported: str | None = None


@dataclass(frozen=True)
class Entry:
    """One public entry point."""

    name: str
    family: str  # chat | embed | rerank
    route: str  # the hostile server route it reaches
    is_async: bool
    call: Callable[[Scenario, str, Observed], Any]
    caps: frozenset[str] = frozenset({"retries"})

    @property
    def streams(self) -> bool:
        return self.route == "chat_stream"


# ----------------------------------------------------------------------------- builders


def _lc_chat(s: Scenario, url: str) -> Any:
    from langchain_campusllm import ChatCampusLLM

    return ChatCampusLLM(
        model=s.chat_model,
        base_url=url,
        api_key=s.api_key,
        max_retries=s.max_retries,
        timeout=s.timeout,
    )


def _li_chat(s: Scenario, url: str) -> Any:
    from llama_index_campusllm import CampusLLM

    return CampusLLM(
        model=s.chat_model,
        base_url=url,
        api_key=s.api_key,
        max_retries=s.max_retries,
        timeout=s.timeout,
    )


def _core_chat(s: Scenario, url: str) -> Any:
    from campusllm.chat import ChatCaller

    return ChatCaller(
        s.chat_model,
        api_key=s.api_key,
        base_url=url,
        timeout=s.timeout,
        max_retries=s.max_retries,
    )


def _core_client(s: Scenario, url: str, model: str) -> Any:
    import campusllm
    from campusllm.client import CampusClient
    from campusllm.transport import RetryPolicy

    return CampusClient(
        campusllm.resolve(model, base_url=url),
        s.api_key,
        timeout=s.timeout,
        retry=RetryPolicy(max_retries=s.max_retries),
    )


def _common(s: Scenario, url: str, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "base_url": url,
        "api_key": s.api_key,
        "max_retries": s.max_retries,
        "timeout": s.timeout,
    }


def _lc_embed(s: Scenario, url: str) -> Any:
    from langchain_campusllm import CampusLLMEmbeddings

    return CampusLLMEmbeddings(**_common(s, url, EMBED_MODEL), batch_size=s.batch_size)


def _li_embed(s: Scenario, url: str) -> Any:
    from llama_index_campusllm import CampusLLMEmbedding

    extra: dict[str, Any] = {"embed_batch_size": s.batch_size} if s.batch_size else {}
    return CampusLLMEmbedding(**_common(s, url, EMBED_MODEL), **extra)


def _lc_rerank(s: Scenario, url: str) -> Any:
    from langchain_campusllm import CampusLLMRerank

    return CampusLLMRerank(**_common(s, url, RERANK_MODEL), top_n=None)


def _li_rerank(s: Scenario, url: str) -> Any:
    from llama_index_campusllm import CampusLLMRerank

    return CampusLLMRerank(**_common(s, url, RERANK_MODEL), top_n=None)


def _close(obj: Any) -> None:
    client = getattr(obj, "campus_client", None) or obj
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing is best effort after a failed call
        pass


async def _aclose(obj: Any) -> None:
    client = getattr(obj, "campus_client", None) or obj
    try:
        closer = getattr(client, "aclose", None)
        if closer is not None:
            await closer()
        else:
            client.close()
    except Exception:  # noqa: BLE001
        pass


# ----------------------------------------------------------------------------- normalising


def _lc_answer(msg: Any) -> Answer:
    reasoning = msg.additional_kwargs.get("reasoning_content") or ""
    tools = tuple((tc["name"], json.dumps(tc["args"], ensure_ascii=False)) for tc in msg.tool_calls)
    content = msg.content if isinstance(msg.content, str) else str(msg.content)
    return Answer(content, reasoning, tools)


def _li_answer(message: Any) -> Answer:
    from llama_index.core.base.llms.types import TextBlock, ThinkingBlock, ToolCallBlock

    content = "".join(b.text for b in message.blocks if isinstance(b, TextBlock))
    reasoning = "".join(b.content or "" for b in message.blocks if isinstance(b, ThinkingBlock))
    tools = tuple(
        (
            b.tool_name,
            b.tool_kwargs if isinstance(b.tool_kwargs, str) else json.dumps(b.tool_kwargs),
        )
        for b in message.blocks
        if isinstance(b, ToolCallBlock)
    )
    return Answer(content, reasoning, tools)


def _core_answer(msg: Any) -> Answer:
    return Answer(msg.content, msg.reasoning, tuple((t.name, t.arguments) for t in msg.tool_calls))


class _CoreStream:
    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, list[str]] = {}

    def add(self, d: Any, obs: Observed) -> None:
        self.content.append(d.content)
        self.reasoning.append(d.reasoning)
        obs.streamed.append(d.reasoning + d.content)
        for t in d.tool_calls:
            slot = self.tools.setdefault(t.index, ["", ""])
            slot[0] += t.name or ""
            slot[1] += t.arguments or ""

    def answer(self) -> Answer:
        tools = tuple((n, a) for _, (n, a) in sorted(self.tools.items()))
        return Answer("".join(self.content), "".join(self.reasoning), tools)


def _lc_chunk(chunk: Any, obs: Observed) -> None:
    r = chunk.additional_kwargs.get("reasoning_content") or ""
    c = chunk.content if isinstance(chunk.content, str) else ""
    obs.streamed.append(r + c)


def _li_chunk(resp: Any, obs: Observed) -> None:
    obs.streamed.append((resp.additional_kwargs.get("thinking_delta") or "") + (resp.delta or ""))


def _ranked_docs(docs: Any) -> list[tuple[int, float]]:
    return [(DOCS.index(d.page_content), d.metadata["relevance_score"]) for d in docs]


def _ranked_nodes(nodes: Any) -> list[tuple[int, float]]:
    return [(DOCS.index(n.node.get_content()), n.score) for n in nodes]


# ----------------------------------------------------------------------------- the calls


def lc_invoke(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _lc_chat(s, url)
    try:
        return _lc_answer(llm.invoke(s.prompt))
    finally:
        _close(llm)


def lc_stream(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _lc_chat(s, url)
    try:
        acc = None
        for chunk in llm.stream(s.prompt):
            _lc_chunk(chunk, obs)
            acc = chunk if acc is None else acc + chunk
        return _lc_answer(acc) if acc is not None else Answer("")
    finally:
        _close(llm)


async def lc_ainvoke(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _lc_chat(s, url)
    try:
        return _lc_answer(await llm.ainvoke(s.prompt))
    finally:
        await _aclose(llm)


async def lc_astream(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _lc_chat(s, url)
    try:
        acc = None
        async for chunk in llm.astream(s.prompt):
            _lc_chunk(chunk, obs)
            acc = chunk if acc is None else acc + chunk
        return _lc_answer(acc) if acc is not None else Answer("")
    finally:
        await _aclose(llm)


def _li_messages(s: Scenario) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role="user", content=s.prompt)]


def li_chat(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _li_chat(s, url)
    try:
        return _li_answer(llm.chat(_li_messages(s)).message)
    finally:
        _close(llm)


def li_stream_chat(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _li_chat(s, url)
    try:
        last = None
        for resp in llm.stream_chat(_li_messages(s)):
            _li_chunk(resp, obs)
            last = resp
        return _li_answer(last.message) if last is not None else Answer("")
    finally:
        _close(llm)


async def li_achat(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _li_chat(s, url)
    try:
        return _li_answer((await llm.achat(_li_messages(s))).message)
    finally:
        await _aclose(llm)


async def li_astream_chat(s: Scenario, url: str, obs: Observed) -> Any:
    llm = _li_chat(s, url)
    try:
        last = None
        async for resp in await llm.astream_chat(_li_messages(s)):
            _li_chunk(resp, obs)
            last = resp
        return _li_answer(last.message) if last is not None else Answer("")
    finally:
        await _aclose(llm)


def _core_messages(s: Scenario) -> list[dict[str, Any]]:
    return [{"role": "user", "content": s.prompt}]


def core_invoke(s: Scenario, url: str, obs: Observed) -> Any:
    caller = _core_chat(s, url)
    try:
        return _core_answer(caller.invoke(_core_messages(s)))
    finally:
        _close(caller)


def core_stream(s: Scenario, url: str, obs: Observed) -> Any:
    caller = _core_chat(s, url)
    try:
        acc = _CoreStream()
        for delta in caller.stream(_core_messages(s)):
            acc.add(delta, obs)
        return acc.answer()
    finally:
        _close(caller)


def lc_embed_documents(s: Scenario, url: str, obs: Observed) -> Any:
    emb = _lc_embed(s, url)
    try:
        return emb.embed_documents(list(s.texts))
    finally:
        _close(emb)


async def lc_aembed_documents(s: Scenario, url: str, obs: Observed) -> Any:
    emb = _lc_embed(s, url)
    try:
        return await emb.aembed_documents(list(s.texts))
    finally:
        await _aclose(emb)


def li_embed_batch(s: Scenario, url: str, obs: Observed) -> Any:
    emb = _li_embed(s, url)
    try:
        return emb.get_text_embedding_batch(list(s.texts))
    finally:
        _close(emb)


async def li_aembed_batch(s: Scenario, url: str, obs: Observed) -> Any:
    emb = _li_embed(s, url)
    try:
        return await emb.aget_text_embedding_batch(list(s.texts))
    finally:
        await _aclose(emb)


def core_embed(s: Scenario, url: str, obs: Observed) -> Any:
    client = _core_client(s, url, EMBED_MODEL)
    try:
        return client.embed(list(s.texts), batch_size=s.batch_size)
    finally:
        _close(client)


async def core_aembed(s: Scenario, url: str, obs: Observed) -> Any:
    client = _core_client(s, url, EMBED_MODEL)
    try:
        return await client.aembed(list(s.texts), batch_size=s.batch_size)
    finally:
        await _aclose(client)


def _lc_docs() -> list[Any]:
    from langchain_core.documents import Document

    return [Document(page_content=d) for d in DOCS]


def _li_nodes() -> list[Any]:
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=d), score=0.0) for d in DOCS]


def lc_compress(s: Scenario, url: str, obs: Observed) -> Any:
    rr = _lc_rerank(s, url)
    try:
        return _ranked_docs(rr.compress_documents(_lc_docs(), s.query))
    finally:
        _close(rr)


async def lc_acompress(s: Scenario, url: str, obs: Observed) -> Any:
    rr = _lc_rerank(s, url)
    try:
        return _ranked_docs(await rr.acompress_documents(_lc_docs(), s.query))
    finally:
        await _aclose(rr)


def li_postprocess(s: Scenario, url: str, obs: Observed) -> Any:
    rr = _li_rerank(s, url)
    try:
        return _ranked_nodes(rr.postprocess_nodes(_li_nodes(), query_str=s.query))
    finally:
        _close(rr)


async def li_apostprocess(s: Scenario, url: str, obs: Observed) -> Any:
    rr = _li_rerank(s, url)
    try:
        return _ranked_nodes(await rr.apostprocess_nodes(_li_nodes(), query_str=s.query))
    finally:
        await _aclose(rr)


def core_rerank(s: Scenario, url: str, obs: Observed) -> Any:
    client = _core_client(s, url, RERANK_MODEL)
    try:
        return [(r.index, r.score) for r in client.rerank(s.query, list(DOCS))]
    finally:
        _close(client)


async def core_arerank(s: Scenario, url: str, obs: Observed) -> Any:
    client = _core_client(s, url, RERANK_MODEL)
    try:
        return [(r.index, r.score) for r in await client.arerank(s.query, list(DOCS))]
    finally:
        await _aclose(client)


ENTRIES: list[Entry] = [
    Entry("lc.invoke", "chat", "chat", False, lc_invoke),
    Entry("lc.stream", "chat", "chat_stream", False, lc_stream),
    Entry("lc.ainvoke", "chat", "chat", True, lc_ainvoke),
    Entry("lc.astream", "chat", "chat_stream", True, lc_astream),
    Entry("li.chat", "chat", "chat", False, li_chat),
    Entry("li.stream_chat", "chat", "chat_stream", False, li_stream_chat),
    Entry("li.achat", "chat", "chat", True, li_achat),
    Entry("li.astream_chat", "chat", "chat_stream", True, li_astream_chat),
    Entry("core.invoke", "chat", "chat", False, core_invoke),
    Entry("core.stream", "chat", "chat_stream", False, core_stream),
    Entry("lc.embed_documents", "embed", "embeddings", False, lc_embed_documents),
    Entry("lc.aembed_documents", "embed", "embeddings", True, lc_aembed_documents),
    Entry("li.embed_batch", "embed", "embeddings", False, li_embed_batch),
    Entry("li.aembed_batch", "embed", "embeddings", True, li_aembed_batch),
    Entry("core.embed", "embed", "embeddings", False, core_embed),
    Entry("core.aembed", "embed", "embeddings", True, core_aembed),
    Entry("lc.compress", "rerank", "rerank", False, lc_compress),
    Entry("lc.acompress", "rerank", "rerank", True, lc_acompress),
    Entry("li.postprocess", "rerank", "rerank", False, li_postprocess),
    Entry("li.apostprocess", "rerank", "rerank", True, li_apostprocess),
    Entry("core.rerank", "rerank", "rerank", False, core_rerank),
    Entry("core.arerank", "rerank", "rerank", True, core_arerank),
]
ENTRY: dict[str, Entry] = {e.name: e for e in ENTRIES}


def run_entry(entry: Entry, scenario: Scenario, url: str) -> Observed:
    """Call ``entry`` once against ``url``; never raises (the error is in the result)."""
    obs = Observed()
    missing = scenario.needs - entry.caps
    if missing:
        obs.unsupported = f"{entry.name} offers no {', '.join(sorted(missing))} option"
        return obs
    t0 = time.monotonic()
    try:
        if entry.is_async:
            obs.value = asyncio.run(entry.call(scenario, url, obs))
        else:
            obs.value = entry.call(scenario, url, obs)
    except Exception as e:  # noqa: BLE001 - the outcome under test
        obs.error = e
    finally:
        obs.elapsed = time.monotonic() - t0
    return obs
