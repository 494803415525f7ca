"""LangChain document compressor backed by a gateway's rerank endpoint (Jina/Cohere or TEI)."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document

from campusllm.wire import RerankResult

from ._base import CampusComponent

__all__ = ["CampusLLMRerank"]


class CampusLLMRerank(CampusComponent, BaseDocumentCompressor):
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

    top_n: int | None = 3
    """How many documents to keep; ``None`` keeps all, reordered."""

    @staticmethod
    def _ranked(documents: Sequence[Document], results: Sequence[RerankResult]) -> list[Document]:
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
        results = self._client.rerank(query, [d.page_content for d in documents], top_n=self.top_n)
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
        results = await self._client.arerank(
            query, [d.page_content for d in documents], top_n=self.top_n
        )
        return self._ranked(documents, results)
