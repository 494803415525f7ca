"""The limiter's policy on every store, in one process, on a virtual clock.

Each test runs against ``memory``, ``local`` (SQLite in a temp dir) and ``redis`` (a real
redis-server on 127.0.0.1), with a :class:`~campusllm.clock.ManualClock`, so windows of a
minute take no time and the outcome does not depend on how busy the machine is.
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import redis_url  # noqa: F401  (session fixture: a real redis-server)

from campusllm.clock import ManualClock
from campusllm.errors import BudgetExceededError, CampusLLMError, ConfigError, RateLimitError
from campusllm.limiter import (
    Budget,
    RateLimiter,
    WaitEvent,
    add_wait_listener,
    apply_config,
    backend_spec,
    expected_output_tokens,
    format_usage,
    get_store,
    key_fingerprint,
    limiter_for,
    request_charge,
    usage,
    usage_tokens,
)
from campusllm.limiter import events as limiter_events
from campusllm.limiter import reset as reset_limiters
from campusllm.limiter.base import Store
from campusllm.limiter.local import LocalStore, user_cache_dir
from campusllm.limiter.memory import MemoryStore
from campusllm.registry import RateLimits

START = 1_767_225_600.0  # 2026-01-01 08:00 UTC+8, a Thursday


@pytest.fixture(params=["memory", "local", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "local":
        s = LocalStore(tmp_path / "limiter.sqlite3")
        yield s
        s.close()
    else:
        from campusllm.limiter.redis_store import RedisStore

        url = request.getfixturevalue("redis_url")
        s = RedisStore(url)
        s.client.flushdb()
        yield s
        s.close()


@pytest.fixture(autouse=True)
def _fresh_limiters() -> Iterator[None]:
    yield
    from campusllm.limiter import backends as select

    select._config.budgets = None
    select._config.backend = None
    select._config.enforce_budget = None
    reset_limiters()


def make(store: Store, clock: ManualClock, **kw: Any) -> RateLimiter:
    kw.setdefault("provider", "sjtu")
    kw.setdefault("key_fingerprint", uuid.uuid4().hex[:16])
    kw.setdefault("scope", f"sjtu:{kw['key_fingerprint']}")
    kw.setdefault("epoch", lambda: START + clock.monotonic())
    rpm, tpm, window = kw.pop("rpm", None), kw.pop("tpm", None), kw.pop("window_s", 60.0)
    return RateLimiter(rpm, tpm, window, clock=clock, store=store, **kw)


# ----------------------------------------------------------------------------- the window


def test_rpm_window_is_exact_and_waits_the_right_time(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=3, window_s=60)
    times = []
    for i in range(7):
        lim.acquire()
        times.append(clock.monotonic())
        if i == 2:
            assert lim.try_acquire() is None  # the window is full
    # 3 at once, 3 more when the first leaves the window (60 s + a 0.25 s margin), then 1
    assert times[:3] == [0.0, 0.0, 0.0]
    assert all(60.25 <= t < 60.3 for t in times[3:6])
    assert 120.5 <= times[6] < 120.6


def test_tpm_counts_tokens_and_an_oversized_request_goes_alone(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, tpm=100, window_s=60)
    lim.acquire(60)
    lim.acquire(40)
    assert clock.monotonic() == 0.0
    lim.acquire(1)  # 101 > 100: waits for the first to leave
    assert 60.25 <= clock.monotonic() < 60.3
    t = clock.monotonic()
    lim.acquire(500)  # bigger than tpm: admitted once the window is empty
    assert clock.monotonic() >= t + 60.25


def test_settle_corrects_the_estimate_in_window_and_ledger(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, tpm=1000, window_s=60)
    g = lim.acquire(900, model="deepseek-v3.2")  # input + max_tokens
    assert lim.time_until_free(200) > 0
    lim.settle(g, 150)  # the gateway counted 150
    assert lim.time_until_free(800) == 0.0
    assert lim.time_until_free(851) > 0
    week = [r for r in store.ledger_rows("sjtu") if r.kind == "week"]
    assert [(r.model, r.tokens, r.requests) for r in week] == [("deepseek-v3.2", 150, 1)]
    lim.settle(g, 1200)  # longer than estimated: the window holds what the gateway counted
    assert lim.time_until_free(0) == pytest.approx(60.25)  # over tpm: nothing fits until it leaves


def test_a_late_send_dates_the_slot_from_the_send(store: Store) -> None:
    # The gateway counts a request from its arrival. A slot dated at admission would leave
    # our window 5 s before the gateway's, and the request sent then would meet a 429.
    clock = ManualClock()
    lim = make(store, clock, rpm=2, window_s=60)
    a = lim.acquire()
    clock.advance(5.0)  # a burst opening its connections, a machine under load
    lim.sent(a)
    assert a.ts == 5.0
    lim.sent(lim.acquire())  # sent at once: nothing to move
    clock.advance(55.3)  # 60.3: a slot dated 0.0 would have left at 60.25
    assert lim.try_acquire() is None
    assert lim.time_until_free() == pytest.approx(5.0 + 60.25 - 60.3)


def test_a_prompt_send_keeps_its_admission_stamp(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=1, window_s=60)
    g = lim.acquire()
    clock.advance(0.004)  # sent within RESTAMP_AFTER_S: no store write at all
    lim.sent(g)
    assert g.ts == 0.0
    assert store.snapshot(lim.scope, clock, 60.25).entries[0][0] == 0.0
    clock.advance(60.25)  # 60.254: the slot left at 60.25
    assert lim.try_acquire() is not None


def test_a_re_dated_slot_leaves_the_window_after_those_admitted_before_it(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=2, window_s=60)
    a = lim.acquire()
    clock.advance(1.0)
    lim.sent(lim.acquire())  # b: admitted and sent at 1.0
    clock.advance(1.0)
    lim.sent(a)  # a went out at 2.0, after b
    clock.advance(59.3)  # 61.3: b (1.0) has left, a (2.0) has not
    assert lim.try_acquire() is not None
    assert lim.try_acquire() is None
    assert lim.time_until_free() == pytest.approx(2.0 + 60.25 - 61.3)


def test_a_store_failing_at_send_time_does_not_fail_the_request_already_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The request is on the wire when sent() runs: raising there would make the transport
    # retry, i.e. send it a second time.
    class Broken(MemoryStore):
        def restamp(self, grant: Any, clock: Any) -> float | None:
            raise CampusLLMError("the shared rate-limit state failed: disk I/O error")

    clock = ManualClock()
    lim = RateLimiter(rpm=1, window_s=60, clock=clock, store=Broken())
    g = lim.acquire()
    clock.advance(1.0)
    lim.sent(g)
    assert g.ts == 0.0
    assert "kept its admission time" in caplog.text and "disk I/O error" in caplog.text


def test_a_refunded_grant_is_not_put_back_by_its_send(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=1, window_s=60)
    g = lim.acquire()
    lim.refund(g)
    clock.advance(1.0)
    lim.sent(g)
    assert lim.try_acquire() is not None


def test_refund_gives_the_slot_and_the_tokens_back_once(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=2, window_s=60)
    a = lim.acquire(10, model="m")
    lim.acquire(10, model="m")
    assert lim.try_acquire() is None
    lim.refund(a)
    lim.refund(a)  # a second refund of the same grant changes nothing
    assert lim.try_acquire(10, model="m") is not None
    assert lim.try_acquire() is None
    week = [r for r in store.ledger_rows("sjtu") if r.kind == "week"]
    assert [(r.tokens, r.requests) for r in week] == [(20, 2)]


def test_penalize_pauses_everyone_on_the_key(store: Store) -> None:
    clock = ManualClock()
    fp = uuid.uuid4().hex[:16]
    a = make(store, clock, rpm=100, key_fingerprint=fp)
    b = make(store, clock, rpm=50, key_fingerprint=fp)  # another limiter, same key
    a.penalize(30)
    assert 29.9 < b.time_until_free() <= 30.0
    b.acquire()
    assert 30.0 <= clock.monotonic() < 30.01


def test_a_429_without_retry_after_waits_out_the_whole_window(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=10, window_s=60)
    g = lim.acquire()
    assert lim.note_429(g, None) == pytest.approx(60.25)
    assert lim.time_until_free() == pytest.approx(60.25)
    assert lim.note_429(None, 5.0) == 5.0  # a Retry-After is taken as given
    assert lim.window_s == 60.0


def test_eta_and_time_until_clear_follow_the_window(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=10, window_s=60)
    for _ in range(4):
        lim.acquire()
    assert lim.time_until_clear() == pytest.approx(60.25)
    # 6 fit now, then 10 per window: 26 more need two more windows
    assert lim.eta(26) == pytest.approx(2 * 60.25)
    assert lim.eta(6) == 0.0


def test_limiters_with_different_limits_share_one_budget(store: Store) -> None:
    clock = ManualClock()
    fp = uuid.uuid4().hex[:16]
    loose = make(store, clock, rpm=10, key_fingerprint=fp)
    tight = make(store, clock, rpm=4, key_fingerprint=fp)
    got_tight = [tight.try_acquire() for _ in range(10)]
    got_loose = [loose.try_acquire() for _ in range(10)]
    # the quota is never doubled: 10 in all, of which the tight one takes at most 4
    assert sum(g is not None for g in got_tight) == 4
    assert sum(g is not None for g in got_loose) == 6


# ----------------------------------------------------------------------------- budgets


def test_budget_warns_once_at_80_percent_then_stops_before_sending(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    lim = make(store, clock, budgets=[Budget(1000, "week")])
    caplog.set_level(logging.WARNING, logger="campusllm")
    for _ in range(7):
        lim.acquire(100, model="m")
    assert not caplog.records
    lim.acquire(100, model="m")  # 800 of 1000
    lim.acquire(100, model="m")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "80 %" in warnings[0] and "1,000-token weekly" in warnings[0]
    lim.acquire(100, model="m")  # 900 used before: still allowed (the gateway counts it)
    with pytest.raises(BudgetExceededError) as ei:
        lim.acquire(100, model="m")
    err = ei.value
    assert isinstance(err, RateLimitError)
    assert (err.used, err.limit, err.period) == (1000, 1000, "week")
    assert err.reset_at == START + 4 * 86400 - 8 * 3600  # next Monday 00:00 UTC+8
    assert err.retry_after == pytest.approx(err.reset_at - START)
    assert "1,000 of 1,000" in str(err) and "CAMPUSLLM_BUDGET=off" in str(err)
    assert "2026-01-05 00:00 UTC+8" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert (again.used, again.limit, again.reset_at) == (err.used, err.limit, err.reset_at)


def test_budget_resets_with_the_period_and_opt_out_lets_requests_go(store: Store) -> None:
    clock = ManualClock()
    fp = uuid.uuid4().hex[:16]
    lim = make(store, clock, key_fingerprint=fp, budgets=[Budget(100, "day")])
    lim.acquire(100)
    with pytest.raises(BudgetExceededError):
        lim.acquire(1)
    free = make(
        store, clock, key_fingerprint=fp, budgets=[Budget(100, "day")], enforce_budget=False
    )
    assert free.acquire(1) is not None  # over budget, but the gateway decides
    clock.advance(16 * 3600)  # past midnight UTC+8
    assert lim.acquire(100) is not None


def test_budget_for_one_model_counts_only_that_model(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, budgets=[Budget(100, "day", model="glm-5.1")])
    lim.acquire(500, model="deepseek-v3.2")
    lim.acquire(100, model="glm-5.1")
    with pytest.raises(BudgetExceededError):
        lim.acquire(1, model="glm-5.1")
    lim.acquire(1, model="deepseek-v3.2")


def test_usage_reports_every_key_and_model_with_limits(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, budgets=[Budget(1_000_000_000, "week")])
    lim.acquire(1200, model="deepseek-v3.2")
    g = lim.acquire(800, model="glm-5.1")
    lim.settle(g, 300)
    rows = usage(store=store, now=START + clock.monotonic())
    week = {r.model: r for r in rows if r.period == "week"}
    assert week["deepseek-v3.2"].used == 1200 and week["glm-5.1"].used == 300
    total = week["*"]
    assert (total.used, total.requests, total.limit) == (1500, 2, 1_000_000_000)
    assert total.remaining == 1_000_000_000 - 1500
    assert total.reset_at == START + 4 * 86400 - 8 * 3600
    assert {r.period for r in rows} == {"day", "week"}
    text = format_usage(rows)
    assert "(all models)" in text and "999,998,500" in text and "2026-01-05 00:00 UTC+8" in text
    assert lim.key_fingerprint in text


# ----------------------------------------------------------------------------- visible waits


def test_a_long_wait_is_logged_once_and_reaches_listeners(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=10, window_s=60)
    seen: list[WaitEvent] = []
    mine: list[WaitEvent] = []
    remove = add_wait_listener(seen.append)
    lim.add_wait_listener(mine.append)
    caplog.set_level(logging.INFO, logger="campusllm")
    try:
        for _ in range(10):
            lim.acquire()
        clock.advance(19)  # the oldest grant leaves the window in 41.25 s
        lim.acquire()
    finally:
        remove()
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert msgs == ["sjtu: next slot in 41 s — 10 requests/min quota"]
    assert len(seen) == 1 and mine == seen
    assert (seen[0].reason, seen[0].limit, round(seen[0].seconds, 2)) == ("rpm", 10, 41.25)


def test_a_long_wait_reaches_stderr_when_no_logging_is_set_up(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A notebook or a plain script configures no logging: an INFO record would vanish and a
    # minute's wait look like a hang. A logger outside the hierarchy has no handlers at all.
    monkeypatch.setattr(limiter_events, "log", logging.Logger("campusllm-unconfigured"))
    clock = ManualClock()
    lim = make(store, clock, rpm=10, window_s=60)
    for _ in range(10):
        lim.acquire()
    clock.advance(19)
    lim.acquire()
    err = capsys.readouterr().err
    assert err == "campusllm: sjtu: next slot in 41 s — 10 requests/min quota\n"


def test_short_waits_stay_quiet_and_a_pause_says_why(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    lim = make(store, clock, tpm=1000, window_s=1.0)
    caplog.set_level(logging.INFO, logger="campusllm")
    for _ in range(5):
        lim.acquire(1000)  # 1 s waits
    assert not caplog.records
    lim.penalize(30)
    lim.acquire()
    assert [r.getMessage() for r in caplog.records] == [
        "sjtu: next slot in 30 s — the gateway asked to pause after a 429"
    ]


def test_a_broken_listener_does_not_fail_the_request(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=1, window_s=60)

    def broken(event: WaitEvent) -> None:
        raise RuntimeError("progress bar crashed")

    lim.add_wait_listener(broken)
    lim.acquire()
    assert lim.acquire() is not None


async def test_async_and_sync_callers_share_the_window(store: Store) -> None:
    clock = ManualClock()
    lim = make(store, clock, rpm=2, window_s=60)
    await lim.aacquire(5)
    lim.acquire(5)
    await lim.aacquire(5)
    assert 60.25 <= clock.monotonic() < 60.3


# ----------------------------------------------------------------------------- TPM charge


def test_expected_output_follows_the_request_then_the_model() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    assert expected_output_tokens({**chat, "max_tokens": 256}) == 256
    assert expected_output_tokens({**chat, "max_completion_tokens": 99, "max_tokens": 5}) == 99
    assert expected_output_tokens(chat) == 1024
    assert expected_output_tokens(chat, {"max_output": 300}) == 300
    assert expected_output_tokens(chat, {"expected_output": 4000, "max_output": 8192}) == 4000

    class Spec:
        expected_output = None
        max_output = 2048

    assert expected_output_tokens(chat, Spec()) == 1024
    assert expected_output_tokens(chat, 77) == 77
    assert expected_output_tokens({**chat, "max_tokens": True}) == 1024  # not a number
    assert expected_output_tokens({"input": ["a"], "model": "e"}) == 0
    assert expected_output_tokens({"query": "q", "documents": ["d"]}) == 0
    assert request_charge(40, {**chat, "max_tokens": 60}) == 100
    assert usage_tokens({"prompt_tokens": 3, "completion_tokens": 4}) == 7
    assert usage_tokens({"total_tokens": 9, "prompt_tokens": 1}) == 9
    assert usage_tokens(None) is None and usage_tokens({"prompt_tokens": "x"}) is None


def test_sustained_long_answers_never_push_the_window_over_tpm() -> None:
    # The gateway's view: each request costs input + its real output. Admitting with
    # input + max_tokens and settling with the real count keeps every window within tpm.
    clock = ManualClock()
    lim = RateLimiter(rpm=None, tpm=10_000, window_s=60, clock=clock)
    log: list[tuple[float, int]] = []
    for i in range(60):
        body = {"messages": [], "max_tokens": 2000}
        g = lim.acquire(request_charge(500, body))
        real = 500 + (2000 if i % 2 else 1500)  # long answers, up to the cap
        lim.settle(g, real)
        log.append((clock.monotonic(), real))
    for t, _ in log:
        in_window = sum(n for s, n in log if t - 60 < s <= t)
        assert in_window <= 10_000
    assert clock.monotonic() > 60 * 60 * 2500 / 10_000 * 0.8  # and the budget was used


# ----------------------------------------------------------------------------- selection


def test_backend_comes_from_argument_env_config_then_local(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CAMPUSLLM_LIMITER", raising=False)
    assert backend_spec() == "local"
    apply_config({"backend": "memory"})
    assert backend_spec() == "memory"
    monkeypatch.setenv("CAMPUSLLM_LIMITER", f"local:{tmp_path / 'x.sqlite3'}")
    assert backend_spec().startswith("local:")
    assert backend_spec("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
    lim = limiter_for("ecnu", "sk-select-1", RateLimits(rpm=5))
    lim.acquire()
    assert lim.backend == "local" and (tmp_path / "x.sqlite3").exists()
    assert limiter_for("ecnu", "sk-select-1", RateLimits(rpm=5), limiter="memory").backend == (
        "memory"
    )
    with pytest.raises(ConfigError, match="Unknown rate-limiter backend"):
        limiter_for("ecnu", "sk-x", RateLimits(rpm=5), limiter="postgres://db")


def test_default_local_state_lives_in_the_user_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CAMPUSLLM_LIMITER", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    store = get_store()
    assert isinstance(store, LocalStore)
    if sys.platform.startswith("linux"):
        assert store.path == tmp_path / "campusllm" / "limiter.sqlite3"


@pytest.mark.parametrize("xdg", ["set", "unset", "blank"])
def test_the_cache_dir_is_where_platformdirs_puts_it(
    xdg: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The core does not depend on platformdirs; processes of one user must still find one
    # file whether or not another environment of theirs has platformdirs installed.
    platformdirs = pytest.importorskip("platformdirs")
    if xdg == "set":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    elif xdg == "blank":
        monkeypatch.setenv("XDG_CACHE_HOME", "  ")
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    theirs = Path(platformdirs.user_cache_dir("campusllm", appauthor=False))
    assert user_cache_dir() == theirs


def test_config_table_is_checked_and_applied() -> None:
    apply_config(
        {
            "enforce_budget": False,
            "budgets": [{"provider": "ecnu", "tokens": 500, "period": "day"}],
        }
    )
    lim = limiter_for("ecnu", "sk-config", RateLimits(rpm=5, weekly_tokens=9000), limiter="memory")
    assert set(lim.budgets) == {Budget(9000, "week"), Budget(500, "day")}
    assert lim.enforce_budget is False
    assert limiter_for("sjtu", "sk-config", RateLimits(rpm=5), limiter="memory").budgets == ()
    for bad, msg in [
        ({"backend": 3}, "backend must be a string"),
        ({"backnd": "local"}, "unknown key"),
        ({"budgets": [{"tokens": -1, "period": "day"}]}, "positive integer"),
        ({"budgets": [{"tokens": 5, "period": "fortnight"}]}, "period must be one of"),
        ({"backend": "mongodb://x"}, "Unknown rate-limiter backend"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            apply_config(bad, source="/home/u/.config/campusllm/config.toml")


def test_budget_env_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUSLLM_BUDGET", "off")
    assert (
        limiter_for("ecnu", "sk-b", RateLimits(weekly_tokens=10), limiter="memory").enforce_budget
        is False
    )
    monkeypatch.setenv("CAMPUSLLM_BUDGET", "on")
    assert (
        limiter_for("ecnu", "sk-b", RateLimits(weekly_tokens=10), limiter="memory").enforce_budget
        is True
    )


def test_different_limits_on_one_key_share_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="campusllm")
    a = limiter_for("sjtu", "sk-twice", RateLimits(rpm=10), limiter="memory")
    b = limiter_for("sjtu", "sk-twice", RateLimits(rpm=4), limiter="memory")
    limiter_for("sjtu", "sk-twice", RateLimits(rpm=4), limiter="memory")
    assert a is not b and a.scope == b.scope
    assert a.store is b.store
    assert len([r for r in caplog.records if "different limits" in r.getMessage()]) == 1
    assert "sk-twice" not in caplog.text


def test_the_key_never_reaches_the_local_file(tmp_path: Path) -> None:
    secret = "sk-very-secret-key-0123456789"
    path = tmp_path / "l.sqlite3"
    lim = limiter_for(
        "sjtu",
        secret,
        RateLimits(rpm=5, weekly_tokens=10**9),
        limiter=f"local:{path}",
    )
    lim.acquire(10, model="deepseek-v3.2")
    lim.penalize(0.01)
    get_store(f"local:{path}").close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in blob and b"very-secret" not in blob
    assert key_fingerprint("sjtu", secret).encode() in blob
    assert secret not in repr(lim)
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o600
    with sqlite3.connect(path) as db:  # readable by hand: grants, pauses, ledger, budgets
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"grants", "pauses", "ledger", "budgets"} <= tables


def test_redis_backend_without_the_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError) as ei:
        get_store("redis://127.0.0.1:6379/0")
    assert "campusllm[redis]" in str(ei.value)


def test_unreachable_redis_is_a_typed_error_without_the_password() -> None:
    from campusllm.errors import UnreachableError

    lim = limiter_for(
        "sjtu", "sk-r", RateLimits(rpm=5), limiter="redis://:hunter2-pass@127.0.0.1:1/0"
    )
    with pytest.raises(UnreachableError) as ei:
        lim.acquire()
    assert "hunter2" not in str(ei.value) and "127.0.0.1:1" in str(ei.value)
    assert "hunter2" not in repr(lim.store)


def test_a_busy_file_at_open_is_retried_and_a_broken_one_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Processes of a job array open the file together; switching it to WAL can meet
    # SQLITE_BUSY without SQLite's own wait. That passes: the first request must not fail.
    real_connect = sqlite3.connect
    busy = iter([True, True])

    def connect(*args: object, **kw: object) -> sqlite3.Connection:
        if next(busy, False):
            raise sqlite3.OperationalError("database is locked")
        return real_connect(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", connect)
    store = LocalStore(tmp_path / "l.sqlite3")
    lim = RateLimiter(rpm=2, tpm=None, store=store, clock=ManualClock())
    assert lim.try_acquire() is not None and next(busy, "used") == "used"
    store.close()
    # Not a passing moment (a directory where the file should be): one ConfigError, named.
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(ConfigError, match="Cannot open the shared rate-limit state"):
        RateLimiter(rpm=2, tpm=None, store=LocalStore(tmp_path / "dir.sqlite3")).try_acquire()
