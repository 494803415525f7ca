"""Run the default test suite several times in a row while other processes load every core.

The suite must not depend on wall-clock races: time-based logic takes an injectable clock, and
what cannot (real deadlines, real processes) leaves generous room. This script is the proof:
one busy-loop process per CPU core keeps the machine saturated while ``pytest`` runs ``--runs``
times; it stops at the first failing run and prints one line per run.

Usage::

    uv run python bench/suite_under_load.py            # 5 runs, about 20 minutes on 2 cores
    uv run python bench/suite_under_load.py --runs 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time

BUSY = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes")
    args = ap.parse_args(argv)
    load = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    print(f"{args.load} busy processes on {multiprocessing.cpu_count()} cores", flush=True)
    try:
        for i in range(1, args.runs + 1):
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                capture_output=True,
                text=True,
            )
            last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            print(f"run {i}: exit {proc.returncode}, {time.monotonic() - t0:.0f} s: {last}")
            if proc.returncode != 0:
                print(proc.stdout[-5000:])
                return proc.returncode
    finally:
        for p in load:
            p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
