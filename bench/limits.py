"""Shared-quota benchmarks: what the limiter costs, and 3 processes on one key.

Two measurements, printed as a Markdown table (``--write`` records it in its own section of
bench/RESULTS.md):

* **cost** — microseconds per admission (``acquire``; and ``settle``, and ``aacquire`` for
  the shared stores) of each backend at a full window:
  ``memory``, ``local`` (SQLite in a temp dir) and ``redis`` (a real ``redis-server`` on
  127.0.0.1 started here). Goal: ``local`` under 1 ms.
* **processes** — 3 OS processes share one key against the simulator enforcing RPM+TPM per key
  (2 s window; its 429s carry no ``Retry-After``, as seen from SJTU's gateway), each
  invoking ``ChatCampusLLM`` 20 times with a prompt of a fixed token count (and an answer of
  a fixed count, which the simulator counts against TPM as gateways do):
  the ``local`` backend; ``redis`` as 3 "machines" (separate processes, separate cache dirs);
  today's per-process ``memory`` limiter; and ``ChatOpenAI`` with LangChain's
  ``InMemoryRateLimiter`` at the key's request rate (the real peer). Reported: gateway 429s,
  lost or duplicated answers, and wall time against the tight bound. A sliding window lets
  k windows' worth of requests finish after k-1 windows, so the bound is
  ``max(ceil(N/rpm) - 1, ceil(tokens/tpm) - 1) × window``, with tokens = input + output.

Usage::

    uv run python bench/limits.py            # about 2 minutes
    uv run python bench/limits.py --write    # also record the table in bench/RESULTS.md
    uv run python bench/limits.py --only cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from run import Report, SimProcess, publish  # noqa: E402  (bench/run.py: simulator child, table)

RESULTS = HERE / "RESULTS.md"
START, END = "<!-- limits:start -->", "<!-- limits:end -->"
MODEL = "sjtu:deepseek-chat"
PY = sys.executable

# The shared-key job: 3 processes × 20 requests of PROMPT_TOKENS each, under rpm and tpm.
# The simulator's answer to each prompt is ANSWER_TOKENS long, and like a gateway it counts
# input + output against tpm; the client caps answers at MAX_TOKENS (a user's max_tokens), so
# it admits a request with PROMPT_TOKENS + MAX_TOKENS and settles it with the real count.
PROCS, PER_PROC, WINDOW = 3, 20, 2.0
RPM, PROMPT_TOKENS, ANSWER_TOKENS, MAX_TOKENS, PER_WINDOW_BY_TOKENS = 10, 290, 163, 200, 8
REQUEST_TOKENS = PROMPT_TOKENS + ANSWER_TOKENS
TPM = REQUEST_TOKENS * PER_WINDOW_BY_TOKENS
# The job above is the reservation's worst case: its TPM holds exactly 8 real answers, so the
# 8th request's reservation (PROMPT_TOKENS + MAX_TOKENS) never fits beside 7 settled ones and a
# window serves 7. With TPM at 8.5 answers the reservation costs no slot, and what is left
# over the bound is the limiter's own latency. Recorded beside the gated row, not instead.
TPM_SLACK = int(REQUEST_TOKENS * (PER_WINDOW_BY_TOKENS + 0.5))


# --------------------------------------------------------------------------- cost


def bench_cost(rep: Report, quick: bool, redis_url: str | None) -> None:
    from campusllm.clock import ManualClock
    from campusllm.limiter import Budget, RateLimiter
    from campusllm.limiter.local import LocalStore
    from campusllm.limiter.memory import MemoryStore

    tmp = tempfile.mkdtemp(prefix="campusllm-bench-")
    stores: dict[str, Any] = {
        "memory": MemoryStore(),
        "local": LocalStore(Path(tmp) / "limiter.sqlite3"),
    }
    if redis_url:
        from campusllm.limiter.redis_store import RedisStore

        stores["redis"] = RedisStore(redis_url)
    rounds, per_round = (3, 100) if quick else (7, 300)
    try:
        for name, store in stores.items():
            # A full window, as on a busy key: 60 requests a minute admitted one per second of
            # virtual time, plus the weekly budget check SJTU keys carry. The stores keep an
            # hour of grants, so later rounds run with up to 3,600 of them kept.
            clock = ManualClock(start=1_000_000.0)
            fp = uuid.uuid4().hex[:16]
            lim = RateLimiter(
                60,
                10**9,
                60.0,
                clock=clock,
                store=store,
                scope=f"bench:{fp}",
                provider="bench",
                key_fingerprint=fp,
                budgets=[Budget(10**15, "week")],
            )
            acq: list[float] = []
            sett: list[float] = []
            for _ in range(rounds):
                a = s = 0.0
                for _ in range(per_round):
                    clock.advance(1.0)
                    t0 = time.perf_counter()
                    g = lim.acquire(500, model="m")
                    t1 = time.perf_counter()
                    lim.settle(g, 450)
                    t2 = time.perf_counter()
                    a += t1 - t0
                    s += t2 - t1
                acq.append(a / per_round)
                sett.append(s / per_round)
            detail = f"settle {statistics.median(sett) * 1e6:.0f} µs"
            if store.shared:

                async def many(n: int, lim: Any = lim, clock: Any = clock) -> float:
                    t = 0.0
                    for _ in range(n):
                        clock.advance(1.0)
                        t0 = time.perf_counter()
                        await lim.aacquire(500, model="m")
                        t += time.perf_counter() - t0
                    return t / n

                aac = statistics.median(asyncio.run(many(per_round)) for _ in range(rounds))
                detail += f"; aacquire {aac * 1e6:.0f} µs"
            med = statistics.median(acq)
            goal = "< 1 ms" if name == "local" else ""
            rep.add(
                f"limiter cost per request, {name}",
                f"{med * 1e6:.0f} µs",
                goal,
                (med < 1e-3) if name == "local" else None,
                f"acquire at a full 60-request window with a weekly budget and up to an hour"
                f" of grants kept, median of {rounds} rounds × {per_round}; {detail}",
            )
    finally:
        for s in stores.values():
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- processes


def prompt(worker: int, i: int) -> str:
    """A prompt of exactly PROMPT_TOKENS tokens (the simulator and the limiter agree)."""
    from campusllm.tokens import estimate_tokens

    text = f"W{worker}-Q{i:03d}: " + "上海交通大学" * 47 + "华东师范大"
    assert estimate_tokens(text) == PROMPT_TOKENS, estimate_tokens(text)
    return text


def worker(a: dict[str, Any]) -> None:
    """One process of the shared-key job (run by the parent with ``--worker``)."""
    if a["kind"] == "langchain":
        from langchain_core.rate_limiters import InMemoryRateLimiter
        from langchain_openai import ChatOpenAI

        llm: Any = ChatOpenAI(
            model="deepseek-chat",
            base_url=a["url"],
            api_key=a["key"],
            rate_limiter=InMemoryRateLimiter(
                requests_per_second=RPM / WINDOW, check_every_n_seconds=0.01, max_bucket_size=1
            ),
        )
    else:
        from campusllm.registry import RateLimits
        from langchain_campusllm import ChatCampusLLM

        llm = ChatCampusLLM(
            model=MODEL,
            base_url=a["url"],
            api_key=a["key"],
            rate_limits=RateLimits(rpm=RPM, tpm=a["tpm"], window_s=WINDOW, weekly_tokens=10**9),
            max_tokens=MAX_TOKENS,
        )
    prompts = [prompt(a["index"], i) for i in range(PER_PROC)]
    print("ready", flush=True)
    while not os.path.exists(a["go"]):
        time.sleep(0.005)
    out = []
    for p in prompts:
        marker = p.split(":", 1)[0]
        try:
            r = llm.invoke(p)
            usage = getattr(r, "usage_metadata", None) or {}
            counted = usage.get("total_tokens") == REQUEST_TOKENS
            out.append([marker, marker in str(r.content) and counted, ""])
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the count is the result
            out.append([marker, False, type(exc).__name__])
            print(f"{marker}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    print(json.dumps({"done": time.time(), "results": out}), flush=True)


def run_job(sim: SimProcess, kind: str, spec: str, tpm: int = TPM) -> dict[str, Any]:
    sim.reset()
    provider = MODEL.split(":")[0]
    sim.set_limits(provider, rpm=RPM, tpm=tpm, window_s=WINDOW)
    time.sleep(WINDOW)
    key = f"sk-sim-bench-{uuid.uuid4().hex[:12]}"
    tmp = tempfile.mkdtemp(prefix="campusllm-bench-")
    go = Path(tmp) / "go"
    procs = []
    try:
        for i in range(PROCS):
            env = dict(os.environ)
            env.pop("CAMPUSLLM_CLIENT_LIMITS", None)
            env["CAMPUSLLM_LIMITER"] = spec
            # separate cache dirs: for redis, 3 "machines" that share nothing but the server
            env["XDG_CACHE_HOME"] = str(Path(tmp) / f"cache-{i}")
            args = {
                "kind": kind,
                "url": sim.url(provider),
                "key": key,
                "go": str(go),
                "index": i,
                "tpm": tpm,
            }
            procs.append(
                subprocess.Popen(
                    [PY, __file__, "--worker", json.dumps(args)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=ROOT,
                )
            )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"worker failed: {line!r} {p.stderr.read() if p.stderr else ''}")
        base = sim.stats()
        t0 = time.time()
        go.touch()
        rows = []
        for p in procs:
            assert p.stdout is not None and p.stderr is not None
            out, err = p.stdout.read(), p.stderr.read()
            p.wait(600)
            if p.returncode != 0:
                raise RuntimeError(f"worker exited {p.returncode}: {err[-2000:]}")
            rows.append(json.loads(out.strip().splitlines()[-1]))
            failed = [r for r in rows[-1]["results"] if not r[1]]
            if failed and err.strip():  # what the failed calls said, to read beside the table
                print(f"worker {len(rows)}: {err.strip()[-1500:]}", file=sys.stderr)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    stats = sim.stats()
    # Chat completions the gateway served: the simulator counts its control calls too, so
    # take the difference from just before the start, less this stats call itself.
    refused = sum(v for k, v in stats.items() if k.isdigit() and k != "200")
    served = stats.get("requests", 0) - base.get("requests", 0) - 1 - refused
    results = [r for row in rows for r in row["results"]]
    good = {m for m, ok, _ in results if ok}
    errors = sorted({e for _, ok, e in results if not ok and e})
    return {
        "wall": max(row["done"] for row in rows) - t0,
        "429": stats.get("429", 0),
        "served": served,
        "lost": PROCS * PER_PROC - len(good),
        "duplicated": max(0, served - len(good)),
        "errors": errors,
    }


class QuietSim(SimProcess):
    """The simulator answering 429 without ``Retry-After``, as the SJTU gateway was seen to."""

    def __init__(self) -> None:
        real_popen = subprocess.Popen

        def popen(cmd: list[str], **kw: Any) -> Any:
            return real_popen([*cmd, "--no-retry-after"], **kw)

        subprocess.Popen = popen  # type: ignore[assignment,misc]
        try:
            super().__init__()
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]


def bench_processes(rep: Report, quick: bool, redis_url: str | None) -> None:
    n = PROCS * PER_PROC
    sim = QuietSim()
    try:
        variants: list[tuple[str, str, str, bool, int]] = [
            ("ChatCampusLLM, local backend", "campus", "local", True, TPM),
        ]
        if redis_url:
            variants.append(
                ("ChatCampusLLM, redis backend (3 machines)", "campus", redis_url, True, TPM)
            )
        variants += [
            ("ChatCampusLLM, per-process memory limiter", "campus", "memory", False, TPM),
            ("ChatOpenAI + InMemoryRateLimiter", "langchain", "memory", False, TPM),
            (
                "ChatCampusLLM, local backend, TPM of 8.5 answers (reservation costs no slot)",
                "campus",
                "local",
                False,
                TPM_SLACK,
            ),
        ]
        for label, kind, spec, gated, tpm in variants:
            # tokens as the gateway counts them: input and output
            windows = max(math.ceil(n / RPM) - 1, math.ceil(n * REQUEST_TOKENS / tpm) - 1)
            bound = windows * WINDOW
            limits = f"rpm={RPM} tpm={tpm:,} per {WINDOW:g} s, 429s without Retry-After"
            if spec == "local":
                spec = "local:" + str(Path(tempfile.mkdtemp(prefix="campusllm-bench-")) / "l.db")
            r = run_job(sim, kind, spec, tpm)
            ratio = r["wall"] / bound
            ok = r["429"] == 0 and r["lost"] == 0 and r["duplicated"] == 0 and ratio <= 1.10
            rep.add(
                f"3 processes, one key: {label}",
                f"{ratio:.3f}× bound",
                "≤ 1.10, 0 gateway 429s, 0 lost/duplicated" if gated else "",
                ok if gated else None,
                f"{n} requests × ({PROMPT_TOKENS} in + {ANSWER_TOKENS} out) tokens, max_tokens "
                f"{MAX_TOKENS}, sim limits {limits}; bound "
                f"{bound:.1f} s ({windows} windows); wall {r['wall']:.2f} s; gateway 429s "
                f"{r['429']}; lost {r['lost']}; duplicated {r['duplicated']}"
                + (f"; errors {', '.join(r['errors'])}" if r["errors"] else ""),
            )
    finally:
        sim.close()


# --------------------------------------------------------------------------- main

BENCHES = ("cost", "processes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer cost rounds")
    ap.add_argument("--write", action="store_true", help=f"record the table in {RESULTS}")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    chosen = [b for b in BENCHES if not args.only or b in args.only.split(",")]

    from redis_server import start_redis  # tests/redis_server.py

    rep = Report()
    t0 = time.perf_counter()
    redis_dir = tempfile.mkdtemp(prefix="campusllm-redis-")
    proc = None
    try:
        try:
            proc, url = start_redis(redis_dir)
        except (OSError, RuntimeError) as exc:
            url = None
            rep.notes.append(f"redis rows skipped: {exc}")
            print(f"redis rows skipped: {exc}", flush=True)
        for name in chosen:
            print(f"[{name}]", flush=True)
            globals()[f"bench_{name}"](rep, args.quick, url)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(redis_dir, ignore_errors=True)
    total = time.perf_counter() - t0
    publish(
        rep,
        "bench/limits.py",
        args,
        total,
        (START, END),
        heading="## Shared quota (`bench/limits.py`)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
