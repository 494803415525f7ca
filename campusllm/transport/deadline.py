"""Timeouts: per-phase limits, and one total deadline for each attempt of a request.

An HTTP library's timeouts are per phase: connect, write, pool, and *read*, the longest wait
for the next bytes. A read timeout alone bounds nothing: a gateway that pads a stream with
``: keepalive`` comments, or trickles a body one byte a second, keeps every read short and the
call running forever. So each attempt also has a **total** deadline — waiting for a pooled
connection, connecting, sending, the response headers and the whole body or stream — kept by
the transport:

* every phase limit is cut to the time left when the phase starts;
* the body is read through a wrapper that raises the library's ``ReadTimeout`` once the
  deadline has passed (async: the read itself is cancelled at the deadline; sync: the
  :mod:`.watchdog` shuts the socket down, so a read blocked in ``recv`` returns on time).

The timeout raised is marked (:data:`DEADLINE_ATTR`), and so is a read error after the
response headers (:data:`AFTER_HEADERS_ATTR`: the connection broke mid-answer, which is not
a failure to connect); :mod:`.errors` words both.

Example:
    >>> t = Timeouts(total=120, read=30)
    >>> t.phases({"connect": 5.0, "read": 60.0, "write": None, "pool": None}, remaining=50.0)
    {'connect': 5.0, 'read': 30.0, 'write': 50.0, 'pool': 50.0}
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..i18n import tr
from .library import byte_stream_class, error_names, library_of
from .sent import caller_trace
from .watchdog import WATCHDOG, Job, shut_down_socket

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Timeouts",
    "Deadline",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEADLINE_ATTR",
    "AFTER_HEADERS_ATTR",
    "deadline_exceeded",
    "limit_phases",
    "guard_body",
    "aguard_body",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection: off campus without the VPN, the error comes quickly."""

DEADLINE_ATTR = "campusllm_deadline_s"
"""Set (to the total timeout) on the timeout exception raised when the deadline passed."""

AFTER_HEADERS_ATTR = "campusllm_after_headers"
"""Set (to the bytes of body received) on a read error raised after the response headers."""

_PHASES = ("connect", "read", "write", "pool")
_BROKEN = frozenset({"ReadError", "RemoteProtocolError"})


def _check(name: str, value: object, *, required: bool = False) -> None:
    if value is None and not required:
        return
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    if not ok:
        raise ValueError(f"{name} must be a number of seconds greater than 0, not {value!r}")


@dataclass(frozen=True)
class Timeouts:
    """How long one attempt of a request may take, in seconds.

    ``total`` bounds the whole attempt: waiting for a pooled connection, connecting, sending,
    the response headers and the *whole* body or stream. ``read`` is the longest silence
    allowed between two reads (``None``: only ``total`` bounds it); set it below ``total`` to
    notice a stalled stream early. ``connect``, ``write`` and ``pool`` limit their phases
    (``None``: ``total``). Every phase is also cut to the time left of ``total``.

    Retries are attempts of their own: each gets a fresh ``total`` (waits for the rate
    limiter and between retries are not part of it).

    Example:
        >>> Timeouts(total=600, read=120)
        Timeouts(total=600.0, read=120.0, connect=10.0, write=None, pool=None)
        >>> Timeouts(total=0)
        Traceback (most recent call last):
        ...
        ValueError: total must be a number of seconds greater than 0, not 0
    """

    total: float
    read: float | None = None
    connect: float | None = DEFAULT_CONNECT_TIMEOUT
    write: float | None = None
    pool: float | None = None

    def __post_init__(self) -> None:
        _check("total", self.total, required=True)
        object.__setattr__(self, "total", float(self.total))
        for name in _PHASES:
            value = getattr(self, name)
            _check(name, value)
            if value is not None:
                object.__setattr__(self, name, float(value))

    @classmethod
    def of(cls, value: Any, *, total: float) -> Timeouts:
        """``value`` (seconds, :class:`Timeouts`, or an httpx/httpx2 ``Timeout`` of per-phase
        limits, which keeps ``total``) as :class:`Timeouts`.

        Example:
            >>> import httpx
            >>> Timeouts.of(httpx.Timeout(30, connect=5), total=600)
            Timeouts(total=600.0, read=30.0, connect=5.0, write=30.0, pool=30.0)
        """
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(total=value, connect=min(DEFAULT_CONNECT_TIMEOUT, float(value)))
        if all(hasattr(value, p) for p in _PHASES):  # the HTTP library's Timeout
            return cls(total=total, **{p: getattr(value, p) for p in _PHASES})
        raise TypeError(f"not a timeout: {value!r}")

    def phases(self, asked: Mapping[str, Any] | None, remaining: float) -> dict[str, float]:
        """Each phase's limit for an attempt with ``remaining`` seconds left: the smallest of
        what the request ``asked`` for (its ``timeout`` extension), this object's limit and
        the time left."""
        out: dict[str, float] = {}
        asked = asked or {}
        for p in _PHASES:
            limits = [remaining, getattr(self, p), asked.get(p)]
            out[p] = max(0.001, min(float(x) for x in limits if x is not None))
        return out


