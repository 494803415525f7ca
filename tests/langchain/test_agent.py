"""Agent tool loops with a thinking model whose gateway demands reasoning pass-back."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from lc_helpers import last_chat_request


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"Sunny, 25 C in {city}"


def _check_loop(messages: list[Any], sim: Any) -> None:
    tool_msgs = [m for m in messages if isinstance(m, ToolMessage)]
    assert tool_msgs and "Sunny, 25 C" in str(tool_msgs[0].content)
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "Sunny, 25 C" in final.text
    assert final.additional_kwargs.get("reasoning_content")
    # the second request carried the first turn's reasoning back (DeepSeek thinking + tools)
    sent = last_chat_request(sim)["messages"]
    assistant = [m for m in sent if m["role"] == "assistant"]
    assert assistant and assistant[0].get("reasoning_content")


@pytest.mark.parametrize("stream", [False, True])
def test_langgraph_react_agent_with_reasoning_model(make_chat: Any, sim: Any, stream: bool) -> None:
    prebuilt = pytest.importorskip("langgraph.prebuilt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # superseded by create_agent
        agent = prebuilt.create_react_agent(
            make_chat("sjtu:deepseek-reasoner", streaming=stream), [get_weather]
        )
    result = agent.invoke({"messages": [("user", "What is the weather in Shanghai?")]})
    _check_loop(result["messages"], sim)


def test_langchain_create_agent_with_reasoning_model(make_chat: Any, sim: Any) -> None:
    agents = pytest.importorskip("langchain.agents")
    agent = agents.create_agent(make_chat("sjtu:deepseek-reasoner"), tools=[get_weather])
    result = agent.invoke({"messages": [{"role": "user", "content": "Weather in Shanghai?"}]})
    _check_loop(result["messages"], sim)


async def test_async_agent_loop(make_chat: Any, sim: Any) -> None:
    agents = pytest.importorskip("langchain.agents")
    agent = agents.create_agent(make_chat("sjtu:deepseek-reasoner"), tools=[get_weather])
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "Weather in Beijing?"}]})
    _check_loop(result["messages"], sim)
