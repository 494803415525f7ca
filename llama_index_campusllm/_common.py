"""Shared plumbing for the LlamaIndex classes: resolve a model and build its core clients."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr, SecretStr

from campusllm.registry import RateLimits

if TYPE_CHECKING:
    from campusllm.client import CampusClient
    from campusllm.registry import ResolvedModel


def resolve_model(model: str | None, provider: str | None, base_url: str | None) -> ResolvedModel:
    """Resolve ``model`` ("sjtu:glm" or a bare name with ``provider``) through the registry."""
    from campusllm.registry import resolve

    if provider:
        return resolve(provider=provider, model=model, base_url=base_url)
    return resolve(model, base_url=base_url)


def campus_fields(
    model: str | None,
    provider: str | None,
    base_url: str | None,
    api_key: str | SecretStr | None,
    timeout: float,
    max_retries: int | None,
    rate_limits: RateLimits | dict[str, Any] | None,
) -> tuple[dict[str, Any], ResolvedModel, CampusClient]:
    """Resolve the model, build its core client, and return the fields every class sets.

    One client serves sync and async calls: the core transport keeps async connections per
    event loop, so ``asyncio.run`` after ``asyncio.run`` (and LlamaIndex's own sync-over-async
    helpers) are safe.
    """
    from campusllm.auth import get_api_key
    from campusllm.client import CampusClient
    from campusllm.transport import RetryPolicy

    resolved = resolve_model(model, provider, base_url)
    key = get_api_key(resolved.provider, api_key)
    retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else None
    limits = RateLimits(**rate_limits) if isinstance(rate_limits, dict) else rate_limits
    client = CampusClient(resolved, key, timeout=timeout, retry=retry, limits=limits)
    fields = {
        "model": model or resolved.key,
        "provider": provider,
        "base_url": base_url,
        "api_key": key,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    return fields, resolved, client


class ClosableClient(BaseModel):
    """Base of the three LlamaIndex classes: the registry fields, the core client, closing.

    Subclasses declare ``timeout`` (their default differs) and may add constructor kwargs
    in :meth:`_init_kwargs`.

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
    rate_limits: RateLimits | None = Field(
        default=None,
        description="Overrides the provider's rpm/tpm/window (shared by all clients of the key).",
    )

    _resolved: ResolvedModel = PrivateAttr()
    _core: CampusClient = PrivateAttr()

    def __init__(
        self,
        model: str | None = None,
        *,
        provider: str | None = None,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        if timeout is None:
            timeout = float(type(self).model_fields["timeout"].default)
        fields, resolved, client = campus_fields(
            model, provider, base_url, api_key, timeout, max_retries, kwargs.get("rate_limits")
        )
        self._init_kwargs(resolved, kwargs)
        super().__init__(**fields, **kwargs)
        self._resolved = resolved
        self._core = client

    @classmethod
    def _init_kwargs(cls, resolved: ResolvedModel, kwargs: dict[str, Any]) -> None:
        """Fill defaults that depend on the resolved model (subclasses override)."""

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this object talks to."""
        return self._resolved

    @property
    def _client(self) -> CampusClient:
        # one client for sync and async: the core transport pools connections per loop
        return self._core

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self._core.close()

    async def aclose(self) -> None:
        """Close the sync and async HTTP connections; call it in the loop that used them."""
        await self._core.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
