"""The ``redis://host:port/db`` store: many machines share one budget through a Redis server.

For a lab's job array or a Ray/Slurm job on one key. Every operation is one server-side Lua
script, so admission is atomic across all clients however many machines they run on. Windows
are measured on the Redis server's own clock (``TIME``) unless a clock is injected, so the
machines' clocks need not agree. Each grant is one sorted-set member ``"<id>:<tokens>"``
scored by its admission time (or by when it was sent, if that came late): a refund removes
it, a settle re-adds it with the real tokens, and a crashed client's grants simply age out of
the window. Keys of one (provider, key fingerprint) share a hash tag, so the scripts also run
on Redis Cluster. No key is ever sent to Redis, only its fingerprint.

Needs the optional extra: ``pip install 'campusllm[redis]'``.

Example:
    >>> store = RedisStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ..clock import Clock
from ..errors import CampusLLMError, ConfigError, UnreachableError
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

__all__ = ["RedisStore", "safe_url"]

RETAIN_S = 3600.0
LEDGER_KEEP_S = 40 * 86400  # ledger rows outlive their period by this long (for `usage`)

# Shared preamble: `now` from ARGV[1] or the server clock; numbers printed without loss.
_NOW = """
local function num(x) return string.format('%.17g', x) end
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
"""

_ADMIT = (
    _NOW
    + """
-- KEYS: 1 grants zset, 2 pause, 3 id counter, then one ledger-token hash per budget,
-- then (token hash, request hash) per ledger slot.
-- ARGV: 1 now, 2 tokens, 3 rpm, 4 tpm, 5 span, 6 retain, 7 model, 8 dry, 9 n budgets,
-- then (model selector, limit, enforce) per budget, then the ledger TTL per slot.
local tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local span = tonumber(ARGV[5])
local retain = tonumber(ARGV[6])
local model = ARGV[7]
local dry = ARGV[8] == '1'
local nb = tonumber(ARGV[9])
local pause = redis.call('GET', KEYS[2])
if pause and now < tonumber(pause) then
  return {'wait', num(tonumber(pause) - now), 'retry_after'}
end
if not dry then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now - retain))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. num(now + retain), '+inf')
end
local used = {}
if not dry then
  for i = 1, nb do
    local a = 9 + (i - 1) * 3
    local sel, limit, enforce = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
    local u = 0
    if sel == '*' then
      for _, v in ipairs(redis.call('HVALS', KEYS[3 + i])) do u = u + tonumber(v) end
    else
      u = tonumber(redis.call('HGET', KEYS[3 + i], string.sub(sel, 2)) or '0')
    end
    if enforce and u >= limit then return {'over', tostring(i - 1), tostring(u)} end
    used[#used + 1] = tostring(u)
  end
end
local horizon = now - span
local best, reason = 0, ''
if tpm > 0 then
  local win = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. num(horizon), '+inf', 'WITHSCORES')
  local n = #win / 2
  local ts, tok, total = {}, {}, 0
  for i = 1, n do
    ts[i] = tonumber(win[2 * i])
    tok[i] = tonumber(string.match(win[2 * i - 1], ':(%d+)$'))
    total = total + tok[i]
  end
  if rpm > 0 and n >= rpm then best, reason = ts[n - rpm + 1] - horizon, 'rpm' end
  if n > 0 and total + tokens > tpm then
    local freed, untl = 0, ts[n]
    for i = 1, n do
      freed = freed + tok[i]
      if total - freed + tokens <= tpm then untl = ts[i] break end
    end
    if untl - horizon > best then best, reason = untl - horizon, 'tpm' end
  end
elseif rpm > 0 then
  local n = redis.call('ZCOUNT', KEYS[1], '(' .. num(horizon), '+inf')
  if n >= rpm then
    local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. num(horizon), '+inf',
                         'WITHSCORES', 'LIMIT', n - rpm, 1)
    best, reason = tonumber(r[2]) - horizon, 'rpm'
  end
end
if best > 0 then return {'wait', num(best), reason} end
if dry then return {'ok', '', num(now)} end
local id = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], num(now), id .. ':' .. tokens)
redis.call('PEXPIRE', KEYS[1], math.ceil(retain * 1000) + 60000)
local first = 4 + nb
local s = 0
for k = first, #KEYS, 2 do
  s = s + 1
  local ttl = tonumber(ARGV[9 + nb * 3 + s])
  redis.call('HINCRBY', KEYS[k], model, tokens)
  redis.call('HINCRBY', KEYS[k + 1], model, 1)
  redis.call('EXPIRE', KEYS[k], ttl)
  redis.call('EXPIRE', KEYS[k + 1], ttl)
