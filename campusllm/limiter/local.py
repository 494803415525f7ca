"""The ``local`` store: every process of this user on this machine shares one SQLite file.

Why SQLite and not a library's bucket: ``pyrate-limiter``'s SQLite and Redis buckets and the
``limits`` package's Redis moving window store a request of weight *w* as *w* rows or list
entries (a 4,000-token request would be 4,000 rows), and none of them can give a request back
(refund on 429), change its weight once the gateway reports the real usage (settle), pause the
key for a gateway's ``Retry-After``, or keep a token ledger. A sliding window over one row per
request is a few lines of SQL; SQLite (stdlib ``sqlite3``) supplies what is hard — atomic
multi-process transactions (``BEGIN IMMEDIATE``), crash safety, and no server to start.

The database lives in the user's cache directory (:func:`user_cache_dir`), or where
``CAMPUSLLM_LIMITER=local:/path/to/file.sqlite3`` says. It holds key *fingerprints* (a hash),
never keys. Grants carry their admission time, so a process killed while holding grants
holds nothing once its window has passed; SQLite rolls back a transaction cut short by a crash
and the OS drops the dead process's file locks. Write-ahead logging keeps readers off the
writer's path; each admission is one short write transaction (tens of microseconds).

A network file system (NFS, Lustre) does not give SQLite reliable locks: on a cluster, keep
this file on local disk (the default cache directory usually is not) or use ``redis://``.

Example:
    >>> import tempfile, os
    >>> from campusllm.clock import ManualClock
    >>> from campusllm.limiter.base import AdmitRequest
    >>> d = tempfile.mkdtemp()
    >>> s = LocalStore(os.path.join(d, "limiter.sqlite3"))
    >>> r = AdmitRequest(scope="k", provider="p", fingerprint="f", model="m", clock=ManualClock(),
    ...                  tokens=0, rpm=1, tpm=None, span=60.0, periods=())
    >>> type(s.admit(r)).__name__, s.admit(r)
    ('Admitted', Wait(seconds=60.0, reason='rpm'))
    >>> s.close()
    >>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..clock import Clock
from ..errors import CampusLLMError, ConfigError
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

__all__ = ["LocalStore", "EpochClock", "EPOCH_CLOCK", "default_path"]

# Grants older than this are deleted even if no limiter with a longer window asks: rate
# windows are a minute in practice, and the table stays small.
RETAIN_S = 3600.0

T = TypeVar("T")
log = logging.getLogger("campusllm")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    ts REAL NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_scope ON grants (scope, ts, tokens);
CREATE TABLE IF NOT EXISTS pauses (scope TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    provider TEXT NOT NULL, fingerprint TEXT NOT NULL, model TEXT NOT NULL,
    kind TEXT NOT NULL, start INTEGER NOT NULL,
    tokens INTEGER NOT NULL, requests INTEGER NOT NULL,
    PRIMARY KEY (provider, fingerprint, kind, start, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budgets (
    provider TEXT NOT NULL, fingerprint TEXT NOT NULL, model TEXT NOT NULL,
    kind TEXT NOT NULL, lim INTEGER NOT NULL,
    PRIMARY KEY (provider, fingerprint, model, kind)
) WITHOUT ROWID;
"""


