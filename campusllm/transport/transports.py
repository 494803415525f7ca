"""The one place where requests cross the wire: auth, rate limit, retries, typed errors.

Every campusllm class — the openai SDK client behind the chat adapters and our own
embedding/rerank calls — sends through :class:`CampusTransport` (or its async twin).
Retrying lives here and only here: the SDK is built with ``max_retries=0`` so one 429
costs at most ``RetryPolicy.max_retries`` extra attempts, not a product of two loops.

Example:
    >>> from campusllm.registry import resolve
    >>> from pydantic import SecretStr
    >>> r = resolve("ecnu:ecnu-plus", base_url="http://127.0.0.1:9/v1")
    >>> http, ahttp = build_http_clients(r, SecretStr("sk-example"))
    >>> http.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import ssl
import sys
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import httpx
from pydantic import SecretStr

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
    register_secret,
    scrub,
)
from ..tokens import estimate_tokens

if TYPE_CHECKING:
    from ..limiter import RateLimiter
    from ..registry import ProviderSpec, ResolvedModel

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

log = logging.getLogger("campusllm")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 522, 524})
# A Retry-After longer than this is a quota reset (hours), not a hiccup: surface it.
MAX_RETRY_AFTER_S = 120.0
# Errors raised before any response byte arrived: the gateway did no work, resending is safe.
_RETRYABLE_EXC: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.PoolTimeout,
)


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


def _retry_after(response: httpx.Response) -> float | None:
    h = response.headers
    raw_ms = h.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = h.get("retry-after")
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


def request_tokens(request: httpx.Request) -> int:
    """Input tokens a request will be charged, estimated like the gateways' TPM counters."""
    try:
        body = json.loads(request.content) if request.content else None
    except (ValueError, UnicodeDecodeError, httpx.RequestNotRead):
        return 0
    if not isinstance(body, dict):
        return 0
    texts: list[str] = []

    def add(x: Any) -> None:
        if isinstance(x, str):
            texts.append(x)
        elif isinstance(x, list):
            for part in x:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])

    for m in body.get("messages") or []:
        if isinstance(m, dict):
            add(m.get("content"))
            add(m.get("reasoning_content"))
    add(body.get("prompt"))
    add(body.get("input"))
    add(body.get("query"))
    add(body.get("documents"))
    add(body.get("texts"))
    return sum(estimate_tokens(t) for t in texts if t)


class _Base:
    def __init__(
        self,
        provider: ProviderSpec,
        api_key: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.provider = provider
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(str(api_key))
        register_secret(self._api_key.get_secret_value())
        self.limiter = limiter
        self.retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider.name!r}, "
            f"limiter={self.limiter!r}, retry={self.retry!r})"
        )

    def _prepare(self, request: httpx.Request) -> int:
        key = self._api_key.get_secret_value()
        value = key if self.provider.auth == "raw" else f"Bearer {key}"
        request.headers["Authorization"] = value
        return request_tokens(request) if self.limiter is not None else 0

    def _should_retry(
        self, response: httpx.Response, attempt: int, grant: Any = None
    ) -> float | None:
        """Seconds to wait before resending, or None to hand this response to the caller."""
        if response.status_code not in RETRY_STATUS or attempt >= self.retry.max_retries:
            return None
        ra = _retry_after(response)
        if ra is not None and ra > MAX_RETRY_AFTER_S:
            return None
        if response.status_code == 429 and self.limiter is not None:
            # the gateway served nothing: the retry may reuse this slot once the wait is over
            self.limiter.refund(grant)
            self.limiter.penalize(ra if ra is not None else self.retry.delay(attempt))
        wait = self.retry.delay(attempt, ra)
        log.debug(
            "campusllm: %s answered %s; retry %d/%d in %.2fs",
            self.provider.name,
            response.status_code,
            attempt + 1,
            self.retry.max_retries,
            wait,
        )
        return wait

    def _exc_retry(self, exc: BaseException, attempt: int) -> float | None:
        exc = as_httpx_error(exc)
        limit = self.retry.max_retries
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            limit = min(limit, self.retry.max_connect_retries)
        if not isinstance(exc, _RETRYABLE_EXC) or attempt >= limit:
            return None
        log.debug(
            "campusllm: %s: %s; retry %d/%d",
            self.provider.name,
            type(exc).__name__,
            attempt + 1,
            self.retry.max_retries,
        )
        return self.retry.delay(attempt)


