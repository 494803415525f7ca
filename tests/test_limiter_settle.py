"""The limiter charges what the gateway counted: settle, limiter=, [limiter], usage, progress.

Every request here runs against the simulator with a limiter of the test's own (memory store,
:class:`ManualClock`), so what the window holds can be read exactly: after an answer has
been read, the window holds the answer's ``usage`` total (input + actual output), not the
admission estimate (input + expected output).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from campusllm.chat import ChatCaller
from campusllm.client import CampusClient
from campusllm.clock import ManualClock
from campusllm.connection import connect
from campusllm.errors import ConfigError
from campusllm.limiter import (
    DEFAULT_OUTPUT_TOKENS,
    Budget,
    RateLimiter,
    key_fingerprint,
    limiter_for,
    request_charge,
)
from campusllm.registry import ModelSpec, RateLimits, reset_registry, resolve
from campusllm.sim import SIM_KEY
from campusllm.wire.usage import UsageScanner

CHAT = "sjtu:deepseek-chat"
PROMPT = [{"role": "user", "content": "How wide is a sliding window?"}]


def _limiter() -> RateLimiter:
    return RateLimiter(rpm=1000, tpm=10**7, window_s=60, clock=ManualClock())


def _window(lim: RateLimiter) -> list[int]:
    """Tokens of every grant in the limiter's window, oldest first."""
    snap = lim.store.snapshot(lim.scope, lim._clock, lim._span)
    return [tokens for _, tokens in snap.entries]


def _total(usage: Any) -> int:
    usage = dict(usage)
    total = usage.get("total_tokens")
    if total is None:
        total = usage.get("prompt_tokens", usage.get("input_tokens", 0)) + usage.get(
            "completion_tokens", usage.get("output_tokens", 0)
        )
    assert total > 0
    return int(total)


# ----------------------------------------------------------------------- the core


def test_core_chat_answer_is_settled_with_its_usage(sim: Any) -> None:
    lim = _limiter()
    caller = ChatCaller(CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim)
    msg = caller.invoke(PROMPT)
    assert msg.usage is not None
    # admitted with input + 1,024 expected output; the gateway counted far less
    assert _window(lim) == [_total(msg.usage)]
    assert _total(msg.usage) < DEFAULT_OUTPUT_TOKENS
    caller.connection.close()


def test_core_chat_stream_is_settled_with_its_final_usage_chunk(sim: Any) -> None:
    lim = _limiter()
    caller = ChatCaller(CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim)
    deltas = list(caller.stream(PROMPT))
    usage = [d.usage for d in deltas if d.usage]
    assert len(usage) == 1  # include_usage was asked for, and the last chunk carried it
    assert _window(lim) == [_total(usage[0])]
    caller.connection.close()


def test_core_embeddings_are_settled(sim: Any) -> None:
    lim = _limiter()
    r = resolve("oneapi:qwen3-embedding-8b", base_url=sim.url("oneapi"))
    with CampusClient(r, SIM_KEY, limiter=lim) as c:
        data = c._post("/embeddings", c._embed_body(["one two three", "four five"], None))
    assert _window(lim) == [_total(data["usage"])]


# ----------------------------------------------------------------------- the adapters


def test_langchain_invoke_and_stream_are_settled(sim: Any) -> None:
    from langchain_campusllm import ChatCampusLLM

    lim = _limiter()
    llm = ChatCampusLLM(model=CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim)
    msg = llm.invoke("How wide is a sliding window?")
    assert msg.usage_metadata is not None
    chunks = list(llm.stream("And how long does it stay?"))
    streamed = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(streamed) == 1
    assert _window(lim) == [_total(msg.usage_metadata), _total(streamed[0])]


def test_langchain_async_stream_is_settled(sim: Any) -> None:
    from langchain_campusllm import ChatCampusLLM

    lim = _limiter()
    llm = ChatCampusLLM(model=CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim)

    async def run() -> list[Any]:
        return [c async for c in llm.astream("How wide is a sliding window?")]

    streamed = [c.usage_metadata for c in asyncio.run(run()) if c.usage_metadata]
    assert _window(lim) == [_total(streamed[0])]


