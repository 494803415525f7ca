"""What the three LlamaIndex classes share: the registry fields, the connection, closing."""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from campusllm.client import CampusClient
from campusllm.connection import Connection, connect
from campusllm.limiter import RateLimiter
from campusllm.registry import RateLimits, ResolvedModel


class ClosableClient(BaseModel):
    """Base of the three LlamaIndex classes: the registry fields, the connection, closing.

    ``timeout`` is the total seconds of one attempt, the whole answer or stream included, and
    ``read_timeout`` the longest silence between two reads (``None``: only ``timeout``).
    Subclasses declare ``timeout`` (their default differs) and may add constructor kwargs
    in :meth:`_init_kwargs`. One connection serves sync and async calls: the core transport
    keeps async connections per event loop, so ``asyncio.run`` after ``asyncio.run`` (and
    LlamaIndex's own sync-over-async helpers) are safe.

    Example:
        >>> with CampusLLM(model="sjtu:deepseek-reasoner") as llm:  # doctest: +SKIP
        ...     llm.complete("hi")
    """

    model: str = Field(description="Model spec: 'provider:model', or a model name with provider.")
    provider: str | None = Field(default=None, description="Provider name, e.g. 'sjtu'.")
    base_url: str | None = Field(default=None, description="Overrides the registry's base URL.")
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    max_retries: int | None = Field(
        default=None, description="Retries for 429/5xx/connect errors (None: core default)."
    )
    read_timeout: float | None = Field(
        default=None,
        description="Longest silence in seconds between two reads (None: only timeout, the "
        "total of one attempt, bounds it).",
    )
    rate_limits: RateLimits | None = Field(
        default=None,
        description="Overrides the provider's rpm/tpm/window (shared by all clients of the key).",
    )
    limiter: str | RateLimiter | None = Field(
        default=None,
        exclude=True,
        description="Who shares the key's quota: 'local' (default), 'memory', "
        "'redis://host:port/db', or a RateLimiter.",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True)  # limiter: a RateLimiter

    _connection: Connection = PrivateAttr()
    _campus_client: CampusClient | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: str | None = None,
        *,
        provider: str | None = None,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        if timeout is None:
            timeout = float(type(self).model_fields["timeout"].default)
        conn = connect(
            model,
            provider=provider,
            base_url=base_url,
            api_key=api_key,
            rate_limits=kwargs.get("rate_limits"),
            limiter=kwargs.get("limiter"),
            max_retries=max_retries,
            timeout=timeout,
            read_timeout=read_timeout,
            headers=kwargs.get("default_headers"),
        )
        self._init_kwargs(conn.resolved, kwargs)
        super().__init__(
            model=model or conn.resolved.key,
            provider=provider,
            base_url=base_url,
            api_key=conn.api_key,
            timeout=timeout,
            read_timeout=read_timeout,
            max_retries=max_retries,
            **kwargs,
        )
        self._connection = conn

    @classmethod
    def _init_kwargs(cls, resolved: ResolvedModel, kwargs: dict[str, Any]) -> None:
        """Fill defaults that depend on the resolved model (subclasses override)."""

    @property
    def connection(self) -> Connection:
        """The connection: resolved model, key, limiter, retry policy and HTTP clients."""
        return self._connection

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this object talks to."""
        return self._connection.resolved

    @property
    def campus_client(self) -> CampusClient:
        """The core client (embeddings, rerank, /models) on this object's connection."""
        if self._campus_client is None:
            self._campus_client = CampusClient(self._connection)
        return self._campus_client

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self._connection.close()

    async def aclose(self) -> None:
        """Close the sync and async HTTP connections; call it in the loop that used them."""
        await self._connection.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
