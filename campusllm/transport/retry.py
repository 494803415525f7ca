"""When to resend a request, and how long to wait first.

Retrying lives in the transport and only there: the openai SDK is built with
``max_retries=0``, so one 429 costs at most ``RetryPolicy.max_retries`` extra attempts, not
the product of two retry loops.

Example:
    >>> policy = RetryPolicy(max_retries=2)
    >>> 0.25 <= policy.delay(0) <= 0.5
    True
    >>> retry_after_seconds({"retry-after": "3"})
    3.0
    >>> retry_after_seconds({"retry-after": "0"}) is None  # no usable wait: back off instead
    True
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import httpx

__all__ = [
    "RetryPolicy",
    "RetryNote",
    "RETRY_STATUS",
    "MAX_RETRY_AFTER_S",
    "RETRY_NOTE",
    "retry_after_seconds",
    "rejects_the_request",
    "read_error_body",
    "aread_error_body",
]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 522, 524})
"""HTTP statuses that mean "try again": timeouts, rate limits, gateway and upstream failures."""

MAX_RETRY_AFTER_S = 120.0
"""A Retry-After longer than this is a quota reset (hours), not a hiccup: it is surfaced at
once, with the wait the gateway asked for, instead of blocking the caller."""

RETRY_NOTE = "campusllm.retry"
"""Key of the :class:`RetryNote` the transport leaves in an error response's ``extensions``."""

# Headers that carry the wait, in the order they are believed. LiteLLM's proxy forwards the
# upstream's headers with an ``llm_provider-`` prefix, and its router puts its own wait there.
_RETRY_AFTER_HEADERS = (
    ("retry-after-ms", 0.001),
    ("retry-after", 1.0),
    ("llm_provider-retry-after-ms", 0.001),
    ("llm_provider-retry-after", 1.0),
)


@dataclass
class RetryPolicy:
    """How the transport retries 429, 5xx, 408 and connection failures.

    Backoff is ``min(backoff_max, backoff_base * 2**attempt)`` with jitter (between half and
    all of it); a usable ``Retry-After`` from the gateway (more than 0 s, at most
    :data:`MAX_RETRY_AFTER_S`) wins over it when ``respect_retry_after``. A 429 without one
    waits until the key's rate window has cleared when a rate limiter knows the window, so a
    storm of 429s is outlasted rather than retried into. Other 4xx are never retried, nor a
    5xx whose body says the request itself is invalid, nor anything after a response started.

    Example:
        >>> RetryPolicy(max_retries=2).delay(1)  <= 1.0
        True
        >>> RetryPolicy().delay(0, retry_after=7.5)
        7.5
    """

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    respect_retry_after: bool = True
    max_connect_retries: int = 2
    """Connection failures get fewer tries: off campus without VPN, more attempts only delay
    the error that tells the user to connect."""
    max_timeout_retries: int = 1
    """A 408 from a gateway means its model did not answer in time; each retry starts the whole
    generation again, so one retry at most."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if retry_after is not None and retry_after > 0 and self.respect_retry_after:
            return retry_after
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        return cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter, not crypto


class RetryNote(NamedTuple):
    """Why the transport handed an error response to the caller (in ``response.extensions``).

    ``attempts`` is how many times the request was sent; ``reason`` is ``"exhausted"``
    (retries used up), ``"wait_too_long"`` (the gateway asked for a longer wait than
    :data:`MAX_RETRY_AFTER_S`), ``"request_invalid"`` (a 5xx that rejects the request) or
    ``"not_retryable"``; ``retry_after`` is the wait the gateway asked for, if any.

    Example:
        >>> RetryNote(attempts=1, reason="wait_too_long", retry_after=3600.0).retried
        False
    """

    attempts: int
    reason: str
    retry_after: float | None = None

    @property
    def retried(self) -> bool:
        """Whether the request was sent more than once."""
        return self.attempts > 1


def _seconds(raw: str, scale: float) -> float | None:
    try:
        value = float(raw) * scale
    except ValueError:
        if scale != 1.0:
            return None
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        value = when.timestamp() - time.time()
    if not math.isfinite(value) or value <= 0:
        return None
    return value


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for, in seconds; None when it asks for none usable.

    Read from ``Retry-After-Ms``, ``Retry-After`` (seconds or an HTTP date) and LiteLLM's
    ``llm_provider-retry-after(-ms)``, the first that holds a wait. ``0``, negative values,
    dates in the past and garbage are no wait at all: the caller backs off as it would
    without the header (an immediate retry only meets the same limit again).

    Example:
        >>> retry_after_seconds({"retry-after-ms": "1500"})
        1.5
        >>> retry_after_seconds({"llm_provider-retry-after": "60"})
        60.0
        >>> retry_after_seconds({"retry-after": "soon"}) is None
        True
    """
    for name, scale in _RETRY_AFTER_HEADERS:
        raw = headers.get(name)
        if raw:
            value = _seconds(raw.strip(), scale)
            if value is not None:
                return value
    return None


# A 5xx whose body is a validation error of the request: llama-cpp-python and other FastAPI
# servers answer 500 with pydantic's error list (``[{"loc": [...], "msg": ...}]``) or text.
_VALIDATION = (
    re.compile(r"""\\*["']loc\\*["']\s*:\s*[\[(]"""),
    re.compile(r"\bvalidation errors? for\b", re.IGNORECASE),
    re.compile(r"\bInput should be (a |an |at |less |greater |one of |valid )"),
    re.compile(r"\bField required\b"),
)


def rejects_the_request(status: int, body: str | bytes | None) -> bool:
    """Whether a 5xx answer is really a validation error of the request (no use retrying).

    Example:
        >>> body = '{"detail": [{"loc": ["body", "messages", 1, "content"], '
        >>> body += '"msg": "Input should be a valid string", "type": "string_type"}]}'
        >>> rejects_the_request(500, body)
        True
        >>> rejects_the_request(503, '{"error": {"message": "overloaded"}}')
        False
    """
    if status < 500 or not body:
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text[:20_000]
    if _VALIDATION[0].search(text) or _VALIDATION[1].search(text):
        return True
    # pydantic's wording alone could be prose; it counts with the shape of a validation error
    return any(p.search(text) for p in _VALIDATION[2:]) and _has_detail(text)


def _has_detail(text: str) -> bool:
    try:
        data: Any = json.loads(text)
    except ValueError:
        return "validation" in text.lower()
    detail = data.get("detail") if isinstance(data, dict) else None
    return isinstance(detail, list) and bool(detail)


def read_error_body(response: httpx.Response) -> bytes | None:
    """A 5xx body, read to tell an outage from a rejected request (small; within the deadline)."""
    if response.status_code < 500 or response.status_code not in RETRY_STATUS:
        return None
    try:
        return response.read()
    except Exception:  # noqa: BLE001 - a broken error body is still an error response
        return None


async def aread_error_body(response: httpx.Response) -> bytes | None:
    """Async :func:`read_error_body`."""
    if response.status_code < 500 or response.status_code not in RETRY_STATUS:
        return None
    try:
        return await response.aread()
    except Exception:  # noqa: BLE001 - a broken error body is still an error response
        return None
