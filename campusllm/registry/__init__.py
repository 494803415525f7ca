"""The provider and model catalog: base URLs, auth, limits, capabilities and quirks.

The packaged catalog lives in ``campusllm/providers/*.toml`` (one file per provider). A user
file (``$CAMPUSLLM_CONFIG`` or ``~/.config/campusllm/config.toml``) is deep-merged on top of
it, and :func:`register_provider` / :func:`register_model` change it at runtime. Everything
else in campusllm asks this package what a gateway needs instead of hard-coding it.

One concern per module: :mod:`.specs` (the data shapes), :mod:`.keys` (key groups and keys
from config files), :mod:`.loading` (TOML files and merging), :mod:`.resolution` (names to
models and base URLs), :mod:`.catalog` (the :class:`Registry`), :mod:`.docs` (the README
table) and :mod:`.default` (the process-wide registry).

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat")
    >>> r.key, r.wire_model, r.model.context_window
    ('sjtu:deepseek-v3.2', 'deepseek-chat', 32768)
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalog import Registry
from .default import (
    get_registry,
    register_model,
    register_provider,
    reset_registry,
    resolve,
)
from .default import packaged_markdown_table as markdown_table
from .keys import ConfigKey, KeyGroup
from .resolution import PROVIDER_ENV
from .specs import Drift, ModelSpec, ProviderSpec, RateLimits, ReasoningSpec, ResolvedModel

__all__ = [
    "RateLimits",
    "ReasoningSpec",
    "ModelSpec",
    "ProviderSpec",
    "ResolvedModel",
    "Drift",
    "KeyGroup",
    "ConfigKey",
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


def __getattr__(name: str) -> Any:
    # refresh_from_gateway lives above the client (it is a network call) and is re-exported
    # here for existing imports; importing it by name on first use keeps the registry free
    # of an import of the client, which itself needs the registry.
    if name == "refresh_from_gateway":
        return importlib.import_module("campusllm.refresh").refresh_from_gateway
    raise AttributeError(f"module 'campusllm.registry' has no attribute {name!r}")
