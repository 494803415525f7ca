"""The fault matrix as a table: which hostile-gateway scenarios every entry point survives.

Runs ``tests/test_fault_matrix.py`` and ``tests/test_hostile_input.py`` through pytest (the
same cells and expectations as the suite), then writes a "Faults" section into
``bench/RESULTS.md`` between its marker comments: scenarios × entry points, held or failed,
totals, and what is wrong in each failing cluster (the reasons of the xfail table).

A cell *holds* when the entry point gives exactly the expected outcome; it *fails* when it is a
known failure (a strict xfail today). Two more states flag a table out of date: a cell that
holds although still marked xfail (delete its name from ``XFAIL``), and a cell that fails
without being marked (a regression).

Usage::

    uv run python bench/faults.py              # run, print, and rewrite the section
    uv run python bench/faults.py --dry-run    # run and print only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- faults:start -->", "<!-- faults:end -->"
TESTS = ["tests/test_fault_matrix.py", "tests/test_hostile_input.py"]

HELD, FAILS, STALE, REGRESSED = "held", "fails", "stale", "regressed"
SYMBOL = {HELD: "✓", FAILS: "✗", STALE: "✓*", REGRESSED: "✗!"}
LABELS = {
    "lc.invoke": "LC invoke",
    "lc.stream": "LC stream",
    "lc.ainvoke": "LC ainvoke",
    "lc.astream": "LC astream",
    "li.chat": "LI chat",
    "li.stream_chat": "LI stream",
    "li.achat": "LI achat",
    "li.astream_chat": "LI astream",
    "core.invoke": "core invoke",
    "core.stream": "core stream",
    "lc.embed_documents": "LC embed",
    "lc.aembed_documents": "LC aembed",
    "li.embed_batch": "LI embed",
    "li.aembed_batch": "LI aembed",
    "core.embed": "core embed",
    "core.aembed": "core aembed",
    "lc.compress": "LC rerank",
    "lc.acompress": "LC arerank",
    "li.postprocess": "LI rerank",
    "li.apostprocess": "LI arerank",
    "core.rerank": "core rerank",
    "core.arerank": "core arerank",
}


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (no column breaks, no stray HTML tags)."""
    return text.replace("|", "\\|").replace("<", "&lt;")


