"""LlamaIndex agents driving a DeepSeek-style thinking model through multi-step tool loops.

The simulator answers 400 (as DeepSeek does) when an assistant message with tool calls comes
back without ``reasoning_content`` in thinking mode, so these loops only finish if the
adapter keeps reasoning in the agent's memory and passes it back.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.agent.workflow import (
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ToolCallResult,
)
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.memory import ChatMemoryBuffer

REASONER = "sjtu:deepseek-reasoner"


def get_weather(city: str) -> str:
    """Get the current weather for a city, in Celsius."""
    return f"Sunny, 25 C in {city}"


def to_fahrenheit(celsius: float) -> str:
    """Convert a Celsius temperature to Fahrenheit."""
    return f"{celsius * 9 / 5 + 32:.0f} F"


async def test_function_agent_streams_thinking_through_a_multi_step_loop(
    make_llm: Any, sim: Any, requests_to: Any
) -> None:
    sim.script(
        "deepseek-reasoner",
        [
            {
                "reasoning": "Need the weather first.",
                "chunks": 4,
                "tool_calls": [{"name": "get_weather", "arguments": {"city": "Shanghai"}}],
            },
            {
                "reasoning": "Now convert 25 C.",
                "chunks": 4,
                "tool_calls": [{"name": "to_fahrenheit", "arguments": {"celsius": 25}}],
            },
        ],
    )  # the third turn is the simulator's default answer quoting the tool result
    agent = FunctionAgent(
        tools=[get_weather, to_fahrenheit], llm=make_llm(REASONER), streaming=True
    )
    handler = agent.run(user_msg="What is the weather in Shanghai, in Fahrenheit?")
    thinking: list[str] = []
    results: list[ToolCallResult] = []
    async for ev in handler.stream_events():
        if isinstance(ev, AgentStream) and ev.thinking_delta:
            thinking.append(ev.thinking_delta)
        elif isinstance(ev, ToolCallResult):
            results.append(ev)
    output: Any = await handler

    assert [(r.tool_name, r.tool_kwargs) for r in results] == [
        ("get_weather", {"city": "Shanghai"}),
        ("to_fahrenheit", {"celsius": 25}),
    ]
    assert "77 F" in str(output.response.content)
    streamed = "".join(thinking)
    assert "Need the weather first." in streamed and "Now convert 25 C." in streamed
    assert "summarise" in streamed  # the final turn's reasoning streamed too

    chats = requests_to("/chat/completions")
    assert len(chats) == 3
    sent = chats[-1]["messages"]
    assistants = [m for m in sent if m["role"] == "assistant"]
    assert [a["reasoning_content"] for a in assistants] == [
        "Need the weather first.",
        "Now convert 25 C.",
    ]
    tool_msgs = [m for m in sent if m["role"] == "tool"]
    assert [t["tool_call_id"] for t in tool_msgs] == [a["tool_calls"][0]["id"] for a in assistants]
    assert tool_msgs[1]["content"] == "77 F"


async def test_agent_workflow_streams_thinking_and_memory_keeps_it_across_runs(
    make_llm: Any, requests_to: Any
) -> None:
    agent = FunctionAgent(
        name="weather",
        description="Answers weather questions.",
        tools=[get_weather],
        llm=make_llm(REASONER),
        streaming=True,
    )
    workflow = AgentWorkflow(agents=[agent], root_agent="weather")
    memory = ChatMemoryBuffer.from_defaults(token_limit=100_000)
    for city in ("Shanghai", "Beijing"):
        handler = workflow.run(user_msg=f"What is the weather in {city}?", memory=memory)
        thinking = [
            ev.thinking_delta
            async for ev in handler.stream_events()
            if isinstance(ev, AgentStream) and ev.thinking_delta
        ]
        output: Any = await handler
        assert f"Sunny, 25 C in {city}" in str(output)
        assert len(thinking) > 1
    # the second run sent the first run's tool loop from memory, reasoning included
    sent = requests_to("/chat/completions")[-1]["messages"]
    with_calls = [m for m in sent if m["role"] == "assistant" and m.get("tool_calls")]
    assert len(with_calls) == 2
    assert all(m["reasoning_content"] for m in with_calls)
    stored = memory.get_all()
    assert [m.role.value for m in stored].count("tool") == 2
    assert all(
        any(isinstance(b, ThinkingBlock) and b.content for b in m.blocks)
        for m in stored
        if m.role.value == "assistant"
    )
