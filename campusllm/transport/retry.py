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
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RetryPolicy", "RETRY_STATUS", "MAX_RETRY_AFTER_S", "retry_after_seconds"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 522, 524})
"""HTTP statuses that mean "try again": timeouts, rate limits, gateway and upstream failures."""

MAX_RETRY_AFTER_S = 120.0
"""A Retry-After longer than this is a quota reset (hours), not a hiccup: it is surfaced."""


@dataclass
class RetryPolicy:
    """How the transport retries 429, 5xx and connection failures.

    Backoff is ``min(backoff_max, backoff_base * 2**attempt)`` with full jitter; a
    ``Retry-After`` header from the gateway wins over it when ``respect_retry_after``.
    Other 4xx are never retried, and neither is anything after a response has started.

    Example:
        >>> RetryPolicy(max_retries=2).delay(1)  <= 1.0
        True
    """

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    respect_retry_after: bool = True
    max_connect_retries: int = 2
    """Connection failures get fewer tries: off campus without VPN, more attempts only delay
    the error that tells the user to connect."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if retry_after is not None and self.respect_retry_after:
            return retry_after
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        return cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter, not crypto


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for (``Retry-After-Ms``, ``Retry-After`` seconds or date).

    Example:
        >>> retry_after_seconds({"retry-after-ms": "1500"})
        1.5
        >>> retry_after_seconds({}) is None
        True
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
