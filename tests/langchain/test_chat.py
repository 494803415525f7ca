"""ChatCampusLLM against the offline simulator: config, reasoning, tools, errors, streaming."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai.chat_models.base import BaseChatOpenAI
from lc_helpers import find_model, last_chat_request
from pydantic import BaseModel, Field, SecretStr

from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    CampusLLMError,
    CapabilityError,
    ModelNotFoundError,
    ServerError,
    StreamInterruptedError,
)
from campusllm.sim import SIM_KEY
from langchain_campusllm import ChatCampusLLM

SHAPES = ["reasoning_content", "reasoning", "think_tags", "think_open"]


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"Sunny, 25 C in {city}"


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"It is 10:00 in {city}"


def _collect(chunks: Any) -> tuple[list[AIMessageChunk], AIMessageChunk]:
    out = list(chunks)
    assert out, "the stream yielded nothing"
    full = out[0]
    for c in out[1:]:
        full = full + c
    return out, full


# ---------------------------------------------------------------------------- construction


def test_model_spec_forms_resolve_to_wire_id_and_gateway(sim: Any) -> None:
    a = ChatCampusLLM(model="sjtu:deepseek-reasoner", base_url=sim.url("sjtu"), api_key=SIM_KEY)
    b = ChatCampusLLM(
        provider="sjtu", model="deepseek-reasoner", base_url=sim.url("sjtu"), api_key=SIM_KEY
    )
    for llm in (a, b):
        assert isinstance(llm, BaseChatOpenAI)
        assert llm.model_name == "deepseek-reasoner"
        assert llm.provider == "sjtu"
        assert llm.openai_api_base == sim.url("sjtu")
        assert llm.resolved.model.id == a.resolved.model.id
        assert llm._llm_type == "campusllm"


def test_default_base_url_comes_from_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from campusllm.registry import get_registry

    prov = get_registry().provider("sjtu")
    if prov.base_url_env:
        monkeypatch.delenv(prov.base_url_env, raising=False)
    llm = ChatCampusLLM(model="sjtu:deepseek-chat", api_key="sk-test-123456")
    assert llm.openai_api_base == prov.base_url


def test_max_tokens_default_from_registry_unless_user_sets_it(make_chat: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat")
    if llm.resolved.model.max_output:
        assert llm.max_tokens == llm.resolved.model.max_output
    assert make_chat("sjtu:deepseek-chat", max_tokens=77).max_tokens == 77


def test_api_key_from_provider_env_and_explicit_override(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campusllm.registry import get_registry

    env = get_registry().provider("sjtu").key_env[0]
    monkeypatch.setenv(env, "sk-sim-from-env")
    llm = ChatCampusLLM(model="sjtu:deepseek-chat", base_url=sim.url("sjtu"))
    assert isinstance(llm.openai_api_key, SecretStr)
    assert llm.openai_api_key.get_secret_value() == "sk-sim-from-env"
    assert llm.lc_secrets == {"openai_api_key": env}
    explicit = ChatCampusLLM(model="sjtu:deepseek-chat", base_url=sim.url("sjtu"), api_key="sk-x1")
    assert explicit.openai_api_key.get_secret_value() == "sk-x1"  # type: ignore[union-attr]


def test_missing_key_raises_typed_error_naming_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    from campusllm.registry import get_registry

    envs = [*get_registry().provider("sjtu").key_env, "CAMPUSLLM_API_KEY"]
    for name in envs:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthenticationError) as ei:
        ChatCampusLLM(model="sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    assert envs[0] in str(ei.value)


def test_unknown_provider_raises_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError):
        ChatCampusLLM(model="no-such-provider:foo", api_key="sk-test-123456")


def test_secrets_never_in_repr_str_or_dumps(sim: Any) -> None:
    secret = "sk-sim-very-secret-value-42"
    llm = ChatCampusLLM(model="sjtu:deepseek-chat", base_url=sim.url("sjtu"), api_key=secret)
    assert llm.openai_api_key.get_secret_value() == secret  # type: ignore[union-attr]
    for text in (repr(llm), str(llm), dumps(llm), json.dumps(dumpd(llm)), str(llm.model_dump())):
        assert secret not in text
    ser = dumpd(llm)
    assert ser["kwargs"]["openai_api_key"]["type"] == "secret"


def test_dumps_load_round_trip_reads_key_from_env(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.load import load

    llm = ChatCampusLLM(
        model="sjtu:deepseek-reasoner", base_url=sim.url("sjtu"), api_key=SIM_KEY, thinking=False
    )
    env = llm.resolved.provider.key_env[0]
    monkeypatch.setenv(env, SIM_KEY)
    again = load(
        dumpd(llm),
        allowed_objects=[ChatCampusLLM],
        valid_namespaces=["langchain_campusllm"],
        secrets_from_env=True,
    )
    assert isinstance(again, ChatCampusLLM)
    assert again.model_dump() == llm.model_dump()
    assert again.resolved.key == llm.resolved.key
    assert again.invoke("hi").text


def test_sdk_clients_use_campus_transport_without_sdk_retries(make_chat: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat", max_retries=3)
    assert llm.root_client.max_retries == 0
    assert llm.root_async_client.max_retries == 0
    from campusllm.openai_sdk import sdk_http_library

    sdk_http, sdk_ahttp = llm.connection.http_clients(sdk_http_library())
    assert llm.root_client._client is sdk_http
    assert llm.root_async_client._client is sdk_ahttp
    from campusllm.transport import AsyncCampusTransport, CampusTransport

    assert isinstance(llm.root_client._client._transport, CampusTransport)
    assert isinstance(llm.root_async_client._client._transport, AsyncCampusTransport)


def test_responses_api_is_never_used(make_chat: Any, sim: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat", use_responses_api=True, output_version="responses/v1")
    assert llm._use_responses_api({"tools": [{"type": "web_search"}]}) is False
    llm.invoke("hi")
    assert sim.requests[-1]["path"].endswith("/chat/completions")


def test_stream_usage_on_by_default(make_chat: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat")
    assert llm.stream_usage is llm.resolved.provider.stream_usage


def test_profile_built_from_registry(make_chat: Any) -> None:
    llm = make_chat(find_model(lambda m: m.context_window and m.vision))
    spec = llm.resolved.model
    assert llm.profile is not None
    assert llm.profile.get("max_input_tokens") == spec.context_window
    assert llm.profile.get("image_inputs") is True


def test_deprecated_model_warns_naming_replacement(sim: Any) -> None:
    from campusllm.registry import get_registry

    found = [(p.name, m) for p, m in get_registry().models(kind="chat") if m.status == "deprecated"]
    if not found:
        pytest.skip("the catalog has no deprecated chat model")
    provider, spec = found[0]
    with pytest.warns(UserWarning) as record:
        ChatCampusLLM(model=f"{provider}:{spec.id}", base_url=sim.url(provider), api_key=SIM_KEY)
    texts = [str(w.message) for w in record]
    assert spec.replacement is None or any(spec.replacement in t for t in texts)


# ---------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize("shape", SHAPES)
def test_invoke_splits_reasoning_for_every_shape(make_chat: Any, shape: str) -> None:
    llm = make_chat("sjtu:deepseek-reasoner", default_headers={"X-Sim-Reasoning-Shape": shape})
    msg = llm.invoke("Why is the sky blue?")
    reasoning = msg.additional_kwargs.get("reasoning_content")
    assert reasoning and "Why is the sky blue" in reasoning
    assert "<think>" not in msg.text and "</think>" not in msg.text
    assert msg.text.startswith("Simulated answer")
    assert msg.response_metadata["model_provider"] == "campusllm"
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "deepseek-reasoner"
    blocks = msg.content_blocks
    assert blocks[0]["type"] == "reasoning" and blocks[0].get("reasoning") == reasoning
    assert any(b["type"] == "text" for b in blocks)
    assert msg.usage_metadata and msg.usage_metadata["input_tokens"] > 0


@pytest.mark.parametrize("shape", [*SHAPES[:3], "opens_in_template"])
def test_stream_splits_reasoning_for_every_shape(make_chat: Any, shape: str) -> None:
    if shape == "opens_in_template":
        # A stream cannot look ahead for a bare "</think>": only models the registry marks
        # opens_in_template get it split (the sim emits that shape for them by default).
        llm = make_chat(find_model(lambda m: m.reasoning.opens_in_template))
    else:
        llm = make_chat("sjtu:deepseek-reasoner", default_headers={"X-Sim-Reasoning-Shape": shape})
    expected = llm.invoke("Why is the sky blue?")
    chunks, full = _collect(llm.stream("Why is the sky blue?"))
    assert len(chunks) > 5
    for c in chunks:
        assert "<" not in c.text, f"tag fragment leaked into content: {c.text!r}"
    assert full.text == expected.text
    assert (
        full.additional_kwargs["reasoning_content"]
        == expected.additional_kwargs["reasoning_content"]
    )
    assert full.content_blocks[0]["type"] == "reasoning"
    assert full.response_metadata["model_provider"] == "campusllm"
    assert full.response_metadata["finish_reason"] == "stop"
    assert full.response_metadata["model_name"] == llm.model_name


class _FakeStream:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks = chunks

    def __enter__(self) -> _FakeStream:
        return self

    def __exit__(self, *a: Any) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(self._chunks)


class _FakeCompletions:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def create(self, **payload: Any) -> _FakeStream:
        assert payload["stream"] is True
        return _FakeStream(self.chunks)


def test_think_tags_split_at_every_character_across_chunks(make_chat: Any) -> None:
    text = "<think>\nplan a < b carefully</think>\n\nThe answer is 42"
    llm = make_chat("sjtu:deepseek-chat")
    for step in (1, 2, 3, 5):
        pieces = [text[i : i + step] for i in range(0, len(text), step)]
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        llm.client = _FakeCompletions(chunks)
        _, full = _collect(llm.stream("q"))
        assert full.additional_kwargs["reasoning_content"] == "plan a < b carefully", step
        assert full.text == "The answer is 42", step


def test_held_back_tag_prefix_is_flushed_at_end(make_chat: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat")
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "a < b and x <th"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    llm.client = _FakeCompletions(chunks)
    _, full = _collect(llm.stream("q"))
    assert full.text == "a < b and x <th"


def test_interleaved_streams_keep_their_own_state(make_chat: Any) -> None:
    llm = make_chat(
        "sjtu:deepseek-reasoner", default_headers={"X-Sim-Reasoning-Shape": "think_tags"}
    )
    a = llm.stream("first question")
    b = llm.stream("second question")
    fa: Any = None
    fb: Any = None
    done_a = done_b = False
    while not (done_a and done_b):
        if not done_a:
            try:
                c = next(a)
                fa = c if fa is None else fa + c
            except StopIteration:
                done_a = True
        if not done_b:
            try:
                c = next(b)
                fb = c if fb is None else fb + c
            except StopIteration:
                done_b = True
    assert "first question" in fa.additional_kwargs["reasoning_content"]
    assert "second question" in fb.additional_kwargs["reasoning_content"]
    assert "first question" in fa.text and "second" not in fa.text
    assert "<think>" not in fa.text + fb.text


async def test_async_invoke_and_stream(make_chat: Any) -> None:
    llm = make_chat(
        "sjtu:deepseek-reasoner", default_headers={"X-Sim-Reasoning-Shape": "think_tags"}
    )
    msg = await llm.ainvoke("hello async")
    assert msg.additional_kwargs["reasoning_content"]
    full: Any = None
    async for c in llm.astream("hello async"):
        assert "<" not in c.text
        full = c if full is None else full + c
    assert full.text == msg.text
    assert full.usage_metadata and full.usage_metadata["output_tokens"] > 0
    results = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(4)))
    assert [f"q{i}" in r.text for i, r in enumerate(results)] == [True] * 4


def test_usage_metadata_on_stream_and_stream_options_sent(make_chat: Any, sim: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat")
    _, full = _collect(llm.stream("count tokens"))
    assert full.usage_metadata is not None
    assert full.usage_metadata["input_tokens"] > 0 and full.usage_metadata["output_tokens"] > 0
    assert last_chat_request(sim).get("stream_options") == {"include_usage": True}

    off = make_chat("sjtu:deepseek-chat", stream_usage=False)
    _, full = _collect(off.stream("count tokens"))
    assert "stream_options" not in last_chat_request(sim)
    assert full.usage_metadata is None


# ---------------------------------------------------------------------------- thinking switch


def test_thinking_toggle_for_template_kwarg_models(make_chat: Any, sim: Any) -> None:
    model = find_model(lambda m: m.reasoning.toggle == "enable_thinking")
    llm = make_chat(model, thinking=False)
    msg = llm.invoke("hi")
    assert last_chat_request(sim)["chat_template_kwargs"] == {"enable_thinking": False}
    assert not msg.additional_kwargs.get("reasoning_content")
    msg = llm.invoke("hi", thinking=True)  # per-call override
    assert last_chat_request(sim)["chat_template_kwargs"] == {"enable_thinking": True}
    assert msg.additional_kwargs.get("reasoning_content")
    _collect(llm.stream("hi", thinking=True))
    assert last_chat_request(sim)["chat_template_kwargs"] == {"enable_thinking": True}


def test_thinking_toggle_by_model_switch(make_chat: Any, sim: Any) -> None:
    llm = make_chat("sjtu:deepseek-chat", thinking=True)
    msg = llm.invoke("hi")
    sent = last_chat_request(sim)
    assert sent["model"] == llm.resolved.model.reasoning.thinking_model
    assert "chat_template_kwargs" not in sent
    assert msg.additional_kwargs.get("reasoning_content")
    make_chat("sjtu:deepseek-chat").invoke("hi")
    assert last_chat_request(sim)["model"] == "deepseek-chat"


def test_thinking_on_a_model_that_cannot_switch_is_a_capability_error(make_chat: Any) -> None:
    model = find_model(lambda m: m.reasoning.toggle == "none" and not m.reasoning.default_on)
    with pytest.raises(CapabilityError):
        make_chat(model, thinking=True).invoke("hi")


# ---------------------------------------------------------------------------- pass-back


def _tool_history(model_reasoning: str | None) -> list[Any]:
    kwargs = {"reasoning_content": model_reasoning} if model_reasoning is not None else {}
    return [
        HumanMessage("What is the weather in Shanghai? Use get_weather."),
        AIMessage(
            content="",
            additional_kwargs=kwargs,
            tool_calls=[{"name": "get_weather", "args": {"city": "Shanghai"}, "id": "call_1"}],
        ),
        ToolMessage("Sunny, 25 C in Shanghai", tool_call_id="call_1"),
    ]


def test_reasoning_is_passed_back_on_assistant_messages(make_chat: Any, sim: Any) -> None:
    llm = make_chat("sjtu:deepseek-reasoner").bind_tools([get_weather])
    msg = llm.invoke(_tool_history("I should call get_weather."))
    sent = last_chat_request(sim)["messages"]
    assert sent[1]["reasoning_content"] == "I should call get_weather."
    assert "Sunny" in msg.text


def test_reasoning_content_blocks_are_passed_back(make_chat: Any, sim: Any) -> None:
    history = _tool_history(None)
    history[1] = AIMessage(
        content=[{"type": "reasoning", "reasoning": "from blocks"}],
        tool_calls=history[1].tool_calls,
    )
    make_chat("sjtu:deepseek-reasoner").bind_tools([get_weather]).invoke(history)
    sent = last_chat_request(sim)["messages"][1]
    assert sent["reasoning_content"] == "from blocks"
    assert not any(
        isinstance(p, dict) and p.get("type") == "reasoning" for p in sent.get("content") or []
    )


def test_gateway_rejects_tool_history_without_passback(
    make_chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the pass-back test above can fail: bypass it and DeepSeek's rule answers 400."""
    llm = make_chat("sjtu:deepseek-reasoner")
    original = ChatCampusLLM._get_request_payload

    def without_passback(self: Any, *a: Any, **kw: Any) -> dict:
        body = original(self, *a, **kw)
        for m in body["messages"]:
            m.pop("reasoning_content", None)
        return body

    monkeypatch.setattr(ChatCampusLLM, "_get_request_payload", without_passback)
    with pytest.raises(BadRequestError) as ei:
        llm.bind_tools([get_weather]).invoke(_tool_history("I should call get_weather."))
    assert ei.value.status_code == 400
    assert "reasoning_content" in str(ei.value)


