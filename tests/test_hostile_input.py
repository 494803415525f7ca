"""Hostile input from the user's side, leaks, and secrets beyond one call.

What the fault matrix cannot express as "one call against one scripted gateway": a config file
saved in GBK, arguments of the wrong type, a batch size above the gateway's cap, file
descriptors leaking across event loops closed the way Jupyter closes them, a forked child
reusing its parent's socket, two instances doubling one key's quota, a generic key sent to a
named gateway, and a key sent in clear text. Everything stays on 127.0.0.1: a host name that
does not exist is reached through the hostile server acting as an HTTP proxy.

Tests that fail today are strict xfails naming the code at fault.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile.scenarios import CHAT_MODEL, EMBED_MODEL, KEY, OK_ROUTES, RERANK_MODEL
from hostile.server import HostileServer, Mount, json_reply

import campusllm
from campusllm.errors import AuthenticationError, ConfigError
from campusllm.registry import RateLimits, reset_registry

PROMPT = [{"role": "user", "content": "hi"}]
DEAD_URL = "http://127.0.0.1:9/v1"  # never contacted: every case fails before sending


def _xfail(reason: str | None) -> list[Any]:
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


# ----------------------------------------------------------------------------- config file


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private CAMPUSLLM_CONFIG path; the process registry is rebuilt around the test."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(path))
    reset_registry()
    yield path
    monkeypatch.delenv("CAMPUSLLM_CONFIG")
    reset_registry()


def test_a_config_file_saved_in_gbk_is_a_config_error_naming_file_and_encoding(
    user_config: Path,
) -> None:
    # Notepad on Chinese Windows saves "ANSI", i.e. GBK.
    text = '# 交大校园网关的配置（密钥见下）\n[keys]\ncustom = "sk-test-gbk-0123456789"\n'
    user_config.write_bytes(text.encode("gbk"))
    with pytest.raises(ConfigError) as ei:
        campusllm.resolve(CHAT_MODEL, base_url=DEAD_URL)
    message = str(ei.value)
    assert str(user_config) in message
    assert "utf-8" in message.lower() or "encoding" in message.lower(), message
    assert "sk-test-gbk-0123456789" not in message


# ----------------------------------------------------------------------------- wrong types


def _lc_chat(**kw: Any) -> Any:
    from langchain_campusllm import ChatCampusLLM

    return ChatCampusLLM(**{"model": CHAT_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw})


def _li_chat(**kw: Any) -> Any:
    from llama_index_campusllm import CampusLLM

    return CampusLLM(**{"model": CHAT_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw})


def _core_chat(**kw: Any) -> Any:
    from campusllm.chat import ChatCaller

    args = {"model": CHAT_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw}
    return ChatCaller(args.pop("model"), **args)


def _lc_embed(**kw: Any) -> Any:
    from langchain_campusllm import CampusLLMEmbeddings

    return CampusLLMEmbeddings(**{"model": EMBED_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw})


def _li_embed(**kw: Any) -> Any:
    from llama_index_campusllm import CampusLLMEmbedding

    return CampusLLMEmbedding(**{"model": EMBED_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw})


def _lc_rerank(**kw: Any) -> Any:
    from langchain_campusllm import CampusLLMRerank

    return CampusLLMRerank(**{"model": RERANK_MODEL, "base_url": DEAD_URL, "api_key": KEY, **kw})


def _core_client(**kw: Any) -> Any:
    from campusllm.client import CampusClient

    model = kw.pop("model", EMBED_MODEL)
    key = kw.pop("api_key", KEY)
    return CampusClient(campusllm.resolve(model, base_url=DEAD_URL), key, **kw)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "lc.chat": _lc_chat,
    "li.chat": _li_chat,
    "core.chat": _core_chat,
    "lc.embed": _lc_embed,
    "li.embed": _li_embed,
    "lc.rerank": _lc_rerank,
    "core.client": _core_client,
}

# (builder, argument, value, word our message must contain, what is wrong today)
_BAD_ARGS: list[tuple[str, str, Any, str, str | None]] = [
    *[(b, "model", 123, "model", None) for b in _BUILDERS],
    *[(b, "api_key", 12345, "api_key", None) for b in _BUILDERS],
    *[(b, "timeout", -1, "timeout", None) for b in _BUILDERS],
]


@pytest.mark.parametrize(
    ("builder", "arg", "value", "word"),
    [
        pytest.param(b, a, v, w, id=f"{b}-{a}={v}", marks=_xfail(why))
        for b, a, v, w, why in _BAD_ARGS
    ],
)
def test_wrong_argument_types_are_refused_at_construction_with_our_message(
    builder: str, arg: str, value: Any, word: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resolve() warns about unknown models: not under test
        with pytest.raises((ConfigError, TypeError)) as ei:
            _BUILDERS[builder](**{arg: value})
    message = str(ei.value)
    assert word in message, f"the message does not name {word!r}: {message!r}"
    if arg == "api_key":
        assert str(value) not in message, "the message repeats the key"


def _embed_bytes(kind: str) -> Any:
    texts: Any = [b"x"]
    if kind == "core.embed":
        return _core_client().embed(texts)
    if kind == "lc.embed_documents":
        return _lc_embed().embed_documents(texts)
    return _li_embed().get_text_embedding_batch(texts)


@pytest.mark.parametrize("kind", ["core.embed", "lc.embed_documents", "li.embed_batch"])
def test_bytes_to_embed_are_a_type_error_with_our_message(kind: str) -> None:
    with pytest.raises((TypeError, ConfigError)) as ei:
        _embed_bytes(kind)
    assert "embed" in str(ei.value).lower(), str(ei.value)


# ----------------------------------------------------------------------------- batch size cap


def _embed_mount(hostile: HostileServer) -> Mount:
    return hostile.mount({"embeddings": OK_ROUTES["embeddings"]})


def _embed_over_cap(kind: str, url: str, batch_size: int, texts: list[str]) -> Any:
    # oneapi's catalogued embedding model: the provider caps a request at embedding_batch texts
    model = "oneapi:qwen3-embedding-8b"
    if kind == "core.embed":
        from campusllm.client import CampusClient

        client = CampusClient(campusllm.resolve(model, base_url=url), KEY)
        return client.embed(texts, batch_size=batch_size)
    if kind == "lc.embed_documents":
        from langchain_campusllm import CampusLLMEmbeddings

        emb = CampusLLMEmbeddings(model=model, base_url=url, api_key=KEY, batch_size=batch_size)
        return emb.embed_documents(texts)
    from llama_index_campusllm import CampusLLMEmbedding

    li = CampusLLMEmbedding(model=model, base_url=url, api_key=KEY, embed_batch_size=batch_size)
    return li.get_text_embedding_batch(texts)


@pytest.mark.parametrize("kind", ["core.embed", "lc.embed_documents", "li.embed_batch"])
def test_batch_size_above_the_gateway_limit_is_clamped_or_refused_before_sending(
    hostile: HostileServer, kind: str
) -> None:
    cap = campusllm.resolve("oneapi:qwen3-embedding-8b").provider.embedding_batch
    texts = [f"text {i}" for i in range(cap + 8)]
    m = _embed_mount(hostile)
    try:
        vectors = _embed_over_cap(kind, m.url, cap * 4, texts)
    except ConfigError as e:
        assert not m.seen(), "refused, but only after sending"
        assert str(cap) in str(e)
        return
    sizes = [len(r.json["input"]) for r in m.seen()]
    assert len(vectors) == len(texts)
    assert max(sizes) <= cap, f"request sizes {sizes}, the gateway accepts at most {cap}"


# ----------------------------------------------------------------------------- descriptors


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_sync_llama_index_calls_in_jupyter_do_not_leak_file_descriptors(
    hostile: HostileServer,
) -> None:
    # Jupyter runs a loop already; LlamaIndex's asyncio_run then runs each coroutine on a fresh
    # loop in a worker thread and closes it without shutdown_asyncgens.
    from llama_index.core.async_utils import asyncio_run
    from llama_index.core.llms import ChatMessage

    from llama_index_campusllm import CampusLLM, CampusLLMEmbedding

    m = hostile.mount(OK_ROUTES)
    llm = CampusLLM(model=CHAT_MODEL, base_url=m.url, api_key=KEY)
    emb = CampusLLMEmbedding(model=EMBED_MODEL, base_url=m.url, api_key=KEY)
    messages = [ChatMessage(role="user", content="hi")]

    def cell() -> None:
        asyncio_run(llm.achat(messages))
        asyncio_run(emb.aget_text_embedding_batch(["a", "b"]))

    async def notebook() -> int:
        cell()  # first use: imports, SDK clients
        gc.collect()
        before = _open_fds()
        for _ in range(30):
            cell()
        gc.collect()
        # the server (in this process) closes its side of a closed connection a moment later
        for _ in range(30):
            if _open_fds() - before <= 8:
                break
            await asyncio.sleep(0.1)
        return _open_fds() - before

    try:
        growth = asyncio.run(notebook())
    finally:
        llm.close()
        emb.close()
    # server-side sockets live in this process too: one leaked connection counts twice
    assert growth <= 8, f"{growth} more file descriptors open after 30 cells"


# ----------------------------------------------------------------------------- fork


def _wait(pid: int, limit: float = 30.0) -> int | None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def _sync_call(kind: str, url: str) -> Callable[[], Any]:
    if kind == "core.invoke":
        caller = _core_chat(base_url=url)
        return lambda: caller.invoke(PROMPT)
    llm = _lc_chat(base_url=url)
    return lambda: llm.invoke("hi")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", ["core.invoke", "lc.invoke"])
def test_a_forked_child_never_reuses_the_parents_connection(
    hostile: HostileServer, kind: str
) -> None:
    m = hostile.mount(OK_ROUTES)
    call = _sync_call(kind, m.url)
    call()
    parent_conn = m.seen()[-1].conn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            call()
            code = 0
        except BaseException:  # noqa: BLE001
            code = 2
        finally:
            os._exit(code)
    assert _wait(pid) == 0, "the child's request failed or hung"
    child_conn = m.seen()[-1].conn
    call()  # the parent's client still works
    assert child_conn != parent_conn, "the child sent its request on the parent's socket"


# ----------------------------------------------------------------------------- one key, one budget


def test_two_instances_on_one_key_share_one_budget_even_if_their_limits_differ(
    hostile: HostileServer,
) -> None:
    from campusllm.client import CampusClient

    m = hostile.mount({"models": json_reply({"data": [{"id": "test-model"}]})})
    resolved = campusllm.resolve(CHAT_MODEL, base_url=m.url)
    key = "sk-test-one-budget-0123456789"  # a key of its own: its limiter outlives the test
    # Same rpm in both: whatever rule merges two budgets, two requests fill this window. The
    # window is far longer than the test, so nothing leaves it while the test looks.
    a = CampusClient(resolved, key, limits=RateLimits(rpm=2, window_s=600.0))
    b = CampusClient(resolved, key, limits=RateLimits(rpm=2, tpm=10**6, window_s=600.0))
    a.list_models()
    a.list_models()
    assert len(m.seen()) == 2
    assert b.connection.limiter is not None and b.connection.limiter is not a.connection.limiter
    # What b.list_models() would wait for; asked without waiting, so no clock is raced.
    assert b.connection.limiter.try_acquire() is None, (
        "the second instance would send at once: it has a budget of its own"
    )


# ---------------------------------------------------------------------- keys and where they go


@pytest.fixture
def only_generic_key(monkeypatch: pytest.MonkeyPatch, user_config: Path) -> None:
    """CAMPUSLLM_API_KEY set, no SJTU_API_KEY, no key in a config file."""
    monkeypatch.delenv("SJTU_API_KEY", raising=False)
    monkeypatch.setenv("CAMPUSLLM_API_KEY", KEY)


@pytest.mark.parametrize("kind", ["core.invoke", "lc.invoke"])
def test_the_generic_key_is_not_sent_to_a_named_gateway_without_opting_in(
    hostile: HostileServer, only_generic_key: None, kind: str
) -> None:
    m = hostile.mount(OK_ROUTES)
    with pytest.raises(AuthenticationError) as ei:
        if kind == "core.invoke":
            from campusllm.chat import ChatCaller

            ChatCaller("sjtu:deepseek-chat", base_url=m.url).invoke(PROMPT)
        else:
            from langchain_campusllm import ChatCampusLLM

            ChatCampusLLM(model="sjtu:deepseek-chat", base_url=m.url).invoke("hi")
    assert "SJTU_API_KEY" in str(ei.value)
    assert not [r for r in m.seen() if r.auth], "the generic key reached the gateway"


@pytest.fixture
def via_proxy(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Route plain-http requests through the hostile server acting as a forward proxy."""
    for name in ("NO_PROXY", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    proxy = f"http://127.0.0.1:{hostile.port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    return proxy


def _clear_text_warnings(
    records: list[warnings.WarningMessage], logs: list[logging.LogRecord], host: str
) -> list[str]:
    texts = [str(w.message) for w in records] + [r.getMessage() for r in logs]
    return [t for t in texts if host in t and ("http" in t.lower() or "encrypt" in t.lower())]


def test_a_key_sent_over_plain_http_to_another_host_warns_once(
    hostile: HostileServer, via_proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The host name does not exist: the proxy (on 127.0.0.1) answers for it, so nothing
    # leaves this machine.
    m = hostile.mount(OK_ROUTES)
    host = "llm.example.edu.cn"
    caplog.set_level(logging.WARNING, logger="campusllm")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        caller = _core_chat(base_url=f"http://{host}/{m.name}/v1")
        caller.invoke(PROMPT)
        caller.invoke(PROMPT)
    assert [r.target for r in m.seen()][0].startswith(f"http://{host}/"), "not proxied"
    found = _clear_text_warnings(records, caplog.records, host)
    assert len(found) == 1, f"expected one warning naming {host}, got {found}"


def test_no_clear_text_warning_for_loopback(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    m = hostile.mount(OK_ROUTES)
    caplog.set_level(logging.WARNING, logger="campusllm")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        _core_chat(base_url=m.url).invoke(PROMPT)
    assert not _clear_text_warnings(records, caplog.records, "127.0.0.1")


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX-only harness")
