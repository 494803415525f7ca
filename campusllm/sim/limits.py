"""Quota enforcement: per-key RPM/TPM sliding windows, as the campus gateways apply them.

Windows are measured on a :class:`~campusllm.clock.Clock`, so a test can drive them with a
:class:`~campusllm.clock.ManualClock` instead of racing the machine's real time; the
Retry-After a 429 carries is computed on the same clock.
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock
from ..registry import ProviderSpec
from .http import Handler, error_body

__all__ = ["Limit", "Quotas", "Refusal", "retry_after_header", "send_too_many"]


@dataclass(frozen=True)
class Limit:
    """RPM/TPM per key over ``window_s`` seconds (``None``: that dimension unlimited).

    Example:
        >>> Limit(rpm=10, tpm=None, window_s=60.0).rpm
        10
    """

    rpm: int | None
    tpm: int | None
    window_s: float


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: ``which`` limit, and how long until it would fit.

    Example:
        >>> Refusal(wait_s=12.5, which="rpm=10").which
        'rpm=10'
    """

    wait_s: float
    which: str


class Quotas:
    """The limits of every provider and each key's window of admitted requests (thread-safe).

    Limits set with :meth:`set` apply to their provider; with ``enforce_catalogued`` the
    registry's own RPM/TPM apply to every other provider, over ``window_s`` seconds.

    Example:
        >>> from campusllm.clock import ManualClock
        >>> from campusllm.registry import get_registry
        >>> clock = ManualClock()
        >>> quotas = Quotas(clock, window_s=60.0)
        >>> quotas.set("sjtu", rpm=1)
        >>> sjtu = get_registry().provider("sjtu")
        >>> quotas.admit(sjtu, "sk-sim-local", tokens=5) is None
        True
        >>> quotas.admit(sjtu, "sk-sim-local", tokens=5)
        Refusal(wait_s=60.0, which='rpm=1')
        >>> clock.advance(60.0)
        >>> quotas.admit(sjtu, "sk-sim-local", tokens=5) is None
        True
    """

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        *,
        window_s: float = 60.0,
        enforce_catalogued: bool = False,
    ) -> None:
        self.clock = clock
        self.window_s = window_s
        self.enforce_catalogued = enforce_catalogued
        self._lock = threading.Lock()
        self._limits: dict[str, Limit] = {}
        # (provider, key digest) -> (admitted at, tokens) oldest first
        self._windows: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}

    def set(
        self,
        provider: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        window_s: float | None = None,
    ) -> None:
        """Limit ``provider`` per key, starting with empty windows."""
        with self._lock:
            self._limits[provider] = Limit(rpm, tpm, window_s or self.window_s)
            for k in [k for k in self._windows if k[0] == provider]:
                del self._windows[k]

    def clear(self) -> None:
        """Forget every explicit limit and every window."""
        with self._lock:
            self._limits.clear()
            self._windows.clear()

    def _limit_for(self, provider: ProviderSpec) -> Limit | None:
        lim = self._limits.get(provider.name)
        if lim is None and self.enforce_catalogued:
            pl = provider.limits
            if pl.rpm or pl.tpm:
                lim = Limit(pl.rpm, pl.tpm, self.window_s)
        return lim

    def admit(self, provider: ProviderSpec, key: str, tokens: int) -> Refusal | None:
        """``None`` (and the request counted) when it fits the key's window, else a refusal."""
        with self._lock:
            lim = self._limit_for(provider)
            if lim is None or not (lim.rpm or lim.tpm):
                return None
            # Keys are kept only as digests: the simulator never holds a caller's secret.
            kid = hashlib.sha256(key.encode()).hexdigest()[:16]
            win = self._windows.setdefault((provider.name, kid), collections.deque())
            now = self.clock.monotonic()
            while win and win[0][0] <= now - lim.window_s:
                win.popleft()
            if lim.rpm and len(win) >= lim.rpm:
                return Refusal(win[len(win) - lim.rpm][0] + lim.window_s - now, f"rpm={lim.rpm}")
            if lim.tpm and win:
                used = sum(t for _, t in win)
                if used + tokens > lim.tpm:
                    freed = 0
                    for ts, t in win:
                        freed += t
                        if used - freed + tokens <= lim.tpm:
                            return Refusal(ts + lim.window_s - now, f"tpm={lim.tpm}")
                    return Refusal(win[-1][0] + lim.window_s - now, f"tpm={lim.tpm}")
            win.append((now, tokens))
            return None


def retry_after_header(wait_s: float) -> str:
    """Retry-After for a wait: hundredths under a second, whole seconds (rounded up) above.

    Example:
        >>> retry_after_header(0.123), retry_after_header(6.2)
        ('0.13', '7')
    """
    return f"{math.ceil(wait_s * 100) / 100:.2f}" if wait_s < 1 else str(math.ceil(wait_s))


def send_too_many(h: Handler, provider: str, refusal: Refusal, *, retry_after: bool) -> None:
    """The gateway's 429 for ``refusal`` (with Retry-After unless ``retry_after`` is off)."""
    wait = max(refusal.wait_s, 0.01)
    h.count("rate_limited")
    headers = [("Retry-After", retry_after_header(wait))] if retry_after else []
    h.send_json(
        429,
        error_body(
            f"Rate limit reached for {provider} ({refusal.which} per key). "
            f"Please try again in {wait:.2f}s.",
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        headers=headers,
    )
