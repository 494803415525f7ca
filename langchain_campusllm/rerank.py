"""LangChain document compressor backed by a gateway's rerank endpoint (Jina/Cohere or TEI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from campusllm.registry import RateLimits, ResolvedModel
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, SecretStr, model_validator

from .embeddings import _client_kwargs

__all__ = ["CampusLLMRerank"]


class CampusLLMRerank(BaseDocumentCompressor):
    """Rerank retrieved documents with a gateway's reranker (e.g. bge-reranker on OneAPI).

    Returns the ``top_n`` best documents, best first, as copies whose metadata carries
    ``relevance_score``; the input documents are not modified. Use it directly or as the
    compressor of a ``ContextualCompressionRetriever``.

    Example:
        >>> from langchain_campusllm import CampusLLMRerank
        >>> rerank = CampusLLMRerank(model="oneapi:bge-reranker-v2-m3", top_n=3)  # doctest: +SKIP
        >>> best = rerank.compress_documents(docs, "Where is SJTU?")  # doctest: +SKIP
        >>> best[0].metadata["relevance_score"]  # doctest: +SKIP
    """

    model: str
    """Model id or ``"provider:model"``."""
    provider: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    base_url: str | None = None
    top_n: int | None = 3
    """How many documents to keep; ``None`` keeps all, reordered."""
    timeout: float | None = None
    max_retries: int | None = None
    rate_limits: RateLimits | None = None

    campus_resolved: Any = Field(default=None, exclude=True, repr=False)
    campus_client: Any = Field(default=None, exclude=True, repr=False)

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _campusllm_resolve(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        from campusllm.auth import get_api_key
        from campusllm.client import CampusClient
        from campusllm.registry import resolve

        values = dict(values)
        name = values.get("model")
        if not name:
            return values
        provider = values.get("provider")
        if provider:
            resolved = resolve(provider=provider, model=name, base_url=values.get("base_url"))
        else:
            resolved = resolve(name, base_url=values.get("base_url"))
        key = get_api_key(resolved.provider, values.get("api_key"))
        values["provider"] = resolved.provider.name
        values["base_url"] = resolved.base_url
        values["api_key"] = key
        values["campus_resolved"] = resolved
        if not values.get("campus_client"):
            values["campus_client"] = CampusClient(resolved, key, **_client_kwargs(values))
        return values

    def __init__(self, **kwargs: Any) -> None:
        from pydantic import ValidationError

        from campusllm.errors import CampusLLMError

        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            for err in e.errors():
                inner = (err.get("ctx") or {}).get("error")
                if isinstance(inner, CampusLLMError):
                    raise inner from None
            raise

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to."""
        return self.campus_resolved  # type: ignore[no-any-return]

    @staticmethod
    def _ranked(documents: Sequence[Document], results: Any) -> list[Document]:
        out = []
        for r in results:
            doc = documents[r.index]
            out.append(
                Document(
                    page_content=doc.page_content,
                    metadata={**doc.metadata, "relevance_score": r.score},
                    id=doc.id,
                )
            )
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; return the ``top_n`` best, best first."""
        if not documents:
            return []
        results = self.campus_client.rerank(
            query, [d.page_content for d in documents], top_n=self.top_n
        )
        return self._ranked(documents, results)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`."""
        if not documents:
            return []
        results = await self.campus_client.arerank(
            query, [d.page_content for d in documents], top_n=self.top_n
        )
        return self._ranked(documents, results)
