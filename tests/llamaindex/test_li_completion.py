"""CampusLLM on completion models: not a chat model to LlamaIndex, complete() on /completions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage

import campusllm
from campusllm.errors import CapabilityError, StreamInterruptedError
from campusllm.registry import reset_registry

BASE = "maas:Qwen2.5-7B-Base"


@pytest.fixture
def base_model() -> Iterator[str]:
    """A completion-only model (a base model without a chat template) registered on maas."""
    reset_registry()
    campusllm.register_model("maas", {"id": "Qwen2.5-7B-Base", "endpoint": "completions"})
    try:
        yield BASE
    finally:
        reset_registry()


def _paths(sim: Any) -> list[str]:
    return [r["path"].rsplit("/v1", 1)[-1] for r in sim.requests if r["method"] == "POST"]


def test_a_completion_model_is_not_a_chat_model_and_completes_on_completions(
    sim: Any, make_llm: Callable[..., Any], base_model: str
) -> None:
    llm = make_llm(base_model, temperature=0.2, max_tokens=40)
    assert llm.metadata.is_chat_model is False
    resp = llm.complete("Once upon a time")
    assert "Once upon a time" in resp.text
    assert resp.additional_kwargs["total_tokens"] > 0
    assert _paths(sim) == ["/completions"]
    body = sim.requests[-1]["json"]
    assert (body["prompt"], body["temperature"], body["max_tokens"]) == (
        "Once upon a time",
        0.2,
        40,
    )


def test_stream_and_async_complete_agree_on_completions(
    sim: Any, make_llm: Callable[..., Any], base_model: str
) -> None:
    llm = make_llm(base_model)
    whole = llm.complete("Once upon a time").text
    chunks = list(llm.stream_complete("Once upon a time"))
    assert chunks[-1].text == whole == "".join(c.delta or "" for c in chunks)

    async def run() -> tuple[str, str]:
        a = (await llm.acomplete("Once upon a time")).text
        last = ""
        async for c in await llm.astream_complete("Once upon a time"):
            last = c.text
        return a, last

    assert asyncio.run(run()) == (whole, whole)
    assert set(_paths(sim)) == {"/completions"}


def test_completion_to_prompt_formats_unformatted_prompts(
    sim: Any, make_llm: Callable[..., Any], base_model: str
) -> None:
    llm = make_llm(base_model, completion_to_prompt=lambda p: f"Question: {p}\nAnswer:")
    llm.complete("2+2?")
    assert sim.requests[-1]["json"]["prompt"] == "Question: 2+2?\nAnswer:"
    llm.complete("raw text", formatted=True)
    assert sim.requests[-1]["json"]["prompt"] == "raw text"


def test_chat_models_keep_completing_through_chat(sim: Any, make_llm: Callable[..., Any]) -> None:
    llm = make_llm("maas:QwQ-32B")  # serves both: LlamaIndex treats it as the chat model it is
    assert llm.metadata.is_chat_model is True
    assert llm.complete("hi").text
    assert _paths(sim) == ["/chat/completions"]


def test_reasoning_of_a_prompt_that_opened_think_is_split(
    sim: Any, make_llm: Callable[..., Any]
) -> None:
    reset_registry()
    try:
        campusllm.register_model(
            "maas",
            {"id": "R1-Base", "endpoint": "completions", "reasoning": {"default_on": True}},
        )
        llm = make_llm("maas:R1-Base")
        prompt = "Which is larger, 9.11 or 9.9?\n<think>\n"
        resp = llm.complete(prompt, formatted=True)
        chunks = list(llm.stream_complete(prompt, formatted=True))
    finally:
        reset_registry()
    assert resp.text.startswith("Simulated completion") and "think>" not in resp.text
    assert resp.additional_kwargs["reasoning_content"].startswith("Simulated reasoning")
    streamed = "".join(c.additional_kwargs["thinking_delta"] for c in chunks)
    assert streamed == resp.additional_kwargs["reasoning_content"]
    assert chunks[-1].text == resp.text


def test_chat_on_a_completion_model_and_thinking_are_refused_before_any_request(
    sim: Any, make_llm: Callable[..., Any], base_model: str
) -> None:
    llm = make_llm(base_model)
    with pytest.raises(CapabilityError, match="only text completion"):
        llm.chat([ChatMessage(role="user", content="hi")])
    with pytest.raises(CapabilityError, match="thinking"):
        llm.complete("hi", thinking=False)
    assert _paths(sim) == []


def test_a_broken_completion_stream_keeps_the_partial_text(
    sim: Any, make_llm: Callable[..., Any], base_model: str
) -> None:
    sim.script("Qwen2.5-7B-Base", [{"content": "A long tale of many chunks. " * 4, "chunks": 12}])
    sim.inject("reset_mid_stream", after_chunks=6, path_contains="/completions")
    last = ""
    with pytest.raises(StreamInterruptedError) as info:
        for c in make_llm(base_model).stream_complete("Once upon a time"):
            last = c.text
    assert info.value.partial_content == last != ""