class CampusTransport(_Base, httpx.BaseTransport):
    """Sync httpx transport: auth header, rate limit, retries — then the real socket.

    Example:
        >>> from campusllm.registry import resolve
        >>> from pydantic import SecretStr
        >>> p = resolve("ecnu:ecnu-plus").provider
        >>> client = httpx.Client(transport=CampusTransport(p, SecretStr("sk-x")))
        >>> client.close()
    """

    def __init__(
        self,
        provider: ProviderSpec,
        api_key: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(provider, api_key, limiter=limiter, retry=retry)
        self.inner = inner or httpx.HTTPTransport(verify=_ssl_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a replayable body, so a retry resends the same bytes
        tokens = self._prepare(request)
        attempt = 0
        while True:
            grant = self.limiter.acquire(tokens) if self.limiter is not None else None
            try:
                response = self.inner.handle_request(request)
            except Exception as exc:
                wait = self._exc_retry(exc, attempt)
                if wait is None:
                    raise
            else:
                wait = self._should_retry(response, attempt, grant)
                if wait is None:
                    return response
                response.close()
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self.inner.close()


class AsyncCampusTransport(_Base, httpx.AsyncBaseTransport):
    """Async twin of :class:`CampusTransport`, sharing the same limiter objects.

    Async connections belong to the event loop that opened them, and users call
    ``asyncio.run`` again and again (LlamaIndex does it inside sync methods). So unless an
    ``inner`` transport is given, each running loop gets its own connection pool, closed
    when ``asyncio.run`` shuts that loop down.

    Example:
        >>> from campusllm.registry import resolve
        >>> from pydantic import SecretStr
        >>> p = resolve("ecnu:ecnu-plus").provider
        >>> client = httpx.AsyncClient(transport=AsyncCampusTransport(p, SecretStr("sk-x")))
    """

    def __init__(
        self,
        provider: ProviderSpec,
        api_key: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
        inner_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        super().__init__(provider, api_key, limiter=limiter, retry=retry)
        self._fixed = inner
        self._factory = inner_factory or (lambda: httpx.AsyncHTTPTransport(verify=_ssl_context()))
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    @property
    def inner(self) -> httpx.AsyncBaseTransport:
        """The transport that carries this loop's requests."""
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = self._factory()
                self._close_with_loop(loop, pool)
            return cast(httpx.AsyncBaseTransport, pool)

    def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, pool: httpx.AsyncBaseTransport
    ) -> None:
        # asyncio.run finalises pending async generators before it closes the loop; one
        # parked here closes this loop's sockets while the loop can still do it.
        async def closer() -> AsyncIterator[None]:
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await pool.aclose()
                # the pool may reference its loop, which would pin the weak-keyed entry
                running = asyncio.get_running_loop()
                with self._lock:
                    self._pools.pop(running, None)
                    self._closers.pop(running, None)

        agen = closer()
        self._closers[loop] = agen
        asyncio.ensure_future(agen.__anext__(), loop=loop)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        tokens = self._prepare(request)
        inner = self.inner
        attempt = 0
        while True:
            grant = await self.limiter.aacquire(tokens) if self.limiter is not None else None
            try:
                response = await inner.handle_async_request(request)
            except Exception as exc:
                wait = self._exc_retry(exc, attempt)
                if wait is None:
                    raise
            else:
                wait = self._should_retry(response, attempt, grant)
                if wait is None:
                    return response
                await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        """Close the running loop's connections (other loops' close with their loop)."""
        if self._fixed is not None:
            await self._fixed.aclose()
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.pop(loop, None)
            agen = self._closers.pop(loop, None)
        if pool is not None:
            await pool.aclose()
        if agen is not None:
            with contextlib.suppress(Exception):
                await agen.aclose()


_SSL: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    # Building a verifying context loads the CA bundle (~10 ms); every client shares one.
    global _SSL
    if _SSL is None:
        _SSL = httpx.create_ssl_context()
    return _SSL


def _proxy_for(url: str) -> str | None:
    """The proxy the environment asks for, honouring NO_PROXY (as httpx would)."""
    try:
        host = httpx.URL(url).host
        scheme = httpx.URL(url).scheme
    except (httpx.InvalidURL, TypeError):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def sdk_http_library() -> Any:
    """The HTTP library the installed openai SDK runs on (``httpx2`` for openai 3.x).

    Clients handed to the SDK are built on it: a legacy ``httpx`` client works too, but goes
    through the SDK's compatibility shims on every request.
    """
    import openai._base_client as sdk

    return getattr(sdk, "httpx2", None) or httpx


def build_http_clients(
    resolved: ResolvedModel,
    api_key: SecretStr,
    *,
    timeout: float | httpx.Timeout = 60.0,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    lib: Any = httpx,
) -> tuple[httpx.Client, httpx.AsyncClient]:
    """Sync and async clients (of ``lib``: httpx or httpx2) sending through our transports.

    The clients do not read proxies themselves (``trust_env=False``): an env proxy mounted
    by httpx would bypass our transport, so the proxy is set on the inner socket layer.
    """
    if isinstance(timeout, (int, float)):
        # A short connect timeout turns "off campus, no VPN" into a quick, clear error.
        timeout = lib.Timeout(timeout, connect=min(10.0, float(timeout)))
    proxy = _proxy_for(resolved.base_url)
    ctx = _ssl_context()
    sync_t = CampusTransport(
        resolved.provider,
        api_key,
        limiter=limiter,
        retry=retry,
        inner=lib.HTTPTransport(verify=ctx, proxy=proxy),
    )
    async_t = AsyncCampusTransport(
        resolved.provider,
        api_key,
        limiter=limiter,
        retry=retry,
        inner_factory=lambda: lib.AsyncHTTPTransport(verify=ctx, proxy=proxy),
    )
    headers = {"User-Agent": "campusllm"}
    http = lib.Client(transport=sync_t, timeout=timeout, trust_env=False, headers=headers)
    ahttp = lib.AsyncClient(transport=async_t, timeout=timeout, trust_env=False, headers=headers)
    return http, ahttp


def as_httpx_error(exc: BaseException) -> BaseException:
    """An ``httpx2`` exception as its ``httpx`` namesake (others unchanged).

    The SDK-facing clients run on httpx2; retry and error rules are written once, for httpx.
    """
    if not type(exc).__module__.startswith("httpx2"):
        return exc
    for cls in type(exc).__mro__:
        twin = getattr(httpx, cls.__name__, None)
        if isinstance(twin, type) and issubclass(twin, httpx.TransportError):
            mapped = twin(str(exc))
            mapped.__cause__ = exc
            return mapped
    return httpx.TransportError(str(exc))


# --------------------------------------------------------------------------- typed errors


def _gateway_message(data: Any) -> str | None:
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            for k in ("message", "msg", "detail"):
                if isinstance(err.get(k), str) and err[k]:
                    return str(err[k])
        elif isinstance(err, str) and err:
            return err
        for k in ("message", "msg", "detail", "error_msg"):
            v = data.get(k)
            if isinstance(v, str) and v:
                return v
            if k == "detail" and isinstance(v, list) and v:  # FastAPI validation errors
                return json.dumps(v, ensure_ascii=False)[:300]
    return None


def _network_hint(provider: ProviderSpec) -> str:
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


def error_from_response(
    response: httpx.Response, resolved: ResolvedModel, body: bytes | None = None
) -> CampusLLMError:
    """The typed error for an HTTP error response (the gateway's own message included)."""
    from ..auth import key_env_names

    provider = resolved.provider
    status = response.status_code
    if body is None:
        try:
            body = response.content
        except (httpx.ResponseNotRead, httpx.StreamError):
            body = b""
    text = body.decode("utf-8", "replace") if body else ""
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = None
    gw = _gateway_message(data) or (text.strip()[:300] if text.strip() else None)
    where = f"{provider.name}:{resolved.model.id}"
    said = f": {gw}" if gw else ""
    common: dict[str, Any] = {
        "provider": provider.name,
        "model": resolved.model.id,
        "status_code": status,
        "body": text or None,
    }
    if status == 401:
        envs = " or ".join(key_env_names(provider))
        return AuthenticationError(
            f"{where} rejected the API key (HTTP 401){said}.",
            hint=f"Check the key in {envs} (or the api_key= you passed); keys can expire.",
            **common,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{where}: this key may not use the model or endpoint (HTTP 403){said}.",
            hint="Ask the gateway's administrator for access, or pick another model "
            f"(`campusllm models {provider.name}`).",
            **common,
        )
    if status == 429:
        ra = _retry_after(response)
        wait = f" Retry after {ra:.1f}s." if ra is not None else ""
        lim = provider.limits
        quota = ", ".join(
            f"{n}={v}" for n, v in (("rpm", lim.rpm), ("tpm", lim.tpm)) if v is not None
        )
        return RateLimitError(
            f"{where} kept answering 429 Too Many Requests after retries{said}.{wait}",
            retry_after=ra,
            hint=(
                f"The published quota is {quota} per key; " if quota else "Lower the request rate; "
            )
            + "pass rate_limits=RateLimits(rpm=…, tpm=…) matching your key, or raise max_retries.",
            **common,
        )
    if status >= 500:
        return ServerError(
            f"{where} failed with HTTP {status} after retries{said}.",
            hint="The gateway is overloaded or down; try again later or another model.",
            **common,
        )
    hint = None
    low = (gw or "").lower()
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
    return BadRequestError(
        f"{where} refused the request (HTTP {status}){said}.", hint=hint, **common
    )


def error_from_exception(exc: BaseException, resolved: ResolvedModel) -> CampusLLMError:
    """Map httpx / openai SDK / JSON exceptions to campusllm's typed errors."""
    scrub(exc)
    if isinstance(exc, CampusLLMError):
        return exc
    exc = as_httpx_error(exc)
    provider = resolved.provider
    common: dict[str, Any] = {"provider": provider.name, "model": resolved.model.id}
    where = f"{provider.name}:{resolved.model.id}"
    host = resolved.base_url
    cause = _openai_cause(exc)
    if cause is not exc:
        if cause is None:
            return _openai_status(exc, resolved)
        return error_from_exception(cause, resolved)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return TimeoutError(
            f"{where} did not answer in time ({type(exc).__name__}).",
            hint="Raise timeout=…; reasoning models can think for minutes before the first token.",
            **common,
        )
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return UnreachableError(
            f"Cannot connect to {host} ({type(exc).__name__}: {redact(str(exc), 200)}).",
            hint=_network_hint(provider),
            **common,
        )
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return UnreachableError(
            f"The connection to {host} broke ({type(exc).__name__}: {redact(str(exc), 200)}).",
            hint="Retries were exhausted. " + _network_hint(provider),
            **common,
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return error_from_response(exc.response, resolved)
    if isinstance(exc, (httpx.DecodingError, ValueError, UnicodeDecodeError)):
        return ProtocolError(
            f"{where} sent data that is not valid JSON/SSE: {redact(str(exc), 200)}",
            hint="Check that the base URL points at an OpenAI-compatible API.",
            **common,
        )
    if isinstance(exc, httpx.HTTPError):
        return UnreachableError(
            f"HTTP error talking to {host}: {type(exc).__name__}: {redact(str(exc), 200)}",
            hint=_network_hint(provider),
            **common,
        )
    return CampusLLMError(f"{where}: {type(exc).__name__}: {redact(str(exc), 300)}", **common)


def _openai_cause(exc: BaseException) -> BaseException | None:
    """An openai SDK error as the httpx/JSON error it stands for (None: a status error).

    Non-openai exceptions come back unchanged.
    """
    openai = sys.modules.get("openai")
    if openai is None or not isinstance(exc, openai.OpenAIError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, openai.APIConnectionError):
        c = as_httpx_error(exc.__cause__) if exc.__cause__ is not None else None
        return c if isinstance(c, httpx.HTTPError) else httpx.ConnectError(str(exc))
    if isinstance(exc, openai.APIResponseValidationError):
        return ValueError(f"unexpected response shape: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return None
    return ValueError(str(exc))


def _openai_status(exc: Any, resolved: ResolvedModel) -> CampusLLMError:
    # openai 3.x types the response as httpx2; ours hands it httpx objects from our transport.
    resp: Any = exc.response
    try:
        body = resp.content
    except (httpx.ResponseNotRead, httpx.StreamError):
        body = json.dumps(exc.body).encode() if exc.body is not None else b""
    return error_from_response(resp, resolved, body)
