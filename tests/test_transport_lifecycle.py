"""Deadlines, pools and secrets of the transport, against real sockets on 127.0.0.1.

* the total timeout ends an attempt whose bytes keep coming too slowly, or stop coming after a
  while, however long the per-read timeout is (sync: the watchdog shuts the socket down);
* an event loop closed without ``shutdown_asyncgens`` (LlamaIndex's ``asyncio_run``) closes
  its connection pool as it closes;
* a key echoed by the gateway survives nowhere: not on the exception chain, not in the
  DEBUG logs of httpx, httpcore and the openai SDK.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from hostile.scenarios import CHAT_MODEL, ECHO_KEY, KEY
from hostile.server import HostileServer, Pad, Pause, Reply, Send, json_reply, sse_event
from pydantic import SecretStr

from campusllm.connection import DEFAULT_CHAT_TIMEOUT, DEFAULT_TIMEOUT, connect
from campusllm.errors import (
    AuthenticationError,
    ConfigError,
    TimeoutError,
    register_secret,
    scrub,
)
from campusllm.transport import AsyncCampusTransport, Timeouts, error_from_exception

BODY = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
FIRST = sse_event({"choices": [{"index": 0, "delta": {"content": "Hello"}}]})


def _stalls_after(seconds: float) -> Reply:
    """A stream that sends keepalives for ``seconds``, then nothing at all."""
    return Reply(
        headers=(("Content-Type", "text/event-stream"),),
        steps=(Send(FIRST), Pad(interval=0.05, for_s=seconds), Pause(30.0)),
        framing="chunked",
    )


def _read_all_lines(conn: Any) -> None:
    url = conn.resolved.base_url + "/chat/completions"
    with conn.http.stream("POST", url, json=BODY) as response:
        for _ in response.iter_lines():
            pass


# ----------------------------------------------------------------------------- the deadline


def test_a_stream_that_stops_after_a_while_ends_at_the_total_not_a_read_later(
    hostile: HostileServer,
) -> None:
    # Bytes flow for 1.6 s, then stop. Without a watchdog the read that is waiting when the
    # bytes stop may run its whole timeout (about 2 s more); the total ends it at 2 s.
    m = hostile.mount({"chat_stream": _stalls_after(1.6)})
    conn = connect(CHAT_MODEL, base_url=m.url, api_key=KEY, timeout=2.0, read_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as ei:
        _read_all_lines(conn)
    elapsed = time.monotonic() - t0
    conn.close()
    assert elapsed < 3.0, f"took {elapsed:.1f} s, the total timeout is 2 s"
    err = error_from_exception(ei.value, conn.resolved)
    assert isinstance(err, TimeoutError)
    assert "total timeout of 2 s" in str(err) and "read_timeout" in str(err)


def test_the_async_deadline_cancels_a_silent_read(hostile: HostileServer) -> None:
    m = hostile.mount({"chat_stream": _stalls_after(0.0)})
    conn = connect(CHAT_MODEL, base_url=m.url, api_key=KEY, timeout=1.0, read_timeout=60)

    async def read() -> None:
        url = conn.resolved.base_url + "/chat/completions"
        async with conn.ahttp.stream("POST", url, json=BODY) as response:
            async for _ in response.aiter_lines():
                pass

    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(read())
    # Without the deadline the read waits out read_timeout (60 s); the bound leaves a loaded
    # machine room without letting that through.
    assert time.monotonic() - t0 < 5
    conn.close()


def test_a_read_timeout_shorter_than_the_total_notices_a_stall_first(
    hostile: HostileServer,
) -> None:
    m = hostile.mount({"chat_stream": _stalls_after(0.0)})
    conn = connect(CHAT_MODEL, base_url=m.url, api_key=KEY, timeout=60, read_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as ei:
        _read_all_lines(conn)
    assert time.monotonic() - t0 < 5
    err = error_from_exception(ei.value, conn.resolved)
    assert isinstance(err, TimeoutError) and "total" not in err.message
    conn.close()


def test_timeout_settings_in_connect() -> None:
    url = "http://127.0.0.1:9/v1"
    assert connect(CHAT_MODEL, base_url=url, api_key=KEY).timeouts.total == DEFAULT_TIMEOUT
    conn = connect(CHAT_MODEL, base_url=url, api_key=KEY, timeout=300, read_timeout=45)
    assert conn.timeouts == Timeouts(total=300.0, read=45.0, connect=10.0)
    assert conn.timeout == 300.0  # what the openai SDK is given
    phases = httpx.Timeout(30.0, connect=3.0)
    conn = connect(CHAT_MODEL, base_url=url, api_key=KEY, timeout=phases)
    assert conn.timeouts.total == DEFAULT_TIMEOUT and conn.timeouts.connect == 3.0
    assert conn.timeout is phases
    every = Timeouts(total=900, read=120, connect=5)
    assert connect(CHAT_MODEL, base_url=url, api_key=KEY, timeout=every).timeouts is every
    for bad in ({"timeout": 0}, {"read_timeout": -1}, {"read_timeout": "soon"}):
        with pytest.raises(ConfigError):
            connect(CHAT_MODEL, base_url=url, api_key=KEY, **bad)
    assert DEFAULT_CHAT_TIMEOUT >= 600


# ----------------------------------------------------------------------------- pools and loops


class _Pool(httpx.AsyncBaseTransport):
    """A stand-in connection pool that records being closed."""

    made: list[_Pool] = []

    def __init__(self) -> None:
        self.closed = False
        _Pool.made.append(self)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": []})

    async def aclose(self) -> None:
        self.closed = True


def _transport() -> AsyncCampusTransport:
    from campusllm.registry import resolve

    p = resolve(CHAT_MODEL, base_url="http://127.0.0.1:9/v1").provider
    return AsyncCampusTransport(p, SecretStr(KEY), inner_factory=_Pool)


async def _use(t: AsyncCampusTransport) -> None:
    # as the SDK's client is used: kept open across calls and event loops, never closed here
    client = httpx.AsyncClient(transport=t)
    await client.get("http://127.0.0.1:9/v1/models")


def test_a_loop_closed_without_shutdown_asyncgens_closes_its_pool() -> None:
    # LlamaIndex's asyncio_run in Jupyter: new loop, run_until_complete, close.
    _Pool.made.clear()
    t = _transport()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_use(t))
        assert len(_Pool.made) == 1 and not _Pool.made[0].closed
    finally:
        loop.close()
    assert _Pool.made[0].closed, "the pool outlived its loop"


def test_each_loop_gets_its_pool_and_asyncio_run_closes_it() -> None:
    _Pool.made.clear()
    t = _transport()
    asyncio.run(_use(t))
    asyncio.run(_use(t))
    assert len(_Pool.made) == 2 and all(p.closed for p in _Pool.made)


def test_closing_the_client_closes_the_loops_pool_at_once() -> None:
    _Pool.made.clear()
    t = _transport()

    async def use_and_close() -> bool:
        async with httpx.AsyncClient(transport=t) as client:
            await client.get("http://127.0.0.1:9/v1/models")
        return _Pool.made[0].closed

    assert asyncio.run(use_and_close())


# ----------------------------------------------------------------------------- secrets


def _echo_401(key: str) -> Reply:
    body = {"error": {"message": f"Incorrect API key provided: {key}"}}
    return json_reply(body, status=401, headers=(("X-Echo-Authorization", f"Bearer {key}"),))


@pytest.mark.parametrize("kind", ["core", "langchain"])
def test_an_echoed_key_is_in_no_debug_log(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    m = hostile.mount({"chat": _echo_401(ECHO_KEY), "models": _echo_401(ECHO_KEY)})
    for name in ("httpx", "httpcore", "openai", "httpx2", "httpcore2"):
        caplog.set_level(logging.DEBUG, logger=name)
    with pytest.raises(AuthenticationError) as ei:
        if kind == "core":
            from campusllm.chat import ChatCaller

            ChatCaller(CHAT_MODEL, base_url=m.url, api_key=ECHO_KEY).invoke(
                [{"role": "user", "content": "hi"}]
            )
        else:
            from langchain_campusllm import ChatCampusLLM

            ChatCampusLLM(model=CHAT_MODEL, base_url=m.url, api_key=ECHO_KEY).invoke("hi")
    assert caplog.records, "nothing was logged at DEBUG: the check would prove nothing"
    assert any("401" in r.getMessage() or "Unauthorized" in r.getMessage() for r in caplog.records)
    assert ECHO_KEY not in caplog.text
    assert ECHO_KEY not in str(ei.value)


def test_scrub_cleans_bodies_responses_and_requests_on_the_whole_chain() -> None:
    key = "sk-test-scrub-chain-0123456789"
    register_secret(key)
    request = httpx.Request("POST", "http://gw/v1", headers={"Authorization": f"Bearer {key}"})
    response = httpx.Response(
        401,
        json={"error": {"message": f"bad key {key}"}},
        headers={"X-Echo": key},
        request=request,
    )
    status_error = httpx.HTTPStatusError("401", request=request, response=response)
    status_error.body = {"error": {"message": f"bad key {key}"}}  # as the openai SDK keeps it
    try:
        try:
            raise status_error
        except httpx.HTTPStatusError:
            raise RuntimeError(f"wrapped {key}") from None  # only __context__ links them
    except RuntimeError as e:
        outer = e
    scrub(outer)
    assert outer.__cause__ is None and outer.__context__ is status_error
    seen = [
        str(outer),
        repr(status_error.body),
        status_error.response.text,
        repr(dict(status_error.response.headers)),
        repr(dict(status_error.request.headers)),
    ]
    for text in seen:
        assert key not in text, text
