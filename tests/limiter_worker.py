"""A separate OS process using the shared limiter, driven by tests/test_limiter_processes.py.

Usage: ``python tests/limiter_worker.py '<json>'``. It prints ``ready`` when set up, then one
JSON line with what it did. Modes:

* ``race`` — wait for the ``go`` file, try to take slots without waiting (two keys: one
  bound by RPM, one by TPM), then take ``count`` slots of a third key waiting as needed;
  report how many it got and the stamps of the waited-for grants;
* ``hold`` — take ``count`` slots, say ``ready``, then keep the store busy until killed;
* ``refund_penalize`` — take ``count`` slots, give one back, pause the key, report.
"""

from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace
from typing import Any

from campusllm.limiter import limiter_for
from campusllm.limiter.local import EPOCH_CLOCK


def main() -> None:
    a = json.loads(sys.argv[1])
    clock = EPOCH_CLOCK if a.get("clock") == "epoch" else None

    def lim(key: str, rpm: int | None = None, tpm: int | None = None, window_s: float = 60) -> Any:
        # a stand-in for RateLimits: importing the registry would double the start-up time
        limits = SimpleNamespace(rpm=rpm, tpm=tpm, window_s=window_s, weekly_tokens=None)
        return limiter_for("sjtu", key, limits, limiter=a["spec"], clock=clock)  # type: ignore[arg-type]

    mode = a["mode"]
    if mode == "race":
        by_rpm = lim(a["key_rpm"], rpm=a["rpm"], window_s=a["window"])
        by_tpm = lim(a["key_tpm"], tpm=a["tpm"], window_s=a["window"])
        by_rpm.time_until_free()  # open connections before the start line
        print("ready", flush=True)
        while not os.path.exists(a["go"]):
            time.sleep(0.005)
        got = {"rpm": 0, "tpm": 0}
        for _ in range(a["attempts"]):
            got["rpm"] += by_rpm.try_acquire() is not None
            got["tpm"] += by_tpm.try_acquire(a["tokens"]) is not None
        waiting = lim(a["key_wait"], rpm=a["wait_rpm"], window_s=a["wait_window"])
        got["stamps"] = [waiting.acquire().ts for _ in range(a["count"])]
        print(json.dumps(got), flush=True)
    elif mode == "hold":
        held = lim(a["key"], rpm=a["rpm"], window_s=a["window"])
        for _ in range(a["count"]):
            held.acquire()
        busy = lim(a["key"] + "-busy", rpm=10**9, window_s=1.0)
        print("ready", flush=True)
        while True:  # transactions in flight when the test kills this process
            g = busy.acquire(1)
            busy.refund(g)
    elif mode == "refund_penalize":
        one = lim(a["key"], rpm=a["rpm"], window_s=a["window"])
        grants = [one.acquire() for _ in range(a["count"])]
        one.refund(grants[0])
        one.penalize(a["pause"])
        print("ready", flush=True)
        print(json.dumps({"done": True}), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