end
local out = {'ok', tostring(id), num(now)}
for _, u in ipairs(used) do out[#out + 1] = u end
return out
"""
)

_REFUND = """
-- KEYS: 1 grants zset, then (token hash, request hash) per ledger slot
-- ARGV: 1 member, 2 model, 3 tokens
redis.call('ZREM', KEYS[1], ARGV[1])
for k = 2, #KEYS, 2 do
  redis.call('HINCRBY', KEYS[k], ARGV[2], 0 - tonumber(ARGV[3]))  -- never "-0"
  redis.call('HINCRBY', KEYS[k + 1], ARGV[2], -1)
end
return 1
"""

_SETTLE = """
-- KEYS: 1 grants zset, then one token hash per ledger slot
-- ARGV: 1 old member, 2 new member, 3 model, 4 token delta
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], score, ARGV[2])
end
for k = 2, #KEYS do redis.call('HINCRBY', KEYS[k], ARGV[3], tonumber(ARGV[4])) end
return 1
"""

_RESTAMP = (
    _NOW
    + """
-- KEYS: 1 grants zset; ARGV: 1 now, 2 member
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score then return '' end
local ts = math.max(tonumber(score), now)
redis.call('ZADD', KEYS[1], num(ts), ARGV[2])
return num(ts)
"""
)

_PENALIZE = (
    _NOW
    + """
-- KEYS: 1 pause; ARGV: 1 now, 2 seconds
local untl = now + tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if (not cur) or tonumber(cur) < untl then
  redis.call('SET', KEYS[1], num(untl), 'PX', math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
end
return 1
"""
)

_SNAPSHOT = (
    _NOW
    + """
-- KEYS: 1 grants zset, 2 pause; ARGV: 1 now, 2 span
local win = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. num(now - tonumber(ARGV[2])), '+inf',
                       'WITHSCORES')
