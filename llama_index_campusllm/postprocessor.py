"""LlamaIndex reranking postprocessor over the campusllm core client."""

from __future__ import annotations

from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from campusllm.wire import RerankResult

from ._common import ClosableClient

__all__ = ["CampusLLMRerank"]

dispatcher = instrument.get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"


def _with_key(keys: list[str]) -> list[str]:
    return keys if RETRIEVAL_SCORE_KEY in keys else [*keys, RETRIEVAL_SCORE_KEY]


class CampusLLMRerank(ClosableClient, BaseNodePostprocessor):
    """Rerank retrieved nodes with a gateway's rerank model (Jina/Cohere or TEI shape).

    ``node.score`` becomes the rerank score; the retriever's score is kept in the node
    metadata under ``retrieval_score`` (hidden from the LLM and embedding text). The async
    path is truly async, so query engines with ``use_async=True`` do not block a thread.

    Example:
        >>> from llama_index_campusllm import CampusLLMRerank
        >>> rerank = CampusLLMRerank(model="oneapi:qwen3-reranker-8b", top_n=3)  # doctest: +SKIP
        >>> engine = index.as_query_engine(node_postprocessors=[rerank])  # doctest: +SKIP
    """

    top_n: int | None = Field(default=None, description="Nodes to keep (None: all, reordered).")
    timeout: float = Field(default=60.0, description="Request timeout in seconds.")

    @classmethod
    def class_name(cls) -> str:
        return "CampusLLMRerank"

    def _start(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[str]]:
        if query_bundle is None:
            raise ValueError("CampusLLMRerank needs the query (query_bundle or query_str).")
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=self.top_n or len(nodes),
                model_name=self.resolved.model.id,
            )
        )
        docs = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return query_bundle.query_str, docs

    def _finish(
        self, nodes: list[NodeWithScore], results: list[RerankResult]
    ) -> list[NodeWithScore]:
        out: list[NodeWithScore] = []
        for r in sorted(results, key=lambda r: r.score, reverse=True):
            original = nodes[r.index]
            # A copy: retrievers may hand out the docstore's own node objects, which must not
            # collect one query's scores.
            node = original.node.model_copy()
            node.metadata = {**node.metadata, RETRIEVAL_SCORE_KEY: original.score}
            node.excluded_llm_metadata_keys = _with_key(node.excluded_llm_metadata_keys)
            node.excluded_embed_metadata_keys = _with_key(node.excluded_embed_metadata_keys)
            out.append(NodeWithScore(node=node, score=r.score))
        if self.top_n is not None:
            out = out[: self.top_n]
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    def _event_payload(self, nodes: list[NodeWithScore], query: str) -> dict[Any, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.resolved.model.id,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, docs = self._start(nodes, query_bundle)
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._event_payload(nodes, query)
        ) as event:
            results = self.campus_client.rerank(query, docs, top_n=self.top_n)
            out = self._finish(nodes, results)
            event.on_end(payload={EventPayload.NODES: out})
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, docs = self._start(nodes, query_bundle)
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._event_payload(nodes, query)
        ) as event:
            results = await self.campus_client.arerank(query, docs, top_n=self.top_n)
            out = self._finish(nodes, results)
            event.on_end(payload={EventPayload.NODES: out})
        return out
