"""Charge the rate limiter what the gateway counted, once the answer has been read.

Admission charges a request its input plus the most its answer may take
(:func:`~campusllm.limiter.request_charge`); the gateway counts what the answer really took.
Every answer passes through the transport, whoever reads it — the openai SDK behind the
LangChain and LlamaIndex adapters, the core's chat, text-completion, embedding and rerank
readers — so the correction is made here, for all of them at once: the response's body is
watched as it is read (:class:`~campusllm.wire.usage.UsageScanner`), and when it ends (or is
closed) the grant is settled with the ``usage`` it reported. A body that reported none (a
stream without ``stream_options.include_usage``, a stream cut short, a gateway that never
says) keeps the admission estimate, which never undercounts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..wire.usage import UsageScanner
from .library import byte_stream_class, library_of

if TYPE_CHECKING:
    import httpx

__all__ = ["UsageWatch", "watch_usage"]


class UsageWatch:
    """A scanner of one body and what to call with its ``usage`` when the body ends (once).

    Example:
        >>> from campusllm.clock import ManualClock
        >>> from campusllm.limiter import RateLimiter, usage_tokens
        >>> lim = RateLimiter(rpm=None, tpm=10_000, clock=ManualClock())
        >>> grant = lim.acquire(1_100)  # 100 in + up to 1,000 out
        >>> watch = UsageWatch(lambda usage: lim.settle(grant, usage_tokens(usage)))
        >>> watch.feed(b'{"choices": [], "usage": {"total_tokens": 130}}')
        >>> watch.end()
        >>> grant.tokens
        130
    """

    __slots__ = ("_scanner", "_settle", "_done")

    def __init__(
        self, settle: Callable[[Mapping[str, Any]], None], content_encoding: str | None = None
    ) -> None:
        self._scanner = UsageScanner(content_encoding)
        self._settle = settle
        self._done = False

    def feed(self, data: bytes) -> None:
        if not self._done:
            self._scanner.feed(data)

    def end(self) -> None:
        """The body ended or was closed: settle with the usage found, if any (only once)."""
        if self._done:
            return
        self._done = True
        found = self._scanner.usage()
        if found is not None:
            # the answer is already the caller's: a failing store must not take it away
            with contextlib.suppress(Exception):
                self._settle(found)


class _SyncWatched:
    def __init__(self, inner: Any, watch: UsageWatch) -> None:
        self._inner = inner
        self._watch = watch

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._watch.feed(chunk)
            yield chunk
        self._watch.end()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._watch.end()


class _AsyncWatched:
    def __init__(self, inner: Any, watch: UsageWatch) -> None:
        self._inner = inner
        self._watch = watch

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._watch.feed(chunk)
            yield chunk
        self._watch.end()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._watch.end()


def watch_usage(
    response: httpx.Response, settle: Callable[[Mapping[str, Any]], None], *, is_async: bool
) -> None:
    """Call ``settle(usage)`` with the ``usage`` the body of ``response`` reports, once read."""
    watch = UsageWatch(settle, response.headers.get("content-encoding"))
    impl = _AsyncWatched if is_async else _SyncWatched
    wrapper = byte_stream_class(library_of(response), impl, is_async=is_async)
    response.stream = wrapper(response.stream, watch)