def test_a_stream_without_usage_keeps_the_admission_estimate(sim: Any) -> None:
    from langchain_campusllm import ChatCampusLLM

    lim = _limiter()
    llm = ChatCampusLLM(
        model=CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim, stream_usage=False
    )
    chunks = list(llm.stream("How wide is a sliding window?"))
    assert not any(c.usage_metadata for c in chunks)
    (charged,) = _window(lim)
    assert charged > DEFAULT_OUTPUT_TOKENS  # input + the expected output, kept: never less


def test_llamaindex_chat_and_stream_are_settled(sim: Any) -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_campusllm import CampusLLM

    lim = _limiter()
    llm = CampusLLM(CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=lim)
    answer = llm.chat([ChatMessage(role="user", content="How wide is a sliding window?")])
    last = list(llm.stream_chat([ChatMessage(role="user", content="And how long?")]))[-1]
    assert _window(lim) == [
        _total(answer.additional_kwargs),
        _total(last.additional_kwargs),
    ]


# ----------------------------------------------------------------------- reading usage


def test_scanner_finds_usage_split_across_reads_and_compressed() -> None:
    body = (
        b'data: {"choices": [{"delta": {"content": "the word \\"usage\\": here"}}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, '
        b'"total_tokens": 12}}\n\ndata: [DONE]\n\n'
    )
    for encoding, raw in (("", body), ("gzip", gzip.compress(body))):
        s = UsageScanner(encoding)
        for i in range(0, len(raw), 7):  # every boundary, the key itself cut in two
            s.feed(raw[i : i + 7])
        assert s.usage() == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    s = UsageScanner("br")  # not inflated here: nothing found, the estimate stays
    s.feed(body)
    assert s.usage() is None
    pretty = json.dumps({"usage": {"prompt_tokens": 3, "total_tokens": 3}, "data": []}, indent=2)
    s = UsageScanner()
    s.feed(pretty.encode())
    assert s.usage() == {"prompt_tokens": 3, "total_tokens": 3}


def test_expected_output_of_the_registry_is_charged_at_admission() -> None:
    spec = ModelSpec(id="long-thinker", expected_output=4096, max_output=3000)
    assert request_charge(100, {"messages": []}, spec) == 100 + 3000  # capped by max_output
    spec = ModelSpec(id="long-thinker", expected_output=2048)
    assert request_charge(100, {"messages": []}, spec) == 100 + 2048
    assert request_charge(100, {"messages": [], "max_tokens": 50}, spec) == 150
    assert request_charge(100, {"input": ["x"]}, spec) == 100  # embeddings: no output
    assert request_charge(100, {"messages": []}, ModelSpec(id="plain")) == 1124


# ----------------------------------------------------------------------- choosing the limiter


def test_connect_takes_a_backend_name_or_a_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPUSLLM_CLIENT_LIMITS", raising=False)  # the catalog's limits apply
    conn = connect(CHAT, api_key="sk-limiter-arg-1", base_url="http://127.0.0.1:9/v1")
    assert conn.limiter is not None and conn.limiter.backend == "local"
    conn = connect(
        CHAT, api_key="sk-limiter-arg-1", base_url="http://127.0.0.1:9/v1", limiter="memory"
    )
    assert conn.limiter is not None and conn.limiter.backend == "memory"
    own = _limiter()
    assert connect(CHAT, api_key="sk-x", limiter=own).limiter is own
    with pytest.raises(ConfigError, match="not both"):
        connect(CHAT, api_key="sk-x", limiter=own, rate_limits=RateLimits(rpm=3))
    with pytest.raises(ConfigError, match="Unknown rate-limiter backend"):
        connect(CHAT, api_key="sk-x", limiter="postgres://db")
    with pytest.raises(ConfigError, match="backend name or a RateLimiter"):
        connect(CHAT, api_key="sk-x", limiter=3)  # type: ignore[arg-type]


