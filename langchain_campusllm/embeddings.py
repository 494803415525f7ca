"""LangChain embeddings over campusllm's client (batching, limiter, retries live in the core)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from ._base import CampusComponent

__all__ = ["CampusLLMEmbeddings"]


class CampusLLMEmbeddings(CampusComponent, Embeddings):
    """Embeddings from a campus/enterprise gateway (e.g. Qwen3-Embedding on OneAPI).

    Documents are embedded as-is; ``embed_query`` prepends the model's query instruction
    (Qwen3-Embedding's ``"Instruct: {task}\\nQuery:{text}"``) when the registry defines one.
    Batching by count and tokens, rate limits and retries are handled by campusllm; no
    tokenizer is downloaded.

    Example:
        >>> from langchain_campusllm import CampusLLMEmbeddings
        >>> emb = CampusLLMEmbeddings(model="oneapi:qwen3-embedding-8b")  # doctest: +SKIP
        >>> vectors = emb.embed_documents(["交大在上海", "ECNU is in Shanghai"])  # doctest: +SKIP
        >>> query_vector = emb.embed_query("Where is SJTU?")  # doctest: +SKIP
    """

    dimensions: int | None = None
    """Output dimensions (Matryoshka models); ``None`` keeps the model's default."""
    query_instruction: str | None = None
    """Query template with ``{task}`` and ``{text}``; ``None`` = registry default, ``""`` = none."""
    task: str | None = None
    """Task description for the query instruction; ``None`` = registry default."""
    batch_size: int | None = None
    """Texts per request; ``None`` = the provider's/model's limit."""
    max_concurrency: int = 4
    """Concurrent requests in the async methods."""
    show_progress: bool = False

    def format_query(self, text: str) -> str:
        """The text actually embedded for a query (instruction applied)."""
        if self.query_instruction is not None:
            if not self.query_instruction:
                return text
            task = self.task or self.resolved.model.default_task
            return self.query_instruction.replace("{task}", task).replace("{text}", text)
        return str(self._client.format_query(text, task=self.task))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction)."""
        if not texts:
            return []
        return list(
            self._client.embed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self.batch_size,
                show_progress=self.show_progress,
            )
        )

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, with the model's query instruction."""
        vectors = self._client.embed([self.format_query(text)], dimensions=self.dimensions)
        return list(vectors[0])

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents concurrently (``max_concurrency`` requests at a time)."""
        if not texts:
            return []
        return list(
            await self._client.aembed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                show_progress=self.show_progress,
            )
        )

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        vectors = await self._client.aembed([self.format_query(text)], dimensions=self.dimensions)
        return list(vectors[0])
