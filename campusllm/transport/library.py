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
import threading
from types import ModuleType

__all__ = ["core_http_library", "ssl_context", "error_names", "is_http_error"]

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
