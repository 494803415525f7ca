"""The core callers take the adapters' timeout and retry options, with the same defaults.

``ChatCaller`` (the CLI's and framework-free users' chat), ``CompletionCaller`` and both
adapters' chat and completion models must mean the same by ``timeout=`` (the total of one
attempt, stream included), ``read_timeout=`` (the longest silence between two reads) and
``max_retries=``: a user moving from LangChain to the core keeps the same deadlines.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hostile.bodies import STARTED
from hostile.scenarios import CHAT_MODEL, KEY
from hostile.server import HostileServer, Mount, Pause, json_reply, sse_reply

from campusllm.chat import ChatCaller
from campusllm.completions import CompletionCaller
from campusllm.connection import DEFAULT_CHAT_TIMEOUT, Connection
from campusllm.errors import ConfigError, ServerError, StreamInterruptedError, TimeoutError

BASE = "http://127.0.0.1:9/v1"  # never contacted: construction only
COMPLETION_MODEL = "maas:Qwen2-72B"
PROMPT = [{"role": "user", "content": "hi"}]


def _chat_caller(**kw: Any) -> Connection:
    return ChatCaller(CHAT_MODEL, api_key=KEY, base_url=BASE, **kw).connection


def _completion_caller(**kw: Any) -> Connection:
    return CompletionCaller(COMPLETION_MODEL, api_key=KEY, base_url=BASE, **kw).connection


def _lc_chat(**kw: Any) -> Connection:
    from langchain_campusllm import ChatCampusLLM

    return ChatCampusLLM(model=CHAT_MODEL, api_key=KEY, base_url=BASE, **kw).connection


def _lc_completion(**kw: Any) -> Connection:
    from langchain_campusllm import CampusLLMCompletion

    llm = CampusLLMCompletion(model=COMPLETION_MODEL, api_key=KEY, base_url=BASE, **kw)
    assert llm.campus_caller is not None
    return llm.campus_caller.connection


def _li_chat(**kw: Any) -> Connection:
    from llama_index_campusllm import CampusLLM

    return CampusLLM(model=CHAT_MODEL, api_key=KEY, base_url=BASE, **kw).connection


CONSTRUCTORS: dict[str, Callable[..., Connection]] = {
    "ChatCaller": _chat_caller,
    "CompletionCaller": _completion_caller,
    "langchain ChatCampusLLM": _lc_chat,
    "langchain CampusLLMCompletion": _lc_completion,
    "llama_index CampusLLM": _li_chat,
}


@pytest.mark.parametrize("build", CONSTRUCTORS.values(), ids=list(CONSTRUCTORS))
def test_every_chat_and_completion_entry_point_has_the_same_default_deadline(
    build: Callable[..., Connection],
) -> None:
    conn = build()
    assert conn.timeouts.total == DEFAULT_CHAT_TIMEOUT
    assert conn.timeouts.read is None  # only the total bounds a silent stream by default
    conn.close()


@pytest.mark.parametrize("build", CONSTRUCTORS.values(), ids=list(CONSTRUCTORS))
def test_timeout_read_timeout_and_max_retries_reach_the_transport(
    build: Callable[..., Connection],
) -> None:
    conn = build(timeout=300, read_timeout=45, max_retries=2)
    assert (conn.timeouts.total, conn.timeouts.read, conn.retry.max_retries) == (300, 45, 2)
    conn.close()


@pytest.mark.parametrize("build", CONSTRUCTORS.values(), ids=list(CONSTRUCTORS))
def test_a_read_timeout_that_is_not_seconds_is_refused_at_construction(
    build: Callable[..., Connection],
) -> None:
    with pytest.raises(ConfigError, match="read_timeout"):
        build(read_timeout=0)


def test_llama_index_timeouts_are_typed_as_optional_seconds() -> None:
    from llama_index_campusllm import CampusLLM, CampusLLMEmbedding

    for cls in (CampusLLM, CampusLLMEmbedding):
        params = inspect.signature(cls.__init__).parameters
        assert params["timeout"].annotation == "float | None"
        assert params["read_timeout"].annotation == "float | None"


# ----------------------------------------------------------------------------- behaviour


def _silent_after_content(hostile: HostileServer) -> Mount:
    """A stream that sends reasoning and content, then nothing for a minute (no keepalives)."""
    return hostile.mount({"chat_stream": sse_reply(STARTED, tail=(Pause(60),))}, secrets=[KEY])


def _core_stream(url: str) -> None:
    with ChatCaller(CHAT_MODEL, api_key=KEY, base_url=url, timeout=120, read_timeout=1) as c:
        list(c.stream(PROMPT))


def _lc_stream(url: str) -> None:
    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=CHAT_MODEL, api_key=KEY, base_url=url, timeout=120, read_timeout=1)
    try:
        list(llm.stream("hi"))
    finally:
        llm.connection.close()


def _li_stream(url: str) -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_campusllm import CampusLLM

    with CampusLLM(model=CHAT_MODEL, api_key=KEY, base_url=url, timeout=120, read_timeout=1) as llm:
        list(llm.stream_chat([ChatMessage(role="user", content="hi")]))


STREAMS: dict[str, Callable[[str], None]] = {
    "ChatCaller.stream": _core_stream,
    "ChatCampusLLM.stream": _lc_stream,
    "CampusLLM.stream_chat": _li_stream,
}


@pytest.mark.parametrize("stream", STREAMS.values(), ids=list(STREAMS))
def test_read_timeout_ends_a_silent_stream_long_before_the_total(
    hostile: HostileServer, stream: Callable[[str], None]
) -> None:
    m = _silent_after_content(hostile)
    # Only the read timeout (1 s) can end this call in time: the total is 120 s and the
    # server stays silent for 60 s. The abort is a backstop so a failure cannot hang.
    backstop = threading.Timer(40, m.abort)
    backstop.start()
    t0 = time.monotonic()
    try:
        with pytest.raises((StreamInterruptedError, TimeoutError)) as info:
            stream(m.url)
    finally:
        backstop.cancel()
    assert time.monotonic() - t0 < 30
    if isinstance(info.value, StreamInterruptedError):
        assert info.value.partial_content == "Hello"
        assert info.value.partial_reasoning == "plan"


def test_max_retries_bounds_the_core_callers_attempts(hostile: HostileServer) -> None:
    m = hostile.mount(
        {
            "chat": json_reply({"error": {"message": "overloaded"}}, status=503),
            "chat_stream": json_reply({"error": {"message": "overloaded"}}, status=503),
        },
        secrets=[KEY],
    )
    with ChatCaller(CHAT_MODEL, api_key=KEY, base_url=m.url, max_retries=1) as caller:
        with pytest.raises(ServerError):
            caller.invoke(PROMPT)
        with pytest.raises(ServerError):
            list(caller.stream(PROMPT))
    assert len(m.seen()) == 4  # one retry each, not the default six
