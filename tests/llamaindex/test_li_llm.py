"""CampusLLM against the simulator: metadata, reasoning, streaming, tool calls, errors, secrets."""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ServerError,
    StreamInterruptedError,
)
from campusllm.sim import SIM_KEY
from llama_index_campusllm import CampusLLM
from llama_index_campusllm.llms import FALLBACK_CONTEXT_WINDOW, to_wire_messages

REASONER = "sjtu:deepseek-reasoner"
SHAPES = ["reasoning_content", "reasoning", "think_tags"]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def thinking_of(message: ChatMessage) -> str | None:
    blocks = [b for b in message.blocks if isinstance(b, ThinkingBlock)]
    return blocks[0].content if blocks else None


def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather for a city."""
    return f"Sunny, 25 C in {city}"


def get_time(tz: str) -> str:
    """Get the local time in a time zone."""
    return f"12:00 in {tz}"


# --------------------------------------------------------------------------- metadata


def test_metadata_comes_from_the_registry(make_llm: Any) -> None:
    from campusllm.registry import get_registry

    checked = 0
    for provider, spec in get_registry().models(kind="chat"):
        if provider.name == "custom" or spec.status == "deprecated":
            continue
        llm = make_llm(f"{provider.name}:{spec.id}")
        md = llm.metadata
        assert md.context_window == (spec.context_window or FALLBACK_CONTEXT_WINDOW)
        assert md.context_window != DEFAULT_CONTEXT_WINDOW
        assert md.num_output == (spec.max_output or DEFAULT_NUM_OUTPUTS)
        assert md.is_chat_model is True
        assert md.is_function_calling_model is spec.tools
        assert md.model_name == spec.id
        assert llm.resolved.model == spec
        checked += 1
    assert checked >= 3


def test_metadata_overrides_and_uncatalogued_models(make_llm: Any) -> None:
    llm = make_llm(REASONER, max_tokens=1234, context_window=4321)
    assert (llm.metadata.num_output, llm.metadata.context_window) == (1234, 4321)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unknown model" warning with close matches
        odd = make_llm("sjtu:some-brand-new-model")
    assert odd.resolved.known is False
    # the wire layer lets tools through for unknown models, so agents must not refuse them
    assert odd.metadata.is_function_calling_model is True
    assert odd.metadata.context_window == FALLBACK_CONTEXT_WINDOW


def test_rate_limit_override_reaches_the_core_client(make_llm: Any) -> None:
    llm = make_llm(REASONER, rate_limits={"rpm": 7, "tpm": 7000, "window_s": 2.0})
    assert llm.rate_limits is not None and llm.rate_limits.rpm == 7
    limits = llm.connection.limits
    assert (limits.rpm, limits.tpm, limits.window_s) == (7, 7000, 2.0)
    assert llm.connection.limiter is not None


def test_provider_and_model_given_separately(make_llm: Any, sim: Any) -> None:
    with CampusLLM(
        provider="sjtu", model="deepseek-reasoner", api_key=SIM_KEY, base_url=sim.url("sjtu")
    ) as llm:
        assert llm.resolved.key == make_llm(REASONER).resolved.key
        assert "Simulated answer" in (llm.chat(user("hello")).message.content or "")
    assert llm.connection.is_closed  # the context manager released the connections
    assert all(http.is_closed for http, _ in llm.connection._clients.values())


async def test_async_context_manager_closes_both_clients(sim: Any) -> None:
    async with CampusLLM(model=REASONER, api_key=SIM_KEY, base_url=sim.url("sjtu")) as llm:
        assert (await llm.achat(user("hello"))).message.content
    assert llm.connection.is_closed
    assert all(h.is_closed and a.is_closed for h, a in llm.connection._clients.values())


def test_async_calls_from_successive_event_loops(make_llm: Any, make_embed: Any) -> None:
    # asyncio.run per call, as scripts and LlamaIndex's own sync-over-async helpers do: the
    # pooled connections of a finished loop must not be reused by the next one.
    import asyncio

    from campusllm.registry import get_registry

    llm = make_llm(REASONER)
    emb_name = next(f"{p.name}:{m.id}" for p, m in get_registry().models(kind="embedding"))
    emb = make_embed(emb_name)
    for _ in range(3):
        resp = asyncio.run(llm.achat(user("hello")))
        assert "Simulated answer" in (resp.message.content or "")
        assert len(asyncio.run(emb.aget_query_embedding("hello"))) > 0
    # each finished loop's connection pool is gone, not kept alive for the next loop
    import gc

    gc.collect()
    for obj in (llm, emb):
        for _, ahttp in obj.connection._clients.values():
            assert len(ahttp._transport._pools) == 0 and not ahttp.is_closed
    assert llm.chat(user("hello")).message.content  # the sync client is unaffected
    asyncio.run(llm.aclose())  # closing from yet another loop does not raise


def test_same_registry_objects_as_the_langchain_adapter(make_llm: Any, sim: Any) -> None:
    from campusllm.registry import get_registry, register_model
    from langchain_campusllm import ChatCampusLLM

    lc = ChatCampusLLM(model=REASONER, base_url=sim.url("sjtu"), api_key=SIM_KEY, max_retries=0)
    li = make_llm(REASONER)
    assert li.resolved.model is lc.resolved.model  # one catalog, not a copy per adapter
    assert li.resolved.provider is lc.resolved.provider
    # a model registered at runtime is seen by both adapters with the same limits
    provider = get_registry().provider("sjtu")
    try:
        register_model(
            "sjtu",
            {"id": "li-test-model", "context_window": 12345, "max_output": 678, "tools": True},
        )
        li_new = make_llm("sjtu:li-test-model")
        lc_new = ChatCampusLLM(
            model="sjtu:li-test-model", base_url=sim.url("sjtu"), api_key=SIM_KEY
        )
        assert (li_new.metadata.context_window, li_new.metadata.num_output) == (12345, 678)
        assert li_new.resolved.model is lc_new.resolved.model
        assert lc_new.max_tokens == 678
    finally:
        get_registry().register_provider(provider)


# --------------------------------------------------------------------------- secrets


def test_api_key_never_serialised(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-sim-" + "Qz7Lw2Pp4Rt8Yk3Vb"
    llm = CampusLLM(model=REASONER, base_url=sim.url("sjtu"), api_key=secret, max_retries=0)
    dumps = [
        repr(llm),
        str(llm),
        llm.to_json(),
        json.dumps(llm.to_dict()),
        llm.json(),
        llm.model_dump_json(),
        repr(llm.to_payload()),
    ]
    assert all(secret not in d for d in dumps)
    assert llm.api_key is not None and llm.api_key.get_secret_value() == secret
    # the key that is used is the given one (the simulator accepts any sk-sim key)
    assert "Simulated answer" in (llm.chat(user("Say hello")).message.content or "")
    # a serialised LLM comes back with the key from the provider's env var
    monkeypatch.setenv(llm.resolved.provider.key_env[0], SIM_KEY)
    clone = CampusLLM.from_json(llm.to_json())
    assert clone.metadata == llm.metadata
    assert clone.api_key is not None and clone.api_key.get_secret_value() == SIM_KEY
    assert secret not in str(pickle.dumps(llm.to_dict()))
    llm.close()
    clone.close()


def test_rejected_key_is_a_typed_error_without_the_key(make_llm: Any) -> None:
    llm = make_llm(REASONER, api_key="sk-sim-bad")
    with pytest.raises(AuthenticationError) as ei:
        llm.chat(user("hello"))
    assert "sk-sim-bad" not in str(ei.value)


# --------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize("shape", SHAPES)
def test_chat_reasoning_becomes_a_thinking_block(make_llm: Any, shape: str) -> None:
    llm = make_llm(REASONER, default_headers={"X-Sim-Reasoning-Shape": shape})
    resp = llm.chat(user("Why is the sky blue?"))
    blocks = resp.message.blocks
    assert isinstance(blocks[0], ThinkingBlock) and isinstance(blocks[1], TextBlock)
    assert "sky blue" in (blocks[0].content or "")
    text = resp.message.content or ""
    assert "Simulated answer" in text and "<think>" not in text and "</think>" not in text
    assert resp.additional_kwargs["total_tokens"] > 0


def _check_stream(chunks: list[ChatResponse]) -> None:
    final = chunks[-1].message
    reasoning = thinking_of(final)
    assert reasoning and final.content
    deltas = [c.additional_kwargs["thinking_delta"] for c in chunks]  # on every chunk
    assert len([d for d in deltas if d]) > 1
    assert "".join(deltas) == reasoning  # nothing dropped, the first delta included
    assert "".join(c.delta or "" for c in chunks) == final.content
    first = next(c for c in chunks if thinking_of(c.message))
    assert first.additional_kwargs.get("thinking_delta") == thinking_of(first.message)
    for c in chunks:  # every chunk carries everything so far
        assert reasoning.startswith(thinking_of(c.message) or "")
        assert final.content.startswith(c.message.content or "")
    assert "<think>" not in final.content


@pytest.mark.parametrize("shape", SHAPES)
def test_stream_chat_thinking_deltas(make_llm: Any, shape: str) -> None:
    llm = make_llm(
        REASONER,
        default_headers={"X-Sim-Reasoning-Shape": shape},
        additional_kwargs={"sim": {"chunks": 10}},
    )
    _check_stream(list(llm.stream_chat(user("Why is the sky blue?"))))


@pytest.mark.parametrize("shape", SHAPES)
async def test_astream_chat_thinking_deltas(make_llm: Any, shape: str) -> None:
    llm = make_llm(
        REASONER,
        default_headers={"X-Sim-Reasoning-Shape": shape},
        additional_kwargs={"sim": {"chunks": 10}},
    )
    _check_stream([c async for c in await llm.astream_chat(user("Why is the sky blue?"))])


async def test_achat_and_completion_variants(make_llm: Any) -> None:
    llm = make_llm(REASONER)
    resp = await llm.achat(user("Name a colour"))
    assert thinking_of(resp.message) and "Name a colour" in (resp.message.content or "")
    assert "Name a colour" in llm.complete("Name a colour").text
    assert "Name a colour" in (await llm.acomplete("Name a colour")).text
    sync_chunks = list(llm.stream_complete("Name a colour"))
    assert sync_chunks[-1].text == "".join(c.delta or "" for c in sync_chunks)
    assert "Name a colour" in sync_chunks[-1].text
    async_chunks = [c async for c in await llm.astream_complete("Name a colour")]
    assert async_chunks[-1].text == sync_chunks[-1].text
    assert any(c.additional_kwargs.get("thinking_delta") for c in async_chunks)


def test_thinking_switch_field_and_per_call(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    name = find_model(lambda s: s.reasoning.toggle in ("enable_thinking", "thinking"))
    from campusllm.registry import resolve

    toggle = resolve(name).model.reasoning.toggle
    llm = make_llm(name, thinking=False)
    resp = llm.chat(user("Plan a picnic"))
    # the gateway-specific switch reached the wire (extra_body), and thinking stayed off
    assert requests_to("/chat/completions")[-1]["chat_template_kwargs"] == {toggle: False}
    assert thinking_of(resp.message) is None
    resp = llm.chat(user("Plan a picnic"), thinking=True)
    assert requests_to("/chat/completions")[-1]["chat_template_kwargs"] == {toggle: True}
    assert thinking_of(resp.message)


def test_thinking_switch_by_model_id(make_llm: Any, find_model: Any, requests_to: Any) -> None:
    name = find_model(lambda s: s.reasoning.toggle == "model_switch")
    from campusllm.registry import resolve

    spec = resolve(name).model.reasoning
    llm = make_llm(name)
    assert thinking_of(llm.chat(user("hi there"), thinking=False).message) is None
    assert requests_to("/chat/completions")[-1]["model"] == spec.non_thinking_model
    assert thinking_of(llm.chat(user("hi there"), thinking=True).message)
    assert requests_to("/chat/completions")[-1]["model"] == spec.thinking_model


def test_impossible_thinking_switch_is_refused_before_sending(
    make_llm: Any, find_model: Any, sim: Any
) -> None:
    name = find_model(lambda s: s.reasoning.toggle == "none" and not s.reasoning.default_on)
    with pytest.raises(CapabilityError):
        make_llm(name).chat(user("hi"), thinking=True)
    assert not sim.requests


# --------------------------------------------------------------------------- history


def test_history_serialisation() -> None:
    history = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Weather?"),
        ChatMessage(
            role="assistant",
            blocks=[
                ThinkingBlock(content="call the tool"),
                TextBlock(text=""),
                ToolCallBlock(
                    tool_call_id="c1", tool_name="get_weather", tool_kwargs={"city": "上海"}
                ),
            ],
        ),
        ChatMessage(role="tool", content="Sunny", additional_kwargs={"tool_call_id": "c1"}),
        ChatMessage(
            role="assistant", content="Sunny.", additional_kwargs={"reasoning_content": "summarise"}
        ),
    ]
    wire = to_wire_messages(history)
    assert wire[0] == {"role": "system", "content": "Be brief."}
    assert wire[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "上海"}'},
            }
        ],
        "reasoning_content": "call the tool",
    }
    assert wire[3] == {"role": "tool", "content": "Sunny", "tool_call_id": "c1"}
    assert wire[4]["reasoning_content"] == "summarise"


def _history_with_reasoning() -> list[ChatMessage]:
    return [
        ChatMessage(role="user", content="Weather in Shanghai?"),
        ChatMessage(
            role="assistant",
            blocks=[
                ThinkingBlock(content="I should call get_weather."),
                TextBlock(text=""),
                ToolCallBlock(
                    tool_call_id="c1", tool_name="get_weather", tool_kwargs={"city": "Shanghai"}
                ),
            ],
        ),
        ChatMessage(role="tool", content="Sunny, 25 C", additional_kwargs={"tool_call_id": "c1"}),
    ]


def test_reasoning_is_passed_back_per_registry_policy(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    tools = [FunctionTool.from_defaults(get_weather)]
    resp = make_llm(REASONER).chat_with_tools(tools, chat_history=_history_with_reasoning())
    assert "Sunny, 25 C" in (resp.message.content or "")
    sent = requests_to("/chat/completions")[-1]["messages"]
    assert sent[1]["reasoning_content"] == "I should call get_weather."

    dropper = find_model(lambda s: s.tools and s.reasoning.passback == "drop")
    make_llm(dropper).chat_with_tools(tools, chat_history=_history_with_reasoning())
    sent = requests_to("/chat/completions")[-1]["messages"]
    assert "reasoning_content" not in sent[1] and "<think>" not in str(sent[1]["content"])


# --------------------------------------------------------------------------- tools


def test_prepare_chat_with_tools(make_llm: Any) -> None:
    llm = make_llm(REASONER)
    history = [ChatMessage(role="user", content="earlier")]
    tools = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(get_time)]
    kw = llm._prepare_chat_with_tools(
        tools, user_msg="now", chat_history=history, tool_required=True
    )
    assert len(history) == 1  # the caller's list is not extended
    assert [m.content for m in kw["messages"]] == ["earlier", "now"]
    assert [t["function"]["name"] for t in kw["tools"]] == ["get_weather", "get_time"]
    assert kw["tool_choice"] == "required"
    kw = llm._prepare_chat_with_tools(tools, user_msg="now", tool_choice="get_time")
    assert kw["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def _two_calls_script(sim: Any) -> None:
    sim.script(
        "deepseek-reasoner",
        [
            {
                "reasoning": "Two lookups are needed.",
                "tool_calls": [
                    {"name": "get_weather", "arguments": {"city": "Shanghai", "unit": "celsius"}},
                    {"name": "get_time", "arguments": {"tz": "Asia/Shanghai"}},
                ],
                "chunks": 6,
            }
        ],
    )


EXPECTED_CALLS = [
    ("get_weather", {"city": "Shanghai", "unit": "celsius"}),
    ("get_time", {"tz": "Asia/Shanghai"}),
]


def test_streamed_tool_calls_accumulate_on_every_chunk(make_llm: Any, sim: Any) -> None:
    _two_calls_script(sim)
    llm = make_llm(REASONER)
    tools = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(get_time)]
    chunks = list(
        llm.stream_chat_with_tools(
            tools, user_msg="Weather and time in Shanghai?", allow_parallel_tool_calls=True
        )
    )
    counts = []
    saw_partial = False
    for c in chunks:
        selections = llm.get_tool_calls_from_response(c, error_on_no_tool_call=False)
        blocks = [b for b in c.message.blocks if isinstance(b, ToolCallBlock)]
        assert (
            len(blocks) == len(selections) == len(c.message.additional_kwargs.get("tool_calls", []))
        )
        saw_partial |= any(isinstance(b.tool_kwargs, str) for b in blocks)
        counts.append(len(selections))
    assert counts == sorted(counts) and counts[-1] == 2
    assert saw_partial  # half-JSON arguments were seen mid-stream and did not raise
    final = llm.get_tool_calls_from_response(chunks[-1])
    assert [(s.tool_name, s.tool_kwargs) for s in final] == EXPECTED_CALLS
    assert all(s.tool_id for s in final) and final[0].tool_id != final[1].tool_id
    assert thinking_of(chunks[-1].message) == "Two lookups are needed."


async def test_async_tool_calls_and_single_call_validation(make_llm: Any, sim: Any) -> None:
    _two_calls_script(sim)
    llm = make_llm(REASONER)
    tools = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(get_time)]
    resp = await llm.achat_with_tools(
        tools, user_msg="Weather and time in Shanghai?", allow_parallel_tool_calls=True
    )
    calls = llm.get_tool_calls_from_response(resp)
    assert [(s.tool_name, s.tool_kwargs) for s in calls] == EXPECTED_CALLS
    _two_calls_script(sim)
    resp = await llm.achat_with_tools(
        tools, user_msg="Weather and time in Shanghai?", allow_parallel_tool_calls=False
    )
    assert [s.tool_name for s in llm.get_tool_calls_from_response(resp)] == ["get_weather"]


def test_get_tool_calls_tolerates_half_json(make_llm: Any) -> None:
    llm = make_llm(REASONER)
    args = '{"city": "Shanghai", "days": [1, 2], "unit": "celsius"}'
    for i in range(len(args) + 1):
        msg = ChatMessage(
            role="assistant",
            blocks=[
                TextBlock(text=""),
                ToolCallBlock(tool_call_id="c1", tool_name="get_weather", tool_kwargs=args[:i]),
            ],
        )
        (sel,) = llm.get_tool_calls_from_response(
            ChatResponse(message=msg), error_on_no_tool_call=False
        )
        assert sel.tool_name == "get_weather" and isinstance(sel.tool_kwargs, dict)
    half = ChatMessage(
        role="assistant",
        blocks=[
            ToolCallBlock(
                tool_call_id="c1",
                tool_name="get_weather",
                tool_kwargs='{"city": "Shanghai", "unit": "cel',
            )
        ],
    )
    (sel,) = llm.get_tool_calls_from_response(ChatResponse(message=half))
    assert sel.tool_kwargs["city"] == "Shanghai"  # what already parsed is kept
    (sel,) = llm.get_tool_calls_from_response(
        ChatResponse(
            message=ChatMessage(
                role="assistant",
                content="",
                additional_kwargs={
                    "tool_calls": [
                        {
                            "id": "x",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
                        }
                    ]
                },
            )
        )
    )
    assert (sel.tool_id, sel.tool_kwargs) == ("x", {"tz": "UTC"})
    no_calls = ChatResponse(message=ChatMessage(role="assistant", content="hi"))
    assert llm.get_tool_calls_from_response(no_calls, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError):
        llm.get_tool_calls_from_response(no_calls)


def test_tools_on_a_model_without_tools_are_refused(make_llm: Any, find_model: Any) -> None:
    name = find_model(lambda s: not s.tools)
    with pytest.raises(CapabilityError):
        make_llm(name).chat_with_tools([FunctionTool.from_defaults(get_weather)], user_msg="hi")


# --------------------------------------------------------------------------- failures


def test_stream_broken_midway_keeps_partial_output(make_llm: Any, sim: Any) -> None:
    sim.inject("reset_mid_stream", after_chunks=5)
    llm = make_llm(REASONER, additional_kwargs={"sim": {"chunks": 12}})
    got: list[ChatResponse] = []
    with pytest.raises(StreamInterruptedError) as ei:
        for chunk in llm.stream_chat(user("Tell me a long story")):
            got.append(chunk)
    assert got and ei.value.partial_reasoning
    assert ei.value.partial_reasoning.startswith(thinking_of(got[-1].message) or "")


async def test_async_stream_broken_midway_keeps_partial_output(make_llm: Any, sim: Any) -> None:
    sim.inject("reset_mid_stream", after_chunks=5)
    llm = make_llm(REASONER, additional_kwargs={"sim": {"chunks": 12}})
    with pytest.raises(StreamInterruptedError) as ei:
        async for _ in await llm.astream_chat(user("Tell me a long story")):
            pass
    assert ei.value.partial_reasoning


def test_gateway_errors_are_typed(make_llm: Any, sim: Any) -> None:
    llm = make_llm(REASONER)
    sim.inject("status", status=503)
    with pytest.raises(ServerError):
        llm.chat(user("hello"))
    sim.inject("error_200")
    with pytest.raises(BadRequestError):
        llm.chat(user("hello"))
    # the shared retry layer recovers from a transient 502
    sim.inject("status", status=502)
    retrying = make_llm(REASONER, max_retries=2)
    assert "Simulated answer" in (retrying.chat(user("hello")).message.content or "")


# --------------------------------------------------------------------------- structured output


class City(BaseModel):
    name: str
    population: int


async def test_structured_predict_through_function_calling(make_llm: Any, requests_to: Any) -> None:
    llm = make_llm(REASONER, additional_kwargs={"sim": {"chunks": 8}})
    prompt = PromptTemplate("Describe the city {city}.")
    city = llm.structured_predict(City, prompt, city="Shanghai")
    assert isinstance(city, City)
    sent = requests_to("/chat/completions")[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["City"]
    assert isinstance(await llm.astructured_predict(City, prompt, city="Shanghai"), City)
    # streamed: partial objects parsed from half-JSON tool arguments, ending in the full one
    parts = [p async for p in await llm.astream_structured_predict(City, prompt, city="Shanghai")]
    assert parts and parts[-1] == city
