"""Real tool loops on llama-cpp-python's server (``--chat_format chatml-function-calling``).

Its grammar makes even SmolLM2-135M answer a required tool with a well-formed call, and its
request validation is strict: an assistant message with ``content: null`` is a 500. These tests
run once the server is built (``python tests/peers/provision.py llama-cpp-python``, about 14 min
on 2 cores) and are skipped, saying so, until then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from conformance_scenarios import conformance_registry

pytestmark = [pytest.mark.peers, pytest.mark.peers_tools, pytest.mark.timeout(300)]

MODEL = "llamacpp:smollm2-tools"
QUESTION = "What is the weather in Paris?"


@pytest.fixture
def tools_url(llama_cpp_python_peer: Any) -> Iterator[str]:
    with conformance_registry():
        yield llama_cpp_python_peer.url + "/v1"


def get_weather(city: str) -> str:
    """The weather of a city."""
    return f"sunny in {city}"


def test_langchain_tool_loop(tools_url: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    weather = tool(get_weather)
    llm = ChatCampusLLM(model=MODEL, base_url=tools_url, api_key="sk-peer-good", max_retries=0,
                        temperature=0, max_tokens=40)  # fmt: skip
    history: list[Any] = [HumanMessage(QUESTION)]
    call = llm.bind_tools([weather], tool_choice="get_weather").invoke(history)
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather"
    history += [call, ToolMessage(weather.invoke(call.tool_calls[0]["args"]),
                                  tool_call_id=call.tool_calls[0]["id"])]  # fmt: skip
    answer = llm.bind_tools([weather]).invoke(history)
    assert isinstance(answer.content, str) and answer.content.strip()


def test_llamaindex_tool_loop(tools_url: str) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.core.tools import FunctionTool

    from llama_index_campusllm import CampusLLM

    weather = FunctionTool.from_defaults(fn=get_weather)

    async def run() -> str:
        llm = CampusLLM(model=MODEL, base_url=tools_url, api_key="sk-peer-good",
                        max_retries=0, temperature=0, max_tokens=40)  # fmt: skip
        try:
            history = [ChatMessage(role=MessageRole.USER, content=QUESTION)]
            # llama-cpp-python forces a call only when the tool is named ("required" is
            # not supported by its chatml-function-calling handler)
            first = await llm.achat_with_tools(
                [weather], chat_history=history, tool_choice="get_weather"
            )
            calls = llm.get_tool_calls_from_response(first, error_on_no_tool_call=True)
            assert calls[0].tool_name == "get_weather"
            history.append(first.message)
            history.append(
                ChatMessage(
                    role=MessageRole.TOOL,
                    content=get_weather(**calls[0].tool_kwargs),
                    additional_kwargs={"tool_call_id": calls[0].tool_id},
                )
            )
            answer = await llm.achat_with_tools([weather], chat_history=history)
            return answer.message.content or ""
        finally:
            await llm.aclose()

    assert asyncio.run(run()).strip()
