"""The ``memory`` store: one process's windows and ledger in plain Python objects.

For tests, or a single process that shares its key with nobody. Thread-safe (one lock,
held for microseconds and never across a wait), so threads and any number of event loops
share its budgets.

Example:
    >>> from campusllm.limiter.base import AdmitRequest
    >>> s = MemoryStore()
    >>> from campusllm.clock import ManualClock
    >>> r = AdmitRequest(scope="k", provider="p", fingerprint="f", model="m", clock=ManualClock(),
    ...                  tokens=0, rpm=2, tpm=None, span=1.0, periods=())
    >>> [type(s.admit(r)).__name__ for _ in range(3)]
    ['Admitted', 'Admitted', 'Wait']
"""

from __future__ import annotations

import collections
import itertools
import threading
from dataclasses import dataclass, field

from ..clock import SYSTEM_CLOCK, Clock
from .base import (
    AdmitRequest,
    Admitted,
    BudgetRow,
    Grant,
    LedgerRow,
    OverBudget,
    Snapshot,
    Store,
    Wait,
)
from .window import wait_for

__all__ = ["MemoryStore"]


@dataclass
class _Entry:
    ts: float
    tokens: int
    id: str


@dataclass
class _Scope:
    grants: collections.deque[_Entry] = field(default_factory=collections.deque)
    """Oldest first."""
    blocked_until: float = float("-inf")
    retain: float = 0.0
    total: int = 0
    """Tokens of every grant in ``grants``."""


class MemoryStore(Store):
    """Windows and ledger of this process only.

    Example:
        >>> MemoryStore().ledger_rows()
        []
    """

    kind = "memory"
    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scopes: dict[str, _Scope] = {}
        self._ledger: dict[tuple[str, str, str, str, int], list[int]] = {}
        self._budgets: dict[tuple[str, str, str | None, str], int] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return "MemoryStore()"

    def default_clock(self) -> Clock:
        return SYSTEM_CLOCK

    def _scope(self, name: str) -> _Scope:
        sc = self._scopes.get(name)
        if sc is None:
            sc = self._scopes[name] = _Scope()
        return sc

    @staticmethod
    def _prune(sc: _Scope, now: float, span: float) -> None:
        sc.retain = max(sc.retain, span)
        horizon = now - sc.retain
        g = sc.grants
        while g and g[0].ts <= horizon:
            sc.total -= g.popleft().tokens

    @staticmethod
    def _window(sc: _Scope, now: float, span: float) -> list[tuple[float, int]]:
        horizon = now - span
        return [(e.ts, e.tokens) for e in sc.grants if e.ts > horizon]

    def _used(self, req: AdmitRequest, kind: str, start: int, model: str | None) -> int:
        return sum(
            v[0]
            for (p, f, m, k, s), v in self._ledger.items()
            if p == req.provider
            and f == req.fingerprint
            and k == kind
            and s == start
            and (model is None or m == model)
        )

    def _charge(
        self,
        provider: str,
        fp: str,
        model: str,
        periods: tuple[tuple[str, int], ...],
        d: int,
        n: int,
    ) -> None:
        for kind, start in periods:
            row = self._ledger.setdefault((provider, fp, model, kind, start), [0, 0])
            row[0] += d
            row[1] += n

    def admit(self, req: AdmitRequest) -> Admitted | Wait | OverBudget:
        clock = req.clock or SYSTEM_CLOCK
        with self._lock:
            now = clock.monotonic()
            sc = self._scope(req.scope)
            if now < sc.blocked_until:
                return Wait(sc.blocked_until - now, "retry_after")
            self._prune(sc, now, req.span)
            used: list[int] = []
            if not req.dry_run:
                for i, b in enumerate(req.budgets):
                    u = self._used(req, b.kind, b.start, b.model)
                    if b.enforce and u >= b.limit:
                        return OverBudget(i, u)
                    used.append(u)
            if sc.retain == req.span:  # the usual case: everything kept is inside the window
                n, total = len(sc.grants), sc.total
            else:  # limiters with longer windows share this key: count this one's only
                window = self._window(sc, now, req.span)
                n, total = len(window), sum(t for _, t in window)
            binds = (req.rpm and n >= req.rpm) or (req.tpm and n and total + req.tokens > req.tpm)
            if binds:
                w = wait_for(
                    self._window(sc, now, req.span), now, req.tokens, req.rpm, req.tpm, req.span
                )
                if w is not None:
                    return Wait(*w)
            if req.dry_run:
                return Admitted("", now)
            gid = str(next(self._ids))
            sc.grants.append(_Entry(now, req.tokens, gid))
            sc.total += req.tokens
            self._charge(req.provider, req.fingerprint, req.model, req.periods, req.tokens, 1)
            return Admitted(gid, now, tuple(used))

    def _find(self, grant: Grant) -> _Entry | None:
        sc = self._scopes.get(grant.scope)
        if sc is not None:
            for entry in reversed(sc.grants):  # refunds and settles come soon after
                if entry.id == grant.id:
                    return entry
        return None

    def refund(self, grant: Grant) -> None:
        with self._lock:
            entry = self._find(grant)
            if entry is not None:
                sc = self._scopes[grant.scope]
                sc.grants.remove(entry)
                sc.total -= entry.tokens
            self._charge(
                grant.provider, grant.fingerprint, grant.model, grant.periods, -grant.tokens, -1
            )

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._lock:
            entry = self._find(grant)
            if entry is not None:
                self._scopes[grant.scope].total += tokens - entry.tokens
                entry.tokens = tokens
            self._charge(
                grant.provider,
                grant.fingerprint,
                grant.model,
                grant.periods,
                tokens - grant.tokens,
                0,
            )

    def restamp(self, grant: Grant, clock: Clock | None) -> float | None:
        with self._lock:
            entry = self._find(grant)
            if entry is None:
                return None
            entry.ts = max(entry.ts, (clock or SYSTEM_CLOCK).monotonic())
            # keep the deque oldest first: the entry moves behind those admitted before now
            sc = self._scopes[grant.scope]
            sc.grants.remove(entry)
            i = len(sc.grants)
            while i and sc.grants[i - 1].ts > entry.ts:
                i -= 1
            sc.grants.insert(i, entry)
            return entry.ts

    def penalize(self, scope: str, seconds: float, clock: Clock | None) -> None:
        with self._lock:
            now = (clock or SYSTEM_CLOCK).monotonic()
            sc = self._scope(scope)
            sc.blocked_until = max(sc.blocked_until, now + seconds)

    def snapshot(self, scope: str, clock: Clock | None, span: float) -> Snapshot:
        with self._lock:
            now = (clock or SYSTEM_CLOCK).monotonic()
            sc = self._scope(scope)
            return Snapshot(now, self._window(sc, now, span), sc.blocked_until)

    def record_budget(self, row: BudgetRow) -> None:
        with self._lock:
            self._budgets[(row.provider, row.fingerprint, row.model, row.kind)] = row.limit

    def ledger_rows(self, provider: str | None = None, since: int = 0) -> list[LedgerRow]:
        with self._lock:
            return [
                LedgerRow(p, f, m, k, s, v[0], v[1])
                for (p, f, m, k, s), v in self._ledger.items()
                if (provider is None or p == provider) and s >= since
            ]

    def budget_rows(self, provider: str | None = None) -> list[BudgetRow]:
        with self._lock:
            return [
                BudgetRow(p, f, m, k, lim)
                for (p, f, m, k), lim in self._budgets.items()
                if provider is None or p == provider
            ]
