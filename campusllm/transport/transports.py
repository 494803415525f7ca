"""The retrying transports: auth header, rate limit, deadline, retries — then the real socket.

Every campusllm request — the openai SDK's behind the chat adapters and campusllm's own
embedding/rerank calls — goes through :class:`CampusTransport` (or its async twin). They work
under httpx and httpx2 alike (the two share an API); the library's own transport underneath
(``inner``) opens the sockets. One attempt of a request:

1. the rate limiter admits it, charged its input plus the output it may produce;
2. the key goes on it (and comes off again once it is sent, so the request objects that
   responses and exceptions keep never hold it);
3. it is sent within one total deadline (:mod:`.deadline`) covering the body or stream too;
4. a same-origin redirect is followed, another origin's is refused; 429, 5xx, 408 and
   connection failures are retried by :class:`~.retry.RetryPolicy`, waiting on the injected
   :class:`~campusllm.clock.Clock`. An error response handed back carries a
   :class:`~.retry.RetryNote` saying what was done, for the error message.

When the body of a successful response ends, the transport settles the limiter grant that
admitted it with the ``usage`` the body reported (:mod:`.settle`), so the key's window and
budget are charged what the gateway counted, whoever reads the answer.

Example:
    >>> import httpx
    >>> from campusllm.registry import resolve
    >>> from pydantic import SecretStr
    >>> p = resolve("ecnu:ecnu-plus").provider
    >>> client = httpx.Client(transport=CampusTransport(p, SecretStr("sk-example")))
    >>> client.close()
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ProtocolError, register_secret
from ..limiter import Grant, RateLimiter, request_charge, usage_tokens
from ..registry import ProviderSpec, ResolvedModel
from .deadline import Deadline, Timeouts, aguard_body, deadline_exceeded, guard_body, limit_phases
from .errors import redirect_error
from .library import core_http_library, error_names, library_of, ssl_context
from .outgoing import (
    RedirectRefused,
    follow_redirect,
    input_tokens,
    remove_key,
    request_json,
    request_tokens,
    set_key,
)
from .pools import LoopPools, on_fork
from .retry import (
    MAX_RETRY_AFTER_S,
    RETRY_NOTE,
    RETRY_STATUS,
    RetryNote,
    RetryPolicy,
    aread_error_body,
    read_error_body,
    rejects_the_request,
    retry_after_seconds,
)
from .sent import on_send
from .settle import watch_usage

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CampusTransport",
    "AsyncCampusTransport",
    "request_tokens",
    "DEFAULT_TOTAL_TIMEOUT",
]

log = logging.getLogger("campusllm")

DEFAULT_TOTAL_TIMEOUT = 60.0
"""Total seconds for one attempt when a transport is built without :class:`Timeouts`."""

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


class _Base:
    def __init__(
        self,
        provider: ProviderSpec,
        api_key: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        resolved: ResolvedModel | None = None,
        timeouts: Timeouts | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(str(api_key))
        register_secret(self._api_key.get_secret_value())
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.resolved = resolved
        self.timeouts = timeouts or Timeouts(total=DEFAULT_TOTAL_TIMEOUT)
        self.clock: Clock = clock or SYSTEM_CLOCK

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider.name!r}, "
            f"limiter={self.limiter!r}, retry={self.retry!r})"
        )

    # -- before sending ------------------------------------------------------------------

    def _charge(self, request: httpx.Request) -> int:
        """What the limiter admits the request with: its input plus the output it may make."""
        if self.limiter is None:
            return 0
        body = request_json(request)
        spec = self.resolved.model if self.resolved is not None else None
        return request_charge(input_tokens(body), body if isinstance(body, dict) else None, spec)

    def _model_name(self) -> str | None:
        return self.resolved.model.id if self.resolved is not None else None

    def _authorize(self, request: httpx.Request) -> None:
        set_key(request, self._api_key, raw=self.provider.auth == "raw", who=self.provider.name)

    def _redirect(
        self, response: httpx.Response, request: httpx.Request, hops: int
    ) -> httpx.Request | None:
        """The request to send next for a same-origin redirect; raise for one not followed."""
        try:
            return follow_redirect(response, request, hops)
        except RedirectRefused as r:
            if self.resolved is not None:
                raise redirect_error(self.resolved, r.status, r.source, r.target, r.why) from None
            raise ProtocolError(
                f"{r.source} answered with a redirect (HTTP {r.status}) to {r.target}, which "
                f"campusllm does not follow: {r.why}.",
                status_code=r.status,
                provider=self.provider.name,
            ) from None

    # -- after the response --------------------------------------------------------------

    def _verdict(
        self,
        response: httpx.Response,
        attempt: int,
        grant: Grant | None,
        body: bytes | None,
        timeouts_408: int = 0,
    ) -> float | None:
        """Seconds to wait before resending, or None to hand this response to the caller.

        ``timeouts_408``: how many 408s this request got before this response.
        """
        status = response.status_code
        if status not in RETRY_STATUS:
            return None
        ra = retry_after_seconds(response.headers) if self.retry.respect_retry_after else None
        reason = self._give_up(status, ra, body, attempt, timeouts_408)
        if status == 429 and self.limiter is not None:
            if reason == "wait_too_long":
                # the gateway served nothing; pausing the key for hours would hang every call
                self.limiter.refund(grant)
            else:
                # gives the slot back and holds every request of the key until the gateway's
                # window has cleared (Retry-After, else one whole window)
                self.limiter.note_429(grant, ra)
        if reason is not None:
            response.extensions[RETRY_NOTE] = RetryNote(attempt + 1, reason, ra)
            return None
        if status == 429 and self.limiter is not None:
            wait = 0.0  # the limiter waits (and says so when the wait is long)
        else:
            wait = self.retry.delay(attempt, ra)
        log.debug(
            "campusllm: %s answered %s; retry %d/%d in %.2fs",
            self.provider.name,
            status,
            attempt + 1,
            self.retry.max_retries,
            wait,
        )
        return wait

    def _give_up(
        self, status: int, ra: float | None, body: bytes | None, attempt: int, timeouts_408: int
    ) -> str | None:
        """Why a retryable status is not retried (a :class:`RetryNote` reason), or None."""
        if ra is not None and ra > MAX_RETRY_AFTER_S:
            return "wait_too_long"
        if status >= 500 and rejects_the_request(status, body):
            return "request_invalid"
        if attempt >= self.retry.max_retries:
            return "exhausted"
        if status == 408 and timeouts_408 >= self.retry.max_timeout_retries:
            return "exhausted"  # each retry starts the whole generation again
        return None

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
            limit,
        )
        return self.retry.delay(attempt)

    def _deadline_error(
        self, exc: BaseException, request: httpx.Request, deadline: Deadline
    ) -> BaseException | None:
        """The deadline's own timeout for a phase timeout that the deadline had cut short."""
        if "TimeoutException" in error_names(exc) and deadline.passed():
            names = error_names(exc)
            if "ConnectTimeout" not in names and "PoolTimeout" not in names:
                return deadline_exceeded(library_of(request), request, deadline, None)
        return None

    def _hand_over(
        self, response: httpx.Response, grant: Grant | None, *, is_async: bool
    ) -> httpx.Response:
        if grant is not None and self.limiter is not None and response.status_code < 400:
            limiter = self.limiter

            def settle(usage: Mapping[str, Any]) -> None:
                limiter.settle(grant, usage_tokens(usage))

            # whoever reads the body, its usage is charged when it ends (.settle)
            watch_usage(response, settle, is_async=is_async)
        return response


