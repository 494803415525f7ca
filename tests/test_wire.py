"""Wire layer: every reasoning shape, streams cut anywhere, error bodies, and the request rules."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campusllm.errors import BadRequestError, CapabilityError, ProtocolError
from campusllm.wire import (
    Delta,
    StreamAssembler,
    ThinkTagSplitter,
    ToolCall,
    find_lone_surrogate,
    parse_completion,
    split_reasoning,
)

DATA = Path(__file__).parent / "data" / "transcripts"
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def sse_events(name: str) -> list[dict[str, Any]]:
    events = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            events.append(json.loads(line[5:]))
    return events


class _Spec:
    """Duck-typed ReasoningSpec: the wire layer only reads ``opens_in_template`` here."""

    def __init__(self, opens_in_template: bool) -> None:
        self.opens_in_template = opens_in_template


def reasoning_spec(opens_in_template: bool) -> Any:
    try:
        from campusllm.registry import ReasoningSpec
    except ImportError:  # registry is written in parallel
        return _Spec(opens_in_template)
    return ReasoningSpec(shape="think_tags", opens_in_template=opens_in_template)


def assemble(chunks: list[dict[str, Any]], spec: Any = None) -> tuple[Any, list[Delta]]:
    asm = StreamAssembler(spec)
    deltas = [asm.feed(c) for c in chunks]
    deltas.append(asm.finish())
    return asm, deltas


# --------------------------------------------------------------------------- seed transcripts


def test_sjtu_reasoner_response_splits_reasoning_content() -> None:
    body = load("sjtu_deepseek_reasoner.json")
    msg = parse_completion(body)
    raw = body["choices"][0]["message"]
    assert msg.reasoning == raw["reasoning_content"] and msg.reasoning.startswith("嗯")
    assert msg.content == raw["content"]
    assert msg.tool_calls == []
    assert (msg.finish_reason, msg.model, msg.id) == ("stop", "deepseek", body["id"])
    assert msg.usage is not None and msg.usage["total_tokens"] == 784


def test_sjtu_chat_response_has_no_reasoning() -> None:
    msg = parse_completion(load("sjtu_deepseek_chat.json"))
    assert msg.reasoning == ""
    assert msg.content.startswith("上海交通大学")
    assert msg.tool_calls == []  # "tool_calls": null and "function_call": null


def test_ecnu_stream_assembles_content_finish_and_first_id() -> None:
    events = sse_events("ecnu_stream.sse")
    asm, deltas = assemble(events)
    msg = asm.message()
    expected = "".join(e["choices"][0]["delta"]["content"] for e in events)
    assert msg.content == expected == "".join(d.content for d in deltas)
    assert msg.reasoning == ""
    assert msg.finish_reason == "stop" and deltas[-2].finish_reason == "stop"
    # ECNU gives every chunk a new id; the message keeps the first
    assert msg.id == events[0]["id"] and msg.model == "SparkDesk"
    assert msg.usage is None


@pytest.mark.parametrize(
    ("name", "call_id", "args"),
    [
        (
            "ecnu_tool_call.json",
            "chatcmpl-tool-4b247cc8f6db4565a574a3e1b30261f7",
            {"location": "上海市"},
        ),
        ("oneapi_tool_call.json", "0", {"location": "Paris", "unit": "celsius"}),
    ],
)
def test_tool_call_responses_with_null_content(name: str, call_id: str, args: dict) -> None:
    body = load(name)
    msg = parse_completion(body)
    assert msg.content == "" and msg.reasoning == ""  # content null, reasoning_content null
    assert msg.finish_reason == "tool_calls"
    [tc] = msg.tool_calls
    assert (tc.index, tc.id, tc.name) == (0, call_id, "get_current_weather")
    assert tc.parsed_arguments() == args
    assert isinstance(tc.arguments, str)  # the raw JSON text, sent back as it came


@pytest.mark.parametrize(
    "name",
    ["sjtu_deepseek_reasoner.json", "ecnu_tool_call.json", "oneapi_tool_call.json"],
)
def test_transcripts_streamed_in_pieces_match_whole(name: str) -> None:
    body = load(name)
    whole = parse_completion(body)
    m = body["choices"][0]["message"]
    chunks: list[dict[str, Any]] = []
    for key in ("reasoning_content", "content"):
        text = m.get(key) or ""
        chunks += [{"choices": [{"delta": {key: text[i : i + 7]}}]} for i in range(0, len(text), 7)]
    for i, tc in enumerate(m.get("tool_calls") or []):
        args = tc["function"]["arguments"]
        chunks.append(
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": tc["id"],
                                    "type": "function",
                                    "function": {"name": tc["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    }
                ]
            }
        )
        chunks += [
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [{"index": i, "function": {"arguments": args[j : j + 3]}}]
                        }
                    }
                ]
            }
            for j in range(0, len(args), 3)
        ]
    chunks.append({"choices": [{"delta": {}, "finish_reason": whole.finish_reason}]})
    asm, _ = assemble(chunks)
    streamed = asm.message()
    assert (streamed.content, streamed.reasoning) == (whole.content, whole.reasoning)
    assert streamed.tool_calls == whole.tool_calls
    assert streamed.finish_reason == whole.finish_reason


# --------------------------------------------------------------------------- ThinkTagSplitter

TAGGY = st.text(alphabet="<>/thinkab \n思", max_size=60) | st.lists(
    st.sampled_from(["<think>", "</think>", "<th", "ink>", "</", "x", "\n\n", " ", "<", "答"]),
    max_size=15,
).map("".join)


def run_splitter(pieces: list[str], template: bool, truncated: bool = False) -> tuple[str, str]:
    """Feed pieces, flush, and return what a consumer ends up with (moves applied)."""
    sp = ThinkTagSplitter(opens_in_template=template)
    rs, cs = [], []
    for p in pieces:
        r, c = sp.feed(p)
        rs.append(r)
        cs.append(c)
    r, c = sp.flush(truncated=truncated)
    if sp.moved:
        # everything streamed as reasoning is re-sent as content
        assert sp.moved == c and c.startswith("".join(rs)) and not "".join(cs) and not r
        return "", c
    return "".join(rs) + r, "".join(cs) + c


def reference_split(text: str, template: bool, truncated: bool) -> tuple[str, str]:
    """The documented rules, written the obvious (non-streaming) way."""
    parts = re.split(r"(<think>|</think>)", text)
    if template and len(parts) == 1 and not truncated:
        return "", text.lstrip()
    reasoning: list[str] = []
    content: list[str] = []
    in_reasoning, strip = template, template
    for part in parts:
        if part in ("<think>", "</think>"):
            in_reasoning, strip = part == "<think>", True
            continue
        if strip:
            part = part.lstrip()
            strip = not part
        (reasoning if in_reasoning else content).append(part)
    return "".join(reasoning), "".join(content)


def cut(text: str, points: list[int]) -> list[str]:
    bounds = sorted({min(p, len(text)) for p in points})
    pieces, prev = [], 0
    for b in bounds:
        pieces.append(text[prev:b])
        prev = b
    pieces.append(text[prev:])
    return pieces


@PROPS
@given(TAGGY, st.lists(st.integers(0, 80), max_size=12), st.booleans(), st.booleans())
def test_splitter_is_split_invariant(
    text: str, points: list[int], template: bool, truncated: bool
) -> None:
    whole = run_splitter([text], template, truncated)
    assert run_splitter(cut(text, points), template, truncated) == whole
    assert run_splitter(list(text), template, truncated) == whole


@PROPS
@given(TAGGY, st.booleans(), st.booleans())
def test_splitter_follows_the_documented_rules(text: str, template: bool, truncated: bool) -> None:
    assert run_splitter([text], template, truncated) == reference_split(text, template, truncated)


def test_splitter_holds_back_only_a_possible_tag_prefix() -> None:
    sp = ThinkTagSplitter()
    assert sp.feed("abc<th") == ("", "abc")
    assert sp.held == "<th"
    assert sp.feed("e best") == ("", "<the best")  # not a tag after all: released at once
    assert sp.feed("x<b") == ("", "x<b")  # "<b" is no tag prefix: nothing held
    assert sp.feed("a < b") == ("", "a < b")
    assert sp.feed("end<") == ("", "end")
    assert sp.flush() == ("", "<")  # held prefix comes out literally at the end


def test_splitter_tags_cut_in_halves() -> None:
    pieces = ["<th", "ink>", "step 1", "</thi", "nk>", "\n", "\nAnswer"]
    assert run_splitter(pieces, False) == ("step 1", "Answer")


def test_splitter_strips_whitespace_after_close_across_chunks() -> None:
    sp = ThinkTagSplitter()
    out = [sp.feed(p) for p in ["<think>r</think>", "\n", " \n", "  A b"]]
    assert [c for _, c in out] == ["", "", "", "A b"]


def test_splitter_bare_close_in_content_mode_is_dropped() -> None:
    # A stream cannot look ahead: without opens_in_template the text before it stays content.
    assert run_splitter(["plan", "</think>\n\nAnswer"], False) == ("", "planAnswer")


def test_splitter_template_mode_reasoning_until_close() -> None:
    sp = ThinkTagSplitter(opens_in_template=True)
    assert sp.feed("\nplan ") == ("plan ", "")
    assert sp.feed("more</think>\n\nAns") == ("more", "Ans")
    assert sp.flush() == ("", "")
    assert sp.moved == ""


def test_splitter_template_mode_without_close_moves_text_to_content() -> None:
    sp = ThinkTagSplitter(opens_in_template=True)
    assert sp.feed("just an answer") == ("just an answer", "")
    assert sp.flush() == ("", "just an answer")
    assert sp.moved == "just an answer"


def test_splitter_template_mode_truncated_stays_reasoning() -> None:
    sp = ThinkTagSplitter(opens_in_template=True)
    sp.feed("thinking that got cut off <th")
    assert sp.flush(truncated=True) == ("<th", "")
    assert sp.moved == ""


def test_splitter_fast_path_is_cheap_for_long_streams() -> None:
    asm = StreamAssembler()
    chunks = [{"choices": [{"delta": {"content": f"tok{i} "}}]} for i in range(20_000)]
    start = time.perf_counter()
    for c in chunks:
        asm.feed(c)
    asm.finish()
    elapsed = time.perf_counter() - start
    assert asm.message().content == "".join(f"tok{i} " for i in range(20_000))
    assert elapsed < 2.0, f"20k chunks took {elapsed:.2f}s"


# --------------------------------------------------------------------------- split_reasoning


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"reasoning_content": "R", "content": "C"}, ("R", "C")),
        ({"reasoning": "R", "content": "C"}, ("R", "C")),
        ({"reasoning_content": "R", "reasoning": "R", "content": "C"}, ("R", "C")),
        ({"reasoning_content": None, "reasoning": "R", "content": "C"}, ("R", "C")),
        ({"content": "<think>\nR\n</think>\n\nC"}, ("R\n", "C")),
        ({"content": "R</think>\n\nC"}, ("R", "C")),  # template opened the tag: auto-detected
        ({"content": "<think>cut off mid-thou"}, ("cut off mid-thou", "")),
        ({"content": "<think></think>C"}, ("", "C")),
        ({"content": None}, ("", "")),
        ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, ("", "ab")),
        ({"content": "x < y and a<b>c"}, ("", "x < y and a<b>c")),
    ],
)
def test_split_reasoning_shapes(message: dict, expected: tuple[str, str]) -> None:
    assert split_reasoning(message) == expected


def test_split_reasoning_template_flag_and_truncation() -> None:
    spec = reasoning_spec(True)
    assert split_reasoning({"content": "R</think>C"}, spec) == ("R", "C")
    # no </think> at all: the model answered without thinking
    assert split_reasoning({"content": "plain answer"}, spec) == ("", "plain answer")
    # ...unless it was cut off while thinking
    assert split_reasoning({"content": "still thinking"}, spec, truncated=True) == (
        "still thinking",
        "",
    )
    # a reasoning field means the gateway parsed: the content is the answer
    assert split_reasoning({"reasoning_content": "R", "content": "C"}, spec) == ("R", "C")


def test_parse_completion_truncated_template_answer_keeps_reasoning() -> None:
    body = {"choices": [{"message": {"content": "hmm"}, "finish_reason": "length"}]}
    assert parse_completion(body, reasoning_spec(True)).reasoning == "hmm"
    body["choices"][0]["finish_reason"] = "stop"
    assert parse_completion(body, reasoning_spec(True)).content == "hmm"


# --------------------------------------------------------------------------- stream == whole

WORDS = st.text(alphabet="athink <>/思\n", max_size=30).filter(
    lambda s: "<think>" not in s and "</think>" not in s
)
ARGS = st.dictionaries(
    st.text(alphabet="xyz", min_size=1, max_size=3),
    st.one_of(st.integers(), st.text(alphabet='a"\\{}思 ', max_size=5), st.booleans()),
    max_size=3,
)
CALLS = st.lists(st.tuples(st.sampled_from(["search", "get_weather", "add"]), ARGS), max_size=3)
SHAPES = ["reasoning_content", "reasoning", "think_tags", "think_open"]


def whole_body(shape: str, r: str, c: str, calls: list[tuple[str, dict]]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant"}
    if shape in ("reasoning_content", "reasoning"):
        msg[shape] = r
        msg["content"] = c if c or not calls else None
    elif shape == "think_tags":
        msg["content"] = f"<think>{r}</think>\n\n{c}"
    else:
        msg["content"] = f"{r}</think>\n\n{c}"
    if calls:
        msg["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": n, "arguments": json.dumps(a, ensure_ascii=False)},
            }
            for i, (n, a) in enumerate(calls)
        ]
    finish = "tool_calls" if calls else "stop"
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }


@st.composite
def streamed(draw: Any, body: dict[str, Any], shape: str) -> list[dict[str, Any]]:
    """Render a whole body as chunks cut at random points, tool deltas packed randomly."""
    msg = body["choices"][0]["message"]
    text_deltas: list[dict[str, Any]] = []
    for key in ("reasoning_content", "reasoning", "content"):
        text = msg.get(key) or ""
        for piece in cut(text, draw(st.lists(st.integers(0, len(text)), max_size=10))):
            if piece:
                text_deltas.append({key: piece})
    tool_items: list[list[dict[str, Any]]] = []
    for i, tc in enumerate(msg.get("tool_calls") or []):
        args = tc["function"]["arguments"]
        pieces = cut(args, draw(st.lists(st.integers(0, len(args)), max_size=6)))
        items = [
            {
                "index": i,
                "id": tc["id"],
                "type": "function",
                "function": {"name": tc["function"]["name"], "arguments": pieces[0]},
            }
        ]
        items += [{"index": i, "function": {"arguments": p}} for p in pieces[1:]]
        tool_items.append(items)
    # interleave the calls' fragments (each call keeps its order), then pack into chunks
    order: list[dict[str, Any]] = []
    queues = [list(q) for q in tool_items]
    while any(queues):
        q = draw(st.sampled_from([q for q in queues if q]))
        order.append(q.pop(0))
    chunks: list[dict[str, Any]] = [
        {"id": body["id"], "model": "m", "choices": [{"index": 0, "delta": d}]} for d in text_deltas
    ]
    while order:
        n = draw(st.integers(1, 4))
        group, order = order[:n], order[n:]
        chunks.append(
            {
                "id": body["id"],
                "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": group}}],
            }
        )
    finish = body["choices"][0]["finish_reason"]
    chunks.append({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"id": body["id"], "model": "m", "choices": [], "usage": body["usage"]})
    return chunks


@PROPS
@given(st.data(), st.sampled_from(SHAPES), WORDS, WORDS, CALLS)
def test_stream_cut_anywhere_equals_whole_message(
    data: Any, shape: str, r: str, c: str, calls: list[tuple[str, dict]]
) -> None:
    spec = reasoning_spec(True) if shape == "think_open" else None
    body = whole_body(shape, r, c, calls)
    whole = parse_completion(body, spec)
    # the whole-message parse recovers the script, whatever the shape
    tagged = shape in ("think_tags", "think_open")
    assert whole.reasoning == (r.lstrip() if tagged else r)
    # the answer after reasoning starts without whitespace, whatever shape carried it
    assert whole.content == (c.lstrip() if tagged or r else c)
    assert "<think>" not in whole.content and "</think>" not in whole.content
    assert [(t.name, t.parsed_arguments()) for t in whole.tool_calls] == calls

    chunks = data.draw(streamed(body, shape))
    asm, deltas = assemble(chunks, spec)
    got = asm.message()
    assert got == whole
    assert "".join(d.content for d in deltas) == whole.content
    assert "".join(d.reasoning for d in deltas) == whole.reasoning
    by_index: dict[int, str] = {}
    for d in deltas:
        for t in d.tool_calls:
            by_index[t.index] = by_index.get(t.index, "") + t.arguments
    assert by_index == {t.index: t.arguments for t in whole.tool_calls}


def test_template_stream_without_close_moves_text_to_content() -> None:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"delta": {"content": p}}]} for p in ["an ", "answer"]
    ]
    chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    asm, deltas = assemble(chunks, reasoning_spec(True))
    assert "".join(d.reasoning for d in deltas[:-1]) == "an answer"  # streamed live
    assert deltas[-1].content == "an answer"  # the final delta re-sends it as content
    msg = asm.message()
    assert (msg.reasoning, msg.content) == ("", "an answer")


def test_template_stream_cancelled_by_reasoning_field() -> None:
    chunks = [
        {"choices": [{"delta": {"reasoning_content": "R"}}]},
        {"choices": [{"delta": {"content": "C"}}]},
    ]
    asm, deltas = assemble(chunks, reasoning_spec(True))
    assert [(d.reasoning, d.content) for d in deltas[:2]] == [("R", ""), ("", "C")]
    assert (asm.message().reasoning, asm.message().content) == ("R", "C")


# --------------------------------------------------------------------------- tool-call deltas


def tc_chunk(*items: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": list(items)}}]}


def fn(name: str | None = None, args: str = "") -> dict[str, Any]:
    f: dict[str, Any] = {"arguments": args}
    if name:
        f["name"] = name
    return f


def test_several_tool_calls_in_one_chunk_and_partial_arguments() -> None:
    asm = StreamAssembler()
    d = asm.feed(
        tc_chunk(
            {"index": 0, "id": "a", "function": fn("add", '{"x": ')},
            {"index": 1, "id": "b", "function": fn("mul", '{"y"')},
        )
    )
    assert [(t.index, t.id, t.name) for t in d.tool_calls] == [(0, "a", "add"), (1, "b", "mul")]
    assert asm.message().tool_calls[0].parsed_arguments() is None  # half JSON
    asm.feed(
        tc_chunk({"index": 1, "function": fn(args=": 2}")}, {"index": 0, "function": fn(args="1}")})
    )
    calls = asm.message().tool_calls
    assert [(t.id, t.name, t.parsed_arguments()) for t in calls] == [
        ("a", "add", {"x": 1}),
        ("b", "mul", {"y": 2}),
    ]


def test_tool_calls_without_index_use_id_or_position() -> None:
    asm = StreamAssembler()
    asm.feed(tc_chunk({"id": "a", "function": fn("f", '{"q": "x"}')}))
    asm.feed(tc_chunk({"id": "b", "function": fn("g", '{"n":')}))
    asm.feed(tc_chunk({"function": fn(args=" 2}")}))  # continues the call that came last
    asm.feed(tc_chunk({"function": fn(args="")}, {"function": fn(args="")}))  # by position
    calls = asm.message().tool_calls
    assert [(t.index, t.id, t.name, t.parsed_arguments()) for t in calls] == [
        (0, "a", "f", {"q": "x"}),
        (1, "b", "g", {"n": 2}),
    ]


def test_gateway_reusing_index_zero_for_parallel_calls() -> None:
    asm = StreamAssembler()
    asm.feed(tc_chunk({"index": 0, "id": "a", "function": fn("f", '{"n": 1}')}))
    asm.feed(tc_chunk({"index": 0, "id": "b", "function": fn("f", '{"n": ')}))
    asm.feed(tc_chunk({"index": 0, "function": fn(args="2}")}))
    calls = asm.message().tool_calls
    assert [(t.id, t.parsed_arguments()) for t in calls] == [("a", {"n": 1}), ("b", {"n": 2})]


def test_message_is_a_snapshot_without_the_held_prefix() -> None:
    asm = StreamAssembler()
    asm.feed({"choices": [{"delta": {"content": "Hello <thi"}}]})
    asm.feed(tc_chunk({"index": 0, "id": "a", "function": fn("f", "{")}))
    snap = asm.message()
    # a partial never ends in a tag fragment: the held-back "<thi" is left out until the
    # next chunk says what it was
    assert snap.content == "Hello "
    asm.feed(tc_chunk({"index": 0, "function": fn(args="}")}))
    assert snap.tool_calls[0].arguments == "{"
    assert asm.message().tool_calls[0].arguments == "{}"


def test_legacy_function_call_delta() -> None:
    asm = StreamAssembler()
    asm.feed({"choices": [{"delta": {"function_call": {"name": "f", "arguments": '{"a"'}}}]})
    asm.feed({"choices": [{"delta": {"function_call": {"arguments": ": 1}"}}}]})
    [tc] = asm.message().tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("f", {"a": 1})


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"a": ', None),
        ("", {}),
        ("  ", {}),
        ("[1, 2]", None),
        ("null", None),
        ('"{\\"a\\": 1}"', {"a": 1}),  # JSON-encoded twice by some gateways
        ("{" * 5000, None),
    ],
)
def test_parsed_arguments(arguments: str, expected: Any) -> None:
    assert ToolCall(0, None, "f", arguments).parsed_arguments() == expected


@given(st.text(max_size=40))
def test_parsed_arguments_never_raises(text: str) -> None:
    result = ToolCall(0, None, "f", text).parsed_arguments()
    assert result is None or isinstance(result, dict)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "当前分组上游负载已饱和", "type": "new_api_error", "code": "x"}},
        {"error": "当前分组上游负载已饱和"},
        {"success": False, "message": "当前分组上游负载已饱和"},
        {
            "object": "error",
            "message": "当前分组上游负载已饱和",
            "type": "BadRequestError",
            "code": 400,
        },
        {"code": 40001, "msg": "当前分组上游负载已饱和"},
    ],
)
def test_error_bodies_raise_bad_request_with_gateway_message(body: dict) -> None:
    with pytest.raises(BadRequestError, match="当前分组上游负载已饱和"):
        parse_completion(body)
    with pytest.raises(BadRequestError, match="当前分组上游负载已饱和"):
        StreamAssembler().feed(body)


def test_error_code_becomes_status_code() -> None:
    with pytest.raises(BadRequestError) as ei:
        parse_completion({"object": "error", "message": "too long", "code": 400})
    assert ei.value.status_code == 400


def test_error_chunk_after_content_raises() -> None:
    asm = StreamAssembler()
    asm.feed({"choices": [{"delta": {"content": "part"}}]})
    with pytest.raises(BadRequestError, match="upstream timeout"):
        asm.feed({"error": {"message": "upstream timeout", "type": "upstream_error"}})
    assert asm.message().content == "part"


# Built at runtime so no key-shaped literal sits in the repository (tests/test_docs.py scans it).
_FAKE_KEY = "sk-" + "abcdefghijklmnop1234"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion", "note": _FAKE_KEY},
        {"choices": []},
        {"choices": ["nope"]},
        {"choices": [{"index": 0}]},
        ["not", "an", "object"],
        {"code": 0, "msg": "ok", "data": {"key": _FAKE_KEY}},
    ],
)
def test_wrong_shapes_raise_protocol_error_with_redacted_snippet(body: Any) -> None:
    with pytest.raises(ProtocolError) as ei:
        parse_completion(body)
    text = str(ei.value)
    assert _FAKE_KEY not in text
    assert "not a chat completion" in text
    if isinstance(body, dict) and "note" in body:
        assert "***" in text


def test_stream_chunk_not_an_object_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        StreamAssembler().feed(["x"])  # type: ignore[arg-type]


def test_usage_only_chunk_and_error_null_are_fine() -> None:
    asm = StreamAssembler()
    d = asm.feed({"choices": [{"delta": {"content": "hi"}}], "error": None})
    assert d.content == "hi"
    d = asm.feed({"id": "c", "choices": [], "usage": {"total_tokens": 3}})
    assert d.usage == {"total_tokens": 3} and d.content == ""
    assert asm.message().usage == {"total_tokens": 3}
    assert asm.finish() == Delta()
    assert asm.finish() == Delta()  # idempotent


# --------------------------------------------------------------------------- request rules


def make_resolved(
    *, requested: str | None = None, known: bool = True, stream_usage: bool = True, **model_kw: Any
) -> Any:
    """A ResolvedModel for a made-up provider; other catalogued models show up in hints."""
    reg = pytest.importorskip("campusllm.registry")
    reasoning = model_kw.pop("reasoning", {})
    model = reg.ModelSpec(
        id=model_kw.pop("id", "m-1"), reasoning=reg.ReasoningSpec(**reasoning), **model_kw
    )
    others = [
        reg.ModelSpec(id="tooly", tools=True),
        reg.ModelSpec(id="eyes", vision=True),
        reg.ModelSpec(id="old-eyes", vision=True, tools=True, status="deprecated"),
        reg.ModelSpec(id="thinker", reasoning=reg.ReasoningSpec(toggle="enable_thinking")),
        reg.ModelSpec(id="embedder", kind="embedding", tools=True, vision=True),
    ]
    provider = reg.ProviderSpec(
        name="uni",
        key_env=["UNI_API_KEY"],
        base_url="http://127.0.0.1:9/v1",
        stream_usage=stream_usage,
        models=[model, *others],
    )
    return reg.ResolvedModel(
        provider=provider,
        model=model,
        requested=requested or model.id,
        base_url="http://127.0.0.1:9/v1",
        known=known,
    )


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def prepare(payload: dict[str, Any], resolved: Any, thinking: bool | None = None) -> dict[str, Any]:
    from campusllm.wire import prepare_chat_payload

    before = copy.deepcopy(payload)
    out = prepare_chat_payload(payload, resolved, thinking=thinking)
    assert payload == before, "prepare_chat_payload mutated its input"
    return out


def test_payload_never_mutated_even_when_everything_applies() -> None:
    rm = make_resolved(
        tools=True,
        request_defaults={"stop_token_ids": [1, 2]},
        reasoning={"toggle": "enable_thinking", "passback": "think_tags"},
    )
    payload = {
        "messages": [
            user(),
            {"role": "assistant", "content": "a", "reasoning_content": "r"},
            user(),
        ],
        "chat_template_kwargs": {"foo": 1},
        "stream": True,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    out = prepare(payload, rm, thinking=True)
    assert out is not payload and out["messages"] is not payload["messages"]
    assert out["model"] == "m-1"
    out["stop_token_ids"].append(3)  # the spec's default must not be shared
    assert rm.model.request_defaults == {"stop_token_ids": [1, 2]}


def test_model_id_filled_and_kept() -> None:
    rm = make_resolved()
    assert prepare({"messages": [user()]}, rm)["model"] == rm.wire_model
    assert prepare({"model": "m-1-alias", "messages": [user()]}, rm)["model"] == "m-1-alias"


def test_request_defaults_do_not_override_user_keys() -> None:
    rm = make_resolved(request_defaults={"stop_token_ids": [151329], "temperature": 0.6})
    out = prepare({"messages": [user()], "temperature": 0.1}, rm)
    assert out["stop_token_ids"] == [151329] and out["temperature"] == 0.1


def test_system_only_request_to_deepseek_v32_is_refused() -> None:
    rm = make_resolved(id="deepseek-v3.2", requires_user_message=True)
    with pytest.raises(BadRequestError) as ei:
        prepare({"messages": [{"role": "system", "content": "be brief"}]}, rm)
    assert str(ei.value) == (
        "deepseek-v3.2 needs at least one user message; a system-only request returns nothing. "
        "Add a user message."
    )
    assert not isinstance(ei.value, CapabilityError)
    prepare({"messages": [{"role": "system", "content": "x"}, user()]}, rm)


def test_tools_on_a_model_without_tools_names_one_that_can() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(CapabilityError) as ei:
        prepare({"messages": [user()], "tools": tools}, make_resolved())
    msg = str(ei.value)
    assert "uni:m-1" in msg and "tool" in msg and "tooly" in msg
    assert "old-eyes" not in msg and "embedder" not in msg  # deprecated / not chat
    assert ei.value.model == "m-1" and ei.value.provider == "uni"
    # a model the catalog does not know may well support tools: let the gateway decide
    prepare({"messages": [user()], "tools": tools}, make_resolved(known=False))
    prepare({"messages": [user()], "tools": tools}, make_resolved(tools=True))


def test_images_on_a_non_vision_model_name_a_vision_model() -> None:
    image = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "what is this?"},
        ],
    }
    with pytest.raises(CapabilityError) as ei:
        prepare({"messages": [image]}, make_resolved())
    assert "uni:m-1" in str(ei.value) and "eyes" in str(ei.value)
    prepare({"messages": [image]}, make_resolved(vision=True))
    text_parts = {"role": "user", "content": [{"type": "text", "text": "plain"}]}
    prepare({"messages": [text_parts]}, make_resolved())


@pytest.mark.parametrize("toggle", ["enable_thinking", "thinking"])
def test_thinking_toggle_goes_into_chat_template_kwargs(toggle: str) -> None:
    rm = make_resolved(reasoning={"toggle": toggle})
    out = prepare({"messages": [user()], "chat_template_kwargs": {"foo": 1}}, rm, thinking=False)
    assert out["chat_template_kwargs"] == {"foo": 1, toggle: False}
    assert prepare({"messages": [user()]}, rm, thinking=True)["chat_template_kwargs"] == {
        toggle: True
    }
    assert "chat_template_kwargs" not in prepare({"messages": [user()]}, rm)


def test_model_switch_sends_the_other_model_id() -> None:
    rm = make_resolved(
        id="deepseek-v3.2",
        aliases=["deepseek-chat", "deepseek-reasoner"],
        requested="deepseek-chat",
        reasoning={
            "toggle": "model_switch",
            "thinking_model": "deepseek-reasoner",
            "non_thinking_model": "deepseek-chat",
        },
    )
    base = {"model": "deepseek-chat", "messages": [user()]}
    assert prepare(base, rm, thinking=True)["model"] == "deepseek-reasoner"
    assert prepare(base, rm, thinking=False)["model"] == "deepseek-chat"
    assert prepare(base, rm)["model"] == "deepseek-chat"


def test_thinking_on_a_model_without_switch_is_a_capability_error() -> None:
    with pytest.raises(CapabilityError) as ei:
        prepare({"messages": [user()]}, make_resolved(), thinking=True)
    assert "uni:m-1" in str(ei.value) and "thinker" in str(ei.value)
    always = make_resolved(reasoning={"default_on": True, "shape": "reasoning_content"})
    with pytest.raises(CapabilityError):
        prepare({"messages": [user()]}, always, thinking=False)
    # asking for the mode the model is in anyway is fine and sends nothing
    assert prepare({"messages": [user()]}, always, thinking=True) == {
        "model": "m-1",
        "messages": [user()],
    }
    assert "chat_template_kwargs" not in prepare({"messages": [user()]}, make_resolved(), False)


def test_tools_only_without_thinking() -> None:
    rm = make_resolved(
        id="qwen3-32b",
        tools=True,
        reasoning={
            "toggle": "enable_thinking",
            "default_on": True,
            "tools_only_without_thinking": True,
        },
    )
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    out = prepare({"messages": [user()], "tools": tools}, rm)
    assert out["chat_template_kwargs"] == {"enable_thinking": False}
    assert prepare({"messages": [user()], "tools": tools}, rm, thinking=False)[
        "chat_template_kwargs"
    ] == {"enable_thinking": False}
    with pytest.raises(CapabilityError, match="thinking"):
        prepare({"messages": [user()], "tools": tools}, rm, thinking=True)
    # without tools thinking stays available
    assert prepare({"messages": [user()]}, rm, thinking=True)["chat_template_kwargs"] == {
        "enable_thinking": True
    }


def history() -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return [
        user("q"),
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning_content": "R1"},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": "A", "reasoning": "R2"},
        {"role": "assistant", "content": "B"},
        user("again"),
    ]


def test_passback_reasoning_content_when_thinking() -> None:
    rm = make_resolved(
        tools=True,
        reasoning={"toggle": "thinking", "default_on": True, "passback": "reasoning_content"},
    )
    msgs = prepare({"messages": history()}, rm)["messages"]
    assert [m.get("reasoning_content") for m in msgs if m["role"] == "assistant"] == [
        "R1",
        "R2",
        "",
    ]
    assert all("reasoning" not in m for m in msgs)
    assert msgs[0] == user("q") and msgs[2] == history()[2]
    # thinking off: the gateway must not see the field at all
    msgs = prepare({"messages": history()}, rm, thinking=False)["messages"]
    assert all("reasoning_content" not in m and "reasoning" not in m for m in msgs)


def test_passback_think_tags_prepends_reasoning() -> None:
    rm = make_resolved(tools=True, reasoning={"shape": "think_tags", "passback": "think_tags"})
    msgs = history()
    msgs.append({"role": "assistant", "content": "<think>x</think>\n\nC", "reasoning_content": "x"})
    out = prepare({"messages": msgs}, rm)["messages"]
    assistants = [m for m in out if m["role"] == "assistant"]
    assert [m["content"] for m in assistants] == [
        "<think>R1</think>\n\n",
        "<think>R2</think>\n\nA",
        "B",
        "<think>x</think>\n\nC",  # already carries its reasoning: not doubled
    ]
    assert all("reasoning_content" not in m and "reasoning" not in m for m in out)
    assert assistants[0]["tool_calls"] == history()[1]["tool_calls"]


def test_passback_drop_removes_reasoning() -> None:
    out = prepare({"messages": history()}, make_resolved(tools=True))["messages"]
    assert all("reasoning_content" not in m and "reasoning" not in m for m in out)
    # the tool-call turn's content: null goes out as "" (some servers answer 500 for null)
    assert [m.get("content") for m in out] == [m.get("content") or "" for m in history()]


def test_assistant_content_null_is_sent_as_empty_string() -> None:
    msgs = [user("q"), {"role": "assistant", "tool_calls": [], "content": None}, user("again")]
    out = prepare({"messages": msgs}, make_resolved(tools=True))["messages"]
    assert out[1]["content"] == "" and msgs[1]["content"] is None  # never mutated
    # other roles keep what they had
    tool = {"role": "tool", "tool_call_id": "c1", "content": None}
    assert prepare({"messages": [user(), tool]}, make_resolved())["messages"][1] == tool


def test_a_lone_surrogate_is_refused_before_sending_naming_where() -> None:
    msgs = [user("fine"), user("你好 \ud83d there")]
    with pytest.raises(BadRequestError, match=r"messages\[1\]\.content .*U\+D83D.* position 3"):
        prepare({"messages": msgs}, make_resolved())
    parts = [{"type": "text", "text": "ok"}, {"type": "text", "text": "x\udfff"}]
    with pytest.raises(BadRequestError, match=r"messages\[0\]\.content\[1\]\.text"):
        prepare({"messages": [{"role": "user", "content": parts}]}, make_resolved())
    assert find_lone_surrogate(["ok", "emoji 😀 is fine"], "input") is None
    assert find_lone_surrogate(["ok", "bad \ud800"], "input") == ("input[1]", 4, "\ud800")


def test_stream_options_include_usage() -> None:
    rm = make_resolved()
    out = prepare({"messages": [user()], "stream": True}, rm)
    assert out["stream_options"] == {"include_usage": True}
    mine = {"include_usage": False}
    assert (
        prepare({"messages": [user()], "stream": True, "stream_options": mine}, rm)[
            "stream_options"
        ]
        == mine
    )
    assert "stream_options" not in prepare({"messages": [user()], "stream": False}, rm)
    off = make_resolved(stream_usage=False)
    assert "stream_options" not in prepare({"messages": [user()], "stream": True}, off)


def test_thinking_enabled() -> None:
    from campusllm.wire import thinking_enabled

    plain = make_resolved()
    assert thinking_enabled(plain, None) is False
    assert thinking_enabled(make_resolved(reasoning={"default_on": True}), None) is True
    qwen = make_resolved(reasoning={"toggle": "enable_thinking", "default_on": True})
    assert (thinking_enabled(qwen, None), thinking_enabled(qwen, False)) == (True, False)
    switch = {
        "toggle": "model_switch",
        "thinking_model": "deepseek-reasoner",
        "non_thinking_model": "deepseek-chat",
    }
    aliases = ["deepseek-chat", "deepseek-reasoner"]
    chat = make_resolved(aliases=aliases, requested="deepseek-chat", reasoning=switch)
    reasoner = make_resolved(aliases=aliases, requested="deepseek-reasoner", reasoning=switch)
    assert thinking_enabled(chat, None) is False and thinking_enabled(reasoner, None) is True
    assert thinking_enabled(chat, True) is True


def test_repeated_id_and_name_are_passed_on_once() -> None:
    asm = StreamAssembler()
    frags = ['{"q"', ': "x"', "}"]
    deltas = [
        asm.feed(tc_chunk({"index": 0, "id": "a", "type": "function", "function": fn("s", f)}))
        for f in frags
    ]
    assert [(d.tool_calls[0].id, d.tool_calls[0].name) for d in deltas] == [
        ("a", "s"),
        (None, None),
        (None, None),
    ]
    [tc] = asm.message().tool_calls
    assert (tc.id, tc.name, tc.parsed_arguments()) == ("a", "s", {"q": "x"})
