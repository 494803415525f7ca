"""The rate limiter: one policy (window, budgets, visible waits) over any store.

Example:
    >>> from campusllm.clock import ManualClock
    >>> clock = ManualClock()
    >>> lim = RateLimiter(rpm=2, tpm=None, window_s=60, clock=clock)
    >>> for _ in range(3):
    ...     _ = lim.acquire()  # the third waits for the first to leave the window
    >>> round(clock.monotonic(), 2)  # 60 s window + 0.25 s margin
    60.25
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import BudgetExceededError
from .base import AdmitRequest, Admitted, BudgetCheck, BudgetRow, Grant, OverBudget, Store, Wait
from .budget import PERIODS, WARN_AT, Budget, format_reset, period_bounds
from .events import NOTICE_S, WaitEvent, WaitListener, notify
from .memory import MemoryStore
from .window import finish_time

__all__ = ["RateLimiter"]

log = logging.getLogger("campusllm")


def window_margin(window_s: float) -> float:
    """Extra seconds each grant is held beyond the window.

    The gateway starts its window when the request arrives, a little after we grant it; a
    small margin keeps latency jitter from turning an exact budget into a 429.
    """
    return min(0.05 * window_s, 0.25)


RESTAMP_AFTER_S = 0.005
"""A request sent later than this after its admission has its slot re-dated (``sent``).

