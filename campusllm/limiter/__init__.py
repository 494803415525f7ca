"""Client-side rate limiting and token budgets, shared per (provider, key) across processes.

Campus keys are tiny (SJTU: 10 requests/min, 100,000 tokens/min, 1,000,000,000 tokens/week
per key) and users run several processes on one key. Every limiter for one (provider, key)
shares one sliding window (RPM + TPM), one gateway-requested pause and one token ledger,
kept by a *store* chosen with ``limiter=``, ``$CAMPUSLLM_LIMITER`` or the config file:

* ``local`` (default) — SQLite in WAL mode under the user cache dir: every process of this
  user on this machine, no server (:mod:`campusllm.limiter.local` says why not a library);
* ``redis://host:port/db`` — a Redis server, atomically, for many machines (``campusllm[redis]``);
* ``memory`` — this process only.

TPM is charged as gateways count it — input plus expected output at admission
(:func:`request_charge`), corrected by :meth:`RateLimiter.settle` — and weekly/daily budgets
raise :class:`~campusllm.errors.BudgetExceededError` before sending. Long waits are logged at
INFO and handed to wait listeners (:func:`add_wait_listener`).

Example:
    >>> from campusllm.registry import RateLimits
    >>> lim = limiter_for("sjtu", "sk-example", RateLimits(rpm=10), limiter="memory")
    >>> _ = lim.acquire(tokens=120)  # returns at once: the window is empty
"""

from __future__ import annotations

from .backends import (
    apply_config,
    backend_spec,
    configure,
    get_store,
    key_fingerprint,
    limiter_for,
    reset,
)
from .base import Grant, Store
from .budget import Budget
from .charge import DEFAULT_OUTPUT_TOKENS, expected_output_tokens, request_charge, usage_tokens
from .core import RateLimiter
from .events import NOTICE_S, WaitEvent, add_wait_listener, remove_wait_listener
from .report import ALL_MODELS, UsageRow, format_usage, usage

__all__ = [
    "ALL_MODELS",
    "DEFAULT_OUTPUT_TOKENS",
    "NOTICE_S",
    "Budget",
    "Grant",
    "RateLimiter",
    "Store",
    "UsageRow",
    "WaitEvent",
    "add_wait_listener",
    "apply_config",
    "backend_spec",
    "configure",
    "expected_output_tokens",
    "format_usage",
    "get_store",
    "key_fingerprint",
    "limiter_for",
    "remove_wait_listener",
    "request_charge",
    "reset",
    "usage",
    "usage_tokens",
]
