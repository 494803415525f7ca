"""Client-side rate limiting: one sliding-window budget per (provider, key).

Campus gateways publish small quotas (SJTU: 10 requests per minute per key). Staying
inside them on the client is cheaper than collecting 429s, and the same budget must be
shared by every object using one key in the process — sync and async alike — or two
instances would each spend the whole quota.

Example:
    >>> from campusllm.registry import RateLimits
    >>> lim = limiter_for("sjtu", "sk-example", RateLimits(rpm=10))
    >>> _ = lim.acquire(tokens=120)  # returns at once: the window is empty
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .registry import RateLimits

__all__ = ["RateLimiter", "limiter_for"]


class RateLimiter:
    """Sliding-window RPM + TPM budget, thread-safe and usable from any event loop.

    A request is admitted when, over the last ``window_s`` seconds, fewer than ``rpm``
    requests were admitted and the tokens admitted plus its own stay within ``tpm``. A
    single request larger than ``tpm`` is admitted once the window is empty, so it is
    slow rather than stuck forever.

    Example:
        >>> lim = RateLimiter(rpm=2, tpm=None, window_s=0.05)
        >>> for _ in range(3):
        ...     _ = lim.acquire()  # the third call waits ~0.05 s
    """

    def __init__(self, rpm: int | None, tpm: int | None, window_s: float = 60.0) -> None:
        self.rpm = rpm or None
        self.tpm = tpm or None
        self.window_s = float(window_s)
        # The gateway starts its window when the request arrives, a little after we grant it;
        # a small margin keeps latency jitter from turning an exact budget into a 429.
        self._span = self.window_s + min(0.05 * self.window_s, 0.25)
        self._grants: collections.deque[tuple[float, int]] = collections.deque()
        self._used = 0
        self._blocked_until = 0.0
        # A plain threading lock (held only for microseconds, never across a wait) lets
        # threads and any number of event loops share one budget.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter(rpm={self.rpm}, tpm={self.tpm}, window_s={self.window_s})"

    def _try(self, tokens: int) -> float | tuple[float, int]:
        """Admit now (returns the grant) or return how long to wait before trying again."""
        with self._lock:
            now = time.monotonic()
            if now < self._blocked_until:
                return self._blocked_until - now
            horizon = now - self._span
            grants = self._grants
            while grants and grants[0][0] <= horizon:
                self._used -= grants.popleft()[1]
            if self.rpm and len(grants) >= self.rpm:
                return grants[len(grants) - self.rpm][0] - horizon
            if self.tpm and grants and self._used + tokens > self.tpm:
                freed = 0
                for ts, n in grants:
                    freed += n
                    if self._used - freed + tokens <= self.tpm:
                        return ts - horizon
                return grants[-1][0] - horizon
            grant = (now, tokens)
            grants.append(grant)
            self._used += tokens
            return grant

    def acquire(self, tokens: int = 0) -> tuple[float, int] | None:
        """Block the calling thread until a request of ``tokens`` fits; return its grant."""
        if self.rpm is None and self.tpm is None and not self._blocked_until:
            return None
        while isinstance(wait := self._try(max(0, int(tokens))), float):
            time.sleep(wait + 0.0005)
        return wait

    async def aacquire(self, tokens: int = 0) -> tuple[float, int] | None:
        """Wait (without blocking the event loop) until a request fits; return its grant."""
        if self.rpm is None and self.tpm is None and not self._blocked_until:
            return None
        while isinstance(wait := self._try(max(0, int(tokens))), float):
            await asyncio.sleep(wait + 0.0005)
        return wait

    def refund(self, grant: tuple[float, int] | None) -> None:
        """Give a grant back: the gateway refused that request (429), so it used no quota."""
        if grant is None:
            return
        with self._lock:
            try:
                self._grants.remove(grant)
            except ValueError:  # already slid out of the window
                return
            self._used -= grant[1]

    def penalize(self, retry_after: float) -> None:
        """The gateway said 429: nobody on this key sends before ``now + retry_after``."""
        if retry_after <= 0:
            return
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + retry_after)


_limiters: dict[tuple[str, str, int | None, int | None, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(provider: str, api_key: str, limits: RateLimits) -> RateLimiter:
    """The process-wide limiter for this provider, key and budget.

    The key is hashed: the table never holds the secret itself.

    Example:
        >>> from campusllm.registry import RateLimits
        >>> a = limiter_for("ecnu", "sk-one", RateLimits(rpm=5))
        >>> a is limiter_for("ecnu", "sk-one", RateLimits(rpm=5))
        True
    """
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    ident = (provider, digest, limits.rpm, limits.tpm, float(limits.window_s))
    with _limiters_lock:
        lim = _limiters.get(ident)
        if lim is None:
            lim = _limiters[ident] = RateLimiter(limits.rpm, limits.tpm, limits.window_s)
        return lim