# ---------------------------------------------------------------------------- tools


def test_parallel_tool_calls_invoke_and_stream_agree(make_chat: Any) -> None:
    model = find_model(lambda m: m.tools and m.parallel_tools)
    llm = make_chat(model).bind_tools([get_weather, get_time])
    prompt = "Call get_weather and get_time for Shanghai."
    msg = llm.invoke(prompt)
    assert sorted(tc["name"] for tc in msg.tool_calls) == ["get_time", "get_weather"]
    assert len({tc["id"] for tc in msg.tool_calls}) == 2
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    chunks, full = _collect(llm.stream(prompt))
    indexes = {tc["index"] for c in chunks for tc in c.tool_call_chunks}
    assert indexes == {0, 1}
    assert [(t["name"], t["args"]) for t in full.tool_calls] == [
        (t["name"], t["args"]) for t in msg.tool_calls
    ]
    assert all(isinstance(t["args"]["city"], str) for t in full.tool_calls)


def test_tools_on_model_without_tools_fail_before_sending(make_chat: Any, sim: Any) -> None:
    model = find_model(lambda m: not m.tools)
    llm = make_chat(model)
    before = len(sim.requests)
    with pytest.raises(CapabilityError):
        llm.bind_tools([get_weather]).invoke("weather?")
    assert len(sim.requests) == before


