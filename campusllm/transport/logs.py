"""Keys never reach the HTTP libraries' debug logs.

At ``DEBUG``, httpcore logs every response's headers and the openai SDK logs responses and
failed requests with their tracebacks. A gateway that echoes the key it refused (in a header
or its error body) would put the key in those logs, and logs get pasted into issues and chat
groups. :func:`protect_http_logs` puts a filter on the loggers of httpx, httpcore, their
``httpx2`` twins and the openai SDK that redacts every record (message, arguments and
traceback text) with :func:`campusllm.errors.redact`, which knows every key campusllm holds.
It is installed whenever campusllm builds HTTP clients, and costs nothing unless those
loggers are at ``DEBUG``: records below a logger's level are never made.

Example:
    >>> import logging
    >>> protect_http_logs()
    >>> any(isinstance(f, RedactingFilter) for f in logging.getLogger("httpcore.http11").filters)
    True
"""

from __future__ import annotations

import logging
import threading

from ..errors import redact

__all__ = ["RedactingFilter", "protect_http_logs", "PROTECTED_LOGGERS"]

PROTECTED_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "openai")
"""Logger name prefixes whose records are redacted."""

# Filters apply to the logger a record is made on, not to its parents: name every one.
_PARTS = ("connection", "http11", "http2", "proxy", "socks")
_KNOWN = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    *(f"httpcore.{part}" for part in _PARTS),
    *(f"httpcore2.{part}" for part in _PARTS),
    "openai",
    "openai._base_client",
    "openai._response",
    "openai._legacy_response",
)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments and traceback text without keys.

    Example:
        >>> rec = logging.LogRecord("httpcore.http11", logging.DEBUG, "", 0,
        ...                         "headers %s", ([(b"X-Echo", b"Bearer sk-abcdefghij")],), None)
        >>> RedactingFilter().filter(rec), "sk-abcdefghij" in rec.getMessage()
        (True, False)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is left alone
            return True
        clean = redact(message, limit=None)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, limit=None)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, limit=None)
        return True


_FILTER = RedactingFilter()
_lock = threading.Lock()


def protect_http_logs() -> None:
    """Put the redacting filter on every logger of the HTTP libraries and the openai SDK.

    Loggers made since the last call (a module imported later) are covered by the next call;
    campusllm calls it each time it builds HTTP clients.
    """
    names = set(_KNOWN)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".", 1)[0] in PROTECTED_LOGGERS:
            names.add(name)
    with _lock:
        for name in names:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
