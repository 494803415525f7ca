"""What the CLI prints: columns that line up with Chinese text, and Chinese when asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from campusllm.cli import main
from campusllm.cli.style import display_width, table
from campusllm.registry import register_model, reset_registry


def _column_starts(line: str, cells: list[str]) -> list[int]:
    """Terminal column where each cell of ``line`` starts (cells searched left to right)."""
    starts, pos = [], 0
    for cell in cells:
        pos = line.index(cell, pos)
        starts.append(display_width(line[:pos]))
        pos += len(cell)
    return starts


def test_table_columns_line_up_by_display_width_with_cjk_cells() -> None:
    rows = [
        ["sjtu:glm-5.1", "chat", "128K", "工具, 思考"],
        ["oneapi:qwen32b-awq(试用)", "chat", "32K", "tools"],
        ["lab:通义千问-本地", "embedding", "-", "1024 维"],
        ["lab:ＦＵＬＬ", "rerank", "-", "-"],
    ]
    lines = table(["model", "kind", "context", "capabilities"], rows).splitlines()
    header_starts = _column_starts(lines[0], ["model", "kind", "context", "capabilities"])
    for line, row in zip(lines[2:], rows, strict=True):
        assert _column_starts(line, row) == header_starts, f"misaligned: {line!r}"
    # The rule under the header is exactly as wide as each column.
    assert [len(d) for d in lines[1].split("  ")] == [
        max(display_width(r[i]) for r in [["model", "kind", "context", "capabilities"], *rows])
        for i in range(4)
    ]


def test_display_width_counts_terminal_columns() -> None:
    assert display_width("deepseek-v3.2") == 13
    assert display_width("试用") == 4
    assert display_width("，") == 2  # full-width punctuation
    assert display_width("e\u0301") == 1  # a combining accent takes no column
    assert display_width("\u200b") == 0


@pytest.fixture
def cjk_model() -> Iterator[None]:
    reset_registry()
    register_model(
        "sjtu",
        {"id": "通义千问-实验", "aliases": ["千问"], "context_window": 32768, "tools": True},
    )
    yield
    reset_registry()


def test_models_command_aligns_columns_with_a_cjk_model_name(
    cjk_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "sjtu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    kind_col = display_width(header[: header.index("kind")])
    ctx_col = display_width(header[: header.index("context")])
    rows = [ln for ln in lines[2:] if ln.startswith("sjtu:")]
    assert any("通义千问" in ln for ln in rows)
    for ln in rows:
        kind_at = ln.index(" chat ") + 1
        assert display_width(ln[:kind_at]) == kind_col, ln
        assert ln[kind_at:].startswith("chat")
        ctx_at = kind_at + (ctx_col - kind_col)  # "chat" and its padding: one column each
        assert display_width(ln[:ctx_at]) == ctx_col and ln[ctx_at] != " ", ln


def test_providers_and_models_speak_chinese_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAMPUSLLM_LANG", "zh_CN.UTF-8")
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["提供方", "地址"]
    assert "10 次/分钟" in out and "校园网" in out and "rpm" not in out
    assert main(["models", "oneapi"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["模型", "别名", "类型"]
    assert "已弃用→qwen3-32b" in out and "工具" in out and "deprecated" not in out


def test_a_chinese_locale_is_enough_and_english_stays_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CAMPUSLLM_LANG")
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert main(["models", "sjtu"]) == 0
    assert capsys.readouterr().out.startswith("模型")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert main(["models", "sjtu"]) == 0
    assert capsys.readouterr().out.startswith("model")


def test_demo_tour_in_chinese(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CAMPUSLLM_LANG", "zh")
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["demo", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "离线模拟器" in out and "No key found" not in out
    assert "工具调用: get_weather({'city': '上海'})" in out
    assert "上海:晴,22°C" in out  # the tool's answer came back through the loop
    assert "完成。" in out and "<think>" not in out