local out = {num(now), redis.call('GET', KEYS[2]) or ''}
for _, v in ipairs(win) do out[#out + 1] = v end
return out
"""
)


def safe_url(url: str) -> str:
    """The URL without its password, for messages.

    Example:
        >>> safe_url("redis://:s3cret@10.0.0.5:6379/2")
        'redis://10.0.0.5:6379/2'
    """
    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    netloc = f"{host}:{p.port}" if p.port else host
    return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ConfigError(
            "The redis:// limiter needs the redis client library, which is not installed.",
            hint="Install the extra: pip install 'campusllm[redis]' (or uv add 'campusllm[redis]'),"
            " or use CAMPUSLLM_LIMITER=local (shared by this machine's processes, no server).",
        ) from exc
    return redis


class RedisStore(Store):
    """Windows, pauses and ledger on a Redis server shared by many machines.

    Example:
        >>> RedisStore("redis://127.0.0.1:6379/0").kind  # doctest: +SKIP
        'redis'
    """

    kind = "redis"
    shared = True

    def __init__(self, url: str, *, client: Any = None) -> None:
        redis = _import_redis()
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._conn_errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
        )
        self.client = client or redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        self._admit = self.client.register_script(_ADMIT)
        self._refund = self.client.register_script(_REFUND)
        self._settle = self.client.register_script(_SETTLE)
        self._restamp = self.client.register_script(_RESTAMP)
        self._penalize = self.client.register_script(_PENALIZE)
        self._snapshot = self.client.register_script(_SNAPSHOT)

    def __repr__(self) -> str:
        return f"RedisStore({safe_url(self.url)!r})"

    def default_clock(self) -> Clock | None:
        return None  # the server's clock: machines need not agree on the time

    def close(self) -> None:
        self.client.close()

    # -- keys --------------------------------------------------------------------------

    @staticmethod
    def _k(scope: str, what: str) -> str:
        return f"campusllm:{{{scope}}}:{what}"

    def _ledger_keys(self, scope: str, provider: str, fp: str, kind: str, start: int) -> list[str]:
        tail = f"{provider}:{fp}:{kind}:{start}"
        return [self._k(scope, "lt:" + tail), self._k(scope, "lr:" + tail)]

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except self._conn_errors as exc:
            raise UnreachableError(
                f"Cannot reach the rate-limit server {safe_url(self.url)} ({type(exc).__name__}).",
                hint="Start it or check the address in CAMPUSLLM_LIMITER; "
                "CAMPUSLLM_LIMITER=local shares the budget between this machine's processes "
                "without a server.",
            ) from exc
        except self._errors as exc:
            raise CampusLLMError(
                f"The rate-limit server {safe_url(self.url)} failed: {type(exc).__name__}: {exc}",
                hint="Check that it is Redis 6.2 or newer and that scripts are allowed.",
            ) from exc

    # -- operations --------------------------------------------------------------------

    def admit(self, req: AdmitRequest) -> Admitted | Wait | OverBudget:
        s = req.scope
        keys = [self._k(s, "g"), self._k(s, "pause"), self._k(s, "seq")]
        args: list[Any] = [
            "" if req.clock is None else repr(float(req.clock.monotonic())),
            req.tokens,
            req.rpm or 0,
            req.tpm or 0,
            repr(float(req.span)),
            repr(max(RETAIN_S, float(req.span))),
            req.model,
            "1" if req.dry_run else "0",
            len(req.budgets),
        ]
        for b in req.budgets:
            keys.append(self._ledger_keys(s, req.provider, req.fingerprint, b.kind, b.start)[0])
            args += ["*" if b.model is None else "=" + b.model, b.limit, "1" if b.enforce else "0"]
        for kind, start in req.periods:
            keys += self._ledger_keys(s, req.provider, req.fingerprint, kind, start)
            args.append(_ledger_ttl(kind))
        out = [
            x.decode() if isinstance(x, bytes) else str(x)
            for x in self._call(self._admit, keys, args)
        ]
        if out[0] == "wait":
            return Wait(float(out[1]), out[2])
        if out[0] == "over":
            return OverBudget(int(out[1]), int(out[2]))
        return Admitted(out[1], float(out[2]), tuple(int(u) for u in out[3:]))

    def refund(self, grant: Grant) -> None:
        keys = [self._k(grant.scope, "g")]
        for kind, start in grant.periods:
            keys += self._ledger_keys(grant.scope, grant.provider, grant.fingerprint, kind, start)
        args = [grant_member(grant), grant.model, grant.tokens]
        self._call(self._refund, keys, args)

    def settle(self, grant: Grant, tokens: int) -> None:
        keys = [self._k(grant.scope, "g")]
        for kind, start in grant.periods:
            keys.append(
                self._ledger_keys(grant.scope, grant.provider, grant.fingerprint, kind, start)[0]
            )
        args = [
            grant_member(grant),
            f"{grant.id}:{tokens}",
            grant.model,
            tokens - grant.tokens,
        ]
        self._call(self._settle, keys, args)

    def restamp(self, grant: Grant, clock: Clock | None) -> float | None:
        now = "" if clock is None else repr(float(clock.monotonic()))
        out = self._call(self._restamp, [self._k(grant.scope, "g")], [now, grant_member(grant)])
        ts = out.decode() if isinstance(out, bytes) else str(out)
        return float(ts) if ts else None

    def penalize(self, scope: str, seconds: float, clock: Clock | None) -> None:
        args = ["" if clock is None else repr(float(clock.monotonic())), repr(float(seconds))]
        self._call(self._penalize, [self._k(scope, "pause")], args)

    def snapshot(self, scope: str, clock: Clock | None, span: float) -> Snapshot:
        keys = [self._k(scope, "g"), self._k(scope, "pause")]
        args = ["" if clock is None else repr(float(clock.monotonic())), repr(float(span))]
        out = [
            x.decode() if isinstance(x, bytes) else str(x)
            for x in self._call(self._snapshot, keys, args)
        ]
        entries = [
            (float(out[i + 1]), int(out[i].rsplit(":", 1)[1])) for i in range(2, len(out), 2)
        ]
        return Snapshot(float(out[0]), entries, float(out[1]) if out[1] else float("-inf"))

    def record_budget(self, row: BudgetRow) -> None:
        field = "\x1f".join([row.provider, row.fingerprint, row.model or "", row.kind])
        try:
            self.client.hset("campusllm:budgets", field, row.limit)
        except self._errors as exc:
            raise UnreachableError(
                f"Cannot record a budget on {safe_url(self.url)} ({type(exc).__name__}).",
                hint="Start the server or check CAMPUSLLM_LIMITER.",
            ) from exc

    def ledger_rows(self, provider: str | None = None, since: int = 0) -> list[LedgerRow]:
        rows: list[LedgerRow] = []
        for key in self.client.scan_iter(match="campusllm:{*}:lt:*", count=500):
            k = key.decode() if isinstance(key, bytes) else key
            p, fp, kind, start = k.split("}:lt:", 1)[1].split(":")
            if (provider is not None and p != provider) or int(start) < since:
                continue
            toks = self.client.hgetall(k)
            reqs = self.client.hgetall(k.replace("}:lt:", "}:lr:", 1))
            for m, v in toks.items():
                model = m.decode() if isinstance(m, bytes) else m
                rows.append(LedgerRow(p, fp, model, kind, int(start), int(v), int(reqs.get(m, 0))))
        return rows

    def budget_rows(self, provider: str | None = None) -> list[BudgetRow]:
        out: list[BudgetRow] = []
        for f, v in self.client.hgetall("campusllm:budgets").items():
            p, fp, model, kind = (f.decode() if isinstance(f, bytes) else f).split("\x1f")
            if provider is None or p == provider:
                out.append(BudgetRow(p, fp, model or None, kind, int(v)))
        return out


def grant_member(grant: Grant) -> str:
    """The grant's member of the window's sorted set."""
    return f"{grant.id}:{grant.tokens}"


def _ledger_ttl(kind: str) -> int:
    days = {"day": 1, "week": 7, "month": 31}.get(kind, 31)
    return int(days * 86400 + LEDGER_KEEP_S)