def test_adapters_pass_limiter_through(sim: Any) -> None:
    from langchain_campusllm import CampusLLMEmbeddings, ChatCampusLLM
    from llama_index_campusllm import CampusLLMEmbedding

    own = _limiter()
    lc = ChatCampusLLM(model=CHAT, api_key=SIM_KEY, base_url=sim.url("sjtu"), limiter=own)
    assert lc.connection.limiter is own
    emb = "oneapi:qwen3-embedding-8b"
    kw: dict[str, Any] = {"api_key": SIM_KEY, "base_url": sim.url("oneapi")}
    assert CampusLLMEmbeddings(model=emb, limiter="memory", **kw).connection.limiter.backend == (
        "memory"
    )
    li = CampusLLMEmbedding(model=emb, limiter=own, **kw)
    assert li.connection.limiter is own


def test_config_file_limiter_table_applies_when_the_registry_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[limiter]\nbackend = "memory"\nenforce_budget = false\n'
        '[[limiter.budgets]]\nprovider = "ecnu"\ntokens = 5000\nperiod = "day"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(cfg))
    monkeypatch.delenv("CAMPUSLLM_LIMITER", raising=False)
    monkeypatch.delenv("CAMPUSLLM_CLIENT_LIMITS", raising=False)
    reset_registry()
    try:
        conn = connect("ecnu:ecnu-plus", api_key="sk-config-table")
        lim = conn.limiter
        assert lim is not None and lim.backend == "memory"
        assert Budget(5000, "day") in lim.budgets and lim.enforce_budget is False
        # the argument and the env var still win over the file
        assert connect("ecnu:ecnu-plus", api_key="sk-y", limiter="local").limiter.backend == (
            "local"
        )
        cfg.write_text('[limiter]\nbackend = "carrier-pigeon"\n', encoding="utf-8")
        reset_registry()
        with pytest.raises(ConfigError, match=r"config\.toml.*carrier-pigeon"):
            connect("ecnu:ecnu-plus", api_key="sk-config-table")
    finally:
        reset_registry()


# ----------------------------------------------------------------------- campusllm usage


def test_usage_command_shows_what_another_process_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from campusllm.cli import main

    spec = f"local:{tmp_path / 'shared.sqlite3'}"
    key = "sk-usage-command-1"
    lim = limiter_for("sjtu", key, RateLimits(rpm=10, weekly_tokens=10**9), limiter=spec)
    lim.settle(lim.acquire(5000, model="deepseek-v3.2"), 1234)
    lim.acquire(66, model="glm-5.1")
    fp = key_fingerprint("sjtu", key)

    # another OS process reads the same ledger
    env = {**os.environ, "CAMPUSLLM_LANG": "en"}
    out = subprocess.run(
        [sys.executable, "-m", "campusllm", "usage", "sjtu", "--limiter", spec, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout
    rows = json.loads(out)
    week = {r["model"]: r for r in rows if r["period"] == "week" and r["key_fingerprint"] == fp}
    assert week["deepseek-v3.2"]["used"] == 1234 and week["glm-5.1"]["used"] == 66
    assert week["*"]["used"] == 1300 and week["*"]["remaining"] == 10**9 - 1300
    assert key not in out

    assert main(["usage", "sjtu", "--limiter", spec]) == 0
    text = capsys.readouterr().out
    assert fp in text and "1,234" in text and "999,998,700" in text and "resets" in text
    monkey = pytest.MonkeyPatch()
    monkey.setenv("CAMPUSLLM_LANG", "zh")
    try:
        assert main(["usage", "ecnu", "--limiter", spec]) == 0
        assert "还没有记录到任何用量" in capsys.readouterr().out
    finally:
        monkey.undo()


# ----------------------------------------------------------------------- progress


def test_embedding_progress_shows_the_limiters_eta_and_waits(
    sim: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # the plain line: nothing cut to width
    lim = RateLimiter(rpm=2, tpm=None, window_s=60, clock=ManualClock())
    r = resolve("oneapi:qwen3-embedding-8b", base_url=sim.url("oneapi"))
    with CampusClient(r, SIM_KEY, limiter=lim) as c:
        vectors = c.embed([f"text {i}" for i in range(5)], batch_size=1, show_progress=True)
    assert len(vectors) == 5
    err = capsys.readouterr().err
    assert "Embedding: 2/5 (rate limit: ≥ 120 s to go)" in err  # 3 left at 2 a minute
    assert "Embedding: 4/5 (rate limit: ≥ 60 s to go)" in err
    assert "(waiting: rate limiter: next slot in 60 s — 2 requests/min quota)" in err
