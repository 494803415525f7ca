"""The process-wide registry: the packaged catalog plus the user's config file.

Example:
    >>> get_registry() is get_registry()
    True
    >>> resolve("sjtu:glm").model.id
    'glm-5.1'
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..config import config_path
from .catalog import Registry
from .specs import ModelSpec, ProviderSpec, ResolvedModel

__all__ = [
    "get_registry",
    "reset_registry",
    "resolve",
    "register_provider",
    "register_model",
    "packaged_markdown_table",
]

_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry: packaged catalog plus the user's config file, if present.

    Example:
        >>> get_registry().provider("sjtu").name
        'sjtu'
    """
    global _registry
    reg = _registry
    if reg is not None:
        return reg
    with _registry_lock:
        if _registry is None:
            reg = Registry()
            path = config_path()
            if path.is_file():
                reg.load_overrides(path)
            _registry = reg
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (tests; after changing the config file or env)."""
    global _registry
    with _registry_lock:
        _registry = None


def resolve(spec: str | None = None, **kw: Any) -> ResolvedModel:
    """:meth:`Registry.resolve` on the process-wide registry."""
    return get_registry().resolve(spec, **kw)


def register_provider(spec: ProviderSpec | Mapping[str, Any]) -> None:
    """:meth:`Registry.register_provider` on the process-wide registry."""
    get_registry().register_provider(spec)


def register_model(provider: str, spec: ModelSpec | Mapping[str, Any]) -> None:
    """:meth:`Registry.register_model` on the process-wide registry."""
    get_registry().register_model(provider, spec)


def packaged_markdown_table(kind: str | None = None) -> str:
    """:meth:`Registry.markdown_table` of the packaged catalog (no user overrides)."""
    return Registry().markdown_table(kind)
