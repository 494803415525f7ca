"""The CLI a new user meets first: every subcommand against the simulator."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from campusllm.chat import ChatCaller
from campusllm.cli import main
from campusllm.errors import ProtocolError, StreamInterruptedError
from campusllm.sim import SIM_KEY
from campusllm.wire.sse import SSEEvent, event_json, iter_sse_events


def test_providers_lists_every_seed_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    for name in ("sjtu", "ecnu", "maas", "oneapi", "custom"):
        assert name in out
    assert "SJTU_API_KEY" in out
    assert "10 rpm" in out


def test_models_table_shows_aliases_and_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "sjtu"]) == 0
    out = capsys.readouterr().out
    assert "sjtu:deepseek-v3.2" in out and "deepseek-chat" in out
    assert "sjtu:minimax-m2.7" in out
    assert "ecnu:" not in out


def test_models_live_reports_drift(sim, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    assert main(["models", "sjtu", "--live", "--base-url", sim.url("sjtu")]) == 0
    out = capsys.readouterr().out
    assert "Live /models on sjtu" in out
    assert "not in the catalog: none" in out


def test_chat_streams_reasoning_apart_from_answer(sim, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    rc = main(
        ["chat", "-m", "sjtu:deepseek-reasoner", "--base-url", sim.url("sjtu"), "hello there"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "[thinking]" in out
    assert "<think>" not in out
    thinking, _, answer = out.partition("\n\n")
    assert answer.strip(), out


def test_chat_without_key_names_env_var(monkeypatch, capsys) -> None:
    for var in ("SJTU_API_KEY", "CAMPUSLLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", "/nonexistent/campusllm.toml")
    rc = main(["chat", "-m", "sjtu:deepseek-chat", "--base-url", "http://127.0.0.1:9/x", "hi"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "SJTU_API_KEY" in err


def test_doctor_reports_auth_ok(sim, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    assert main(["doctor", "sjtu", "--base-url", sim.url("sjtu")]) == 0
    out = capsys.readouterr().out
    assert "auth ok" in out
    assert SIM_KEY not in out


def test_doctor_unreachable_mentions_vpn(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    # port 9 (discard) is closed on loopback: connection refused, as off campus
    rc = main(["doctor", "sjtu", "--base-url", "http://127.0.0.1:9/api/v1", "--timeout", "2"])
    assert rc == 1
    assert "VPN" in capsys.readouterr().out


def test_doctor_without_key_still_checks_reachability(sim, monkeypatch, capsys) -> None:
    for var in ("SJTU_API_KEY", "CAMPUSLLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", "/nonexistent/campusllm.toml")
    assert main(["doctor", "sjtu", "--base-url", sim.url("sjtu")]) == 1  # the key is missing
    out = capsys.readouterr().out
    assert "SJTU_API_KEY" in out and "reach    ok (HTTP 401)" in out
    rc = main(["doctor", "sjtu", "--base-url", "http://127.0.0.1:9/api/v1", "--timeout", "2"])
    assert rc == 1 and "VPN" in capsys.readouterr().out


def test_sse_parser_rejects_garbage() -> None:
    [event] = iter_sse_events(["data: {not json", ""])
    with pytest.raises(ProtocolError):
        event_json(event.data)
    lines = [": comment", "event: error", 'data: {"a":1}', "", "data: [DONE]", "", "data: 2"]
    events = list(iter_sse_events(lines))
    assert events == [SSEEvent("error", '{"a":1}')]  # nothing after [DONE]
    assert event_json(events[0].data) == {"a": 1}


def test_chat_caller_keeps_partial_output_when_stream_breaks(fresh_sim) -> None:
    fresh_sim.inject("reset_mid_stream", after_chunks=3)
    caller = ChatCaller("sjtu:deepseek-chat", api_key=SIM_KEY, base_url=fresh_sim.url("sjtu"))
    got = ""
    with pytest.raises(StreamInterruptedError) as info:
        for d in caller.stream([{"role": "user", "content": "tell me a long story"}]):
            got += d.content + d.reasoning
    err = info.value
    assert got == err.partial_content + err.partial_reasoning
    assert got  # something had arrived before the break
    caller.close()


_WITHOUT = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {package!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from campusllm.cli import main
sys.exit(main(["demo", "--offline"]))
"""


@pytest.mark.parametrize(
    ("missing", "still_runs"),
    [("langchain_campusllm", "function_calling="), ("llama_index_campusllm", "tool call:")],
)
def test_demo_runs_without_one_of_the_adapters(
    missing: str, still_runs: str, tmp_path: pathlib.Path
) -> None:
    # The adapters become optional extras: the tour must not need both.
    other = {"langchain_campusllm": "llama_index.core", "llama_index_campusllm": "langchain_openai"}
    if importlib.util.find_spec(other[missing]) is None:  # the core-only CI tier has neither
        pytest.skip(f"needs the other adapter's framework ({other[missing]}) installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUSLLM_")}
    env.update(CAMPUSLLM_CONFIG=str(tmp_path / "none.toml"), NO_COLOR="1", CAMPUSLLM_LANG="en")
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(package=missing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"({missing} is not installed" in proc.stdout
    assert still_runs in proc.stdout and "Done." in proc.stdout


_CORE_ONLY = """
import sys

# a core-only install: the adapters' packages are there, their frameworks are not
BLOCKED = ("langchain_core", "langchain_openai", "openai", "llama_index")
for name in BLOCKED:
    sys.modules[name] = None  # import raises ImportError, find_spec finds nothing
from campusllm.cli import main
sys.exit(main(["demo", "--offline"]))
"""


def _clean_env(tmp_path: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUSLLM_")}
    env.update(CAMPUSLLM_CONFIG=str(tmp_path / "none.toml"), NO_COLOR="1", CAMPUSLLM_LANG="en")
    return env


def test_demo_in_a_core_only_install_says_in_one_line_how_to_install_each_extra(
    tmp_path: pathlib.Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CORE_ONLY],
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    for extra, needed in (("langchain", "langchain_core"), ("llamaindex", "llama_index.core")):
        notes = [line for line in proc.stdout.splitlines() if f'"campusllm[{extra}]"' in line]
        assert len(notes) == 1, proc.stdout  # said once, on one line
        assert f"needs {needed}, which is not installed" in notes[0]
        assert f'pip install "campusllm[{extra}]"' in notes[0]
    assert "Done." in proc.stdout


def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.endswith("_API_KEY") or "_API_KEY_" in var:
            monkeypatch.delenv(var)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", "/nonexistent/campusllm.toml")


def test_doctor_without_provider_checks_only_the_providers_with_a_key(
    sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_keys(monkeypatch)
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    assert main(["doctor", "--base-url", sim.url("sjtu")]) == 0
    out = capsys.readouterr().out
    assert "== sjtu" in out and "auth ok" in out
    for other in ("ecnu", "maas", "oneapi", "custom"):
        assert f"== {other}" not in out  # no key: nothing of theirs to check
    assert "campusllm doctor PROVIDER" in out  # and how to check one of them anyway


def test_doctor_without_any_key_says_none_is_configured_and_how(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_keys(monkeypatch)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "No API key is configured" in out
    assert "SJTU_API_KEY" in out and "[keys]" in out and "==" not in out


def test_a_reader_that_went_away_ends_the_cli_without_a_traceback(
    tmp_path: pathlib.Path,
) -> None:
    # `campusllm providers | head -1`, with head gone before the first write: the pipe's
    # read end is closed before the command starts, so every write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "campusllm", "providers"],
            env=_clean_env(tmp_path),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # as a shell reports a process ended by SIGPIPE
