"""Text completion (``/v1/completions``) against a real server: llama.cpp's llama-server.

The simulator continues prompts the way vLLM does; this checks the same client code against
software that really serves the endpoint (SmolLM2-135M, greedy decoding so answers repeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import servers

import campusllm
from campusllm.completions import CompletionCaller
from campusllm.errors import BadRequestError
from campusllm.registry import reset_registry
from langchain_campusllm import CampusLLMCompletion
from llama_index_campusllm import CampusLLM

pytestmark = [pytest.mark.peers, pytest.mark.timeout(300)]

MODEL = "custom:smollm2-chat"  # llama-server's alias; not in the catalog, so let through
PROMPT = "The capital of France is"
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 12}


def _url(peer: servers.Peer) -> str:
    return peer.url + "/v1"


def _caller(peer: servers.Peer) -> CompletionCaller:
    return CompletionCaller(MODEL, api_key="sk-peer-any", base_url=_url(peer))


def test_invoke_and_stream_give_the_same_text_usage_and_finish(
    llama_chat_peer: servers.Peer,
) -> None:
    caller = _caller(llama_chat_peer)
    whole = caller.invoke(PROMPT, **GREEDY)
    assert whole.content.strip() and whole.finish_reason in ("length", "stop")
    assert whole.usage and whole.usage["completion_tokens"] > 0
    stream = caller.stream(PROMPT, **GREEDY)
    assert "".join(d.content for d in stream) == whole.content
    assert stream.message().finish_reason == whole.finish_reason

    async def run() -> str:
        s = caller.astream(PROMPT, **GREEDY)
        text = "".join([d.content async for d in s])
        await caller.aclose()
        return text

    assert asyncio.run(run()) == whole.content


def test_max_tokens_and_stop_are_honoured(llama_chat_peer: servers.Peer) -> None:
    caller = _caller(llama_chat_peer)
    cut = caller.invoke(PROMPT, temperature=0, max_tokens=2)
    assert cut.finish_reason == "length"
    longer = caller.invoke(PROMPT, **GREEDY)
    words = longer.content.split()
    assert len(words) >= 2, longer.content
    stopped = caller.invoke(PROMPT, stop=[words[1]], **GREEDY)
    assert words[1] not in stopped.content and stopped.finish_reason == "stop"
    assert longer.content.startswith(stopped.content)


def test_a_prompt_longer_than_the_context_is_a_typed_error(llama_chat_peer: servers.Peer) -> None:
    with pytest.raises(BadRequestError) as info:
        _caller(llama_chat_peer).invoke("word " * 4000, **GREEDY)
    assert info.value.status_code == 400 and "context" in str(info.value).lower()


def test_langchain_completion_llm_on_llama_server(llama_chat_peer: servers.Peer) -> None:
    llm = CampusLLMCompletion(
        model=MODEL, base_url=_url(llama_chat_peer), api_key="sk-peer-any", **GREEDY
    )
    text = llm.invoke(PROMPT)
    assert text.strip() and "".join(llm.stream(PROMPT)) == text
    assert llm.batch([PROMPT, PROMPT]) == [text, text]
    result = llm.generate([PROMPT])
    assert result.llm_output is not None and result.llm_output["token_usage"]["total_tokens"]


@pytest.fixture
def completion_only() -> Iterator[str]:
    reset_registry()
    campusllm.register_model("custom", {"id": "smollm2-chat", "endpoint": "completions"})
    try:
        yield MODEL
    finally:
        reset_registry()


def test_llama_index_completes_a_completion_model_on_llama_server(
    llama_chat_peer: servers.Peer, completion_only: str
) -> None:
    llm = CampusLLM(
        model=completion_only,
        base_url=_url(llama_chat_peer),
        api_key="sk-peer-any",
        temperature=0,
        max_tokens=12,
    )
    assert llm.metadata.is_chat_model is False
    whole = llm.complete(PROMPT, formatted=True)
    chunks = list(llm.stream_complete(PROMPT, formatted=True))
    assert whole.text.strip() and chunks[-1].text == whole.text
    llm.close()
