"""The HTTP library under the transports, and its exceptions whichever library raised them.

campusllm's transports run under two libraries: ``httpx`` for its own calls (embeddings,
rerank, ``/models``, the CLI) and the library the openai SDK runs on (``httpx2`` for openai
3.x), so the chat path never imports a second HTTP stack. The two share an API and
exception names; rules about exceptions are therefore written once, against those names.

Example:
    >>> import httpx
    >>> sorted(error_names(httpx.ConnectError("refused")))[:2]
    ['ConnectError', 'HTTPError']
"""

from __future__ import annotations

import ssl
import sys
import threading
from types import ModuleType

__all__ = [
    "core_http_library",
    "ssl_context",
    "error_names",
    "is_http_error",
    "library_of",
    "byte_stream_class",
]

_HTTP_PACKAGES = frozenset({"httpx", "httpx2"})


def core_http_library() -> ModuleType:
    """``httpx``, the library of campusllm's own calls.

    Imported on first use, not with the package: importing httpx also imports its command
    line (click, rich, pygments: about 0.2 s) when those are installed, and a chat model that
    only talks through the openai SDK never needs it.
    """
    import httpx  # see the docstring

    return httpx


_ssl_contexts: dict[str, ssl.SSLContext] = {}
_ssl_lock = threading.Lock()


def ssl_context(lib: ModuleType) -> ssl.SSLContext:
    """One verifying SSL context per HTTP library (building one loads the CA bundle: ~10 ms)."""
    with _ssl_lock:
        ctx = _ssl_contexts.get(lib.__name__)
        if ctx is None:
            ctx = _ssl_contexts[lib.__name__] = lib.create_ssl_context()
        return ctx


def library_of(obj: object) -> ModuleType:
    """The HTTP library (``httpx`` or ``httpx2``) an object of it belongs to."""
    return sys.modules[type(obj).__module__.split(".", 1)[0]]


_stream_classes: dict[tuple[str, type], type] = {}


def byte_stream_class(lib: ModuleType, impl: type, *, is_async: bool) -> type:
    """``impl`` made a subclass of ``lib``'s (async) byte-stream class, made once per library.

    httpx checks that a response's stream is one of *its* byte-stream classes (httpx or
    httpx2), so a wrapper put around a response's body must be one of them.
    """
    key = (lib.__name__, impl)
    cls = _stream_classes.get(key)
    if cls is None:
        base = lib.AsyncByteStream if is_async else lib.SyncByteStream
        cls = _stream_classes[key] = type(impl.__name__, (impl, base), {})
    return cls


def error_names(exc: BaseException) -> frozenset[str]:
    """Class names of the HTTP-library exception classes ``exc`` is an instance of.

    Empty for exceptions that do not come from httpx or httpx2.
    """
    return frozenset(
        cls.__name__
        for cls in type(exc).__mro__
        if cls.__module__.split(".", 1)[0] in _HTTP_PACKAGES
    )


def is_http_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an httpx/httpx2 exception (transport, status, decoding...)."""
    return bool(error_names(exc))
