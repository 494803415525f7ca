"""The hostile server itself: it must produce exactly the misbehaviour a scenario scripts,
record what it received without keeping the key, and let a test end a stalled call."""

from __future__ import annotations

import doctest
import threading
import time

import httpx
import pytest
from hostile import bodies, checks, entry_points, matrix, scenarios, server
from hostile.scenarios import CHAT_MODEL, KEY, OK_ROUTES
from hostile.server import Hangup, HostileServer, Pad, Reply, Send, sse_reply

from campusllm.chat import ChatCaller
from campusllm.errors import CampusLLMError

PROMPT = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("module", [server, bodies, scenarios, entry_points, checks, matrix])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_requests_are_recorded_without_the_key(hostile: HostileServer) -> None:
    m = hostile.mount(OK_ROUTES, secrets=[KEY])
    with ChatCaller(CHAT_MODEL, api_key=KEY, base_url=m.url) as caller:
        assert caller.invoke(PROMPT).content == "Hello world"
    (seen,) = m.seen()
    assert seen.auth and seen.leaked and seen.route == "chat" and not seen.other_host
    assert KEY not in repr(seen.headers) and seen.json["messages"] == PROMPT


def test_a_lying_content_length_and_a_reset_reach_the_client(hostile: HostileServer) -> None:
    m = hostile.mount(
        {
            "chat": Reply(steps=(Send(b"{}"),), content_length=100),
            "models": Reply(steps=(Hangup(rst=True),), content_length=10),
        }
    )
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(m.url + "/chat/completions", json={})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(m.url + "/models")


def test_the_other_port_is_another_origin_of_the_same_mount(hostile: HostileServer) -> None:
    m = hostile.mount(OK_ROUTES)
    assert httpx.post(m.other_url + "/chat/completions", json={}).status_code == 200
    assert m.seen()[0].other_host and m.other_url.split("/")[2] != m.url.split("/")[2]


def test_abort_ends_a_stalled_call(hostile: HostileServer) -> None:
    # A deadline cell that fails must still end: abort() resets the connection mid-pad.
    m = hostile.mount({"chat_stream": sse_reply([], tail=(Pad(for_s=60),))})
    timer = threading.Timer(1.0, m.abort)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(CampusLLMError):
        with ChatCaller(CHAT_MODEL, api_key=KEY, base_url=m.url, timeout=30) as caller:
            list(caller.stream(PROMPT))
    timer.cancel()
    assert time.monotonic() - t0 < 20
