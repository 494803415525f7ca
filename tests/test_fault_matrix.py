"""The fault matrix: hostile gateways × every public entry point, each with its exact outcome.

A scenario (``tests/hostile/scenarios.py``) is a scripted gateway misbehaving: an HTML login
page, a stream cut without ``[DONE]``, an error event mid-stream, a stalled or trickled body, a
corrupt gzip body, a 307, a 429 with a strange ``Retry-After``, a key echoed back, NaN in a
vector, a user key with a zero-width space... Each cell calls one entry point (LangChain,
LlamaIndex or the core; chat, embeddings or rerank) against it and asserts what a user must get
(``tests/hostile/matrix.py``, one table), plus invariants that hold in every cell: the API key
appears nowhere (message, exception chain, bodies, traceback text, DEBUG logs of httpx,
httpcore, openai and campusllm), no output ends in a tag fragment, no other origin receives
the Authorization header, and no call runs past its watchdog.

Cells that fail today are strict xfails whose reason names the code at fault; a fix removes
their names from ``XFAIL``. ``uv run python bench/faults.py`` prints the same matrix as a table.
"""

from __future__ import annotations

import pytest
from hostile.entry_points import ENTRY
from hostile.matrix import EXPECT, XFAIL, MatrixCell, build_cells, check_cell, run_cell
from hostile.scenarios import SCENARIOS
from hostile.server import HostileServer

CELLS = build_cells()


def _param(cell: MatrixCell) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=cell.xfail)] if cell.xfail else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in CELLS])
def test_fault_matrix(hostile: HostileServer, cell: MatrixCell) -> None:
    result = run_cell(hostile, cell)
    check_cell(result, cell.checks)


def test_the_tables_name_only_real_scenarios_and_entry_points() -> None:
    # A typo in XFAIL would silently stop marking a cell; a stale entry would hide nothing.
    assert set(EXPECT) == set(SCENARIOS)
    names = set(ENTRY) | {e.family for e in ENTRY.values()} | {"*", "stream", "nonstream"}
    for scenario, specs in XFAIL.items():
        assert scenario in SCENARIOS, scenario
        cells = [c for c in CELLS if c.scenario.name == scenario]
        for spec in specs:
            unknown = set(spec.split()) - names
            assert not unknown, f"XFAIL[{scenario!r}] names {sorted(unknown)}"
            assert any(_matches(spec, c) for c in cells), (
                f"XFAIL[{scenario!r}][{spec!r}] marks no cell"
            )
        for c in cells:
            hits = [spec for spec in specs if _matches(spec, c)]
            assert len(hits) <= 1, f"{c.id} is named by several XFAIL entries: {hits}"


def _matches(spec: str, cell: MatrixCell) -> bool:
    e = cell.entry
    keys = {e.name, e.family, "*", "stream" if e.streams else "nonstream"}
    return bool(keys & set(spec.split()))


def test_every_scenario_reaches_at_least_one_entry_point() -> None:
    covered = {c.scenario.name for c in CELLS}
    assert covered == set(SCENARIOS), set(SCENARIOS) - covered