class Weather(BaseModel):
    """Weather report."""

    city: str = Field(description="city name")
    temperature_c: int


def test_structured_output_function_calling(make_chat: Any) -> None:
    llm = make_chat(find_model(lambda m: m.tools))
    out = llm.with_structured_output(Weather).invoke("Weather in Shanghai?")
    assert isinstance(out, Weather)
    raw = llm.with_structured_output(Weather, include_raw=True).invoke("Weather?")
    assert isinstance(raw["parsed"], Weather) and raw["parsing_error"] is None


def test_structured_output_json_schema_where_supported(make_chat: Any, sim: Any) -> None:
    llm = make_chat(find_model(lambda m: m.json_schema))
    out = llm.with_structured_output(Weather, method="json_schema").invoke("Weather?")
    assert isinstance(out, Weather)
    sent = last_chat_request(sim)
    assert sent["response_format"]["type"] == "json_schema"
    assert "tools" not in sent
    chunks = list(llm.with_structured_output(Weather, method="json_schema").stream("Weather?"))
    assert isinstance(chunks[-1], Weather)


def test_json_schema_falls_back_to_function_calling_with_warning(make_chat: Any, sim: Any) -> None:
    llm = make_chat(find_model(lambda m: m.tools and not m.json_schema))
    with pytest.warns(UserWarning, match="function_calling"):
        runnable = llm.with_structured_output(Weather, method="json_schema")
    assert isinstance(runnable.invoke("Weather?"), Weather)
    sent = last_chat_request(sim)
    assert "response_format" not in sent and sent["tools"]


