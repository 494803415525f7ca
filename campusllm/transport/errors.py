"""Typed errors for what the wire returned: HTTP error statuses and transport exceptions.

Every failure a gateway or the network can cause becomes one error from
:mod:`campusllm.errors`, naming the cause and the fix. The status → type mapping
(:func:`error_for_status`) is written once and serves HTTP error responses and the error
events some gateways send in the middle of a stream.

Example:
    >>> import httpx
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    >>> err = error_from_response(httpx.Response(429, json={"error": {"message": "slow down"}}), r)
    >>> type(err).__name__, err.status_code
    ('RateLimitError', 429)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..auth import key_env_names, key_validity_hint
from ..errors import (
    AuthenticationError,
    BadRequestError,
    CampusLLMError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TimeoutError,
    UnreachableError,
    redact,
    scrub,
)
from ..registry import ProviderSpec, ResolvedModel
from ..wire.error_body import parse_gateway_error
from .library import error_names
from .retry import retry_after_seconds

if TYPE_CHECKING:
    import httpx

__all__ = [
    "error_for_status",
    "error_from_response",
    "error_from_exception",
    "timeout_error",
    "connect_error",
    "network_hint",
]


def network_hint(provider: ProviderSpec) -> str:
    """How to reach ``provider`` (campus network, VPN, intranet), for connection errors."""
    if provider.reachability == "campus":
        return (
            f"{provider.display_name or provider.name} is reachable only from the campus network "
            f"({provider.network_hint or 'connect to the campus VPN'}). Connect to the campus "
            "network or VPN, then try `campusllm doctor`."
        )
    if provider.reachability == "intranet":
        return (
            f"{provider.display_name or provider.name} is reachable only from its own network "
            f"({provider.network_hint or 'intranet'}). Check the VPN and the base URL, then try "
            "`campusllm doctor`."
        )
    return "Check the base URL and your network connection, then try `campusllm doctor`."


def error_for_status(
    status: int,
    resolved: ResolvedModel,
    *,
    message: str | None = None,
    body: str | None = None,
    retry_after: float | None = None,
    during_stream: bool = False,
    **partial: Any,
) -> CampusLLMError:
    """The typed error for an HTTP error ``status``, carrying the gateway's own ``message``.

    ``during_stream``: the status came as an error event in the middle of a stream (which
    campusllm never resends); ``partial`` (``partial_content``, ``partial_reasoning``,
    ``partial_tool_calls``) is what had arrived before it.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> type(error_for_status(503, r, message="overloaded")).__name__
        'ServerError'
    """
    provider = resolved.provider
    where = f"{provider.name}:{resolved.model.id}"
    said = f": {message}" if message else ""
    how = f"error {status} in the middle of its answer" if during_stream else f"HTTP {status}"
    kept = (
        " What arrived before the error is kept on it (partial_content, partial_reasoning, "
        "partial_tool_calls); streams are never resent, so nothing is duplicated."
        if during_stream
        else ""
    )
    common: dict[str, Any] = {
        "provider": provider.name,
        "model": resolved.model.id,
        "status_code": status,
        "body": body or None,
        **partial,
    }
    if status == 401:
        envs = " or ".join(key_env_names(provider, resolved.model))
        return AuthenticationError(
            f"{where} rejected the API key ({how}){said}. {key_validity_hint(provider)}".rstrip(),
            hint=f"Check the key in {envs} (or the api_key= you passed); keys can expire.{kept}",
            **common,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{where}: this key may not use the model or endpoint ({how}){said}.",
            hint="Ask the gateway's administrator for access, or pick another model "
            f"(`campusllm models {provider.name}`).{kept}",
            **common,
        )
    if status == 429:
        wait = f" Retry after {retry_after:.1f}s." if retry_after is not None else ""
        lim = provider.limits
        quota = ", ".join(
            f"{n}={v}" for n, v in (("rpm", lim.rpm), ("tpm", lim.tpm)) if v is not None
        )
        what = (
            f"answered 429 Too Many Requests ({how})"
            if during_stream
            else "kept answering 429 Too Many Requests after retries"
        )
        return RateLimitError(
            f"{where} {what}{said}.{wait}",
            retry_after=retry_after,
            hint=(
                f"The published quota is {quota} per key; " if quota else "Lower the request rate; "
            )
            + "pass rate_limits=RateLimits(rpm=…, tpm=…) matching your key, or raise max_retries."
            + kept,
            **common,
        )
    if status >= 500:
        what = f"failed ({how})" if during_stream else f"failed with HTTP {status} after retries"
        return ServerError(
            f"{where} {what}{said}.",
            hint="The gateway is overloaded or down; try again later or another model." + kept,
            **common,
        )
    hint = None
    low = (message or "").lower()
    if "reasoning_content" in low:
        hint = (
            "The model runs in thinking mode and needs its reasoning sent back with each "
            "assistant message of a tool loop; keep the AIMessage objects (with "
            "additional_kwargs['reasoning_content']) in the history instead of rebuilding them."
        )
    elif status == 404:
        hint = (
            f"Check the model id (`campusllm models {provider.name} --live`) and that the base URL "
            f"({resolved.base_url}) ends at the API root (usually /v1)."
        )
    elif status in (413,) or "context" in low and "length" in low:
        hint = (
            f"The request is too long for {resolved.model.id} "
            f"(context window {resolved.model.context_window or 'unknown'} tokens)."
        )
    if kept:
        hint = (hint or "") + kept
    return BadRequestError(f"{where} refused the request ({how}){said}.", hint=hint, **common)


def timeout_error(resolved: ResolvedModel, what: str) -> TimeoutError:
    """The error for a gateway that did not answer in time (``what``: the exception's name)."""
    return TimeoutError(
        f"{resolved.key} did not answer in time ({what}).",
        hint="Raise timeout=…; reasoning models can think for minutes before the first token.",
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def connect_error(resolved: ResolvedModel, detail: str) -> UnreachableError:
    """The error for a gateway that could not be reached (``detail``: what failed)."""
    return UnreachableError(
        f"Cannot connect to {resolved.base_url} ({detail}).",
        hint=network_hint(resolved.provider),
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def error_from_response(
    response: httpx.Response, resolved: ResolvedModel, body: bytes | None = None
) -> CampusLLMError:
    """The typed error for an HTTP error response (the gateway's own message included).

    ``response`` is an httpx or httpx2 response; ``body`` its bytes when already read
    elsewhere (a streamed response).
    """
    if body is None:
        try:
            body = response.content
        except RuntimeError:  # a streamed response nobody read (ResponseNotRead, StreamError)
            body = b""
    text = body.decode("utf-8", "replace") if body else ""
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = None
    said = parse_gateway_error(data, known_error=True)
    message = (said.message if said else None) or (text.strip()[:300] if text.strip() else None)
    return error_for_status(
        response.status_code,
        resolved,
        message=message,
        body=text,
        retry_after=retry_after_seconds(response.headers),
    )


def error_from_exception(exc: BaseException, resolved: ResolvedModel) -> CampusLLMError:
    """Map httpx/httpx2 and JSON exceptions to campusllm's typed errors.

    An exception that wraps an HTTP-library error (``__cause__``/``__context__``) maps by
    that error. openai SDK exceptions are mapped by :func:`campusllm.openai_sdk.map_sdk_error`.
    """
    scrub(exc)
    if isinstance(exc, CampusLLMError):
        return exc
    exc = _http_error_in(exc)
    provider = resolved.provider
    common: dict[str, Any] = {"provider": provider.name, "model": resolved.model.id}
    where = f"{provider.name}:{resolved.model.id}"
    host = resolved.base_url
    names = error_names(exc)
    detail = f"{type(exc).__name__}: {redact(str(exc), 200)}"
    if "TimeoutException" in names and "ConnectTimeout" not in names:
        return timeout_error(resolved, type(exc).__name__)
    if names & {"ConnectError", "ConnectTimeout"}:
        return connect_error(resolved, detail)
    if names & {"RemoteProtocolError", "ReadError", "WriteError"}:
        return UnreachableError(
            f"The connection to {host} broke ({detail}).",
            hint="Retries were exhausted. " + network_hint(provider),
            **common,
        )
    if "HTTPStatusError" in names:
        return error_from_response(exc.response, resolved)  # type: ignore[attr-defined]
    if "DecodingError" in names or isinstance(exc, (ValueError, UnicodeDecodeError)):
        return ProtocolError(
            f"{where} sent data that is not valid JSON/SSE: {redact(str(exc), 200)}",
            hint="Check that the base URL points at an OpenAI-compatible API.",
            **common,
        )
    if names:
        return UnreachableError(
            f"HTTP error talking to {host}: {detail}", hint=network_hint(provider), **common
        )
    return CampusLLMError(f"{where}: {type(exc).__name__}: {redact(str(exc), 300)}", **common)


def _http_error_in(exc: BaseException) -> BaseException:
    """The first HTTP-library error in ``exc``'s chain (``exc`` itself when there is none)."""
    if isinstance(exc, (ValueError, UnicodeDecodeError)):
        return exc  # undecodable data, whatever was being handled when it was found
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if error_names(cur):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return exc
