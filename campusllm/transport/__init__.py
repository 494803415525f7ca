"""Transports: the one place where requests cross the wire (auth, rate limit, retries, errors)."""

from __future__ import annotations

from .transports import (
    AsyncCampusTransport,
    CampusTransport,
    RetryPolicy,
    as_httpx_error,
    build_http_clients,
    error_from_exception,
    error_from_response,
    request_tokens,
    sdk_http_library,
)

__all__ = [
    "RetryPolicy",
    "CampusTransport",
    "AsyncCampusTransport",
    "build_http_clients",
    "sdk_http_library",
    "as_httpx_error",
    "error_from_response",
    "error_from_exception",
    "request_tokens",
]