def test_image_on_non_vision_model_fails_before_sending(make_chat: Any, sim: Any) -> None:
    llm = make_chat(find_model(lambda m: not m.vision))
    image = HumanMessage(
        content=[
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    )
    before = len(sim.requests)
    with pytest.raises(CapabilityError):
        llm.invoke([image])
    assert len(sim.requests) == before


def test_image_on_vision_model_is_sent(make_chat: Any, sim: Any) -> None:
    llm = make_chat(find_model(lambda m: m.vision))
    image = HumanMessage(
        content=[
            {"type": "text", "text": "What is this?"},
            {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
        ]
    )
    assert llm.invoke([image]).text
    parts = last_chat_request(sim)["messages"][0]["content"]
    assert any(p.get("type") == "image_url" for p in parts)


# ---------------------------------------------------------------------------- errors


def test_bad_key_is_authentication_error(make_chat: Any) -> None:
    with pytest.raises(AuthenticationError) as ei:
        make_chat("sjtu:deepseek-chat", api_key="sk-sim-bad").invoke("hi")
    assert "sk-sim-bad" not in str(ei.value)


def test_server_errors_are_retried_once_then_typed(make_chat: Any, sim: Any) -> None:
    sim.inject("status", status=503, times=1)
    assert make_chat("sjtu:deepseek-chat", max_retries=1).invoke("hi").text
    sim.inject("status", status=500, times=5)
    with pytest.raises(ServerError):
        make_chat("sjtu:deepseek-chat", max_retries=0).invoke("hi")


def test_stream_broken_midway_keeps_partials_without_duplication(make_chat: Any, sim: Any) -> None:
    llm = make_chat(
        "sjtu:deepseek-reasoner", default_headers={"X-Sim-Reasoning-Shape": "think_tags"}
    )
    sim.inject("reset_mid_stream", after_chunks=25)
    seen: list[AIMessageChunk] = []
    with pytest.raises(StreamInterruptedError) as ei:
        for c in llm.stream("tell me a long story about Shanghai"):
            seen.append(c)
    err = ei.value
    assert isinstance(err, CampusLLMError)
    assert seen, "the break came before any output"
    got_reasoning = "".join(c.additional_kwargs.get("reasoning_content", "") for c in seen)
    got_content = "".join(c.text for c in seen)
    assert err.partial_reasoning.startswith(got_reasoning) and err.partial_reasoning
    assert err.partial_content.startswith(got_content)
    assert len(err.partial_reasoning) - len(got_reasoning) < 8  # at most a held tag prefix


def test_error_before_output_is_not_stream_interrupted(make_chat: Any, sim: Any) -> None:
    sim.inject("status", status=500, times=3)
    with pytest.raises(ServerError):
        list(make_chat("sjtu:deepseek-chat").stream("hi"))


def test_no_unexpected_warnings_on_plain_use(make_chat: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm = make_chat("sjtu:deepseek-chat")
        assert llm.invoke("hi").text
