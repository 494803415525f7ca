"""The shared limiter with real OS processes on one key: ``local`` (SQLite) and ``redis``.

Each worker is a fresh Python process (tests/limiter_worker.py). Assertions count grants or
read the stores' own timestamps; none depends on how long anything took. Where elapsed time
matters (a crashed process's grants ageing out), the test process reads the store through a
clock set ahead, instead of sleeping through a window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import redis_url  # noqa: F401  (session fixture: a real redis-server)

from campusllm.limiter import limiter_for
from campusllm.limiter import reset as reset_limiters
from campusllm.limiter.local import EpochClock
from campusllm.registry import RateLimits

pytestmark = pytest.mark.processes

WORKER = str(Path(__file__).with_name("limiter_worker.py"))
ROOT = str(Path(__file__).resolve().parent.parent)


class AheadClock(EpochClock):
    """The epoch clock, ``ahead`` seconds in the future."""

    def __init__(self, ahead: float) -> None:
        self.ahead = ahead

    def monotonic(self) -> float:
        return super().monotonic() + self.ahead


@pytest.fixture(params=["local", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield f"local:{tmp_path / 'shared.sqlite3'}"
    else:
        url = request.getfixturevalue("redis_url")
        import redis

        redis.Redis.from_url(url).flushdb()
        yield url
    reset_limiters()


def start(args: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, WORKER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_ready(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(
            f"worker failed to start: {line!r} {p.stderr.read() if p.stderr else ''}"
        )


def result(p: subprocess.Popen[str]) -> dict[str, Any]:
    assert p.stdout is not None and p.stderr is not None
    out = p.stdout.read()  # after readline(): communicate() would miss what is buffered
    err = p.stderr.read()
    p.wait(90)
    assert p.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def run_together(n: int, args: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    procs = [start({**args, "go": str(go)}) for _ in range(n)]
    try:
        for p in procs:
            wait_ready(p)
        go.touch()  # all start at once: their transactions interleave
        return [result(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_processes_share_one_window_exactly(spec: str, tmp_path: Path) -> None:
    # Slots taken without waiting, on a 10-minute window: nothing leaves it during the
    # test, so the counts must be exact. Then slots waited for, on a 1 s window: by the
    # store's own stamps, any rpm+1 consecutive grants span more than a window.
    args = {
        "mode": "race",
        "spec": spec,
        "key_rpm": f"sk-rpm-{uuid.uuid4().hex}",
        "key_tpm": f"sk-tpm-{uuid.uuid4().hex}",
        "key_wait": f"sk-wait-{uuid.uuid4().hex}",
        "rpm": 7,
        "tpm": 1000,
        "tokens": 70,
        "window": 600.0,
        "attempts": 30,
        "wait_rpm": 4,
        "wait_window": 1.0,
        "count": 4,
    }
    got = run_together(3, args, tmp_path)
    assert sum(g["rpm"] for g in got) == 7  # exactly the quota: none over, none lost
    assert sum(g["tpm"] for g in got) == 1000 // 70
    stamps = sorted(t for g in got for t in g["stamps"])
    assert len(stamps) == 12
    assert all(stamps[i + 4] - stamps[i] >= 1.0 for i in range(len(stamps) - 4))


def test_a_killed_process_holds_nothing_beyond_its_window(spec: str) -> None:
    key, window = f"sk-kill-{uuid.uuid4().hex}", 300.0
    p = start(
        {
            "mode": "hold",
            "spec": spec,
            "key": key,
            "rpm": 5,
            "window": window,
            "count": 5,
            "clock": "epoch",
        }
    )
    try:
        wait_ready(p)
        time.sleep(0.3)  # let it be mid-transaction
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    limits = RateLimits(rpm=5, window_s=window)
    now = limiter_for("sjtu", key, limits, limiter=spec, clock=AheadClock(0.0))
    assert now.try_acquire() is None  # its grants still fill the window...
    assert window - 10 < now.time_until_free() <= window + 0.25
    later = limiter_for("sjtu", key, limits, limiter=spec, clock=AheadClock(window + 0.3))
    # ...and hold nothing once it has passed (no lock or row left behind either)
    assert [later.try_acquire() is not None for _ in range(6)] == [True] * 5 + [False]


def test_refund_and_pause_are_seen_by_other_processes(spec: str) -> None:
    key, window = f"sk-rp-{uuid.uuid4().hex}", 300.0
    p = start(
        {
            "mode": "refund_penalize",
            "spec": spec,
            "key": key,
            "rpm": 3,
            "window": window,
            "count": 3,
            "pause": 120.0,
            "clock": "epoch",
        }
    )
    wait_ready(p)
    assert result(p) == {"done": True}
    limits = RateLimits(rpm=3, window_s=window)
    here = limiter_for("sjtu", key, limits, limiter=spec, clock=AheadClock(0.0))
    assert 110 < here.time_until_free() <= 120  # the other process's pause
    assert here.try_acquire() is None
    after = limiter_for("sjtu", key, limits, limiter=spec, clock=AheadClock(121.0))
    # the refunded slot is free; the other two stay taken for the rest of their window
    assert [after.try_acquire() is not None for _ in range(2)] == [True, False]
