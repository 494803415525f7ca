"""Shared plumbing for the LlamaIndex classes: resolve a model and build its core client."""

from __future__ import annotations

import sys
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


def build_client(
    resolved: ResolvedModel,
    api_key: str | SecretStr | None,
    *,
    timeout: float,
    max_retries: int | None,
    rate_limits: RateLimits | dict[str, Any] | None = None,
) -> tuple[SecretStr, CampusClient]:
    """Look the key up (explicit > registry env vars) and build the one shared core client."""
    from campusllm.auth import get_api_key
    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits
    from campusllm.transport import RetryPolicy

    key = get_api_key(resolved.provider, api_key)
    retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else None
    if isinstance(rate_limits, dict):
        rate_limits = RateLimits(**rate_limits)
    return key, CampusClient(resolved, key, timeout=timeout, retry=retry, limits=rate_limits)


class ClosableClient:
    """Mixin: release the core client's HTTP connections (sync, async, context managers).

    Example:
        >>> with CampusLLM(model="sjtu:deepseek-reasoner") as llm:  # doctest: +SKIP
        ...     llm.complete("hi")
    """

    if TYPE_CHECKING:
        _client: CampusClient

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the sync and async HTTP connections; call it in the loop that used them."""
        await self._client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
