"""LlamaIndex embedding model over the campusllm core client."""

from __future__ import annotations

from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)

from campusllm.registry import ResolvedModel

from ._common import ClosableClient

__all__ = ["CampusLLMEmbedding"]

dispatcher = instrument.get_dispatcher(__name__)


class CampusLLMEmbedding(ClosableClient, BaseEmbedding):
    """Embeddings from a campus/enterprise gateway, usable as ``Settings.embed_model``.

    Batching (by count and tokens), rate limits and retries are the core client's; async
    batches run with bounded concurrency (``max_concurrency``). Queries get the model's
    instruction prefix (Qwen3-Embedding) from the registry; documents are embedded as-is.

    Example:
        >>> from llama_index.core import Settings
        >>> from llama_index_campusllm import CampusLLMEmbedding
        >>> Settings.embed_model = CampusLLMEmbedding(model="oneapi:qwen3-embedding-8b")  # doctest: +SKIP
        >>> vec = Settings.embed_model.get_query_embedding("campus shuttle times")  # doctest: +SKIP
    """  # noqa: E501

    dimensions: int | None = Field(default=None, description="Output dimensions, if supported.")
    query_task: str | None = Field(
        default=None, description="Task text for the query instruction (registry default if None)."
    )
    max_concurrency: int = Field(default=4, gt=0, description="Concurrent async batch requests.")
    timeout: float = Field(default=60.0, description="Request timeout in seconds.")

    @classmethod
    def _init_kwargs(cls, resolved: ResolvedModel, kwargs: dict[str, Any]) -> None:
        kwargs.setdefault("model_name", resolved.model.id)
        # BaseEmbedding's own async batching (used with an embeddings cache) would otherwise
        # gather every batch at once.
        kwargs.setdefault("num_workers", kwargs.get("max_concurrency", 4))

    @classmethod
    def class_name(cls) -> str:
        return "CampusLLMEmbedding"

    @property
    def _batch_size(self) -> int | None:
        # BaseEmbedding's default (10) is arbitrary; unless set, the registry's limit applies.
        return self.embed_batch_size if "embed_batch_size" in self.model_fields_set else None

    def _query_text(self, query: str) -> str:
        return self.campus_client.format_query(query, self.query_task)

    # ----------------------------------------------------------------- BaseEmbedding hooks

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.campus_client.embed([self._query_text(query)], dimensions=self.dimensions)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        vecs = await self.campus_client.aembed(
            [self._query_text(query)], dimensions=self.dimensions
        )
        return vecs[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.campus_client.embed(
            texts, dimensions=self.dimensions, batch_size=self._batch_size
        )

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self.campus_client.aembed(
            texts,
            dimensions=self.dimensions,
            batch_size=self._batch_size,
            max_concurrency=self.max_concurrency,
        )

    # ----------------------------------------------------------------- batches
    # BaseEmbedding batches by a fixed count and, async, gathers every batch at once. The core
    # client batches by count *and* tokens and bounds concurrency, so hand it the whole list.

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        if self.embeddings_cache is not None or not texts:
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            vecs = self.campus_client.embed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self._batch_size,
                show_progress=show_progress,
            )
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: vecs})
        dispatcher.event(EmbeddingEndEvent(chunks=list(texts), embeddings=vecs))
        return vecs

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        if self.embeddings_cache is not None or not texts:
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            vecs = await self.campus_client.aembed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self._batch_size,
                max_concurrency=self.max_concurrency,
                show_progress=show_progress,
            )
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: vecs})
        dispatcher.event(EmbeddingEndEvent(chunks=list(texts), embeddings=vecs))
        return vecs
