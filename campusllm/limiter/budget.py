"""Token budgets over calendar periods: the weekly quota of a key, or one you set.

SJTU documents 1,000,000,000 tokens per week per key (「本地大模型API使用文档」: 每周token总量);
a class may want a daily budget per student key. The ledger counts tokens per (provider, key
fingerprint, model, period) in the limiter's store, so every process and machine sharing the
store sees one total. At 80 % of a budget the limiter warns once; at 100 % it raises
:class:`~campusllm.errors.BudgetExceededError` *before* sending — unless enforcement is off
(``CAMPUSLLM_BUDGET=off``, ``enforce_budget=False`` or ``[limiter] enforce_budget = false`` in the
config file), which leaves the decision to the gateway.

Periods are calendar periods in China Standard Time (UTC+8), the campus gateways' time zone:
a day starts at 00:00, a week on Monday 00:00, a month on its first day. The gateways do not
document when their own week starts, so the reset time shown is this ledger's.

Example:
    >>> start, end = period_bounds("week", 1_767_225_600.0)  # 2026-01-01 08:00 UTC+8, a Thursday
    >>> (end - start) / 86400
    7.0
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["Budget", "PERIODS", "TZ", "period_bounds", "format_reset", "WARN_AT"]

TZ = dt.timezone(dt.timedelta(hours=8), "UTC+8")
PERIODS = ("day", "week", "month")
WARN_AT = 0.8
"""Fraction of a budget at which the limiter warns (once per period and process)."""


@dataclass(frozen=True)
class Budget:
    """At most ``tokens`` per ``period`` on one key (all models, or only ``model``).

    Example:
        >>> Budget(2_000_000, "day")
        Budget(tokens=2000000, period='day', model=None)
    """

    tokens: int
    period: str = "week"
    model: str | None = None

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"budget period must be one of {PERIODS}, not {self.period!r}")
        if not isinstance(self.tokens, int) or isinstance(self.tokens, bool) or self.tokens <= 0:
            raise ValueError(f"budget tokens must be a positive integer, not {self.tokens!r}")


def period_bounds(kind: str, epoch: float) -> tuple[int, int]:
    """Start and end (epoch seconds) of the ``kind`` period holding ``epoch``.

    Example:
        >>> period_bounds("day", 0.0)  # 1970-01-01 08:00 UTC+8
        (-28800, 57600)
    """
    t = dt.datetime.fromtimestamp(epoch, TZ)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        start, end = day, day + dt.timedelta(days=1)
    elif kind == "week":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif kind == "month":
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {kind!r}; use one of {PERIODS}")
    return int(start.timestamp()), int(end.timestamp())


def format_reset(epoch: float) -> str:
    """A reset instant as the user reads it: ``2026-12-07 00:00 UTC+8``.

    Example:
        >>> format_reset(57600)
        '1970-01-02 00:00 UTC+8'
    """
    return dt.datetime.fromtimestamp(epoch, TZ).strftime("%Y-%m-%d %H:%M UTC+8")
