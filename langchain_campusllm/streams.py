"""Streaming for :class:`~langchain_campusllm.ChatCampusLLM`: langchain-openai's stream, guarded.

langchain-openai iterates the SDK stream itself and hands each chunk to
``_convert_chunk_to_generation_chunk``; :func:`guarded` runs that iteration with the stream's
:class:`StreamState` in a context variable, so the conversion feeds one
:class:`~campusllm.streaming.StreamGuard` per call (think tags cut across chunks stay split,
interleaved streams never see each other's state), and turns how the iteration ended into
the guard's verdict: the SDK stopping at ``[DONE]``, campusllm's decoder raising
:class:`~campusllm.streaming.StreamEnded` at a body without it, or an exception to type.
:func:`tail_chunk` then asks the guard how the stream ended (a cut or empty stream raises).

Example:
    >>> from campusllm.registry import resolve
    >>> from campusllm.streaming import StreamGuard
    >>> state = StreamState(StreamGuard(resolve("sjtu:deepseek-chat")), "deepseek-chat")
    >>> _ = state.guard.feed({"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]})
    >>> tail_chunk(state).generation_info["model_name"]
    'deepseek-chat'
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Iterator

from langchain_core.outputs import ChatGenerationChunk

from campusllm.streaming import StreamEnded, StreamGuard
from campusllm.wire import Delta

from .convert import delta_chunk

__all__ = ["StreamState", "STREAM_STATE", "delta_to_chunk", "tail_chunk", "guarded", "aguarded"]


class StreamState:
    """Per-stream-call state: one guard, so think tags split across chunks stay split.

    Example:
        >>> from campusllm.registry import resolve
        >>> StreamState(StreamGuard(resolve("sjtu:deepseek-chat")), "m").finish_seen
        False
    """

    __slots__ = ("guard", "finish_seen", "model_name")

    def __init__(self, guard: StreamGuard, model_name: str) -> None:
        self.guard = guard
        self.finish_seen = False
        self.model_name = model_name


# Set only around each step of the parent generator, so interleaved or concurrent streams
# never see each other's state.
STREAM_STATE: contextvars.ContextVar[StreamState | None] = contextvars.ContextVar(
    "campusllm_stream_state", default=None
)

ErrorFor = Callable[[Exception, StreamState], BaseException]


def delta_to_chunk(
    delta: Delta, state: StreamState, base_generation_info: dict | None
) -> ChatGenerationChunk:
    """One delta as a generation chunk; the first ``finish_reason`` carries the model name."""
    info = dict(base_generation_info or {})
    if delta.finish_reason and not state.finish_seen:
        state.finish_seen = True
        info["finish_reason"] = delta.finish_reason
        info["model_name"] = delta.model or state.guard.assembler.model or state.model_name
    return ChatGenerationChunk(message=delta_chunk(delta), generation_info=info or None)


def tail_chunk(state: StreamState) -> ChatGenerationChunk | None:
    """The chunk ending the stream (what was held back), or None; raises for a cut or empty one."""
    delta = state.guard.end()
    if not (delta.content or delta.reasoning or not state.finish_seen):
        return None
    chunk = delta_to_chunk(delta, state, None)
    if not state.finish_seen:  # gateways that never send finish_reason
        state.finish_seen = True
        chunk.generation_info = {
            **(chunk.generation_info or {}),
            "model_name": state.guard.assembler.model or state.model_name,
        }
    return chunk


def guarded(
    gen: Iterator[ChatGenerationChunk], state: StreamState, error_for: ErrorFor
) -> Iterator[ChatGenerationChunk]:
    """langchain-openai's chunks, ``state`` current while each is made; ends set ``done``.

    ``error_for`` picks the error an exception of the iteration raises (itself when it is not
    ours to type).
    """
    try:
        while True:
            token = STREAM_STATE.set(state)
            try:
                chunk = next(gen)
            except StopIteration:  # the SDK stops at [DONE]; without it StreamEnded comes first
                state.guard.done = True
                return
            except StreamEnded:
                return
            except Exception as e:
                mapped = error_for(e, state)
                if mapped is e:
                    raise
                raise mapped from e
            finally:
                STREAM_STATE.reset(token)
            yield chunk
    finally:
        close = getattr(gen, "close", None)  # a generator, typed as an iterator
        if close is not None:
            close()


async def aguarded(
    gen: AsyncIterator[ChatGenerationChunk], state: StreamState, error_for: ErrorFor
) -> AsyncIterator[ChatGenerationChunk]:
    """Async :func:`guarded`."""
    try:
        while True:
            token = STREAM_STATE.set(state)
            try:
                chunk = await gen.__anext__()
            except StopAsyncIteration:
                state.guard.done = True
                return
            except StreamEnded:
                return
            except Exception as e:
                mapped = error_for(e, state)
                if mapped is e:
                    raise
                raise mapped from e
            finally:
                STREAM_STATE.reset(token)
            yield chunk
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()
