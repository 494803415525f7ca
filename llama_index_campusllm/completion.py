"""``CampusLLM.complete()`` for completion models: the text-completion endpoint, not chat.

A model the catalog marks ``endpoint = "completions"`` (a base model without a chat template)
is not a chat model to LlamaIndex (``metadata.is_chat_model`` is False), so LlamaIndex formats
prompts for it and calls ``complete()``; these functions send that prompt to ``/completions``
through campusllm's core (:class:`~campusllm.completions.CompletionCaller`: request defaults,
limiter, retries, typed errors, reasoning split from the text). Chat models keep completing
through chat.

Example:
    >>> from campusllm.registry import resolve
    >>> uses_chat(resolve("maas:QwQ-32B", base_url="http://127.0.0.1:9/v1"))
    True
"""

from __future__ import annotations

from typing import Any, Protocol

from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
)
from llama_index.core.llms.llm import CompletionToPromptType

from campusllm.capabilities import serves_chat
from campusllm.completions import CompletionCaller
from campusllm.connection import Connection
from campusllm.registry import ResolvedModel
from campusllm.wire import Delta, WireMessage

from .messages import usage_kwargs

__all__ = ["uses_chat", "complete", "acomplete", "stream_complete", "astream_complete"]


class _LLM(Protocol):
    """What these functions read of ``CampusLLM``."""

    @property
    def connection(self) -> Connection: ...

    temperature: float | None
    max_tokens: int | None
    thinking: bool | None
    additional_kwargs: dict[str, Any]

    @property
    def completion_to_prompt(self) -> CompletionToPromptType | None: ...


def uses_chat(resolved: ResolvedModel) -> bool:
    """Whether ``complete()`` goes through chat: every model except completion-only ones."""
    return serves_chat(resolved)


def _request(
    llm: _LLM, prompt: str, formatted: bool, kwargs: dict[str, Any]
) -> tuple[CompletionCaller, str, dict[str, Any]]:
    caller = CompletionCaller(llm.connection)
    if not formatted and llm.completion_to_prompt is not None:
        prompt = llm.completion_to_prompt(prompt)
    params: dict[str, Any] = {"thinking": kwargs.pop("thinking", llm.thinking)}
    if llm.temperature is not None:
        params["temperature"] = llm.temperature
    if llm.max_tokens is not None:
        params["max_tokens"] = llm.max_tokens
    params.update(llm.additional_kwargs)
    params.update({k: v for k, v in kwargs.items() if v is not None})
    return caller, prompt, params


def _response(msg: WireMessage, raw: Any) -> CompletionResponse:
    extra = usage_kwargs(msg.usage)
    if msg.reasoning:
        extra["reasoning_content"] = msg.reasoning
    return CompletionResponse(text=msg.content, raw=raw, additional_kwargs=extra)


class _Chunks:
    """Streamed deltas as the cumulative responses LlamaIndex expects."""

    def __init__(self) -> None:
        self.text = ""

    def response(self, delta: Delta) -> CompletionResponse | None:
        if not (delta.content or delta.reasoning or delta.usage):
            return None
        self.text += delta.content
        extra = usage_kwargs(delta.usage)
        # Present on every chunk ("" when none), as on CampusLLM's chat streams.
        extra["thinking_delta"] = delta.reasoning
        return CompletionResponse(text=self.text, delta=delta.content, additional_kwargs=extra)


def complete(llm: _LLM, prompt: str, formatted: bool, **kwargs: Any) -> CompletionResponse:
    """``CampusLLM.complete`` on ``/completions``: the text, reasoning and usage of one answer."""
    caller, prompt, params = _request(llm, prompt, formatted, kwargs)
    data = caller.post(caller.body(prompt, **params))
    return _response(caller.parse(data, prompt), data)


async def acomplete(llm: _LLM, prompt: str, formatted: bool, **kwargs: Any) -> CompletionResponse:
    """Async :func:`complete`."""
    caller, prompt, params = _request(llm, prompt, formatted, kwargs)
    data = await caller.apost(caller.body(prompt, **params))
    return _response(caller.parse(data, prompt), data)


def stream_complete(
    llm: _LLM, prompt: str, formatted: bool, **kwargs: Any
) -> CompletionResponseGen:
    """``CampusLLM.stream_complete`` on ``/completions`` (reasoning in ``thinking_delta``)."""
    caller, prompt, params = _request(llm, prompt, formatted, kwargs)
    stream = caller.stream(prompt, **params)

    def gen() -> CompletionResponseGen:
        chunks = _Chunks()
        for delta in stream:
            response = chunks.response(delta)
            if response is not None:
                yield response

    return gen()


async def astream_complete(
    llm: _LLM, prompt: str, formatted: bool, **kwargs: Any
) -> CompletionResponseAsyncGen:
    """Async :func:`stream_complete`."""
    caller, prompt, params = _request(llm, prompt, formatted, kwargs)
    stream = caller.astream(prompt, **params)

    async def gen() -> CompletionResponseAsyncGen:
        chunks = _Chunks()
        async for delta in stream:
            response = chunks.response(delta)
            if response is not None:
                yield response

    return gen()
