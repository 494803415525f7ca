"""Shared plumbing for the LlamaIndex classes: resolve a model and build its core client."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from campusllm.client import CampusClient
    from campusllm.registry import ResolvedModel
    from pydantic import SecretStr


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
) -> tuple[SecretStr, CampusClient]:
    """Look the key up (explicit > registry env vars) and build the one shared core client."""
    from campusllm.auth import get_api_key
    from campusllm.client import CampusClient
    from campusllm.transport import RetryPolicy

    key = get_api_key(resolved.provider, api_key)
    retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else None
    return key, CampusClient(resolved, key, timeout=timeout, retry=retry)
