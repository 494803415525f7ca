"""Token usage per key and model, from the ledger every process and machine writes.

:func:`usage` is the Python API; :func:`format_usage` prints it as ``campusllm usage
[PROVIDER]`` does.

Example:
    >>> from campusllm.limiter.memory import MemoryStore
    >>> rows = usage(store=MemoryStore())
    >>> print(format_usage(rows))
    No token usage recorded yet.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .backends import get_store
from .base import Store
from .budget import PERIODS, format_reset, period_bounds

__all__ = ["UsageRow", "usage", "format_usage", "ALL_MODELS"]

ALL_MODELS = "*"
"""``model`` of a row that totals every model of the key."""


@dataclass(frozen=True)
class UsageRow:
    """Tokens one key (and model, or :data:`ALL_MODELS`) used in the current period.

    Example:
        >>> UsageRow("sjtu", "0123", "*", "week", 400, 2, 0.0, limit=1000).remaining
        600
    """

    provider: str
    key_fingerprint: str
    model: str
    period: str
    used: int
    requests: int
    reset_at: float
    limit: int | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


def usage(
    provider: str | None = None,
    *,
    limiter: str | None = None,
    store: Store | None = None,
    periods: Sequence[str] = ("day", "week"),
    now: float | None = None,
) -> list[UsageRow]:
    """Used / remaining / reset per key fingerprint and model in the current day and week.

    Reads the backend in force (``limiter=``, ``$CAMPUSLLM_LIMITER``, the config file, else
    ``local``), so it covers every process that shares it. Periods that carry a budget are
    always included; a row with ``model == "*"`` totals a key's models when there is more
    than one or a budget covers them all.
    """
    st = store if store is not None else get_store(limiter)
    epoch = time.time() if now is None else now
    budgets = st.budget_rows(provider)
    kinds = [k for k in PERIODS if k in periods or any(b.kind == k for b in budgets)]
    bounds = {k: period_bounds(k, epoch) for k in kinds}
    current = {(k, b[0]) for k, b in bounds.items()}
    since = min((b[0] for b in bounds.values()), default=0)
    ledger = [r for r in st.ledger_rows(provider, since) if (r.kind, r.start) in current]
    limit_of = {(b.provider, b.fingerprint, b.model, b.kind): b.limit for b in budgets}
    per_key: dict[tuple[str, str, str], list[tuple[str, int, int]]] = defaultdict(list)
    for r in ledger:
        per_key[(r.provider, r.fingerprint, r.kind)].append((r.model, r.tokens, r.requests))
    for b in budgets:  # a budget with nothing used yet still shows
        if b.kind in bounds:
            per_key.setdefault((b.provider, b.fingerprint, b.kind), [])
    rows: list[UsageRow] = []
    for (p, fp, kind), models in sorted(per_key.items(), key=lambda kv: kv[0]):
        reset = float(bounds[kind][1])
        for model, tokens, reqs in sorted(models):
            lim = limit_of.get((p, fp, model, kind))
            rows.append(UsageRow(p, fp, model or "?", kind, tokens, reqs, reset, lim))
        key_limit = limit_of.get((p, fp, None, kind))
        if len(models) != 1 or key_limit is not None:
            rows.append(
                UsageRow(
                    p,
                    fp,
                    ALL_MODELS,
                    kind,
                    sum(t for _, t, _ in models),
                    sum(n for _, _, n in models),
                    reset,
                    key_limit,
                )
            )
    order = {k: i for i, k in enumerate(PERIODS)}
    rows.sort(
        key=lambda r: (r.provider, r.key_fingerprint, order[r.period], r.model == "*", r.model)
    )
    return rows


def format_usage(rows: Sequence[UsageRow]) -> str:
    """A table of :func:`usage` rows for a terminal.

    Example:
        >>> row = UsageRow("sjtu", "0123456789abcdef", "*", "week", 1200, 3, 0.0, 10**9)
        >>> header, line = format_usage([row]).splitlines()
        >>> header.split()
        ['provider', 'key', 'model', 'period', 'used', 'requests', 'limit', 'remaining', 'resets']
        >>> line.split()[4:8]
        ['week', '1,200', '3', '1,000,000,000']
    """
    if not rows:
        return "No token usage recorded yet."
    head = (
        "provider",
        "key",
        "model",
        "period",
        "used",
        "requests",
        "limit",
        "remaining",
        "resets",
    )
    body = [
        (
            r.provider,
            r.key_fingerprint,
            "(all models)" if r.model == ALL_MODELS else r.model,
            r.period,
            f"{r.used:,}",
            f"{r.requests:,}",
            "—" if r.limit is None else f"{r.limit:,}",
            "—" if r.remaining is None else f"{r.remaining:,}",
            format_reset(r.reset_at),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    )
