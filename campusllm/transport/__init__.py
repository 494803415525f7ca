"""Transports: the one place where requests cross the wire (auth, rate limit, retries, errors).

Like httpx's own ``_transports``, one job per module: :mod:`.transports` (the retrying
transports), :mod:`.outgoing` (a request's tokens, its key, where a redirect may lead),
:mod:`.retry` (when to resend), :mod:`.deadline` (timeouts: per phase and one
total per attempt) with its :mod:`.watchdog`, :mod:`.pools` (connection pools per event loop
and process), :mod:`.clients` (building HTTP clients on them), :mod:`.errors` (typed errors
for statuses and exceptions) with :mod:`.hints` (what to do about them), :mod:`.logs` (no
keys in the HTTP libraries' debug logs) and :mod:`.library` (the HTTP library underneath).

Example:
    >>> from campusllm.transport import RetryPolicy
    >>> RetryPolicy().max_retries
    6
"""

from __future__ import annotations

from .clients import PoolLimits, build_http_clients
from .deadline import Timeouts
from .errors import error_for_status, error_from_exception, error_from_response
from .retry import RetryPolicy
from .transports import AsyncCampusTransport, CampusTransport, request_tokens

__all__ = [
    "RetryPolicy",
    "Timeouts",
    "PoolLimits",
    "CampusTransport",
    "AsyncCampusTransport",
    "build_http_clients",
    "error_for_status",
    "error_from_response",
    "error_from_exception",
    "request_tokens",
]