Below it, re-dating is not worth a store write (~0.1-0.2 ms); above it the lag eats into the
window's margin (50 ms on a 1 s window): ten requests admitted together at a window's edge
reach the wire one after another as the event loop builds each (a millisecond or more apiece)."""


class _Stall:
    __slots__ = ("waited", "announced")

    def __init__(self) -> None:
        self.waited = 0.0
        self.announced = False


class RateLimiter:
    """Sliding-window RPM + TPM budget plus token budgets, over a ``memory``, ``local`` or
    ``redis`` store; thread-safe and usable from any event loop.

    A request is admitted when, over the last ``window_s`` seconds, fewer than ``rpm``
    requests were admitted and the tokens admitted plus its own stay within ``tpm``. A single
    request larger than ``tpm`` is admitted once the window is empty, so it is slow rather
    than stuck. Limiters made by :func:`~campusllm.limiter.limiter_for` for one (provider, key)
    share one window and ledger (their ``scope``), each admitting by its own limits.

    Built directly, a limiter has a private in-process window (the ``memory`` store).

    Example:
        >>> from campusllm.clock import ManualClock
        >>> lim = RateLimiter(rpm=None, tpm=100, window_s=60, clock=ManualClock())
        >>> g = lim.acquire(80, model="m")  # charged the estimate: input + max output
        >>> lim.settle(g, 30)               # the gateway counted 30
        >>> lim.time_until_free(70)         # 30 + 70 fits at once
        0.0
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        window_s: float = 60.0,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        scope: str | None = None,
        provider: str = "",
        key_fingerprint: str = "",
        budgets: Sequence[Budget] = (),
        enforce_budget: bool = True,
        epoch: Callable[[], float] | None = None,
    ) -> None:
        self.rpm = rpm or None
        self.tpm = tpm or None
        self.window_s = float(window_s)
        """The key's rate window in seconds (what a 429 without ``Retry-After`` waits out)."""
        self._span = self.window_s + window_margin(self.window_s)
        self.store: Store = store if store is not None else MemoryStore()
        self._clock = clock if clock is not None else self.store.default_clock()
        self._sleeper: Clock = self._clock or SYSTEM_CLOCK
        self.scope = scope or f"anon:{uuid.uuid4().hex}"
        self.provider = provider
        self.key_fingerprint = key_fingerprint
        self.budgets = tuple(budgets)
        self.enforce_budget = bool(enforce_budget)
        self._epoch = epoch or time.time
        self._listeners: list[WaitListener] = []
        self._lock = threading.Lock()
        self._warned: set[tuple[str, int, str | None, str]] = set()
        self._quiet_until = -math.inf
        self._budgets_recorded = False
        self._periods: tuple[float, tuple[tuple[str, int], ...], dict[str, tuple[int, int]]] = (
            -math.inf,
            (),
            {},
        )
        # poll at least this often while waiting, to see refunds and pauses made elsewhere
        self._poll_s = max(0.05, min(self.window_s / 12, 5.0))

    @property
    def backend(self) -> str:
        """``"memory"``, ``"local"`` or ``"redis"``."""
        return self.store.kind

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rpm={self.rpm}, tpm={self.tpm}, window_s={self.window_s}, "
            f"backend={self.backend!r})"
        )

    def add_wait_listener(self, callback: WaitListener) -> Callable[[], None]:
        """Call ``callback(event)`` when this limiter holds a request back for long."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    # -- admission -------------------------------------------------------------------

    def _period_slots(self) -> tuple[tuple[tuple[str, int], ...], dict[str, tuple[int, int]]]:
        epoch = self._epoch()
        valid_until, slots, bounds = self._periods
        if epoch >= valid_until or not slots:
            bounds = {k: period_bounds(k, epoch) for k in PERIODS}
            slots = tuple((k, b[0]) for k, b in bounds.items())
            self._periods = (min(b[1] for b in bounds.values()), slots, bounds)
        return slots, bounds

    def _request(self, tokens: int, model: str, dry_run: bool = False) -> AdmitRequest:
        slots, bounds = self._period_slots()
        checks = tuple(
            BudgetCheck(b.period, bounds[b.period][0], b.model, b.tokens, self.enforce_budget)
            for b in self.budgets
            if b.model is None or b.model == model
        )
        return AdmitRequest(
            scope=self.scope,
            provider=self.provider,
            fingerprint=self.key_fingerprint,
            model=model,
            clock=self._clock,
            tokens=tokens,
            rpm=self.rpm,
            tpm=self.tpm,
            span=self._span,
            periods=slots,
            budgets=checks,
            dry_run=dry_run,
        )

    def _attempt(
        self, tokens: int, model: str
    ) -> tuple[Admitted | Wait | OverBudget, AdmitRequest]:
        if self.budgets and not self._budgets_recorded:
            for b in self.budgets:
                self.store.record_budget(
                    BudgetRow(self.provider, self.key_fingerprint, b.model, b.period, b.tokens)
                )
            self._budgets_recorded = True
        req = self._request(tokens, model)
        return self.store.admit(req), req

    def _finish(self, r: Admitted | OverBudget, req: AdmitRequest) -> Grant:
        if isinstance(r, OverBudget):
            b = req.budgets[r.index]
            end = period_bounds(b.kind, b.start)[1]
            raise BudgetExceededError(
                f"{self.provider or 'this key'}: the {b.kind}ly token budget of key "
                f"{self.key_fingerprint[:8] or '?'}"
                + (f" for {b.model}" if b.model else "")
                + f" is used up ({r.used:,} of {b.limit:,} tokens; resets "
                f"{format_reset(end)}). Nothing was sent.",
                hint="Wait for the reset, or set CAMPUSLLM_BUDGET=off (or enforce_budget=False)"
                " to let the gateway decide.",
                used=r.used,
                limit=b.limit,
                period=b.kind,
                reset_at=float(end),
                retry_after=max(0.0, end - self._epoch()),
                provider=self.provider or None,
                model=req.model or None,
            )
        for b, used in zip(req.budgets, r.used, strict=False):
            self._maybe_warn(b, used + req.tokens)
        return Grant(
            scope=self.scope,
            id=r.id,
            ts=r.ts,
            tokens=req.tokens,
            provider=self.provider,
            fingerprint=self.key_fingerprint,
            model=req.model,
            periods=req.periods,
            admitted=self._sleeper.monotonic(),
        )

    def _maybe_warn(self, b: BudgetCheck, used: int) -> None:
        if used < WARN_AT * b.limit:
            return
        over = used >= b.limit
        tag = (b.kind, b.start, b.model, "over" if over else "80")
        with self._lock:
            if tag in self._warned:
                return
            self._warned.add(tag)
        what = f"{self.provider or 'this key'}: key {self.key_fingerprint[:8] or '?'}" + (
            f" ({b.model})" if b.model else ""
        )
        pct = 100 * used / b.limit
        reset = format_reset(period_bounds(b.kind, b.start)[1])
        if over:
            log.warning(
                "campusllm: %s has used %s of its %s-token %sly budget (%.0f %%); enforcement "
                "is off, so requests still go out and the gateway decides. Resets %s.",
                what,
                f"{used:,}",
                f"{b.limit:,}",
                b.kind,
                pct,
                reset,
            )
        else:
            log.warning(
                "campusllm: %s has used %.0f %% of its %s-token %sly budget (%s tokens); "
                "at 100 %% requests stop before sending (BudgetExceededError). Resets %s.",
                what,
                pct,
                f"{b.limit:,}",
                b.kind,
                f"{used:,}",
                reset,
            )

    def _pace(self, w: Wait, stall: _Stall) -> float:
        """How long to sleep now; announces the wait once if it is (or became) long."""
        sleep = min(w.seconds + 0.0005, self._poll_s)
        if not stall.announced and (w.seconds > NOTICE_S or stall.waited + sleep > NOTICE_S):
            stall.announced = True
            local_now = self._sleeper.monotonic()
            with self._lock:
                fresh = local_now >= self._quiet_until
                if fresh:
                    self._quiet_until = local_now + w.seconds
            if fresh:  # one notice per stall, however many requests wait in it
                limit = self.rpm if w.reason == "rpm" else self.tpm if w.reason == "tpm" else None
                notify(
                    WaitEvent(
                        self.provider,
                        self.key_fingerprint,
                        w.reason,
                        w.seconds,
                        limit,
                        self.window_s,
                    ),
                    self._listeners,
                )
        stall.waited += sleep
        return sleep

    def acquire(self, tokens: int = 0, *, model: str | None = None) -> Grant:
        """Block until a request of ``tokens`` fits; return its grant.

        ``tokens`` is what the gateway will count: input plus expected output (see
        :func:`~campusllm.limiter.request_charge`). ``model`` files the tokens under that model
        in the ledger. Raises :class:`~campusllm.errors.BudgetExceededError` when a budget of
        the key is used up (and enforced).
        """
        n, m = max(0, int(tokens)), model or ""
        stall = _Stall()
        while True:
            r, req = self._attempt(n, m)
            if not isinstance(r, Wait):
                return self._finish(r, req)
            self._sleeper.sleep(self._pace(r, stall))

    def try_acquire(self, tokens: int = 0, *, model: str | None = None) -> Grant | None:
        """Admit a request of ``tokens`` now if it fits, else return None (never waits).

        Example:
            >>> from campusllm.clock import ManualClock
            >>> lim = RateLimiter(rpm=1, tpm=None, clock=ManualClock())
            >>> lim.try_acquire() is not None, lim.try_acquire()
            (True, None)
        """
        r, req = self._attempt(max(0, int(tokens)), model or "")
        return None if isinstance(r, Wait) else self._finish(r, req)

    async def aacquire(self, tokens: int = 0, *, model: str | None = None) -> Grant:
        """Like :meth:`acquire`, waiting without blocking the event loop.

        The store is asked on the loop itself: one admission takes well under a millisecond
        (an SQLite transaction, a Redis round trip), and a worker thread would put a variable
        delay between the grant's time stamp and the request it admits.
        """
        n, m = max(0, int(tokens)), model or ""
        stall = _Stall()
        while True:
            r, req = self._attempt(n, m)
            if not isinstance(r, Wait):
                return self._finish(r, req)
            await self._sleeper.asleep(self._pace(r, stall))

    def sent(self, grant: Grant | None) -> None:
        """The request of ``grant`` has just been written: its slot in the window starts here.

        A gateway starts counting a request when it arrives. Admission can come well before
        that (a burst first opens its connections, a busy machine schedules late), and a slot
        dated at admission would leave our window before it leaves the gateway's: the next
        request, sent the moment ours frees, meets a 429 at the window's edge. Requests sent
        within :data:`RESTAMP_AFTER_S` of their admission (a warm connection's usual case)
        keep their stamp and cost no store write.

        Example:
            >>> from campusllm.clock import ManualClock
            >>> clock = ManualClock()
            >>> lim = RateLimiter(rpm=1, window_s=1.0, clock=clock)
            >>> g = lim.acquire()
            >>> clock.advance(0.5); lim.sent(g)  # the connection took half a second
            >>> round(lim.time_until_free(), 2)  # 1 s window + 0.05 s margin, from 0.5
            1.05
        """
        if grant is None or self._sleeper.monotonic() - grant.admitted <= RESTAMP_AFTER_S:
            return
        with grant.lock:
            if grant.refunded:
                return
            try:
                ts = self.store.restamp(grant, self._clock)
            except Exception as exc:  # noqa: BLE001
                # The request is already on the wire: failing it now would make the transport
                # send it again. The slot keeps its admission stamp; the next admission meets
                # a broken store and reports it.
                log.warning("campusllm: a rate-limit slot kept its admission time: %s", exc)
                return
            if ts is not None:
                grant.ts = ts

    # -- after the response --------------------------------------------------------------

    def refund(self, grant: Grant | None) -> None:
        """Give a grant back: the gateway refused that request (429), so it used no quota."""
        if grant is None:
            return
        with grant.lock:
            if grant.refunded:
                return
            grant.refunded = True
            self.store.refund(grant)

    def settle(self, grant: Grant | None, actual_tokens: int | None) -> None:
        """The response reported its usage: charge ``actual_tokens`` instead of the estimate.

        Corrects both the rate window (if the grant is still in it) and the budget ledger.
        ``None`` (no usage reported) keeps the estimate.
        """
        if grant is None or actual_tokens is None:
            return
        n = max(0, int(actual_tokens))
        with grant.lock:
            if grant.refunded or n == grant.tokens:
                return
            self.store.settle(grant, n)
            grant.tokens = n

    def penalize(self, retry_after: float) -> None:
        """The gateway said 429: nobody on this key sends before ``now + retry_after``."""
        if not retry_after or retry_after <= 0:
            return
        self.store.penalize(self.scope, float(retry_after), self._clock)

    def note_429(self, grant: Grant | None, retry_after: float | None = None) -> float:
        """A 429 for ``grant``: give its slot back and pause the key; returns the pause.

        With a ``Retry-After`` the pause is what the gateway asked for. Without one, the
        gateway's window is full of requests we may not know about (other clients of the key,
        or a smaller quota than configured); every one of them has left it one window from
        now, so the pause is the whole window rather than a guess that is too short.
        """
        self.refund(grant)
        wait = retry_after if retry_after is not None and retry_after > 0 else self._span
        self.penalize(wait)
        return wait

    # -- looking ahead -----------------------------------------------------------------

    def time_until_free(self, tokens: int = 0) -> float:
        """Seconds until a request of ``tokens`` would be admitted (0.0: now)."""
        r = self.store.admit(self._request(max(0, int(tokens)), "", dry_run=True))
        return r.seconds if isinstance(r, Wait) else 0.0

    next_free_in = time_until_free

    def time_until_clear(self) -> float:
        """Seconds until every grant now in the window has left it and no pause is active."""
        snap = self.store.snapshot(self.scope, self._clock, self._span)
        last = max((ts for ts, _ in snap.entries), default=-math.inf)
        return max(0.0, snap.blocked_until - snap.now, last + self._span - snap.now)

    def eta(self, requests: int, tokens_per_request: int = 0) -> float:
        """Seconds until ``requests`` more requests of ``tokens_per_request`` will have been
        admitted, if nobody else uses the key: the ETA a progress bar can show.

        Example:
            >>> from campusllm.clock import ManualClock
            >>> RateLimiter(rpm=10, tpm=None, window_s=60, clock=ManualClock()).eta(25)
            120.5
        """
        snap = self.store.snapshot(self.scope, self._clock, self._span)
        start = max(snap.now, snap.blocked_until)
        end = finish_time(
            snap.entries,
            start,
            requests,
            max(0, tokens_per_request),
            self.rpm,
            self.tpm,
            self._span,
        )
        return max(0.0, end - snap.now)