class Deadline:
    """The end of one attempt, on the monotonic clock (real time: sockets wait in real time).

    Example:
        >>> d = Deadline(30)
        >>> 29 < d.remaining() <= 30, d.passed()
        (True, False)
    """

    __slots__ = ("seconds", "at")

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left (0.0 once passed)."""
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at


def deadline_exceeded(
    lib: ModuleType, request: httpx.Request, deadline: Deadline, received: int | None
) -> Exception:
    """The library's ``ReadTimeout`` for an attempt that ran past ``deadline``, marked."""
    if received is None:
        text = tr(
            f"the total timeout of {deadline.seconds:g} s for one attempt passed before the "
            "response headers arrived",
            f"一次尝试的总时限 {deadline.seconds:g} 秒在收到响应头之前就到了",
        )
    else:
        text = tr(
            f"the total timeout of {deadline.seconds:g} s for one attempt passed while the "
            f"answer was still arriving ({received} bytes received)",
            f"一次尝试的总时限 {deadline.seconds:g} 秒已到,回答仍在传输(已收到 {received} 字节)",
        )
    exc: Exception = lib.ReadTimeout(text, request=request)
    setattr(exc, DEADLINE_ATTR, deadline.seconds)
    return exc


def limit_phases(
    request: httpx.Request,
    timeouts: Timeouts,
    deadline: Deadline,
    asked: Mapping[str, Any] | None,
    *,
    trace: bool,
) -> None:
    """Cut the request's per-phase timeouts (``asked``: what the client set) to what is left
    of ``deadline``.

    A sync connection reads its read timeout once when it starts waiting for the headers
    (and again for the body); with ``trace`` a trace hook sets it then, so the wait cannot
    outlast the deadline even when connecting took a while. (Async requests are cancelled at
    the deadline instead: their trace hooks must be coroutines.)
    """
    request.extensions["timeout"] = timeouts.phases(asked, deadline.remaining())
    if not trace:
        return
    user_trace = caller_trace(request)

    def hook(event: str, info: Mapping[str, Any]) -> Any:
        if event.endswith(("receive_response_headers.started", "receive_response_body.started")):
            phases = request.extensions.get("timeout")
            if isinstance(phases, dict):
                phases["read"] = timeouts.phases(asked, deadline.remaining())["read"]
        return user_trace(event, info) if user_trace is not None else None

    hook._campusllm = True  # type: ignore[attr-defined]
    hook._inner = user_trace  # type: ignore[attr-defined]
    request.extensions["trace"] = hook


def _mark_broken(exc: BaseException, received: int) -> None:
    if error_names(exc) & _BROKEN:
        setattr(exc, AFTER_HEADERS_ATTR, received)


class _SyncBody:
    """The body of a sync response, read within the deadline."""

    def __init__(
        self, response: httpx.Response, request: httpx.Request, deadline: Deadline
    ) -> None:
        self._inner = response.stream
        self._request = request
        self._deadline = deadline
        self._lib = library_of(response)
        self._received = 0
        self._fired = False
        self._job: Job | None = None
        network = response.extensions.get("network_stream")
        if network is not None:
            self._job = WATCHDOG.at(deadline.at, self._cut(network))

    def _cut(self, network: Any) -> Callable[[], None]:
        def cut() -> None:
            self._fired = True
            shut_down_socket(network)

        return cut

    def _timeout(self) -> Exception:
        return deadline_exceeded(self._lib, self._request, self._deadline, self._received)

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)  # type: ignore[arg-type]
        while True:
            if self._deadline.passed():
                self._done()
                raise self._timeout()
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception as exc:
                self._done()
                if self._fired or self._deadline.passed():
                    raise self._timeout() from None
                _mark_broken(exc, self._received)
                raise
            self._received += len(chunk)
            yield chunk
        self._done()

    def _done(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def close(self) -> None:
        self._done()
        self._inner.close()  # type: ignore[union-attr]


class _AsyncBody:
    """The body of an async response, read within the deadline (each read is cancelled at it)."""

    def __init__(
        self, response: httpx.Response, request: httpx.Request, deadline: Deadline
    ) -> None:
        self._inner = response.stream
        self._request = request
        self._deadline = deadline
        self._lib = library_of(response)
        self._received = 0

    def _timeout(self) -> Exception:
        return deadline_exceeded(self._lib, self._request, self._deadline, self._received)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio  # imported by the async HTTP backend anyway; sync-only users skip it

        chunks = self._inner.__aiter__()  # type: ignore[union-attr]
        while True:
            left = self._deadline.remaining()
            if left <= 0:
                raise self._timeout()
            try:
                with anyio.fail_after(left):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:  # anyio's: the read was cancelled at the deadline
                raise self._timeout() from None
            except Exception as exc:
                _mark_broken(exc, self._received)
                raise
            self._received += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()  # type: ignore[union-attr]


def guard_body(response: httpx.Response, request: httpx.Request, deadline: Deadline) -> None:
    """Make the sync ``response``'s body end with a timeout at ``deadline``."""
    wrapper = byte_stream_class(library_of(response), _SyncBody, is_async=False)
    response.stream = wrapper(response, request, deadline)


def aguard_body(response: httpx.Response, request: httpx.Request, deadline: Deadline) -> None:
    """Make the async ``response``'s body end with a timeout at ``deadline``."""
    wrapper = byte_stream_class(library_of(response), _AsyncBody, is_async=True)
    response.stream = wrapper(response, request, deadline)
