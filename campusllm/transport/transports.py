"""The retrying transports: auth header, rate limit, retries — then the real socket.

Every campusllm request — the openai SDK's behind the chat adapters and campusllm's own
embedding/rerank calls — goes through :class:`CampusTransport` (or its async twin). They work
under httpx and httpx2 alike (the two share an API); the library's own transport underneath
(``inner``) opens the sockets.

Example:
    >>> import httpx
    >>> from campusllm.registry import resolve
    >>> from pydantic import SecretStr
    >>> p = resolve("ecnu:ecnu-plus").provider
    >>> client = httpx.Client(transport=CampusTransport(p, SecretStr("sk-example")))
    >>> client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from pydantic import SecretStr

from ..errors import register_secret
from ..limiter import Grant, RateLimiter
from ..registry import ProviderSpec
from ..tokens import estimate_tokens
from .library import core_http_library, error_names, ssl_context
from .retry import MAX_RETRY_AFTER_S, RETRY_STATUS, RetryPolicy, retry_after_seconds

if TYPE_CHECKING:
    import httpx

__all__ = ["CampusTransport", "AsyncCampusTransport", "request_tokens"]

log = logging.getLogger("campusllm")

# Raised before any response byte arrived: the gateway did no work, resending is safe.
_RETRYABLE = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "PoolTimeout",
    }
)
_CONNECT = frozenset({"ConnectError", "ConnectTimeout"})


def request_tokens(request: httpx.Request) -> int:
    """Input tokens a request will be charged, estimated like the gateways' TPM counters.

    Example:
        >>> import httpx
        >>> request_tokens(httpx.Request("POST", "http://x", json={"input": ["上海交大"]}))
        4
    """
    try:
        body = json.loads(request.content) if request.content else None
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: body not read
        return 0
    if not isinstance(body, dict):
        return 0
    texts: list[str] = []

    def add(x: object) -> None:
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
        self, response: httpx.Response, attempt: int, grant: Grant | None = None
    ) -> float | None:
        """Seconds to wait before resending, or None to hand this response to the caller."""
        if response.status_code not in RETRY_STATUS or attempt >= self.retry.max_retries:
            return None
        ra = retry_after_seconds(response.headers)
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
        names = error_names(exc)
        limit = self.retry.max_retries
        if names & _CONNECT:
            limit = min(limit, self.retry.max_connect_retries)
        if not names & _RETRYABLE or attempt >= limit:
            return None
        log.debug(
            "campusllm: %s: %s; retry %d/%d",
            self.provider.name,
            type(exc).__name__,
            attempt + 1,
            self.retry.max_retries,
        )
        return self.retry.delay(attempt)


class CampusTransport(_Base):
    """Sync transport: auth header, rate limit, retries — then ``inner`` opens the socket.

    Works as the transport of an ``httpx.Client`` or an ``httpx2.Client``; ``inner`` is that
    library's own transport (default: an ``httpx.HTTPTransport``).

    Example:
        >>> import httpx
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
        if inner is None:
            lib = core_http_library()
            inner = lib.HTTPTransport(verify=ssl_context(lib))
        self.inner = inner

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

    def __enter__(self) -> CampusTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCampusTransport(_Base):
    """Async twin of :class:`CampusTransport`, sharing the same limiter objects.

    Async connections belong to the event loop that opened them, and users call
    ``asyncio.run`` again and again (LlamaIndex does it inside sync methods). So unless an
    ``inner`` transport is given, each running loop gets its own connection pool from
    ``inner_factory``, closed when ``asyncio.run`` shuts that loop down.

    Example:
        >>> import httpx
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
        self._factory = inner_factory or _default_async_inner
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncBaseTransport
        ] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
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
            return pool

    def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, pool: httpx.AsyncBaseTransport
    ) -> None:
        # asyncio.run finalises pending async generators before it closes the loop; one
        # parked here closes this loop's sockets while the loop can still do it.
        async def closer() -> AsyncGenerator[None, None]:
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

    async def __aenter__(self) -> AsyncCampusTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _default_async_inner() -> httpx.AsyncBaseTransport:
    lib = core_http_library()
    transport: httpx.AsyncBaseTransport = lib.AsyncHTTPTransport(verify=ssl_context(lib))
    return transport
