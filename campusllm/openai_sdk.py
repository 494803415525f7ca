"""The one seam between campusllm and the openai SDK.

Example:
    >>> sdk_http_library().__name__ in ("httpx", "httpx2")
    True
"""

from __future__ import annotations

from types import ModuleType

import openai._base_client as _sdk_base

__all__ = ["sdk_http_library"]


def sdk_http_library() -> ModuleType:
    """The HTTP library the installed openai SDK runs on (``httpx2`` for openai 3.x).

    Clients handed to the SDK are built on it: a client of another library works too, but
    goes through the SDK's compatibility shims on every request.
    """
    lib: ModuleType | None = getattr(_sdk_base, "httpx2", None) or getattr(_sdk_base, "httpx", None)
    if lib is None:  # pragma: no cover - an SDK release with yet another HTTP library
        raise RuntimeError("Cannot tell which HTTP library the installed openai SDK uses.")
    return lib
