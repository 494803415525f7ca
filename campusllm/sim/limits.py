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
from .gateways import GATEWAYS, Gateway
from .http import Handler

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
    """Why a request was refused: ``which`` limit, how long until it would fit, the window.

    Example:
        >>> Refusal(wait_s=12.5, which="rpm=10", window_s=60.0).which
        'rpm=10'
    """

    wait_s: float
    which: str
    window_s: float


class Quotas:
    """The limits of every provider and each key's windows of requests and tokens (thread-safe).

    Limits set with :meth:`set` apply to their provider; with ``enforce_catalogued`` the
    registry's own RPM/TPM apply to every other provider, over ``window_s`` seconds. Like the
    gateways (LiteLLM counts a response's ``total_tokens``), TPM counts the prompt when a
    request is admitted and the answer's tokens once it has been sent (:meth:`charge`).

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
        Refusal(wait_s=60.0, which='rpm=1', window_s=60.0)
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
        # (provider, key digest) -> when each request was admitted, oldest first
        self._requests: dict[tuple[str, str], collections.deque[float]] = {}
        # (provider, key digest) -> (when, tokens) charged: prompts and answers, oldest first
        self._tokens: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}

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
            for windows in (self._requests, self._tokens):
                for k in [k for k in windows if k[0] == provider]:
                    del windows[k]

    def clear(self) -> None:
        """Forget every explicit limit and every window."""
        with self._lock:
            self._limits.clear()
            self._requests.clear()
            self._tokens.clear()

    def limit_for(self, provider: ProviderSpec) -> Limit | None:
        """The limit ``provider``'s keys are held to now, if any."""
        lim = self._limits.get(provider.name)
        if lim is None and self.enforce_catalogued:
            pl = provider.limits
            if pl.rpm or pl.tpm:
                lim = Limit(pl.rpm, pl.tpm, self.window_s)
        return lim

    def _windows(
        self, provider: str, key: str, lim: Limit
    ) -> tuple[collections.deque[float], collections.deque[tuple[float, int]], float]:
        """The key's two windows, emptied of what has left them, and the time now."""
        # Keys are kept only as digests: the simulator never holds a caller's secret.
        kid = (provider, hashlib.sha256(key.encode()).hexdigest()[:16])
        reqs = self._requests.setdefault(kid, collections.deque())
        toks = self._tokens.setdefault(kid, collections.deque())
        now = self.clock.monotonic()
        while reqs and reqs[0] <= now - lim.window_s:
            reqs.popleft()
        while toks and toks[0][0] <= now - lim.window_s:
            toks.popleft()
        return reqs, toks, now

    def admit(self, provider: ProviderSpec, key: str, tokens: int) -> Refusal | None:
        """``None`` (and the request counted) when it fits the key's windows, else a refusal.

        ``tokens``: the request's input; a request bigger than the TPM is admitted alone, once
        the window is empty.
        """
        with self._lock:
            lim = self.limit_for(provider)
            if lim is None or not (lim.rpm or lim.tpm):
                return None
            reqs, toks, now = self._windows(provider.name, key, lim)
            if lim.rpm and len(reqs) >= lim.rpm:
                wait = reqs[len(reqs) - lim.rpm] + lim.window_s - now
                return Refusal(wait, f"rpm={lim.rpm}", lim.window_s)
            if lim.tpm and toks:
                used = sum(t for _, t in toks)
                if used + tokens > lim.tpm:
                    freed = 0
                    for ts, t in toks:
                        freed += t
                        if used - freed + tokens <= lim.tpm:
                            return Refusal(ts + lim.window_s - now, f"tpm={lim.tpm}", lim.window_s)
                    last = toks[-1][0] + lim.window_s - now
                    return Refusal(last, f"tpm={lim.tpm}", lim.window_s)
            reqs.append(now)
            toks.append((now, tokens))
            return None

    def charge(self, provider: ProviderSpec, key: str, tokens: int) -> None:
        """Count ``tokens`` more against the key's TPM now: the answer of an admitted request.

        Example:
            >>> from campusllm.clock import ManualClock
            >>> from campusllm.registry import get_registry
            >>> quotas = Quotas(ManualClock(), window_s=60.0)
            >>> quotas.set("sjtu", tpm=100)
            >>> sjtu = get_registry().provider("sjtu")
            >>> quotas.admit(sjtu, "sk-sim-local", tokens=10) is None
            True
            >>> quotas.charge(sjtu, "sk-sim-local", 85)  # a long answer: 95 of 100 used
            >>> quotas.admit(sjtu, "sk-sim-local", tokens=10).which
            'tpm=100'
        """
        with self._lock:
            lim = self.limit_for(provider)
            if lim is None or not lim.tpm or tokens <= 0:
                return
            _, toks, now = self._windows(provider.name, key, lim)
            toks.append((now, tokens))


def retry_after_header(wait_s: float) -> str:
    """Retry-After for a wait: hundredths under a second, whole seconds (rounded up) above.

    Example:
        >>> retry_after_header(0.123), retry_after_header(6.2)
        ('0.13', '7')
    """
    return f"{math.ceil(wait_s * 100) / 100:.2f}" if wait_s < 1 else str(math.ceil(wait_s))


def send_too_many(
    h: Handler,
    provider: str,
    refusal: Refusal,
    *,
    retry_after: bool,
    key: str = "",
    gateway: Gateway = GATEWAYS["vllm"],
) -> None:
    """The gateway's 429 for ``refusal`` (with Retry-After unless ``retry_after`` is off).

    Retry-After is the time until the request would fit, except behind a LiteLLM proxy,
    whose key-level limiter always says the whole window.
    """
    wait = max(refusal.wait_s, 0.01)
    h.count("rate_limited")
    body, headers = gateway.too_many(provider, key, refusal.which, wait, refusal.window_s)
    if retry_after:
        ra = f"{refusal.window_s:g}" if gateway.window_retry_after else retry_after_header(wait)
        headers = [("Retry-After", ra), *headers]
    h.send_json(429, body, headers=headers)
