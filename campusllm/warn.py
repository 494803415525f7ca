"""Warnings that point at the user's line, not at campusllm's (or a framework's) internals.

A warning about a deprecated model or a capability fallback is about the call the user wrote;
``stacklevel`` counted by hand breaks whenever the call goes through one more frame (an
adapter's constructor runs inside pydantic and the framework). So :func:`warn_user` walks up
to the first frame outside the packages registered as internal.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_user("model x is deprecated")
    >>> str(caught[0].message)
    'model x is deprecated'
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["treat_as_internal", "warn_user"]

_internal: set[str] = {"campusllm", "pydantic"}


def treat_as_internal(*packages: str) -> None:
    """Skip frames of ``packages`` too (each adapter registers itself and its framework).

    Example:
        >>> treat_as_internal("my_wrapper_package")
    """
    _internal.update(packages)


def _is_internal(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _internal)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the first frame outside campusllm and the registered packages."""
    level = 2  # 1 would be this function; 2 is its caller
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_internal(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
