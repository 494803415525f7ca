"""Streams: ``chat.completion.chunk`` dicts assembled into deltas and a final message.

Example:
    >>> asm = StreamAssembler()
    >>> asm.feed({"choices": [{"delta": {"content": "<think>hm</think>Hi"}}]}).content
    'Hi'
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..registry import ReasoningSpec
from .completion import error_in_body, first_choice, protocol_error
from .messages import Delta, ToolCall, ToolCallDelta, WireMessage, json_text
from .reasoning import ThinkTagSplitter, text_of

__all__ = ["StreamAssembler"]


class StreamAssembler:
    """Assemble ``chat.completion.chunk`` dicts into deltas and a final :class:`WireMessage`.

    Reasoning fields and inline think tags are split (see the module docstring); tool-call
    fragments are merged by ``index`` (several calls per chunk, id/name only in the first
    fragment, ``index`` missing or reused by buggy gateways). A usage-only final chunk with
    empty ``choices`` is fine; an ``{"error": ...}`` chunk raises :class:`BadRequestError`.

    Example:
        >>> asm = StreamAssembler()
        >>> for chunk in [
        ...     {"choices": [{"delta": {"reasoning_content": "hmm"}}]},
        ...     {"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]},
        ...     {"choices": [], "usage": {"total_tokens": 5}},
        ... ]:
        ...     _ = asm.feed(chunk)
        >>> _ = asm.finish()
        >>> m = asm.message()
        >>> m.reasoning, m.content, m.usage
        ('hmm', 'Hi', {'total_tokens': 5})
    """

    def __init__(self, spec: ReasoningSpec | None = None) -> None:
        self.spec = spec
        self._splitter = ThinkTagSplitter(bool(spec is not None and spec.opens_in_template))
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._field_reasoning: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self._calls: dict[int, ToolCall] = {}
        self._alias: dict[int, int] = {}
        self._last_index: int | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self._finished = False

    def feed(self, chunk: dict[str, Any]) -> Delta:
        """Take one chunk; return what it added."""
        if not isinstance(chunk, dict):
            raise protocol_error("stream chunk is not a JSON object", chunk)
        if "choices" not in chunk or "error" in chunk or "success" in chunk:
            err = error_in_body(chunk)
            if err is not None:
                raise err
        model = chunk.get("model")
        if not isinstance(model, str):
            model = None
        elif self.model is None:
            self.model = model
        cid = chunk.get("id")
        if not isinstance(cid, str):
            cid = None
        elif self.id is None:
            self.id = cid
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        else:
            usage = None
        delta = Delta(usage=usage, model=model, id=cid)
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return delta
        choice = choices[0] if len(choices) == 1 else first_choice(choices)
        if not isinstance(choice, dict):
            return delta
        finish = choice.get("finish_reason")
        if finish and isinstance(finish, str):
            self.finish_reason = delta.finish_reason = finish
        d = choice.get("delta")
        if not isinstance(d, dict):
            d = choice.get("message")
            if not isinstance(d, dict):
                return delta
        reasoning = ""
        rf = d.get("reasoning_content") or d.get("reasoning")
        if rf and isinstance(rf, str):
            self._splitter.disable_template()
            if not self._content:  # the answer after reasoning starts without blank lines
                self._splitter.skip_whitespace()
            reasoning = rf
            self._field_reasoning.append(rf)
        text = d.get("content")
        if text:
            r, c = self._splitter.feed(text if isinstance(text, str) else text_of(text))
            if r:
                reasoning += r
            if c:
                delta.content = c
                self._content.append(c)
        if reasoning:
            delta.reasoning = reasoning
            self._reasoning.append(reasoning)
        tcs = d.get("tool_calls")
        if tcs and isinstance(tcs, list):
            delta.tool_calls = self._feed_tool_calls(tcs)
        elif isinstance(d.get("function_call"), dict):
            fc = d["function_call"]
            delta.tool_calls = self._feed_tool_calls(
                [
                    {
                        "index": 0,
                        "function": {"name": fc.get("name"), "arguments": fc.get("arguments")},
                    }
                ]
            )
        return delta

    def _feed_tool_calls(self, tcs: list[Any]) -> list[ToolCallDelta]:
        out: list[ToolCallDelta] = []
        single = len(tcs) == 1
        for pos, tc in enumerate(tcs):
            if not isinstance(tc, dict):
                continue
            fn = tc.get("function")
            if not isinstance(fn, dict):
                fn = {}
            tid = tc.get("id") or None
            name = fn.get("name") or None
            args = json_text(fn.get("arguments"))
            idx = self._index_for(tc.get("index"), pos, tid, single)
            call = self._calls.get(idx)
            if call is None:
                call = ToolCall(index=idx, id=tid, name=name or "", arguments=args)
                self._calls[idx] = call
                self.tool_calls.append(call)
            else:
                # Gateways that repeat id/name on every fragment would make consumers that
                # concatenate deltas (LangChain chunks) see "searchsearch": pass them on once.
                tid = tid if tid and not call.id else None
                name = name if name and not call.name else None
                if tid:
                    call.id = tid
                if name:
                    call.name = name
                if args:
                    call.arguments += args
            self._last_index = idx
            out.append(ToolCallDelta(index=idx, id=tid, name=name, arguments=args))
        return out

    def _index_for(self, wire_index: Any, pos: int, tid: str | None, single: bool) -> int:
        if isinstance(wire_index, int) and not isinstance(wire_index, bool):
            idx = self._alias.get(wire_index, wire_index)
            call = self._calls.get(idx)
            if tid and call is not None and call.id and call.id != tid:
                # Some gateways number every parallel call 0; a new id means a new call.
                known = self._by_id(tid)
                idx = known if known is not None else self._next_index()
                self._alias[wire_index] = idx
            return idx
        if tid:
            known = self._by_id(tid)
            return known if known is not None else self._next_index()
        if single and self._last_index is not None:
            return self._last_index
        return pos

    def _by_id(self, tid: str) -> int | None:
        for c in self.tool_calls:
            if c.id == tid:
                return c.index
        return None

    def _next_index(self) -> int:
        return max(self._calls) + 1 if self._calls else 0

    def finish(self) -> Delta:
        """End of stream: flush a held-back tag prefix. Safe to call twice."""
        if self._finished:
            return Delta()
        self._finished = True
        r, c = self._splitter.flush(truncated=self.finish_reason == "length")
        if self._splitter.moved:
            # opens-in-template text that never closed was the answer: retract it as reasoning
            self._reasoning = list(self._field_reasoning)
        if r:
            self._reasoning.append(r)
        if c:
            self._content.append(c)
        return Delta(content=c, reasoning=r)

    @property
    def has_output(self) -> bool:
        """Whether any content, reasoning or tool call arrived (a held tag prefix included)."""
        return bool(self._content or self._reasoning or self.tool_calls or self._splitter.held)

    def message(self) -> WireMessage:
        """Everything assembled so far (a snapshot; later chunks do not change it).

        Before :meth:`finish`, a tag prefix held back at the end (``"</thi"``) is left out:
        it is either the start of a tag, never part of the text, or a ``"<"`` the next chunk
        would have confirmed. A stream cut there ends in clean partial output.
        """
        return WireMessage(
            content="".join(self._content),
            reasoning="".join(self._reasoning),
            tool_calls=[replace(c) for c in sorted(self.tool_calls, key=lambda c: c.index)],
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
            id=self.id,
        )