class Collector:
    """Pytest plugin: the outcome of every test, by node id."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xfail = hasattr(report, "wasxfail")
        if xfail:
            self.reasons[report.nodeid] = str(report.wasxfail)
        if report.when == "call":
            if report.passed and not xfail:
                self.outcomes[report.nodeid] = HELD
            elif report.skipped and xfail:
                self.outcomes[report.nodeid] = FAILS
            elif report.failed:
                strict_xpass = "XPASS(strict)" in str(report.longrepr)
                self.outcomes[report.nodeid] = STALE if strict_xpass else REGRESSED
        elif report.failed:  # setup or teardown error
            self.outcomes[report.nodeid] = REGRESSED
        elif report.skipped and xfail and report.nodeid not in self.outcomes:
            self.outcomes[report.nodeid] = FAILS  # an xfail raised during setup


def _param(nodeid: str) -> tuple[str, str]:
    """``(function, parameter id)`` of a node id."""
    name = nodeid.split("::", 1)[1]
    if "[" in name:
        func, param = name.split("[", 1)
        return func, param[:-1]
    return name, ""


def _matrix_table(outcomes: dict[str, str]) -> tuple[str, dict[str, int]]:
    from hostile.entry_points import ENTRIES
    from hostile.scenarios import SCENARIOS

    cells: dict[tuple[str, str], str] = {}
    for nodeid, outcome in outcomes.items():
        func, param = _param(nodeid)
        if func == "test_fault_matrix":
            scenario, entry = param.split("-", 1)
            cells[scenario, entry] = outcome
    entries = [e.name for e in ENTRIES]
    header = ["Scenario", "What the gateway does", *(LABELS.get(e, e) for e in entries), "Held"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    per_entry: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    totals: dict[str, int] = defaultdict(int)
    for name, s in SCENARIOS.items():
        row = [f"`{name}`", _md(s.doc)]
        held = total = 0
        for e in entries:
            outcome = cells.get((name, e), "")
            row.append(SYMBOL[outcome] if outcome else "")
            if outcome:
                total += 1
                totals[outcome] += 1
                per_entry[e][1] += 1
                if outcome in (HELD, STALE):
                    held += 1
                    per_entry[e][0] += 1
        row.append(f"{held}/{total}")
        lines.append("| " + " | ".join(row) + " |")
    held_all = totals[HELD] + totals[STALE]
    total_all = sum(totals.values())
    foot = ["**Held**", ""]
    foot += [f"{per_entry[e][0]}/{per_entry[e][1]}" for e in entries]
    foot.append(f"**{held_all}/{total_all}**")
    lines.append("| " + " | ".join(foot) + " |")
    return "\n".join(lines), dict(totals)


def _other_table(outcomes: dict[str, str], reasons: dict[str, str]) -> tuple[str, dict[str, int]]:
    rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
    why: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for nodeid, outcome in outcomes.items():
        if not nodeid.startswith("tests/test_hostile_input.py"):
            continue
        func, param = _param(nodeid)
        rows[func].append((param, outcome))
        totals[outcome] += 1
        reason = reasons.get(nodeid)
        if outcome == FAILS and reason and reason not in why[func]:
            why[func].append(reason)
    lines = ["| Check | Held | Failing cases | What is wrong today |", "|---|---|---|---|"]
    for func, results in rows.items():
        held = sum(1 for _, o in results if o in (HELD, STALE))
        failing = ", ".join(f"`{p}`" if p else "all" for p, o in results if o not in (HELD, STALE))
        title = func.removeprefix("test_").replace("_", " ")
        because = _md("; ".join(why[func]))
        lines.append(f"| {title} | {held}/{len(results)} | {failing} | {because} |")
    return "\n".join(lines), dict(totals)


def _reasons() -> str:
    from hostile.matrix import XFAIL

    out = []
    for scenario, specs in XFAIL.items():
        for spec, reason in specs.items():
            names = ", ".join(LABELS.get(n, n) for n in spec.split())
            out.append(f"- `{scenario}` ({names}): {_md(reason)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help=f"do not rewrite {RESULTS.name}")
    args = ap.parse_args(argv)

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "tests"))
    collector = Collector()
    t0 = time.perf_counter()
    rc = pytest.main([*TESTS, "-q", "-p", "no:cacheprovider", "-rN", "--tb=no"], [collector])
    wall = time.perf_counter() - t0
    if not collector.outcomes:
        print("no test ran", file=sys.stderr)
        return int(rc) or 1

    matrix, m_tot = _matrix_table(collector.outcomes)
    other, o_tot = _other_table(collector.outcomes, collector.reasons)
    held = m_tot.get(HELD, 0) + m_tot.get(STALE, 0)
    cells = sum(m_tot.values())
    o_held = o_tot.get(HELD, 0) + o_tot.get(STALE, 0)
    summary = (
        f"Command: `uv run python bench/faults.py`  \n"
        f"Run: {time.strftime('%Y-%m-%d %H:%M:%S')}, {wall:.0f} s; Python "
        f"{platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs  \n"
        f"Fault matrix: **{held} of {cells} cells hold**, {cells - held} fail. "
        f"Other checks: {o_held} of {sum(o_tot.values())} hold."
    )
    flags = []
    if m_tot.get(STALE) or o_tot.get(STALE):
        flags.append(
            f"{m_tot.get(STALE, 0) + o_tot.get(STALE, 0)} cell(s) hold but are still marked "
            "xfail (✓*): remove them from the xfail tables."
        )
    if m_tot.get(REGRESSED) or o_tot.get(REGRESSED):
        flags.append(
            f"{m_tot.get(REGRESSED, 0) + o_tot.get(REGRESSED, 0)} cell(s) fail without an xfail "
            "mark (✗!): a regression."
        )
    legend = (
        "✓ holds (the exact expected outcome), ✗ fails today (strict xfail), ✓* holds but is "
        "still marked xfail, ✗! fails unexpectedly; blank: the scenario does not apply to that "
        "entry point (or is sampled on a few, for slow ones). LC = LangChain, LI = LlamaIndex, "
        "core = `campusllm.chat.ChatCaller` / `campusllm.client.CampusClient`."
    )
    block = "\n\n".join(
        [
            START,
            summary,
            *flags,
            legend,
            matrix,
            "Beyond single calls (`tests/test_hostile_input.py`):",
            other,
            "What fails, and where (the reasons in `tests/hostile/matrix.py` `XFAIL`):",
            _reasons(),
            END,
        ]
    )
    print(block)
    if not args.dry_run:
        text = RESULTS.read_text(encoding="utf-8")
        if START in text and END in text:
            text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + (
                "\n\n## Faults\n\nRewritten by `uv run python bench/faults.py` (the suite's fault "
                "matrix, see `tests/hostile/`); nothing else in this file is.\n\n" + block + "\n"
            )
        RESULTS.write_text(text, encoding="utf-8")
        print(f"\nwritten to {RESULTS}")
    return 0 if not (m_tot.get(REGRESSED) or o_tot.get(REGRESSED)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
