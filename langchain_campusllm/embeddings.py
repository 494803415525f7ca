"""LangChain embeddings over campusllm's client (batching, limiter, retries live in the core)."""

from __future__ import annotations

from typing import Any

from campusllm.registry import RateLimits, ResolvedModel
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["CampusLLMEmbeddings"]


def _client_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    from campusllm.transport import RetryPolicy

    max_retries = values.get("max_retries")
    return {
        "timeout": values.get("timeout") or 60.0,
        "retry": None if max_retries is None else RetryPolicy(max_retries=max_retries),
        "limits": values.get("rate_limits"),
    }


class CampusLLMEmbeddings(BaseModel, Embeddings):
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

    model: str
    """Model id or ``"provider:model"``."""
    provider: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    """Overrides the provider's key env var."""
    base_url: str | None = None
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
            return values  # pydantic reports the missing field
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

    def format_query(self, text: str) -> str:
        """The text actually embedded for a query (instruction applied)."""
        if self.query_instruction is not None:
            if not self.query_instruction:
                return text
            task = self.task or self.resolved.model.default_task
            return self.query_instruction.replace("{task}", task).replace("{text}", text)
        return str(self.campus_client.format_query(text, task=self.task))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction)."""
        if not texts:
            return []
        return list(
            self.campus_client.embed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self.batch_size,
                show_progress=self.show_progress,
            )
        )

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, with the model's query instruction."""
        vectors = self.campus_client.embed([self.format_query(text)], dimensions=self.dimensions)
        return list(vectors[0])

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents concurrently (``max_concurrency`` requests at a time)."""
        if not texts:
            return []
        return list(
            await self.campus_client.aembed(
                list(texts),
                dimensions=self.dimensions,
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                show_progress=self.show_progress,
            )
        )

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        vectors = await self.campus_client.aembed(
            [self.format_query(text)], dimensions=self.dimensions
        )
        return list(vectors[0])
