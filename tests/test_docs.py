"""The README and docstrings a new user reads must match what the code does."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campusllm.registry import Registry, get_registry, markdown_table, reset_registry

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
CI_RUN = ROOT / ".ci" / "run"
PACKAGES = ("campusllm", "langchain_campusllm", "llama_index_campusllm")
BEGIN, END = "<!-- BEGIN MODEL TABLE -->", "<!-- END MODEL TABLE -->"
# Word-boundary lookbehind: "task-..." or "disk-..." in lock files are not keys.
KEY_RE = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9]{20,}")
FENCE_RE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.M | re.S)


def _readme(path: Path = README) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    """Body of the ``## title`` section (up to the next ``## `` heading)."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def _commands(block: str) -> list[str]:
    return [
        ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]


def _python_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCE_RE.findall(text) if lang == "python"]


# ------------------------------------------------------------------------------ README


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_readme_model_table_is_the_generated_one(path: Path) -> None:
    lines = _readme(path).splitlines()
    assert lines.count(BEGIN) == 1 and lines.count(END) == 1, "one marker line each"
    start, end = lines.index(BEGIN), lines.index(END)
    in_readme = "\n".join(lines[start + 1 : end]).strip()
    assert in_readme == markdown_table().strip(), (
        "README model table drifted from campusllm/providers/*.toml: run the regenerate "
        "one-liner under 'Providers and models' in README.md"
    )


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    blocks = [body for lang, body in FENCE_RE.findall(_section(_readme(), "Quick start"))]
    assert len(blocks) == 1, "Quick start must show a single code block"
    commands = _commands(blocks[0])
    assert commands == ["uv run campusllm demo", commands[1]] and len(commands) == 2, commands
    ci_commands = _commands(CI_RUN.read_text(encoding="utf-8"))
    assert commands[1] in ci_commands, "CI must run README's test command"
    assert shlex.split(commands[1])[:3] == ["uv", "run", "pytest"]


def test_ci_runs_the_slow_tiers_as_readme_documents_them() -> None:
    ci_commands = _commands(CI_RUN.read_text(encoding="utf-8"))
    dev = _commands("\n".join(b for _, b in FENCE_RE.findall(_section(_readme(), "Development"))))
    slow = 'uv run pytest -m "slow or peers"'
    tier = [c for c in dev if c.split("#")[0].strip() == slow]
    assert tier, "README 'Development' must show the slow tiers' one command"
    assert ci_commands[-1] == slow, "CI ends with the slow tiers (wheel and real peers)"
    assert ci_commands.index("uv run pytest") < len(ci_commands) - 1


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_readme_names_every_providers_env_vars(path: Path) -> None:
    text = _readme(path)
    for p in Registry().providers():  # the packaged catalog, not the user's file
        assert f"`{p.name}`" in text, p.name
        groups = [v for g in p.key_groups.values() for v in g.key_env]
        for var in [*p.key_env, *groups, *([p.base_url_env] if p.base_url_env else [])]:
            assert f"`{var}`" in text, f"README does not mention {var} ({p.name})"
    assert "`CAMPUSLLM_API_KEY`" in text and "[keys]" in text


@pytest.mark.parametrize(
    ("path", "title"), [(README, "Command line"), (README_ZH, "命令行")], ids=["en", "zh"]
)
def test_readme_documents_every_cli_command(path: Path, title: str) -> None:
    import argparse

    from campusllm.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    section = _section(_readme(path), title)
    for name in sub.choices:
        assert f"`campusllm {name}" in section, f"README's CLI table lacks `campusllm {name}`"


