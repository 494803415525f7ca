"""Time to first answer: a fresh process importing, constructing and invoking a chat model once.

``ChatCampusLLM`` against langchain-openai's ``ChatOpenAI`` on the same simulator, in pairs of
fresh interpreters whose order alternates (so drift on a busy machine hits both alike); the
figure is the median of the per-pair ratios. The clock starts before the import and stops
when the answer is back, inside each child process. The simulator runs in a process of its
own, started before any timing.

Every child process brings a key of its own (the simulator accepts any ``sk-sim…`` key). The
default ``local`` limiter shares one budget per key among all processes on the machine, so with
one key for all runs the 11th process in a minute would wait out ``sjtu``'s 10 requests/min —
that is the quota working, not the cost of a first answer. A fresh key still opens the shared
store and takes a slot in it, as a user's first call does.

Usage::

    uv run python bench/first_answer.py            # 15 pairs
    uv run python bench/first_answer.py --pairs 5
    uv run python bench/run.py --only first        # the same, as a row of the bench table
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MODEL = "sjtu:deepseek-chat"

_CHILD = r"""
import sys, time
t0, c0 = time.perf_counter(), time.process_time()
which, url, key = sys.argv[1:4]
if which == "ChatCampusLLM":
    from langchain_campusllm import ChatCampusLLM
    llm = ChatCampusLLM(model=sys.argv[4], base_url=url, api_key=key)
else:
    from langchain_openai import ChatOpenAI
    llm = ChatOpenAI(model=sys.argv[4].split(":", 1)[1], base_url=url, api_key=key)
answer = llm.invoke("Say hello to the campus.")
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
assert answer.content, answer
print(elapsed, cpu)
"""

CONTENDERS = ("ChatCampusLLM", "ChatOpenAI")


class _Sim(Protocol):
    def url(self, provider: str) -> str: ...


class _Report(Protocol):
    def add(self, *a: Any, **kw: Any) -> None: ...


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUSLLM_")}
    env["CAMPUSLLM_CONFIG"] = str(ROOT / "no-such-campusllm-config.toml")  # packaged catalog
    # Bytecode as an installed package has it (written by the warm-up run): compiling
    # sources in every process would swamp what is measured.
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def _once(which: str, url: str) -> tuple[float, float]:
    key = f"sk-sim-first-{secrets.token_hex(6)}"  # a budget of its own (see the docstring)
    out = subprocess.run(
        [PY, "-c", _CHILD, which, url, key, MODEL],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(sim: _Sim, pairs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds to first answer of each contender, ``pairs`` fresh processes each.

    CPU time (the child's own) is reported beside wall time: on a machine shared with other
    work it is the steadier of the two.
    """
    url = sim.url(MODEL.split(":", 1)[0])
    for which in CONTENDERS:  # bytecode compiled and files cached before any timing
        _once(which, url)
    times: dict[str, list[tuple[float, float]]] = {w: [] for w in CONTENDERS}
    for i in range(pairs):
        order = CONTENDERS if i % 2 == 0 else CONTENDERS[::-1]
        for which in order:
            times[which].append(_once(which, url))
    return times


def bench_first_answer(sim: _Sim, rep: _Report, quick: bool) -> None:
    """The bench table's row (see ``bench/run.py``)."""
    pairs = 5 if quick else 15
    s = summary(measure(sim, pairs))
    rep.add(
        f"time to first answer (median of {pairs} paired fresh processes)",
        f"{s['ratio']:.3f}× ChatOpenAI",
        "≤ 1.05×",
        s["ratio"] <= 1.05,
        f"import + construct + one invoke, wall: ChatCampusLLM {s['ours'] * 1000:.0f} ms, "
        f"ChatOpenAI {s['theirs'] * 1000:.0f} ms; CPU time: {s['cpu_ratio']:.3f}× "
        f"({s['ours_cpu'] * 1000:.0f} vs {s['theirs_cpu'] * 1000:.0f} ms)",
    )


def summary(t: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Medians of each contender and of the per-pair ratios, wall and CPU."""
    ours, theirs = t["ChatCampusLLM"], t["ChatOpenAI"]
    pairs = list(zip(ours, theirs, strict=True))
    return {
        "ratio": statistics.median(a[0] / b[0] for a, b in pairs),
        "cpu_ratio": statistics.median(a[1] / b[1] for a, b in pairs),
        "ours": statistics.median(a[0] for a in ours),
        "theirs": statistics.median(b[0] for b in theirs),
        "ours_cpu": statistics.median(a[1] for a in ours),
        "theirs_cpu": statistics.median(b[1] for b in theirs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=15)
    args = ap.parse_args(argv)
    from run import Report, SimProcess  # bench/run.py, next to this file

    sim = SimProcess()
    try:
        t = measure(sim, args.pairs)
        for which, values in t.items():
            print(f"{which} wall: " + " ".join(f"{w * 1000:.0f}" for w, _ in values) + " ms")
            print(f"{which} CPU:  " + " ".join(f"{c * 1000:.0f}" for _, c in values) + " ms")
        s = summary(t)
        ratio, cpu = s["ratio"], s["cpu_ratio"]
        Report().add("time to first answer", f"{ratio:.3f}× ChatOpenAI (CPU {cpu:.3f}×)")
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
