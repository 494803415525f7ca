"""Which store a limiter uses, and the process-wide limiter for each (provider, key).

The backend comes from, in order: the ``limiter=`` argument, ``$CAMPUSLLM_LIMITER``, the
``[limiter]`` table of the config file (:func:`apply_config`), else ``local``:

* ``local`` (or ``local:/path/file.sqlite3``) — every process of this user on this machine;
* ``memory`` — this process only;
* ``redis://host:port/db`` (or ``rediss://``) — every machine using that server.

Example:
    >>> parse_backend("redis://127.0.0.1:6379/0")
    ('redis', 'redis://127.0.0.1:6379/0')
    >>> parse_backend("local:/tmp/x.sqlite3")
    ('local', '/tmp/x.sqlite3')
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..errors import ConfigError
from .base import Store
from .budget import Budget
from .core import RateLimiter
from .local import LocalStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from ..registry import RateLimits

__all__ = [
    "LIMITER_ENV",
    "BUDGET_ENV",
    "apply_config",
    "backend_spec",
    "budget_enforced",
    "configure",
    "get_store",
    "has_budgets",
    "key_fingerprint",
    "limiter_for",
    "parse_backend",
    "reset",
]

log = logging.getLogger("campusllm")

LIMITER_ENV = "CAMPUSLLM_LIMITER"
BUDGET_ENV = "CAMPUSLLM_BUDGET"
_OFF = ("0", "off", "false", "no")
_ON = ("1", "on", "true", "yes")


class _Config:
    def __init__(self) -> None:
        self.backend: str | None = None
        self.enforce_budget: bool | None = None
        self.budgets: list[tuple[str | None, Budget]] | None = None
        self.registry: object = None
        """(the file layer) The registry whose ``[limiter]`` table this holds."""


_config = _Config()
"""What :func:`configure` / :func:`apply_config` set in this process."""
_file = _Config()
"""The ``[limiter]`` table of the config file, as the process-wide registry loaded it."""
_lock = threading.Lock()
_stores: dict[str, Store] = {}
_limiters: dict[tuple[Any, ...], RateLimiter] = {}
_first_limits: dict[tuple[str, str, str], tuple[Any, ...]] = {}


def parse_backend(spec: str) -> tuple[str, str]:
    """``(kind, argument)`` of a backend spec, or :class:`ConfigError` naming the choices."""
    s = spec.strip()
    low = s.lower()
    if low == "memory":
        return "memory", ""
    if low == "local":
        return "local", ""
    if low.startswith("local:"):
        return "local", s[6:]
    if low.startswith(("redis://", "rediss://", "unix://")):
        return "redis", s
    raise ConfigError(
        f"Unknown rate-limiter backend {spec!r}.",
        hint="Use 'local' (this machine's processes share the budget; the default), 'memory' "
        "(this process only) or 'redis://host:port/db' (many machines).",
    )


def configure(
    *,
    backend: str | None = None,
    enforce_budget: bool | None = None,
    budgets: Sequence[tuple[str | None, Budget]] | None = None,
) -> None:
    """Set process-wide defaults (what the config file's ``[limiter]`` table sets).

    ``budgets`` pairs a provider name (``None``: every provider) with a :class:`Budget`.
    Limiters already made keep their settings.
    """
    with _lock:
        if backend is not None:
            parse_backend(backend)
            _config.backend = backend
        if enforce_budget is not None:
            _config.enforce_budget = bool(enforce_budget)
        if budgets is not None:
            _config.budgets = list(budgets)


def apply_config(table: Mapping[str, Any] | None, *, source: str = "config file") -> None:
    """Apply the ``[limiter]`` table of a campusllm config file.

    ``backend`` ("local", "memory", "redis://…"), ``enforce_budget`` (bool) and ``budgets``
    (a list of tables with ``tokens``, ``period`` = day/week/month, optional ``provider`` and
    ``model``)::

        [limiter]
        backend = "local"
        enforce_budget = true
        [[limiter.budgets]]
        provider = "sjtu"
        tokens = 2000000
        period = "day"

    The config file's own table is read when the registry loads it (nothing to call); what
    this function sets takes precedence over it.

    Example:
        >>> apply_config({})  # an empty table leaves everything as it was
        >>> apply_config({"backend": "carrier-pigeon"})
        Traceback (most recent call last):
        ...
        campusllm.errors.ConfigError: config file: Unknown rate-limiter backend 'carrier-pigeon'...
    """
    if not table:
        return
    backend, enforce, budgets = _parse_table(table, source)
    try:
        configure(backend=backend, enforce_budget=enforce, budgets=budgets)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from exc


def _parse_table(
    table: Mapping[str, Any], source: str
) -> tuple[str | None, bool | None, list[tuple[str | None, Budget]] | None]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [limiter] must be a table.")
    unknown = set(table) - {"backend", "enforce_budget", "budgets"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) in [limiter]: {', '.join(sorted(unknown))}.",
            hint="Known keys: backend, enforce_budget, budgets.",
        )
    backend = table.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise ConfigError(f"{source}: [limiter] backend must be a string.")
    enforce = table.get("enforce_budget")
    if enforce is not None and not isinstance(enforce, bool):
        raise ConfigError(f"{source}: [limiter] enforce_budget must be true or false.")
    budgets: list[tuple[str | None, Budget]] | None = None
    if "budgets" in table:
        raw = table["budgets"]
        if not isinstance(raw, list):
            raise ConfigError(f"{source}: [limiter] budgets must be a list of tables.")
        budgets = []
        for i, b in enumerate(raw):
            if not isinstance(b, Mapping) or set(b) - {"provider", "tokens", "period", "model"}:
                raise ConfigError(
                    f"{source}: [[limiter.budgets]] entry {i + 1} must have tokens and period "
                    "(and optionally provider, model), nothing else."
                )
            try:
                budget = Budget(b.get("tokens"), b.get("period", "week"), b.get("model"))  # type: ignore[arg-type]
            except ValueError as exc:
                raise ConfigError(f"{source}: [[limiter.budgets]] entry {i + 1}: {exc}.") from exc
            budgets.append((b.get("provider"), budget))
    if backend is not None:
        try:
            parse_backend(backend)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from exc
    return backend, enforce, budgets


def _file_config() -> _Config:
    """The config file's ``[limiter]`` table, read again whenever the registry is reloaded."""
    from ..registry import get_registry

    reg = get_registry()
    if _file.registry is reg:
        return _file
    table = reg.limiter_config
    parsed = _parse_table(table, reg.limiter_source or "config file") if table else None
    with _lock:
        _file.backend, _file.enforce_budget, _file.budgets = parsed or (None, None, None)
        _file.registry = reg
    return _file


def _configured_budgets() -> list[tuple[str | None, Budget]]:
    if _config.budgets is not None:
        return _config.budgets
    return _file_config().budgets or []


def has_budgets(provider: str) -> bool:
    """Whether :func:`configure` or the config file set a token budget for ``provider``."""
    return any(p is None or p == provider for p, _ in _configured_budgets())


def backend_spec(limiter: str | None = None) -> str:
    """The backend in force: argument, ``$CAMPUSLLM_LIMITER``, :func:`configure`, the config
    file's ``[limiter]`` table, else ``local``."""
    for candidate in (limiter, os.environ.get(LIMITER_ENV), _config.backend):
        if candidate and candidate.strip():
            return candidate.strip()
    file_backend = _file_config().backend
    if file_backend and file_backend.strip():
        return file_backend.strip()
    return "local"


def budget_enforced(explicit: bool | None = None) -> bool:
    """Whether budgets stop requests: argument, ``$CAMPUSLLM_BUDGET``, config, else yes."""
    if explicit is not None:
        return explicit
    env = os.environ.get(BUDGET_ENV, "").strip().lower()
    if env in _OFF:
        return False
    if env in _ON:
        return True
    if _config.enforce_budget is not None:
        return _config.enforce_budget
    from_file = _file_config().enforce_budget
    return from_file if from_file is not None else True


def get_store(spec: str | None = None) -> Store:
    """The process-wide store for a backend spec (one per spec; opened on first use)."""
    kind, arg = parse_backend(backend_spec(spec))
    ident = f"{kind}:{arg}"
    with _lock:
        store = _stores.get(ident)
        if store is None:
            if kind == "memory":
                store = MemoryStore()
            elif kind == "local":
                store = LocalStore(arg or None)
            else:
                from .redis_store import RedisStore

                store = RedisStore(arg)
            _stores[ident] = store
        return store


def key_fingerprint(provider: str, api_key: str) -> str:
    """16 hex digits identifying (provider, key); the key cannot be recovered from them.

    Example:
        >>> len(key_fingerprint("sjtu", "sk-example"))
        16
    """
    return hashlib.sha256(f"{provider}\x00{api_key}".encode()).hexdigest()[:16]


def limiter_for(
    provider: str,
    api_key: str,
    limits: RateLimits,
    *,
    limiter: str | None = None,
    clock: Clock | None = None,
    budgets: Sequence[Budget] = (),
    enforce_budget: bool | None = None,
) -> RateLimiter:
    """The process-wide limiter for this provider, key and limits.

    Every limiter for one (provider, key) on one backend shares one window, pause and
    ledger, in this process and — with ``local`` or ``redis`` — in every other. Limiters
    whose ``RateLimits`` differ still count each other's requests, each admitting by its own
    limits: the quota is never doubled, and a tighter limiter (a background job kept to 5 of
    10 requests a minute) leaves the rest to a looser one. The first such difference per key
    is logged as a warning, since it is usually a mistake.

    Budgets checked: ``limits.weekly_tokens`` per week, budgets configured for the provider
    (:func:`configure` / the config file) and ``budgets``.

    The key is hashed: neither the table nor any store ever holds the secret itself.

    Example:
        >>> from campusllm.registry import RateLimits
        >>> a = limiter_for("ecnu", "sk-one", RateLimits(rpm=5), limiter="memory")
        >>> a is limiter_for("ecnu", "sk-one", RateLimits(rpm=5), limiter="memory")
        True
    """
    spec = backend_spec(limiter)
    store = get_store(spec)
    fp = key_fingerprint(provider, api_key)
    all_budgets: list[Budget] = []
    if limits.weekly_tokens:
        all_budgets.append(Budget(int(limits.weekly_tokens), "week"))
    all_budgets += [b for p, b in _configured_budgets() if p is None or p == provider]
    all_budgets += list(budgets)
    enforce = budget_enforced(enforce_budget)
    shape = (limits.rpm, limits.tpm, float(limits.window_s))
    ident = (spec, provider, fp, *shape, tuple(all_budgets), enforce, id(clock) if clock else 0)
    with _lock:
        lim = _limiters.get(ident)
        if lim is not None:
            return lim
        first = _first_limits.setdefault((spec, provider, fp), shape)
        if first != shape:
            log.warning(
                "campusllm: %s: two limiters on one key with different limits "
                "(rpm=%s tpm=%s window=%gs and rpm=%s tpm=%s window=%gs); they share one "
                "budget, each admitting by its own limits. Pass the same rate_limits everywhere "
                "unless one of them is meant to take less.",
                provider,
                *first,
                *shape,
            )
            _first_limits[(spec, provider, fp)] = shape  # warn once per change, not per call
        lim = _limiters[ident] = RateLimiter(
            limits.rpm,
            limits.tpm,
            limits.window_s,
            clock=clock,
            store=store,
            scope=f"{provider}:{fp}",
            provider=provider,
            key_fingerprint=fp,
            budgets=all_budgets,
            enforce_budget=enforce,
        )
        return lim


def reset() -> None:
    """Forget every limiter and close every store (tests; after changing the backend)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
        _limiters.clear()
        _first_limits.clear()
    for s in stores:
        s.close()