class CampusTransport(_Base):
    """Sync transport: auth header, rate limit, deadline, retries — then ``inner``.

    Works as the transport of an ``httpx.Client`` or an ``httpx2.Client``; ``inner`` is that
    library's own transport (default: an ``httpx.HTTPTransport``), or ``inner_factory`` makes
    it (then a forked child makes its own instead of sharing the parent's sockets).

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
        inner_factory: Callable[[], httpx.BaseTransport] | None = None,
        resolved: ResolvedModel | None = None,
        timeouts: Timeouts | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            provider,
            api_key,
            limiter=limiter,
            retry=retry,
            resolved=resolved,
            timeouts=timeouts,
            clock=clock,
        )
        if inner is None:
            inner_factory = inner_factory or _default_sync_inner
            inner = inner_factory()
        self._factory = inner_factory
        self.inner = inner
        on_fork(self)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a replayable body, so a retry resends the same bytes
        charge = self._charge(request)
        asked = request.extensions.get("timeout")
        attempt = hops = timeouts_408 = 0
        while True:
            grant = (
                self.limiter.acquire(charge, model=self._model_name())
                if self.limiter is not None
                else None
            )
            deadline = Deadline(self.timeouts.total)
            limit_phases(request, self.timeouts, deadline, asked, trace=True)
            if grant is not None and self.limiter is not None:
                on_send(request, functools.partial(self.limiter.sent, grant), is_async=False)
            self._authorize(request)
            try:
                response = self.inner.handle_request(request)
            except Exception as exc:
                remove_key(request)
                timed_out = self._deadline_error(exc, request, deadline)
                if timed_out is not None:
                    raise timed_out from exc
                wait = self._exc_retry(exc, attempt)
                if wait is None:
                    raise
            else:
                remove_key(request)
                guard_body(response, request, deadline)
                try:
                    follow = self._redirect(response, request, hops)
                except BaseException:
                    response.close()
                    raise
                if follow is not None:
                    response.close()
                    if self.limiter is not None:
                        self.limiter.refund(grant)
                    request, hops = follow, hops + 1
                    continue
                body = read_error_body(response)
                wait = self._verdict(response, attempt, grant, body, timeouts_408)
                timeouts_408 += response.status_code == 408
                if wait is None:
                    return self._hand_over(response, grant, is_async=False)
                response.close()
            self.clock.sleep(wait)
            attempt += 1

    def _after_fork_in_child(self) -> None:
        # the parent's pooled sockets are the parent's: start an empty pool
        if self._factory is not None:
            self.inner = self._factory()

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
    ``inner_factory``, closed when that loop closes (:class:`~.pools.LoopPools`).

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
        resolved: ResolvedModel | None = None,
        timeouts: Timeouts | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            provider,
            api_key,
            limiter=limiter,
            retry=retry,
            resolved=resolved,
            timeouts=timeouts,
            clock=clock,
        )
        self._fixed = inner
        self._pools = LoopPools(inner_factory or _default_async_inner)

    @property
    def inner(self) -> httpx.AsyncBaseTransport:
        """The transport that carries this loop's requests."""
        if self._fixed is not None:
            return self._fixed
        return self._pools.current()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import anyio  # imported by the async HTTP backend anyway; sync-only users skip it

        await request.aread()
        charge = self._charge(request)
        asked = request.extensions.get("timeout")
        inner = self.inner
        attempt = hops = timeouts_408 = 0
        while True:
            grant = (
                await self.limiter.aacquire(charge, model=self._model_name())
                if self.limiter is not None
                else None
            )
            deadline = Deadline(self.timeouts.total)
            limit_phases(request, self.timeouts, deadline, asked, trace=False)
            if grant is not None and self.limiter is not None:
                on_send(request, functools.partial(self.limiter.sent, grant), is_async=True)
            self._authorize(request)
            try:
                # a little later than the deadline, so a phase timeout that ends at the same
                # moment is raised as what it is (a connect timeout stays one)
                with anyio.fail_after(deadline.remaining() + 0.05):
                    response = await inner.handle_async_request(request)
            except TimeoutError as exc:  # anyio's: the deadline passed
                remove_key(request)
                raise deadline_exceeded(library_of(request), request, deadline, None) from exc
            except Exception as exc:
                remove_key(request)
                timed_out = self._deadline_error(exc, request, deadline)
                if timed_out is not None:
                    raise timed_out from exc
                wait = self._exc_retry(exc, attempt)
                if wait is None:
                    raise
            else:
                remove_key(request)
                aguard_body(response, request, deadline)
                try:
                    follow = self._redirect(response, request, hops)
                except BaseException:
                    await response.aclose()
                    raise
                if follow is not None:
                    await response.aclose()
                    if self.limiter is not None:
                        self.limiter.refund(grant)
                    request, hops = follow, hops + 1
                    continue
                body = await aread_error_body(response)
                wait = self._verdict(response, attempt, grant, body, timeouts_408)
                timeouts_408 += response.status_code == 408
                if wait is None:
                    return self._hand_over(response, grant, is_async=True)
                await response.aclose()
            await self.clock.asleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        """Close the running loop's connections (other loops' close with their loop)."""
        if self._fixed is not None:
            await self._fixed.aclose()
            return
        await self._pools.aclose_current()

    async def __aenter__(self) -> AsyncCampusTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _default_sync_inner() -> httpx.BaseTransport:
    lib = core_http_library()
    transport: httpx.BaseTransport = lib.HTTPTransport(verify=ssl_context(lib))
    return transport


def _default_async_inner() -> httpx.AsyncBaseTransport:
    lib = core_http_library()
    transport: httpx.AsyncBaseTransport = lib.AsyncHTTPTransport(verify=ssl_context(lib))
    return transport