_OPEN_RETRY_S = 10.0
"""How long opening the shared file retries a busy database before giving up."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class EpochClock:
    """Seconds since the epoch: one scale for every process (and every synced machine).

    ``time.monotonic`` readings of two processes are not comparable in general (and not at
    all after a reboot), so shared windows are measured on this clock. A grant stamped in the
    future (the system clock was set back) is dropped rather than trusted.

    Example:
        >>> EPOCH_CLOCK.monotonic() > 1_600_000_000
        True
    """

    def monotonic(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "EpochClock()"


EPOCH_CLOCK: Clock = EpochClock()


def user_cache_dir() -> Path:
    """campusllm's directory in the user's cache, where ``platformdirs`` puts it.

    ``$XDG_CACHE_HOME/campusllm`` (else ``~/.cache/campusllm``) on Linux and other Unix,
    ``~/Library/Caches/campusllm`` on macOS, ``%LOCALAPPDATA%\\campusllm\\Cache`` on Windows.
    Written out rather than imported so that the core installs with httpx and pydantic alone;
    a test checks it against ``platformdirs`` wherever that is installed.

    Example:
        >>> user_cache_dir().name in ("campusllm", "Cache")
        True
    """
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA", "").strip()
        return Path(local or Path.home() / "AppData" / "Local") / "campusllm" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "campusllm"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return Path(xdg or Path.home() / ".cache") / "campusllm"


def default_path() -> Path:
    """``<user cache dir>/campusllm/limiter.sqlite3`` (see :func:`user_cache_dir`).

    Example:
        >>> default_path().name
        'limiter.sqlite3'
    """
    return user_cache_dir() / "limiter.sqlite3"


class LocalStore(Store):
    """Windows, pauses and ledger in one SQLite database shared by this machine's processes.

    Example:
        >>> LocalStore("/tmp/campusllm-example.sqlite3").kind  # opened on first use
        'local'
    """

    kind = "local"
    shared = True

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    def default_clock(self) -> Clock:
        return EPOCH_CLOCK

    # -- connection ------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        # A connection must not cross fork(): a child opens its own.
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open_once(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a file system without shared memory
                log.warning(
                    "campusllm: %s does not support SQLite write-ahead logging (journal mode "
                    "%s); the shared limiter still works, more slowly. Put it on a local disk.",
                    self.path,
                    mode,
                )
            # Rate windows need atomicity, not durability across power loss: no fsync per grant.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(
                exc
            ):  # another process holds the file this instant: _open retries
                raise
            raise self._cannot_open(exc) from exc
        return conn

    def _cannot_open(self, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"Cannot open the shared rate-limit state {self.path} ({exc}).",
            hint="Make its directory writable, point CAMPUSLLM_LIMITER=local:/other/path "
            "at a local disk, or use CAMPUSLLM_LIMITER=memory (no sharing between "
            "processes).",
        )

    def _open(self) -> sqlite3.Connection:
        # Processes that start together (a job array) open the file at once, and switching
        # it to WAL or creating the tables can meet SQLITE_BUSY without SQLite's busy wait:
        # that moment passes, so it is retried briefly rather than failing the request.
        delay, deadline = 0.005, time.monotonic() + _OPEN_RETRY_S
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise self._cannot_open(exc) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- operations ------------------------------------------------------------------

    @staticmethod
    def _window(
        db: sqlite3.Connection, scope: str, now: float, span: float
    ) -> list[tuple[float, int]]:
        return [
            (float(ts), int(tok))
            for ts, tok in db.execute(
                "SELECT ts, tokens FROM grants WHERE scope = ? AND ts > ? ORDER BY ts",
                (scope, now - span),
            )
        ]

    def admit(self, req: AdmitRequest) -> Admitted | Wait | OverBudget:
        clock = req.clock or EPOCH_CLOCK
        # the clock is read once the write lock is held: a grant is dated when it is made
        return self._tx(
            lambda db: self._admit(db, req, clock.monotonic(), req.scope), write=not req.dry_run
        )

    def _admit(
        self, db: sqlite3.Connection, req: AdmitRequest, now: float, scope: str
    ) -> Admitted | Wait | OverBudget:
        row = db.execute("SELECT until FROM pauses WHERE scope = ?", (scope,)).fetchone()
        if row is not None and now < row[0]:
            return Wait(float(row[0]) - now, "retry_after")
        if not req.dry_run:
            retain = max(req.span, RETAIN_S)
            # ...and stamps far in the future (the system clock was set back) are dropped.
            # Two range deletes, not one with OR: SQLite walks the index for a range, but an
            # OR of two ranges scans every grant the scope has kept (250 µs at 4,000).
            db.execute("DELETE FROM grants WHERE scope = ? AND ts <= ?", (scope, now - retain))
            db.execute("DELETE FROM grants WHERE scope = ? AND ts > ?", (scope, now + retain))
        used: list[int] = []
        if not req.dry_run:
            for i, b in enumerate(req.budgets):
                q = (
                    "SELECT coalesce(sum(tokens), 0) FROM ledger WHERE provider = ? AND "
                    "fingerprint = ? AND kind = ? AND start = ?"
                )
                args: tuple[object, ...] = (req.provider, req.fingerprint, b.kind, b.start)
                if b.model is not None:
                    q += " AND model = ?"
                    args += (b.model,)
                u = int(db.execute(q, args).fetchone()[0])
                if b.enforce and u >= b.limit:
                    return OverBudget(i, u)
                used.append(u)
        # Count first (index only); fetch rows only when a limit binds.
        n, total = db.execute(
            "SELECT count(*), coalesce(sum(tokens), 0) FROM grants WHERE scope = ? AND ts > ?",
            (scope, now - req.span),
        ).fetchone()
        binds = (req.rpm and n >= req.rpm) or (req.tpm and n and total + req.tokens > req.tpm)
        if binds:
            w = wait_for(
                self._window(db, scope, now, req.span), now, req.tokens, req.rpm, req.tpm, req.span
            )
            if w is not None:
                return Wait(*w)
        if req.dry_run:
            return Admitted("", now)
        cur = db.execute(
            "INSERT INTO grants (scope, ts, tokens) VALUES (?, ?, ?)", (scope, now, req.tokens)
        )
        gid = str(cur.lastrowid)
        self._charge(db, req.provider, req.fingerprint, req.model, req.periods, req.tokens, 1)
        return Admitted(gid, now, tuple(used))

    @staticmethod
    def _charge(
        db: sqlite3.Connection,
        provider: str,
        fp: str,
        model: str,
        periods: tuple[tuple[str, int], ...],
        d: int,
        n: int,
    ) -> None:
        db.executemany(  # one statement for the day, week and month rows
            "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "tokens = tokens + excluded.tokens, requests = requests + excluded.requests",
            [(provider, fp, model, kind, start, d, n) for kind, start in periods],
        )

    def _tx(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction (``BEGIN IMMEDIATE``: writers queue, never deadlock)."""
        with self._lock:
            try:
                db = self._db()
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise CampusLLMError(
                    f"The shared rate-limit state {self.path} failed: {exc}.",
                    hint="Another process may hold it locked for long (a stopped debugger?), or "
                    "it sits on a network file system; set CAMPUSLLM_LIMITER=local:/local/disk/"
                    "file.sqlite3, or CAMPUSLLM_LIMITER=memory to stop sharing.",
                ) from exc

    def _write(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        self._tx(fn)

    def refund(self, grant: Grant) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM grants WHERE id = ? AND scope = ?", (int(grant.id), grant.scope)
            )
            self._charge(
                db, grant.provider, grant.fingerprint, grant.model, grant.periods, -grant.tokens, -1
            )

        self._write(op)

    def settle(self, grant: Grant, tokens: int) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE grants SET tokens = ? WHERE id = ? AND scope = ?",
                (tokens, int(grant.id), grant.scope),
            )
            self._charge(
                db,
                grant.provider,
                grant.fingerprint,
                grant.model,
                grant.periods,
                tokens - grant.tokens,
                0,
            )

        self._write(op)

    def restamp(self, grant: Grant, clock: Clock | None) -> float | None:
        c = clock or EPOCH_CLOCK

        def op(db: sqlite3.Connection) -> float | None:
            now = c.monotonic()  # read under the write lock, as at admission
            key = (int(grant.id), grant.scope)
            # no UPDATE ... RETURNING: it needs SQLite 3.35, newer than some distributions ship
            db.execute("UPDATE grants SET ts = max(ts, ?) WHERE id = ? AND scope = ?", (now, *key))
            row = db.execute("SELECT ts FROM grants WHERE id = ? AND scope = ?", key).fetchone()
            return None if row is None else float(row[0])

        return self._tx(op)

    def penalize(self, scope: str, seconds: float, clock: Clock | None) -> None:
        c = clock or EPOCH_CLOCK
        self._write(
            lambda db: db.execute(
                "INSERT INTO pauses VALUES (?, ?) ON CONFLICT DO UPDATE SET "
                "until = max(until, excluded.until)",
                (scope, c.monotonic() + seconds),
            )
        )

    def snapshot(self, scope: str, clock: Clock | None, span: float) -> Snapshot:
        c = clock or EPOCH_CLOCK

        def op(db: sqlite3.Connection) -> Snapshot:
            now = c.monotonic()
            row = db.execute("SELECT until FROM pauses WHERE scope = ?", (scope,)).fetchone()
            entries = self._window(db, scope, now, span)
            return Snapshot(now, entries, float(row[0]) if row else float("-inf"))

        return self._tx(op, write=False)

    def record_budget(self, row: BudgetRow) -> None:
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO budgets VALUES (?, ?, ?, ?, ?)",
                (row.provider, row.fingerprint, row.model or "", row.kind, row.limit),
            )
        )

    def ledger_rows(self, provider: str | None = None, since: int = 0) -> list[LedgerRow]:
        q = (
            "SELECT provider, fingerprint, model, kind, start, tokens, requests FROM ledger "
            "WHERE start >= ?"
        )
        args: tuple[object, ...] = (since,)
        if provider is not None:
            q += " AND provider = ?"
            args += (provider,)
        rows = self._tx(lambda db: db.execute(q, args).fetchall(), write=False)
        return [LedgerRow(*r) for r in rows]

    def budget_rows(self, provider: str | None = None) -> list[BudgetRow]:
        q = "SELECT provider, fingerprint, model, kind, lim FROM budgets"
        args: tuple[object, ...] = ()
        if provider is not None:
            q += " WHERE provider = ?"
            args = (provider,)
        rows = self._tx(lambda db: db.execute(q, args).fetchall(), write=False)
        return [BudgetRow(p, f, m or None, k, lim) for p, f, m, k, lim in rows]
