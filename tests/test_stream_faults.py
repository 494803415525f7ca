"""The same fault in the middle of a stream ends the same way on every path that streams.

LangChain and LlamaIndex stream through the openai SDK, the CLI through campusllm's own SSE
reader; a user switching between them must get the same error type and the same partial
output for the same gateway behaviour.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable
from typing import Any

import httpx
import langchain_openai.chat_models.base as lc_openai_base
import openai
import pytest
from llama_index.core.base.llms.types import ChatMessage

from campusllm.chat import ChatCaller
from campusllm.errors import (
    BadRequestError,
    CampusLLMError,
    ProtocolError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnreachableError,
)
from campusllm.openai_sdk import OpenAIClients, map_sdk_error, sdk_http_library
from campusllm.registry import resolve
from campusllm.sim import SIM_KEY
from langchain_campusllm import ChatCampusLLM
from llama_index_campusllm import CampusLLM

MODEL = "sjtu:deepseek-reasoner"
REASONING = "Compare the integer parts first, then the decimals digit by digit. " * 2
CONTENT = "9.9 is larger than 9.11, because 0.90 is more than 0.11 after the point. " * 2
PROMPT = "Which is larger, 9.11 or 9.9?"

# (fault kind, status, expected error type)
FAULTS = [
    ("error_mid_stream", 500, ServerError),
    ("error_mid_stream", 429, RateLimitError),
    ("reset_mid_stream", 500, StreamInterruptedError),
]


def _langchain(sim: Any, asynchronous: bool) -> Callable[[], None]:
    llm = ChatCampusLLM(model=MODEL, api_key=SIM_KEY, base_url=sim.url("sjtu"), max_retries=0)

    def run() -> None:
        if asynchronous:

            async def consume() -> None:
                async for _ in llm.astream(PROMPT):
                    pass

            asyncio.run(consume())
        else:
            for _ in llm.stream(PROMPT):
                pass

    return run


def _llama_index(sim: Any, asynchronous: bool) -> Callable[[], None]:
    llm = CampusLLM(model=MODEL, api_key=SIM_KEY, base_url=sim.url("sjtu"), max_retries=0)
    messages = [ChatMessage(role="user", content=PROMPT)]

    def run() -> None:
        if asynchronous:

            async def consume() -> None:
                async for _ in await llm.astream_chat(messages):
                    pass

            asyncio.run(consume())
        else:
            for _ in llm.stream_chat(messages):
                pass

    return run


def _chat_caller(sim: Any) -> Callable[[], None]:
    caller = ChatCaller(MODEL, api_key=SIM_KEY, base_url=sim.url("sjtu"))

    def run() -> None:
        for _ in caller.stream([{"role": "user", "content": PROMPT}]):
            pass

    return run


PATHS: dict[str, Callable[[Any], Callable[[], None]]] = {
    "langchain": lambda sim: _langchain(sim, False),
    "langchain-async": lambda sim: _langchain(sim, True),
    "llama_index": lambda sim: _llama_index(sim, False),
    "llama_index-async": lambda sim: _llama_index(sim, True),
    "chat_caller": _chat_caller,
}


def _fail(sim: Any, path: str, kind: str, status: int, after: int = 12) -> CampusLLMError:
    run = PATHS[path](sim)
    sim.script("deepseek-reasoner", [{"reasoning": REASONING, "content": CONTENT, "chunks": 16}])
    sim.inject(kind, status=status, after_chunks=after)
    with pytest.raises(CampusLLMError) as info:
        run()
    return info.value


@pytest.mark.parametrize(("kind", "status", "expected"), FAULTS)
def test_a_mid_stream_fault_gives_the_same_error_and_partials_on_every_path(
    sim: Any, kind: str, status: int, expected: type[CampusLLMError]
) -> None:
    errors = {path: _fail(sim, path, kind, status) for path in PATHS}
    for path, err in errors.items():
        assert type(err) is expected, f"{path}: {type(err).__name__}: {err}"
        assert err.partial_reasoning, f"{path}: the reasoning received before the fault is lost"
        assert REASONING.startswith(err.partial_reasoning), path
        assert CONTENT.startswith(err.partial_content), path
        assert (err.partial_reasoning + err.partial_content) != REASONING + CONTENT, path
        if kind == "error_mid_stream":
            # the user is told it broke mid-answer (the gateway's own words, LiteLLM's for
            # this SJTU model, follow)
            assert err.status_code == status, path
            assert "in the middle of its answer" in err.message, path
    partials = {(e.partial_reasoning, e.partial_content) for e in errors.values()}
    assert len(partials) == 1, f"paths disagree on the partial output: {partials}"


def test_an_error_event_before_any_output_is_typed_the_same_way(sim: Any) -> None:
    for path in PATHS:
        err = _fail(sim, path, "error_mid_stream", 0, after=0)  # code 0: not a status
        assert type(err) is BadRequestError, f"{path}: {type(err).__name__}"
        assert not (err.partial_content or err.partial_reasoning), path
        err = _fail(sim, path, "error_200", 200)  # one-api: the error is the first event
        assert type(err) is BadRequestError, f"{path}: {type(err).__name__}"
        assert "当前分组上游负载已饱和" in err.message and not err.partial_content


# ------------------------------------------------------- `event: error` without an error key


def _sse(*events: str) -> bytes:
    return "".join(events).encode()


_CHUNK = 'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
_EVENT_ERROR = 'event: error\ndata: {"message": "upstream overloaded", "code": 503}\n\n'


def _mock(body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body, headers={"content-type": "text/event-stream"}
        )
    )


@pytest.mark.parametrize(
    "body",
    [
        _sse(_CHUNK, _EVENT_ERROR),
        _sse(
            _CHUNK,
            'event: error\ndata: {"error": {"message": "upstream overloaded", "code": 503}}\n\n',
        ),
        _sse(_CHUNK, 'data: {"error": {"message": "upstream overloaded", "code": "503"}}\n\n'),
    ],
)
def test_error_events_of_every_shape_are_typed_with_the_partial(body: bytes) -> None:
    base = "http://127.0.0.1:9/sjtu/api/v1"
    caller = ChatCaller("sjtu:deepseek-chat", api_key=SIM_KEY, base_url=base)
    caller.connection.http = httpx.Client(transport=_mock(body))
    llm = ChatCampusLLM(
        model="sjtu:deepseek-chat",
        api_key=SIM_KEY,
        base_url=base,
        http_client=httpx.Client(transport=_mock(body)),
        http_async_client=httpx.AsyncClient(transport=_mock(body)),
    )
    runs: list[Callable[[], object]] = [
        lambda: list(caller.stream([{"role": "user", "content": "hi"}])),
        lambda: list(llm.stream("hi")),
    ]
    for run in runs:
        with pytest.raises(ServerError) as info:
            run()
        assert info.value.partial_content == "Hel" and info.value.status_code == 503
        assert "upstream overloaded" in info.value.message


# ------------------------------------------------------------------- SDK exception chains


# langchain-openai 1.2 wraps the SDK's error in its own subclass; older releases (our floor) do
# not, so the test builds an equivalent wrapper there.
_LangChainConnectionError: type[openai.APIConnectionError] = getattr(
    lc_openai_base,
    "OpenAIConnectionError",
    type("OpenAIConnectionError", (openai.APIConnectionError,), {}),
)


def test_a_wrapped_read_error_is_a_broken_connection_not_a_refused_one() -> None:
    # langchain-openai re-raises the SDK's APIConnectionError as its own, whose cause is the
    # SDK's, whose cause is the HTTP library's ReadError: the bottom of the chain decides.
    r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    lib = sdk_http_library()
    request = lib.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    sdk = openai.APIConnectionError(request=request)
    sdk.__cause__ = lib.ReadError("connection reset by peer")
    wrapped = _LangChainConnectionError(message=sdk.message, request=request)
    wrapped.__cause__ = sdk
    err = map_sdk_error(wrapped, r)
    assert isinstance(err, UnreachableError) and "broke" in err.message
    bare = openai.APIConnectionError(request=request)  # no cause at all
    assert "Cannot connect" in str(map_sdk_error(bare, r))
    timeout = openai.APITimeoutError(request=request)
    assert type(map_sdk_error(timeout, r)).__name__ == "TimeoutError"


def test_errors_keep_their_partials_through_pickling() -> None:
    err = ServerError(
        "boom", status_code=502, partial_content="Hel", partial_tool_calls=[{"index": 0}]
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ServerError and again.partial_content == "Hel"
    assert again.partial_tool_calls == [{"index": 0}] and again.status_code == 502
    interrupted = pickle.loads(pickle.dumps(StreamInterruptedError("x", partial_reasoning="r")))
    assert interrupted.partial_reasoning == "r" and interrupted.partial_content == ""
    assert json.dumps(RateLimitError("slow", retry_after=1.0).partial_tool_calls) == "[]"


# ------------------------------------------------ how a stream ended, on every path alike

_BASE = "http://127.0.0.1:9/sjtu/api/v1"
_DONE = "data: [DONE]\n\n"


def _data(delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


# the last chunk ends in what may be the start of a tag: never part of the partial output
_STARTED = _data({"reasoning_content": "plan"}) + _data({"content": "Hel</thi"})
_COMPLETION = json.dumps(
    {
        "id": "c1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "reasoning_content": "plan"},
                "finish_reason": "stop",
            }
        ],
    }
)
_PAGE = "<html><head><title>Campus Login</title></head><body>log in</body></html>"


def _transports(body: str | bytes, content_type: str) -> tuple[Any, Any, Any]:
    raw = body.encode() if isinstance(body, str) else body
    headers = {"content-type": content_type}
    lib = sdk_http_library()
    sdk = [lib.MockTransport(lambda r: lib.Response(200, content=raw, headers=headers))] * 2
    core = httpx.MockTransport(lambda r: httpx.Response(200, content=raw, headers=headers))
    return core, sdk[0], sdk[1]


def _stream_paths(body: str | bytes, content_type: str) -> dict[str, Callable[[], list[str]]]:
    """Every streaming entry point against one gateway answer; each returns the text shown."""
    lib = sdk_http_library()
    core, sdk_sync, sdk_async = _transports(body, content_type)
    caller = ChatCaller(MODEL, api_key=SIM_KEY, base_url=_BASE)
    caller.connection.http = httpx.Client(transport=core)
    lc = ChatCampusLLM(
        model=MODEL,
        api_key=SIM_KEY,
        base_url=_BASE,
        http_client=lib.Client(transport=sdk_sync),
        http_async_client=lib.AsyncClient(transport=sdk_async),
    )
    li = CampusLLM(model=MODEL, api_key=SIM_KEY, base_url=_BASE)
    li.connection._openai = OpenAIClients(
        li.connection,
        http_client=lib.Client(transport=sdk_sync),
        http_async_client=lib.AsyncClient(transport=sdk_async),
    )
    msgs = [ChatMessage(role="user", content=PROMPT)]

    async def lc_async() -> list[str]:
        return [c.text async for c in lc.astream(PROMPT)]

    async def li_async() -> list[str]:
        return [r.delta or "" async for r in await li.astream_chat(msgs)]

    return {
        "chat_caller": lambda: [
            d.content for d in caller.stream([{"role": "user", "content": "hi"}])
        ],
        "langchain": lambda: [c.text for c in lc.stream(PROMPT)],
        "langchain-async": lambda: asyncio.run(lc_async()),
        "llama_index": lambda: [r.delta or "" for r in li.stream_chat(msgs)],
        "llama_index-async": lambda: asyncio.run(li_async()),
    }


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_STARTED, "text/event-stream"),  # closed after output: no [DONE], no finish_reason
        (_STARTED + ": keepalive\n\n", "text/event-stream"),
        (_STARTED.encode() + b"data: \xff\xfe\n\n" + _DONE.encode(), "text/event-stream"),
    ],
)
def test_a_stream_cut_without_done_or_finish_reason_is_interrupted_everywhere(
    body: str | bytes, content_type: str
) -> None:
    # the last case: an event that is not UTF-8 after output started breaks the stream too
    for path, run in _stream_paths(body, content_type).items():
        with pytest.raises(StreamInterruptedError) as info:
            run()
        e = info.value
        assert (e.partial_reasoning, e.partial_content) == ("plan", "Hel"), path
        assert "cut" in e.message or "UTF-8" in e.message, path


def test_a_stream_with_nothing_in_it_is_a_protocol_error_everywhere() -> None:
    for body in (_DONE, "", ": keepalive\n\n" + _DONE):
        for path, run in _stream_paths(body, "text/event-stream").items():
            with pytest.raises(ProtocolError, match="no output") as info:
                run()
            assert not isinstance(info.value, StreamInterruptedError), path


@pytest.mark.parametrize(
    "body",
    [
        _data({"content": "Hello"}) + _DONE,  # [DONE] without a finish_reason
        _data({"content": "Hello"}, finish="stop"),  # a finish_reason without [DONE]
    ],
)
def test_done_or_a_finish_reason_alone_completes_a_stream_everywhere(body: str) -> None:
    for path, run in _stream_paths(body, "text/event-stream").items():
        assert "".join(run()) == "Hello", path


def test_a_json_answer_to_a_stream_request_is_the_whole_answer_everywhere() -> None:
    for path, run in _stream_paths(_COMPLETION, "application/json").items():
        assert "".join(run()) == "Hello", path


def test_an_html_page_for_a_stream_is_named_everywhere() -> None:
    for path, run in _stream_paths(_PAGE, "text/html").items():
        with pytest.raises(ProtocolError, match="HTML page titled 'Campus Login'") as info:
            run()
        assert "log in to the campus network" in str(info.value).lower(), path


def test_a_json_error_for_a_stream_is_typed_by_its_code_everywhere() -> None:
    body = json.dumps({"error": {"message": "slow down", "code": 429}})
    for path, run in _stream_paths(body, "application/json").items():
        with pytest.raises(RateLimitError, match="slow down") as info:
            run()
        assert info.value.status_code == 429, path


def test_an_html_page_labelled_json_is_named_on_the_whole_answer_paths_too() -> None:
    lib = sdk_http_library()
    page = _PAGE.encode()

    def reply(request: Any) -> Any:
        return lib.Response(200, content=page, headers={"content-type": "application/json"})

    lc = ChatCampusLLM(
        model=MODEL,
        api_key=SIM_KEY,
        base_url=_BASE,
        max_retries=0,
        http_client=lib.Client(transport=lib.MockTransport(reply)),
    )
    li = CampusLLM(model=MODEL, api_key=SIM_KEY, base_url=_BASE, max_retries=0)
    li.connection._openai = OpenAIClients(
        li.connection, http_client=lib.Client(transport=lib.MockTransport(reply))
    )
    caller = ChatCaller(MODEL, api_key=SIM_KEY, base_url=_BASE)
    caller.connection.http = httpx.Client(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                200, content=page, headers={"content-type": "application/json"}
            )
        )
    )
    runs: dict[str, Callable[[], object]] = {
        "langchain": lambda: lc.invoke(PROMPT),
        "llama_index": lambda: li.chat([ChatMessage(role="user", content=PROMPT)]),
        "chat_caller": lambda: caller.invoke([{"role": "user", "content": PROMPT}]),
    }
    for path, run in runs.items():
        with pytest.raises(ProtocolError, match="HTML page titled 'Campus Login'") as info:
            run()
        assert info.value.provider == "sjtu", path
