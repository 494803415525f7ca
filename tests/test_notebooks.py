"""The notebooks run top to bottom with no key (simulator) and are stored without outputs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# What each notebook prints when its cells did their job (beyond raising no error).
EXPECTED = {
    "01_quickstart_langchain.ipynb": [
        "REASONING:",
        "['reasoning', 'text']",
        "[thinking]",
        "[answer]",
        "BadRequestError - ",
    ],
    "02_langgraph_agent.ipynb": [
        "[tool call] get_weather",
        "[tool result] Sunny",
        "ai: tool_calls=1 reasoning=True",
        "sent back: ['",
    ],
    "03_rag_langchain.ipynb": ["query is sent as: 'Instruct:", "documents,", "vectors;"],
    "04_llamaindex.ipynb": ["ThinkingBlock ->", "[tool] get_weather", "[answer] "],
    "05_quickstart_zh.ipynb": [
        "思考: The user asks: 9.11 和 9.9 哪个大",
        "['reasoning', 'text']",
        "[思考]",
        "[回答]",
        "RAG 回答:",
        "BadRequestError - ",
        "AuthenticationError 401 - 解决办法:",
    ],
}
# How each notebook says it fell back to the simulator (05 is the Chinese quick start).
SIM_NOTICE = {"05_quickstart_zh.ipynb": "使用离线模拟器"}


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_exist() -> None:
    assert [p.name for p in _notebooks()] == sorted(EXPECTED)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata


def _output_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(str(out.data.get("text/plain", "")))
            elif out.output_type == "error":
                parts.append(f"ERROR {out.ename}: {out.evalue}")
    return "".join(parts)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_offline_without_a_key(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    # The kernel inherits this environment: no key, no base URL, no user config file.
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_BASE_URL")) or var.startswith("CAMPUSLLM_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(tmp_path / "none.toml"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    text = _output_text(nb)
    assert SIM_NOTICE.get(path.name, "using the offline simulator") in text
    assert "ERROR " not in text and "<think>" not in text
    for marker in EXPECTED[path.name]:
        assert marker in text, f"{path.name}: {marker!r} not printed\n{text[-3000:]}"
    if path.name in ("03_rag_langchain.ipynb", "05_quickstart_zh.ipynb"):
        assert re.search(r"^0\.\d{3}  ", text, re.M), "no rerank scores printed"
