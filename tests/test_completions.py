"""Text completion (``/completions``): registry flag, request bodies, answers, streams, errors.

Against the offline simulator, which continues prompts the way vLLM does (no chat template;
reasoning models think first; ``stop`` and ``max_tokens`` honoured).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import campusllm
from campusllm.chat import ChatCaller
from campusllm.completions import CompletionCaller
from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    CampusLLMError,
    CapabilityError,
    ProtocolError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from campusllm.registry import get_registry, reset_registry, resolve
from campusllm.sim import SIM_KEY
from campusllm.streaming import StreamGuard
from campusllm.wire.text import (
    DEFAULT_MAX_TOKENS,
    as_chat_chunk,
    parse_text_completion,
    prepare_completion_payload,
    text_reasoning_spec,
)

R1 = "maas:DeepSeek-R1-Distill-Qwen-32B"
PLAIN = "maas:Qwen2-72B"
OPENED = "<｜User｜>Which is larger, 9.11 or 9.9?<｜Assistant｜><think>\n"
REASONING = "Compare the integer parts first, then the decimals digit by digit. " * 2
CONTENT = "9.9 is larger than 9.11, because 0.90 is more than 0.11. " * 2
LOCAL = "http://127.0.0.1:9/v1"


def _caller(sim: Any, model: str = PLAIN) -> CompletionCaller:
    return CompletionCaller(model, api_key=SIM_KEY, base_url=sim.url(model.split(":")[0]))


@pytest.fixture
def base_model() -> Iterator[str]:
    """A completion-only model (a base model without a chat template) registered on maas."""
    reset_registry()
    campusllm.register_model("maas", {"id": "Qwen2.5-7B", "endpoint": "completions"})
    try:
        yield "maas:Qwen2.5-7B"
    finally:
        reset_registry()


# --------------------------------------------------------------------------- the catalog


def test_maas_models_serve_both_endpoints_and_sjtu_models_chat_only() -> None:
    reg = get_registry()
    maas = [m for m in reg.provider("maas").models if m.kind == "chat"]
    assert maas and all(m.endpoint == "both" for m in maas)
    assert all(m.endpoint == "chat" for m in reg.provider("sjtu").models)


# --------------------------------------------------------------------------- request bodies


def test_the_body_carries_the_models_request_defaults_and_user_keys_win() -> None:
    glm = resolve("maas:ChatGLM4-9B", base_url=LOCAL)
    body = prepare_completion_payload({"prompt": "hi"}, glm)
    assert body["stop_token_ids"] == [151329, 151336, 151338]  # or the model runs on
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS  # vLLM would stop after 16 tokens
    r1 = resolve(R1, base_url=LOCAL)
    assert prepare_completion_payload({"prompt": "hi"}, r1)["temperature"] == 0.6
    mine = prepare_completion_payload({"prompt": "hi", "temperature": 0.1, "max_tokens": 9}, r1)
    assert (mine["temperature"], mine["max_tokens"]) == (0.1, 9)
    streamed = prepare_completion_payload({"prompt": "hi"}, r1, stream=True)
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


def test_chat_only_defaults_stay_out_and_max_output_is_the_default_limit() -> None:
    reset_registry()
    try:
        campusllm.register_model(
            "maas",
            {
                "id": "Lab-32B",
                "endpoint": "both",
                "max_output": 4096,
                "request_defaults": {"chat_template_kwargs": {"enable_thinking": False}},
            },
        )
        body = prepare_completion_payload({"prompt": "hi"}, resolve("maas:Lab-32B", base_url=LOCAL))
    finally:
        reset_registry()
    assert "chat_template_kwargs" not in body  # no template is applied to a raw prompt
    assert body["max_tokens"] == 4096


def test_a_prompt_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(BadRequestError, match="prompt as a string"):
        prepare_completion_payload({"prompt": ["a", "b"]}, resolve(PLAIN, base_url=LOCAL))


def test_defaults_and_stop_reach_the_completions_endpoint(sim: Any) -> None:
    caller = _caller(sim, "maas:ChatGLM4-9B")
    caller.invoke("Once upon a time", stop=["\n\n"])
    sent = sim.requests[-1]
    assert sent["path"] == "/maas/v1/completions"
    assert sent["json"]["prompt"] == "Once upon a time" and sent["json"]["stop"] == ["\n\n"]
    assert sent["json"]["stop_token_ids"] == [151329, 151336, 151338]
    assert sent["headers"]["authorization"] == "Bearer ***"  # the key went, redacted in logs


# --------------------------------------------------------------------------- answers


def test_invoke_stream_and_their_async_twins_give_the_same_text(sim: Any) -> None:
    caller = _caller(sim)
    whole = caller.invoke("Once upon a time")
    stream = caller.stream("Once upon a time")
    streamed = "".join(d.content for d in stream)

    async def both() -> tuple[str, str]:
        a = await caller.ainvoke("Once upon a time")
        s = caller.astream("Once upon a time")
        text = "".join([d.content async for d in s])
        await caller.aclose()
        return a.content, text

    a_whole, a_streamed = asyncio.run(both())
    assert "Once upon a time" in whole.content and whole.finish_reason == "stop"
    assert whole.content == streamed == a_whole == a_streamed
    assert stream.message().usage and stream.message().usage["completion_tokens"] > 0


@pytest.mark.parametrize("prompt", [OPENED, "Which is larger, 9.11 or 9.9?"])
def test_reasoning_is_split_whether_the_prompt_or_the_model_opens_think(
    sim: Any, prompt: str
) -> None:
    caller = _caller(sim, R1)
    whole = caller.invoke(prompt)
    stream = caller.stream(prompt)
    deltas = list(stream)
    for msg in (whole, stream.message()):
        assert msg.reasoning.startswith("Simulated reasoning")
        assert msg.content.startswith("Simulated completion")
        assert "think>" not in msg.content + msg.reasoning
    assert "".join(d.reasoning for d in deltas) == whole.reasoning


def test_a_prompt_that_opened_think_streams_reasoning_before_any_text(sim: Any) -> None:
    sim.script(R1.split(":")[1], [{"content": REASONING + "</think>\n\n" + CONTENT, "chunks": 24}])
    deltas = list(_caller(sim, R1).stream(OPENED))
    first_text = next(i for i, d in enumerate(deltas) if d.content)
    assert "".join(d.reasoning for d in deltas[:first_text]).strip() == REASONING.strip()
    assert "".join(d.content for d in deltas) == CONTENT


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=12), opened=st.booleans())
def test_a_stream_cut_anywhere_splits_like_the_whole_answer(cuts: list[int], opened: bool) -> None:
    text = ("" if opened else "<think>\n") + "plan A, then B</think>\n\nThe answer is 42."
    prompt = "Q: ?\n<think>\n" if opened else "Q: ?\n"
    whole = parse_text_completion({"choices": [{"text": text, "finish_reason": "stop"}]}, prompt)
    r = resolve(R1, base_url=LOCAL)
    guard = StreamGuard(
        r.model_copy(
            update={"model": r.model.model_copy(update={"reasoning": text_reasoning_spec(prompt)})}
        )
    )
    points = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    for a, b in zip(points, points[1:], strict=False):
        guard.feed(as_chat_chunk({"choices": [{"index": 0, "text": text[a:b]}]}))
    guard.feed(as_chat_chunk({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}))
    guard.finish()
    got = guard.message()
    assert (got.reasoning, got.content) == (whole.reasoning, whole.content)
    assert (whole.reasoning, whole.content) == ("plan A, then B", "The answer is 42.")


def test_stop_strings_end_the_text_and_max_tokens_reports_length(sim: Any) -> None:
    caller = _caller(sim)
    stopped = caller.invoke("Once upon a time", stop=["upon"])
    assert "upon" not in stopped.content and stopped.finish_reason == "stop"
    cut = caller.invoke("Once upon a time", max_tokens=2)
    assert cut.finish_reason == "length" and len(cut.content) < len(stopped.content) + 20
    streamed = caller.stream("Once upon a time", max_tokens=2)
    list(streamed)
    assert streamed.message().finish_reason == "length"


# --------------------------------------------------------------------------- which endpoint


def test_a_chat_only_model_is_refused_before_any_request(sim: Any) -> None:
    before = len(sim.requests)
    with pytest.raises(CapabilityError, match="chat only") as info:
        CompletionCaller("sjtu:glm", api_key=SIM_KEY, base_url=sim.url("sjtu"))
    assert "endpoint='both'" in str(info.value)
    with pytest.raises(CapabilityError, match="does not generate text"):
        CompletionCaller("oneapi:qwen3-embedding-8b", api_key=SIM_KEY, base_url=sim.url("oneapi"))
    assert len(sim.requests) == before


def test_a_completion_only_model_completes_and_is_refused_for_chat(
    sim: Any, base_model: str
) -> None:
    assert _caller(sim, base_model).invoke("Once upon a time").content
    before = len(sim.requests)
    chat = ChatCaller(base_model, api_key=SIM_KEY, base_url=sim.url("maas"))
    with pytest.raises(CapabilityError, match="only text completion"):
        chat.invoke([{"role": "user", "content": "hi"}])
    assert len(sim.requests) == before  # refused here, not by a puzzling gateway error
    # what the gateway (vLLM) says when asked anyway
    r = httpx.post(
        sim.url("maas") + "/chat/completions",
        json={"model": "Qwen2.5-7B", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {SIM_KEY}"},
    )
    assert r.status_code == 400 and "chat template" in r.json()["error"]["message"]


def test_a_model_the_catalog_does_not_know_is_let_through(sim: Any) -> None:
    caller = CompletionCaller("custom:my-base-model", api_key=SIM_KEY, base_url=sim.url("custom"))
    assert "Once upon a time" in caller.invoke("Once upon a time").content


# --------------------------------------------------------------------------- errors


def test_429_is_retried_and_401_is_an_authentication_error(sim: Any) -> None:
    caller = _caller(sim)
    sim.inject("status", status=429, path_contains="/completions")
    assert caller.invoke("Once upon a time").content
    assert [r["path"] for r in sim.requests[-2:]] == ["/maas/v1/completions"] * 2
    sim.inject("status", status=401, path_contains="/completions")
    with pytest.raises(AuthenticationError):
        caller.invoke("Once upon a time")


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_sent_with_http_200_is_typed(sim: Any, stream: bool) -> None:
    caller = _caller(sim)
    sim.inject("error_200", path_contains="/completions")
    with pytest.raises(BadRequestError, match="当前分组上游负载已饱和") as info:
        if stream:
            list(caller.stream("Once upon a time"))
        else:
            caller.invoke("Once upon a time")
    assert info.value.provider == "maas"


def test_a_broken_body_is_a_protocol_error(sim: Any) -> None:
    sim.inject("malformed_json", path_contains="/completions")
    with pytest.raises(ProtocolError):
        _caller(sim).invoke("Once upon a time")


def test_an_empty_stream_is_an_error_not_an_empty_answer(sim: Any) -> None:
    sim.inject("truncate_stream", after_chunks=0, path_contains="/completions")
    with pytest.raises(ProtocolError, match="before any completion"):
        list(_caller(sim).stream("Once upon a time"))


def test_a_stream_that_stops_without_its_end_keeps_the_partial_text(sim: Any) -> None:
    sim.script("Qwen2-72B", [{"content": CONTENT, "chunks": 16}])
    sim.inject("truncate_stream", after_chunks=5, path_contains="/completions")
    with pytest.raises(StreamInterruptedError) as info:
        list(_caller(sim).stream("Once upon a time"))
    assert info.value.partial_content and CONTENT.startswith(info.value.partial_content)
    assert info.value.partial_content != CONTENT


FAULTS = [
    ("error_mid_stream", 500, ServerError),
    ("error_mid_stream", 429, RateLimitError),
    ("error_event_mid_stream", 503, ServerError),
    ("reset_mid_stream", 500, StreamInterruptedError),
]


def _stream_fault(sim: Any, run: Any, model: str, script: dict[str, Any], kind: str, status: int):
    sim.script(model, [script])
    sim.inject(kind, status=status, after_chunks=12)
    with pytest.raises(CampusLLMError) as info:
        run()
    return info.value


@pytest.mark.parametrize(("kind", "status", "expected"), FAULTS)
def test_a_mid_stream_fault_ends_as_it_does_in_chat(
    sim: Any, kind: str, status: int, expected: type[CampusLLMError]
) -> None:
    chat = ChatCaller("sjtu:deepseek-reasoner", api_key=SIM_KEY, base_url=sim.url("sjtu"))
    chat_err = _stream_fault(
        sim,
        lambda: list(chat.stream([{"role": "user", "content": "hi"}])),
        "deepseek-reasoner",
        {"reasoning": REASONING, "content": CONTENT, "chunks": 16},
        kind,
        status,
    )
    text = _caller(sim, R1)
    err = _stream_fault(
        sim,
        lambda: list(text.stream(OPENED)),
        "DeepSeek-R1-Distill-Qwen-32B",
        {"content": REASONING + "</think>\n\n" + CONTENT, "chunks": 16},
        kind,
        status,
    )
    assert type(err) is type(chat_err) is expected
    assert err.status_code == chat_err.status_code
    assert err.partial_reasoning.strip() == REASONING.strip()
    assert CONTENT.startswith(err.partial_content) and err.partial_content != CONTENT
    assert err.provider == "maas" and err.model == "DeepSeek-R1-Distill-Qwen-32B"


def _mocked(sim: Any, body: bytes, content_type: str) -> CompletionCaller:
    caller = _caller(sim)
    caller.connection.http = httpx.Client(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(
                200, content=body, headers={"content-type": content_type}
            )
        )
    )
    return caller


def test_a_whole_json_answer_to_a_stream_request_is_used(sim: Any) -> None:
    body = {"choices": [{"index": 0, "text": "<think>hm</think>Hi", "finish_reason": "stop"}]}
    stream = _mocked(sim, json.dumps(body).encode(), "application/json").stream("Say hi")
    assert "".join(d.content for d in stream) == "Hi"
    assert stream.message().reasoning == "hm"


def test_an_error_event_before_any_text_is_typed(sim: Any) -> None:
    body = b'event: error\ndata: {"error": {"message": "upstream overloaded", "code": 503}}\n\n'
    with pytest.raises(ServerError, match="upstream overloaded") as info:
        list(_mocked(sim, body, "text/event-stream").stream("Say hi"))
    assert info.value.status_code == 503 and not info.value.partial_content


# --------------------------------------------------------------------------- command line


def test_campusllm_complete_streams_reasoning_apart_from_the_text(
    sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from campusllm.cli import main

    monkeypatch.setenv("MAAS_API_KEY", SIM_KEY)
    argv = ["complete", "-m", R1, "--base-url", sim.url("maas"), "--max-tokens", "200"]
    assert main([*argv, "--stop", "NEVER", "Which is larger, 9.11 or 9.9?"]) == 0
    out = capsys.readouterr().out
    thinking, _, text = out.partition("\n\n")
    assert "[thinking]" in thinking and "Simulated reasoning" in thinking
    assert text.strip().startswith("Simulated completion") and "think>" not in out
    body = sim.requests[-1]["json"]
    assert (body["max_tokens"], body["stop"]) == (200, ["NEVER"])


def test_campusllm_complete_refuses_a_chat_only_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from campusllm.cli import main

    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    assert main(["complete", "-m", "sjtu:glm", "hi"]) == 1
    assert "CapabilityError" in capsys.readouterr().err


def test_campusllm_models_shows_text_completion_support(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from campusllm.cli import main

    assert main(["models", "maas"]) == 0
    out = capsys.readouterr().out
    assert "maas:QwQ-32B" in out and "completions" in out
