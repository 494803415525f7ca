"""Reading a streamed body: SSE framing, telling a stream from a page, and how a stream ended.

Every chat path reads its body with the same decoder and asks the same guard how the stream
ended; these tests pin the rules a user relies on: a cut stream is never a complete answer,
an empty one is never an answer at all, and whatever arrived is kept.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campusllm.answers import AnswerReader, answer_json, read_completion
from campusllm.errors import (
    BadRequestError,
    ProtocolError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from campusllm.registry import resolve
from campusllm.streaming import StreamGuard
from campusllm.wire import StreamAssembler, parse_completion, split_reasoning
from campusllm.wire.completion import as_chunk
from campusllm.wire.sse import SSEDecoder, SSEEvent, body_kind

R = resolve("sjtu:deepseek-reasoner", base_url="http://127.0.0.1:9/v1")
PAGE = (
    b"<!DOCTYPE html><html><head><title>Campus Network Login</title></head>"
    b"<body><form action='/portal'>ID <input name='u'></form></body></html>"
)


def _event(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def _chunk(content: str | None = None, reasoning: str | None = None, finish: str | None = None):
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = b"".join(
    [
        _event(_chunk(reasoning="想一想")),
        _event(_chunk(content="你好")),
        _event(_chunk(content="，世界", finish="stop")),
        _event("[DONE]"),
    ]
)


def _decode(pieces: list[bytes]) -> tuple[list[SSEEvent], bool]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for p in pieces:
        out += dec.feed(p)
    return out + dec.end(), dec.done


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for c in points:
        pieces.append(data[last:c])
        last = c
    return [*pieces, data[last:]]


# ----------------------------------------------------------------------------- SSE framing


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_events_are_the_same_however_the_bytes_are_cut(cuts: list[int], eol: str) -> None:
    # cut anywhere: inside a 3-byte character, between CR and LF, inside "data:"
    body = STREAM.replace(b"\n", eol.encode())
    whole, done = _decode([body])
    assert done and whole[-1].is_done and len(whole) == 4
    assert json.loads(whole[1].data)["choices"][0]["delta"]["content"] == "你好"
    assert _decode(_cut(body, cuts)) == (whole, True)


def test_a_byte_order_mark_before_the_first_event_is_skipped() -> None:
    events, done = _decode([b"\xef\xbb\xbf" + STREAM])
    assert done and len(events) == 4
    events, _ = _read([b"\xef\xbb\xbf", b"data: {}\n\n"])
    assert [e.data for e in events] == ["{}"]


def test_nothing_after_done_and_done_is_remembered() -> None:
    events, done = _decode([_event({"a": 1}) + b"data: [DONE]\n\n" + _event({"b": 2})])
    assert [e.data for e in events] == ['{"a": 1}', "[DONE]"] and done
    events, done = _decode([_event({"a": 1})])
    assert [e.data for e in events] == ['{"a": 1}'] and not done


def test_comments_fields_multiline_data_and_an_unterminated_last_event() -> None:
    body = b': keepalive\nid: 7\nretry: 10\nevent: error\ndata: line1\ndata:line2\n\ndata: {"x"'
    events, done = _decode([body, b": 1}"])
    assert events == [SSEEvent("error", "line1\nline2"), SSEEvent(None, '{"x": 1}')]
    assert not done


def test_data_that_is_not_utf8_is_a_protocol_error_after_the_events_before_it() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: ok\n\ndata: \xff\xfe\n\ndata: later\n\n") == [SSEEvent(None, "ok")]
    with pytest.raises(ProtocolError, match="not UTF-8"):
        dec.feed(b"data: more\n\n")
    with pytest.raises(ProtocolError, match="not UTF-8"):
        _decode([b"data: \xff\n\n"])  # raised at the end of the body at the latest


@pytest.mark.parametrize(
    ("head", "content_type", "kind"),
    [
        (b"data: {}\n", "text/event-stream", "sse"),
        (b"\xef\xbb\xbf\n: ping\n", None, "sse"),
        (b"event: error\n", "application/json", "sse"),  # the bytes win over the header
        (b'  {"choices": []}', "text/event-stream", "json"),
        (b"[1, 2]", None, "json"),
        (b"\n\n<!DOCTYPE html>", "text/event-stream", "html"),
        (b"Service Unavailable\n", "text/plain", "text"),
        (b"Service Unavailable\n", "text/html; charset=utf-8", "html"),
        (b"data\n", None, "sse"),
        (b"", None, None),
        (b"da", None, None),  # too few bytes to tell yet
    ],
)
def test_body_kind_by_first_bytes(head: bytes, content_type: str | None, kind: str | None) -> None:
    assert body_kind(head, content_type) == kind


def test_an_empty_body_is_an_empty_stream_at_its_end() -> None:
    assert body_kind(b"", final=True) == "sse" and body_kind(b"da", final=True) == "text"


# ----------------------------------------------------------------------------- not a stream


def _read(pieces: list[bytes], content_type: str | None = None) -> tuple[list[SSEEvent], bool]:
    reader = AnswerReader(R, content_type)
    out: list[SSEEvent] = []
    for p in pieces:
        out += reader.feed(p)
    return out + reader.end(), reader.done


def test_a_json_completion_for_a_stream_is_one_chunk_with_the_whole_answer() -> None:
    body = {
        "id": "c1",
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {"content": "\n\n9.9 更大", "reasoning_content": "比较小数"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"total_tokens": 9},
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    events, done = _read([raw[:7], raw[7:]], "application/json")
    assert done and events[-1].is_done and len(events) == 2
    asm = StreamAssembler(R.model.reasoning)
    asm.feed(json.loads(events[0].data))
    asm.finish()
    assert asm.message() == parse_completion(body, R.model.reasoning)
    assert asm.message().content == "9.9 更大"


def test_a_json_error_for_a_stream_is_an_error_event() -> None:
    raw = json.dumps({"error": {"message": "busy", "code": 429}}).encode()
    events, _ = _read([raw])
    assert [json.loads(e.data) for e in events] == [json.loads(raw)]
    guard = StreamGuard(R)
    with pytest.raises(RateLimitError):
        guard.feed(json.loads(events[0].data))


@pytest.mark.parametrize("pieces", [[PAGE], [b"\n", PAGE[:20], PAGE[20:]]])
def test_an_html_page_for_a_stream_says_what_it_is_and_what_to_do(pieces: list[bytes]) -> None:
    with pytest.raises(ProtocolError) as info:
        _read(pieces, "text/html")
    text = str(info.value)
    assert "HTML page" in text and "Campus Network Login" in text
    assert "log in to the campus network" in text.lower() and "base_url" in text
    assert info.value.provider == "sjtu"


def test_a_long_page_is_refused_without_reading_all_of_it() -> None:
    reader = AnswerReader(R)
    reader.feed(b"<html>" + b" " * 1000)
    with pytest.raises(ProtocolError, match="HTML page"):
        for _ in range(100):
            reader.feed(b"<p>and more</p>" * 100)


def test_plain_text_for_a_stream_is_quoted() -> None:
    with pytest.raises(ProtocolError, match="text/plain instead of an API answer.*Bad Gateway"):
        _read([b"Bad Gateway"], "text/plain")


@pytest.mark.parametrize(
    ("raw", "match"),
    [(b'{"choices": [{"mess', "malformed JSON"), (b"[1, 2]", "neither a stream nor")],
)
def test_broken_json_for_a_stream_is_a_protocol_error(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        _read([raw])


def test_whole_answers_that_are_pages_or_errors_are_typed() -> None:
    with pytest.raises(ProtocolError, match="HTML page titled 'Campus Network Login'"):
        answer_json(PAGE.decode(), R, "text/html")
    with pytest.raises(ProtocolError, match="answered plain text"):
        answer_json(b"upstream connect error", R)
    with pytest.raises(ServerError) as info:
        read_completion({"error": {"message": "upstream failed", "code": "502"}}, R)
    assert info.value.status_code == 502 and "upstream failed" in info.value.message
    with pytest.raises(BadRequestError, match="额度不足"):
        read_completion({"success": False, "message": "额度不足"}, R)


def test_as_chunk_carries_tool_calls_and_usage() -> None:
    msg = parse_completion(
        {
            "id": "c",
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"id": "t", "function": {"name": "f", "arguments": '{"a": 1}'}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"total_tokens": 3},
        }
    )
    asm = StreamAssembler()
    asm.feed(as_chunk(msg))
    assert asm.message() == msg


# ----------------------------------------------------------------------------- how it ended


def _guard(*chunks: dict[str, Any], done: bool) -> StreamGuard:
    guard = StreamGuard(R)
    for c in chunks:
        guard.feed(c)
    guard.done = done
    return guard


@pytest.mark.parametrize(
    ("chunks", "done"),
    [
        ([_chunk(content="Hi")], True),  # [DONE] without a finish_reason
        ([_chunk(content="Hi", finish="stop")], False),  # a finish_reason without [DONE]
        ([_chunk(content="Hi", finish="stop")], True),
        ([_chunk(finish="stop")], True),  # the model said nothing, and said it was done
    ],
)
def test_a_stream_is_complete_with_done_or_a_finish_reason(
    chunks: list[dict[str, Any]], done: bool
) -> None:
    guard = _guard(*chunks, done=done)
    guard.end()
    assert guard.message().content == ("Hi" if chunks[0]["choices"][0]["delta"] else "")


def test_a_stream_cut_after_output_keeps_every_part_of_it() -> None:
    tool = {"index": 0, "id": "t1", "function": {"name": "get_weather", "arguments": '{"ci'}}
    guard = _guard(
        _chunk(reasoning="plan"),
        _chunk(content="Hello <thi"),
        {"choices": [{"delta": {"tool_calls": [tool]}}]},
        done=False,
    )
    with pytest.raises(StreamInterruptedError) as info:
        guard.end()
    e = info.value
    assert (e.partial_reasoning, e.partial_content) == ("plan", "Hello ")  # no tag fragment
    assert e.partial_tool_calls == [
        {"index": 0, "id": "t1", "name": "get_weather", "arguments": '{"ci'}
    ]
    assert "cut" in e.message and e.provider == "sjtu"


@pytest.mark.parametrize("done", [True, False])
def test_a_stream_without_output_is_not_an_answer(done: bool) -> None:
    guard = _guard({"choices": [], "usage": {"total_tokens": 1}}, done=done)
    with pytest.raises(ProtocolError, match="no output") as info:
        guard.end()
    assert not isinstance(info.value, StreamInterruptedError)


# ----------------------------------------------------------------------------- reasoning_content


@pytest.mark.parametrize(
    "pieces",
    [["\n\nAnswer"], ["\n", "\nAns", "wer"], ["", " \n", "\t", "Answer"]],
)
def test_the_answer_after_reasoning_content_starts_without_blank_lines(pieces: list[str]) -> None:
    whole = {"reasoning_content": "think", "content": "".join(pieces)}
    assert split_reasoning(whole) == ("think", "Answer")
    asm = StreamAssembler()
    asm.feed({"choices": [{"delta": {"reasoning_content": "think"}}]})
    streamed = "".join(asm.feed({"choices": [{"delta": {"content": p}}]}).content for p in pieces)
    assert streamed == "Answer" == asm.message().content


def test_content_before_any_reasoning_keeps_its_whitespace() -> None:
    asm = StreamAssembler()
    asm.feed({"choices": [{"delta": {"content": "  indented"}}]})
    assert asm.message().content == "  indented"
    assert split_reasoning({"content": "  indented"}) == ("", "  indented")