# What each README prints when its examples did their job (beyond raising no error).
_EXAMPLE_OUTPUT = {
    README: ["Sunny, 22°C in Shanghai"],  # the agent examples completed their tool loops
    README_ZH: ["上海:晴,22°C", "Course", "流中断", "鉴权失败: AuthenticationError 401"],
}


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_readme_python_examples_run_against_the_simulator(
    path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every ```python block of the README runs as written, with env vars pointing at the sim."""
    from llama_index.core import Settings

    blocks = _python_blocks(_readme(path))
    assert len(blocks) >= 5
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(ROOT / "nonexistent-campusllm.toml"))
    reset_registry()
    saved = (Settings._llm, Settings._embed_model)
    try:
        for i, src in enumerate(blocks):
            # A key per block: each gets its own client-side rate-limit budget (SJTU: 10 rpm).
            key = f"sk-sim-readme-{path.stem}-{i}"
            for name in ("sjtu", "oneapi", "ecnu", "maas"):
                p = get_registry().provider(name)
                monkeypatch.setenv(p.key_env[0], key)
                monkeypatch.setenv(str(p.base_url_env), sim.url(name))
            try:
                exec(compile(src, f"{path.name} python block {i + 1}", "exec"), {"__name__": "r"})
            except Exception as e:  # name the block: the traceback alone points at exec
                raise AssertionError(
                    f"{path.name} python block {i + 1} failed: {e!r}\n{src}"
                ) from e
    finally:
        Settings._llm, Settings._embed_model = saved
        reset_registry()
    out = capsys.readouterr().out
    assert "<think>" not in out
    for marker in _EXAMPLE_OUTPUT[path]:
        assert marker in out, f"{path.name}: {marker!r} not printed"
    assert "0." in out  # rerank scores printed


def test_each_readme_links_the_other_near_its_top() -> None:
    assert "中文文档: [README.zh-CN.md](README.zh-CN.md)" in _readme().splitlines()[:5]
    assert "[English](README.md)" in _readme(README_ZH).splitlines()[2]
    # The English README keeps only a pointer, not a second (drifting) Chinese summary.
    pointer = _section(_readme(), "中文说明")
    assert "README.zh-CN.md" in pointer and "```" not in pointer
    assert len(pointer.strip().splitlines()) <= 5


def test_quick_start_demo_runs_offline_without_a_key(tmp_path: Path) -> None:
    """``campusllm demo`` on a machine with no key and no config: the simulator tour."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.endswith("_API_KEY") or k.endswith("_BASE_URL") or k.startswith("CAMPUSLLM_"))
    }
    env["CAMPUSLLM_CONFIG"] = str(tmp_path / "none.toml")
    env["NO_COLOR"] = "1"
    env["CAMPUSLLM_LANG"] = "en"  # the markers below are the English tour's
    # A fresh process, as a user runs it (and with its own rate-limit budget).
    proc = subprocess.run(
        [sys.executable, "-m", "campusllm", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "offline simulator" in proc.stdout
    assert "tool call:" in proc.stdout
    assert re.search(r"^0\.\d{3}  ", proc.stdout, re.M), "no rerank scores"
    assert "<think>" not in proc.stdout


# -------------------------------------------------------------------------- docstrings


def _public_modules() -> Iterator[str]:
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        yield pkg
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            parts = info.name.split(".")[1:]
            if parts[-1] == "__main__" or any(p.startswith("_") for p in parts):
                continue
            yield info.name


def test_every_public_class_has_a_docstring_with_an_example() -> None:
    missing = []
    for name in _public_modules():
        mod = importlib.import_module(name)
        for cname, cls in vars(mod).items():
            if inspect.isclass(cls) and cls.__module__ == name and not cname.startswith("_"):
                if "Example" not in (cls.__doc__ or ""):
                    missing.append(f"{name}.{cname}")
    assert not missing, f"public classes without an 'Example' in their docstring: {missing}"


# ------------------------------------------------------------------------------- keys


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        paths = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
        paths = [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
        ]
    files = []
    for p in paths:
        if not p.is_file():
            continue
        head = p.read_bytes()[:8192]
        if b"\0" not in head:
            files.append(p)
    return files


def test_no_key_looking_string_in_tracked_files() -> None:
    files = _tracked_text_files()
    assert any(p.name == "README.md" for p in files)
    hits = []
    for p in files:
        text = p.read_text(encoding="utf-8", errors="replace")
        for m in KEY_RE.finditer(text):
            hits.append(f"{p.relative_to(ROOT)}: {m.group()[:6]}…")
    assert not hits, f"key-looking strings committed: {hits}"


def _doctest_modules() -> list[str]:
    names = []
    for pkg in ("campusllm", "langchain_campusllm", "llama_index_campusllm"):
        mod = importlib.import_module(pkg)
        names.append(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=pkg + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", _doctest_modules())
def test_docstring_examples_run(name: str) -> None:
    # The examples in docstrings are documentation users copy: they must work as written
    # (network-bound ones carry +SKIP).
    import doctest

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
