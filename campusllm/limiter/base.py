"""What every limiter store implements, and the records that pass between store and limiter.

A *store* keeps three things for each scope (one scope per provider and key fingerprint):
the grants of the current window, a "blocked until" instant set when the gateway asked for a
pause, and a token ledger per model and calendar period. :class:`~campusllm.limiter.RateLimiter`
holds the policy (limits, budgets, waiting, logging); a store only answers atomically, so the
same policy runs on one process (``memory``), every process of a machine (``local``) or many
machines (``redis``).

Example:
    >>> from campusllm.limiter.memory import MemoryStore
    >>> store = MemoryStore()
    >>> from campusllm.clock import ManualClock
    >>> req = AdmitRequest(scope="s", provider="p", fingerprint="f", model="m", clock=ManualClock(),
    ...                    tokens=5, rpm=1, tpm=None, span=60.0, periods=())
    >>> isinstance(store.admit(req), Admitted), store.admit(req)
    (True, Wait(seconds=60.0, reason='rpm'))
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from ..clock import Clock

__all__ = [
    "AdmitRequest",
    "Admitted",
    "BudgetCheck",
    "BudgetRow",
    "Grant",
    "LedgerRow",
    "OverBudget",
    "Snapshot",
    "Store",
    "Wait",
]


class BudgetCheck(NamedTuple):
    """One token budget to check at admission: ``limit`` tokens per period starting ``start``.

    ``model=None`` counts every model of the key. With ``enforce`` false the store only
    reports what is used (for the 80 % warning) and admits anyway.

    Example:
        >>> BudgetCheck("week", 1_766_937_600, None, 1_000_000_000).enforce
        True
    """

    kind: str
    start: int
    model: str | None
    limit: int
    enforce: bool = True


class AdmitRequest(NamedTuple):
    """One admission attempt: window limits, budgets, and the ledger slots to charge.

    Example:
        >>> AdmitRequest(scope="sjtu:0123", provider="sjtu", fingerprint="0123", model="m",
        ...              clock=None, tokens=10, rpm=10, tpm=None, span=60.25,
        ...              periods=(("week", 0),)).dry_run
        False
    """

    scope: str
    provider: str
    fingerprint: str
    model: str
    clock: Clock | None
    """The limiter's clock, read by the store once it holds its lock (a reading taken before
    waiting for the lock would date the grant too early); ``None`` lets the store use its own
    (Redis server time)."""
    tokens: int
    rpm: int | None
    tpm: int | None
    span: float
    periods: tuple[tuple[str, int], ...]
    """Ledger slots ``(period kind, period start)`` charged when admitted."""
    budgets: tuple[BudgetCheck, ...] = ()
    dry_run: bool = False
    """Only say whether (or when) it would be admitted; change nothing."""


class Admitted(NamedTuple):
    """The request may go; the store recorded grant ``id`` at ``ts``.

    Example:
        >>> Admitted("7", 12.5).used
        ()
    """

    id: str
    ts: float
    used: tuple[int, ...] = ()
    """Tokens already used in each budget of the request, before this one."""


class Wait(NamedTuple):
    """Not yet: try again in ``seconds``.

    Example:
        >>> Wait(41.0, "rpm").reason
        'rpm'
    """

    seconds: float
    reason: str
    """``"rpm"``, ``"tpm"`` or ``"retry_after"`` (the gateway asked for a pause)."""


@dataclass(frozen=True)
class OverBudget:
    """Budget number ``index`` of the request is used up (``used`` tokens).

    Example:
        >>> OverBudget(0, 1_000_000_000).used
        1000000000
    """

    index: int
    used: int


class Snapshot(NamedTuple):
    """The window as the store sees it at ``now``, for ETAs.

    Example:
        >>> Snapshot(10.0, [(1.0, 50)], float("-inf")).entries
        [(1.0, 50)]
    """

    now: float
    entries: list[tuple[float, int]]
    blocked_until: float


class LedgerRow(NamedTuple):
    """Tokens and requests of one (provider, key, model) in one period.

    Example:
        >>> LedgerRow("sjtu", "0123", "glm-5.1", "week", 0, 1200, 3).tokens
        1200
    """

    provider: str
    fingerprint: str
    model: str
    kind: str
    start: int
    tokens: int
    requests: int


class BudgetRow(NamedTuple):
    """A budget as recorded in the store (``model=None``: every model of the key).

    Example:
        >>> BudgetRow("sjtu", "0123", None, "week", 10**9).limit
        1000000000
    """

    provider: str
    fingerprint: str
    model: str | None
    kind: str
    limit: int


@dataclass(eq=False)
class Grant:
    """A request's place in the window: hand it back to ``refund`` or ``settle``.

    ``tokens`` is what the window and ledger hold for it now (the estimate at admission,
    the gateway's count after ``settle``).

    Example:
        >>> from campusllm.limiter import RateLimiter
        >>> g = RateLimiter(rpm=5).acquire(120, model="glm-5.1")
        >>> g.tokens, g.model
        (120, 'glm-5.1')
    """

    scope: str
    id: str
    ts: float
    tokens: int
    provider: str
    fingerprint: str
    model: str
    periods: tuple[tuple[str, int], ...] = ()
    refunded: bool = False
    admitted: float = 0.0
    """When it was admitted, on the limiter's own clock (``ts`` may be the store's)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Store(ABC):
    """Atomic window, pause and ledger operations; see the module docstring.

    Example:
        >>> from campusllm.limiter.memory import MemoryStore
        >>> MemoryStore().kind, MemoryStore.shared
        ('memory', False)
    """

    kind: ClassVar[str]
    shared: ClassVar[bool] = False
    """Whether other processes see the same state."""

    @abstractmethod
    def default_clock(self) -> Clock | None:
        """The clock windows are measured on unless one is injected (``None``: the store's)."""

    @abstractmethod
    def admit(self, req: AdmitRequest) -> Admitted | Wait | OverBudget:
        """Admit ``req`` (recording the grant and charging the ledger) or say why not."""

    @abstractmethod
    def refund(self, grant: Grant) -> None:
        """Take the grant out of its window (if still there) and its tokens off the ledger."""

    @abstractmethod
    def settle(self, grant: Grant, tokens: int) -> None:
        """Set the grant's tokens to ``tokens`` in its window and ledger."""

    @abstractmethod
    def restamp(self, grant: Grant, clock: Clock | None) -> float | None:
        """Date the grant's window entry from now (never earlier); the new stamp.

        ``None`` when the entry has left the window or was refunded.
        """

    @abstractmethod
    def penalize(self, scope: str, seconds: float, clock: Clock | None) -> None:
        """Admit nothing in ``scope`` for ``seconds`` from now (longer pauses win)."""

    @abstractmethod
    def snapshot(self, scope: str, clock: Clock | None, span: float) -> Snapshot:
        """The grants inside the window and the pause, without changing anything."""

    @abstractmethod
    def record_budget(self, row: BudgetRow) -> None:
        """Remember a budget so that ``usage()`` in any process can show its limit."""

    @abstractmethod
    def ledger_rows(self, provider: str | None = None, since: int = 0) -> list[LedgerRow]:
        """Ledger rows of periods starting at or after ``since`` (all providers if None)."""

    @abstractmethod
    def budget_rows(self, provider: str | None = None) -> list[BudgetRow]:
        """Budgets recorded with :meth:`record_budget`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (stores are process-wide; tests and benchmarks close them)."""
