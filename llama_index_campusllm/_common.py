"""Shared plumbing for the LlamaIndex classes: resolve a model and build its core clients."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

if TYPE_CHECKING:
    from pydantic import SecretStr

    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits, ResolvedModel


def resolve_model(model: str | None, provider: str | None, base_url: str | None) -> ResolvedModel:
    """Resolve ``model`` ("sjtu:glm" or a bare name with ``provider``) through the registry."""
    from campusllm.registry import resolve

    if provider:
        return resolve(provider=provider, model=model, base_url=base_url)
    return resolve(model, base_url=base_url)


class ClientPool:
    """The core client of one LlamaIndex object.

    Async connections are per event loop inside the core transport, so one client serves
    sync calls, ``asyncio.run`` after ``asyncio.run`` and LlamaIndex's own sync-over-async
    helpers alike.

    Example:
        >>> pool = ClientPool(lambda: CampusClient(resolved, key))  # doctest: +SKIP
        >>> pool.main.embed(["hi"]); await pool.for_loop().aembed(["hi"])  # doctest: +SKIP
    """

    def __init__(self, factory: Callable[[], CampusClient]) -> None:
        self.main = factory()

    def for_loop(self) -> CampusClient:
        """The client for async calls (the same object; kept as the async entry point)."""
        return self.main

    def close(self) -> None:
        """Close the client (async connections too when no loop is running)."""
        self.main.close()

    async def aclose(self) -> None:
        """Close the client, including the running loop's async connections."""
        await self.main.aclose()


def build_clients(
    resolved: ResolvedModel,
    api_key: str | SecretStr | None,
    *,
    timeout: float,
    max_retries: int | None,
    rate_limits: RateLimits | dict[str, Any] | None = None,
) -> tuple[SecretStr, ClientPool]:
    """Look the key up (explicit > registry env vars) and build the core client pool."""
    from campusllm.auth import get_api_key
    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits
    from campusllm.transport import RetryPolicy

    key = get_api_key(resolved.provider, api_key)
    retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else None
    limits = RateLimits(**rate_limits) if isinstance(rate_limits, dict) else rate_limits

    def factory() -> CampusClient:
        return CampusClient(resolved, key, timeout=timeout, retry=retry, limits=limits)

    return key, ClientPool(factory)


def campus_fields(
    model: str | None,
    provider: str | None,
    base_url: str | None,
    api_key: str | SecretStr | None,
    timeout: float,
    max_retries: int | None,
    rate_limits: RateLimits | dict[str, Any] | None,
) -> tuple[dict[str, Any], ResolvedModel, ClientPool]:
    """Resolve the model, build its client, and return the pydantic fields every class sets."""
    resolved = resolve_model(model, provider, base_url)
    key, pool = build_clients(
        resolved, api_key, timeout=timeout, max_retries=max_retries, rate_limits=rate_limits
    )
    fields = {
        "model": model or resolved.key,
        "provider": provider,
        "base_url": base_url,
        "api_key": key,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    return fields, resolved, pool


class ClosableClient:
    """Mixin: the core clients of a LlamaIndex class, and how to release their connections.

    Example:
        >>> with CampusLLM(model="sjtu:deepseek-reasoner") as llm:  # doctest: +SKIP
        ...     llm.complete("hi")
    """

    if TYPE_CHECKING:
        _pool: ClientPool

    @property
    def _client(self) -> CampusClient:
        # sync calls (and the first event loop's async calls) use this one
        return self._pool.main

    def _aclient(self) -> CampusClient:
        return self._pool.for_loop()

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self._pool.close()

    async def aclose(self) -> None:
        """Close the sync and async HTTP connections; call it in the loop that used them."""
        await self._pool.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
