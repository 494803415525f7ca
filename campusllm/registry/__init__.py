"""The provider and model catalog."""

from __future__ import annotations

from .catalog import (
    PROVIDER_ENV,
    Drift,
    ModelSpec,
    ProviderSpec,
    RateLimits,
    ReasoningSpec,
    Registry,
    ResolvedModel,
    get_registry,
    markdown_table,
    refresh_from_gateway,
    register_model,
    register_provider,
    reset_registry,
    resolve,
)

__all__ = [
    "RateLimits",
    "ReasoningSpec",
    "ModelSpec",
    "ProviderSpec",
    "ResolvedModel",
    "Drift",
    "Registry",
    "get_registry",
    "reset_registry",
    "resolve",
    "register_provider",
    "register_model",
    "markdown_table",
    "refresh_from_gateway",
    "PROVIDER_ENV",
]
