"""Framework-free wire layer: parse chat completions and streams, prepare request bodies.

Gateways return reasoning in three shapes: a ``reasoning_content`` field (DeepSeek, vLLM with
a reasoning parser), a ``reasoning`` field (vLLM >= 0.10, OpenRouter) or inline
``<think>…</think>`` in the content (no parser; sometimes the chat template already opened the
tag, so only ``</think>`` appears). Everything here normalises them to ``reasoning`` and
``content``; returned content never contains think tags.

Think-tag rules (the same for whole messages and streams unless noted):

* ``<think>`` anywhere switches to reasoning, ``</think>`` anywhere switches to content; the
  tags themselves are dropped, and whitespace right after either tag is stripped (models emit
  ``"\\n\\n"`` there).
* ``opens_in_template=True``: text is reasoning until ``</think>``. If the answer ends without
  any think tag it was not reasoning after all (thinking switched off, or the template did not
  open the tag): it becomes content — unless the answer was cut off (``finish_reason ==
  "length"``), where it stays reasoning. A stream has already emitted it as reasoning by then;
  the final delta carries it again as content and :meth:`StreamAssembler.message` moves it.
* Whole messages auto-detect an opened template: a ``</think>`` before any ``<think>`` makes
  everything before it reasoning. A stream cannot look ahead, so without the flag it starts in
  content and a bare ``</think>`` is only dropped (text before it stays content).
* A message that carries a reasoning field disables ``opens_in_template`` (the gateway parsed).

Example:
    >>> parse_completion({"choices": [{"message": {"content": "<think>hm</think>\\n\\nHi"}}]})
    WireMessage(content='Hi', reasoning='hm', tool_calls=[], finish_reason=None, usage=None, model=None, id=None)
"""  # noqa: E501

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    BadRequestError,
    CapabilityError,
    ProtocolError,
    StreamInterruptedError,
    redact,
)

if TYPE_CHECKING:
    from ..registry import ModelSpec, ReasoningSpec, ResolvedModel

__all__ = [
    "ToolCall",
    "WireMessage",
    "ToolCallDelta",
    "Delta",
    "ThinkTagSplitter",
    "StreamAssembler",
    "parse_completion",
    "split_reasoning",
    "prepare_chat_payload",
    "thinking_enabled",
]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
# Every proper prefix of either tag: the only text a splitter ever holds back.
_TAG_PREFIXES = frozenset(t[:i] for t in (OPEN_TAG, CLOSE_TAG) for i in range(1, len(t)))
_MAX_PREFIX = len(CLOSE_TAG) - 1


# --------------------------------------------------------------------------- data classes


@dataclass
class ToolCall:
    """One tool call of an assistant message; ``arguments`` is the raw JSON text.

    Example:
        >>> tc = ToolCall(index=0, id="call_1", name="get_weather", arguments='{"city": "SH"}')
        >>> tc.parsed_arguments()
        {'city': 'SH'}
        >>> ToolCall(0, None, "f", '{"city": "S').parsed_arguments() is None
        True
    """

    index: int
    id: str | None
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any] | None:
        """The arguments as a dict; ``None`` while incomplete or invalid. Never raises.

        Empty arguments mean a call without parameters (``{}``). Arguments that were
        JSON-encoded twice (a JSON string holding the object) are unwrapped.
        """
        text = self.arguments
        if not text or text.isspace():
            return {}
        try:
            value: Any = json.loads(text)
            if isinstance(value, str):
                value = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI wire form (``{"id", "type": "function", "function": {...}}``)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class WireMessage:
    """A complete (or, mid-stream, partial) assistant message with reasoning split out.

    Example:
        >>> msg = WireMessage(content="Hi", reasoning="greet back", tool_calls=[])
        >>> msg.content, msg.reasoning
        ('Hi', 'greet back')
    """

    content: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    id: str | None = None


@dataclass
class ToolCallDelta:
    """A fragment of a streamed tool call; ``index`` is the call it belongs to.

    Example:
        >>> ToolCallDelta(index=0, id="call_1", name="search", arguments='{"q"')
        ToolCallDelta(index=0, id='call_1', name='search', arguments='{"q"')
    """

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass
class Delta:
    """What one stream chunk added, reasoning already separated from content.

    Example:
        >>> d = Delta(content="Hel", reasoning="")
        >>> d.content + "lo"
        'Hello'
    """

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    id: str | None = None


# --------------------------------------------------------------------------- think tags


class ThinkTagSplitter:
    """Split streamed text with inline ``<think>…</think>`` into (reasoning, content) pieces.

    Split-invariant: however the text is cut into pieces (a tag may be cut anywhere), the
    concatenated output equals feeding it in one piece. Only a trailing proper prefix of a tag
    (at most 7 characters) is held back until the next piece or :meth:`flush`.

    ``opens_in_template=True`` starts in reasoning. If :meth:`flush` finds that no tag ever
    appeared, the text was an answer, not reasoning: flush returns all of it as content and sets
    :attr:`moved` to it, so the caller can retract the reasoning emitted so far — unless
    ``flush(truncated=True)`` says the answer was cut off mid-thought.

    Example:
        >>> sp = ThinkTagSplitter()
        >>> sp.feed("<thi"), sp.feed("nk>plan</th"), sp.feed("ink>\\n\\nAnswer")
        (('', ''), ('plan', ''), ('', 'Answer'))
        >>> sp.flush()
        ('', '')
    """

    __slots__ = (
        "_reasoning_mode",
        "_skip_ws",
        "_held",
        "_template_open",
        "_template_text",
        "moved",
    )

    def __init__(self, opens_in_template: bool = False) -> None:
        self._reasoning_mode = opens_in_template
        self._skip_ws = opens_in_template
        self._held = ""
        self._template_open = opens_in_template
        self._template_text: list[str] = []
        self.moved = ""

    @property
    def in_reasoning(self) -> bool:
        """True while text goes to reasoning."""
        return self._reasoning_mode

    @property
    def held(self) -> str:
        """The tag prefix held back so far (emitted literally by :meth:`flush` if no tag)."""
        return self._held

    def disable_template(self) -> bool:
        """Leave opens-in-template mode if nothing was emitted yet (the gateway parses)."""
        if self._template_open and not self._template_text and not self._held:
            self._template_open = False
            self._reasoning_mode = False
            self._skip_ws = False
            return True
        return False

    def feed(self, text: str) -> tuple[str, str]:
        """Add a piece; return the (reasoning, content) that can be emitted now."""
        if not text:
            return "", ""
        if not self._held and "<" not in text:
            # fast path: the bulk of chunks in a long stream
            if self._skip_ws:
                text = text.lstrip()
                if not text:
                    return "", ""
                self._skip_ws = False
            if self._reasoning_mode:
                if self._template_open:
                    self._template_text.append(text)
                return text, ""
            return "", text
        return self._scan(self._held + text if self._held else text)

    def flush(self, truncated: bool = False) -> tuple[str, str]:
        """End of text: emit any held tag prefix literally and settle opens-in-template text."""
        r_parts: list[str] = []
        c_parts: list[str] = []
        held, self._held = self._held, ""
        if held:
            self._emit(held, r_parts, c_parts)
        if self._template_open:
            self._template_open = False
            if not truncated:
                self.moved = "".join(self._template_text)
                self._template_text = []
                self._reasoning_mode = False
                return "", self.moved
            self._template_text = []
        return "".join(r_parts), "".join(c_parts)

    def _emit(self, text: str, r_parts: list[str], c_parts: list[str]) -> None:
        if self._skip_ws:
            text = text.lstrip()
            if not text:
                return
            self._skip_ws = False
        if self._reasoning_mode:
            if self._template_open:
                self._template_text.append(text)
            r_parts.append(text)
        else:
            c_parts.append(text)

    def _switch(self, reasoning: bool) -> None:
        self._reasoning_mode = reasoning
        self._skip_ws = True
        self._template_open = False
        self._template_text = []

    def _scan(self, s: str) -> tuple[str, str]:
        r_parts: list[str] = []
        c_parts: list[str] = []
        self._held = ""
        n = len(s)
        pos = 0
        while pos < n:
            i = s.find("<", pos)
            if i < 0:
                self._emit(s[pos:], r_parts, c_parts)
                break
            if i > pos:
                self._emit(s[pos:i], r_parts, c_parts)
            if s.startswith(OPEN_TAG, i):
                self._switch(True)
                pos = i + len(OPEN_TAG)
            elif s.startswith(CLOSE_TAG, i):
                self._switch(False)
                pos = i + len(CLOSE_TAG)
            elif n - i <= _MAX_PREFIX and s[i:] in _TAG_PREFIXES:
                self._held = s[i:]
                break
            else:
                self._emit("<", r_parts, c_parts)
                pos = i + 1
        return "".join(r_parts), "".join(c_parts)


def _split_think_text(text: str, opens_in_template: bool, truncated: bool) -> tuple[str, str]:
    if not opens_in_template:
        close = text.find(CLOSE_TAG)
        if close >= 0:
            open_ = text.find(OPEN_TAG)
            opens_in_template = open_ < 0 or close < open_
        elif "<" not in text:
            return "", text
    sp = ThinkTagSplitter(opens_in_template)
    r1, c1 = sp.feed(text)
    r2, c2 = sp.flush(truncated=truncated)
    if sp.moved:
        return "", sp.moved
    return r1 + r2, c1 + c2


def _text_of(content: Any) -> str:
    """Message content as text: strings as-is, lists of parts joined, anything else empty."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "".join(parts)
    return str(content)


def _field_reasoning(message: dict[str, Any]) -> str:
    # vLLM versions that send both fields send the same text: never concatenate them.
    r = message.get("reasoning_content")
    if not (isinstance(r, str) and r):
        r = message.get("reasoning")
    return r if isinstance(r, str) else ""


def split_reasoning(
    message: dict[str, Any], spec: ReasoningSpec | None = None, *, truncated: bool = False
) -> tuple[str, str]:
    """Return ``(reasoning, content)`` of an assistant message dict, whatever the shape.

    ``truncated`` (the answer hit ``max_tokens``) keeps unterminated opens-in-template text
    as reasoning; see the module docstring for the rules.

    Example:
        >>> split_reasoning({"content": "plan</think>\\n\\nAnswer"})
        ('plan', 'Answer')
        >>> split_reasoning({"reasoning_content": "plan", "content": "Answer"})
        ('plan', 'Answer')
    """
    field_r = _field_reasoning(message)
    text = _text_of(message.get("content"))
    template = bool(spec is not None and spec.opens_in_template) and not field_r
    tag_r, content = _split_think_text(text, template, truncated)
    return field_r + tag_r, content


# --------------------------------------------------------------------------- errors in bodies


def _error_in_body(body: dict[str, Any]) -> BadRequestError | None:
    """The gateway's error as a BadRequestError, or None when ``body`` is not an error."""
    err = body.get("error")
    code: Any = None
    typ: Any = None
    if err:
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail")
            code = err.get("code")
            typ = err.get("type")
            if not msg:
                msg = json.dumps(err, ensure_ascii=False)
        else:
            msg = str(err)
    elif body.get("object") == "error":  # vLLM / SGLang
        msg, code, typ = body.get("message"), body.get("code"), body.get("type")
    elif body.get("success") is False:  # new-api / many campus gateways
        msg, code = body.get("message") or body.get("msg"), body.get("code")
    elif (
        "choices" not in body
        and isinstance(body.get("msg") or body.get("message"), str)
        and ("code" in body or "status" in body)
        and body.get("code", body.get("status")) not in (0, 200, "0", "200", "success", "ok")
    ):  # {"code": 40001, "msg": "..."} style
        msg, code = body.get("msg") or body.get("message"), body.get("code", body.get("status"))
    else:
        return None
    detail = ", ".join(f"{k}={v}" for k, v in (("type", typ), ("code", code)) if v)
    text = f"The gateway returned an error: {msg or 'no message'}"
    if detail:
        text += f" ({detail})"
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    return BadRequestError(
        text, status_code=status, body=json.dumps(body, ensure_ascii=False, default=str)
    )


def _snippet(body: Any) -> str:
    try:
        text = json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(body)
    return redact(text, 300)


def _protocol_error(what: str, body: Any) -> ProtocolError:
    return ProtocolError(
        f"The gateway's answer is not a chat completion ({what}): {_snippet(body)}",
        hint="Check that the base URL points at an OpenAI-compatible API (it usually ends in /v1).",
        body=_snippet(body),
    )


# --------------------------------------------------------------------------- whole messages


def _json_text(args: Any) -> str:
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    return json.dumps(args, ensure_ascii=False)


def _parse_tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    raw = message.get("tool_calls")
    calls: list[ToolCall] = []
    if isinstance(raw, list):
        for pos, tc in enumerate(raw):
            if not isinstance(tc, dict):
                continue
            fn = tc.get("function")
            if not isinstance(fn, dict):
                fn = {}
            idx = tc.get("index")
            calls.append(
                ToolCall(
                    index=idx if isinstance(idx, int) and not isinstance(idx, bool) else pos,
                    id=tc.get("id") or None,
                    name=fn.get("name") or "",
                    arguments=_json_text(fn.get("arguments")),
                )
            )
    fc = message.get("function_call")
    if not calls and isinstance(fc, dict) and fc.get("name"):
        calls.append(ToolCall(0, None, fc["name"], _json_text(fc.get("arguments"))))
    return calls


def _first_choice(choices: list[Any]) -> Any:
    for c in choices:
        if isinstance(c, dict) and c.get("index", 0) == 0:
            return c
    return choices[0]


def parse_completion(body: dict[str, Any], spec: ReasoningSpec | None = None) -> WireMessage:
    """Parse the first choice of a ``chat.completion`` body.

    Error bodies — also those sent with HTTP 200 (one-api/new-api ``{"error": {...}}``,
    ``{"success": false, "message": ...}``) — raise :class:`BadRequestError` carrying the
    gateway's message; any other unexpected shape raises :class:`ProtocolError`.

    Example:
        >>> body = {"choices": [{"message": {"content": "Hi", "reasoning_content": "think"},
        ...                      "finish_reason": "stop"}]}
        >>> m = parse_completion(body)
        >>> m.content, m.reasoning, m.finish_reason
        ('Hi', 'think', 'stop')
    """
    if not isinstance(body, dict):
        raise _protocol_error("not a JSON object", body)
    err = _error_in_body(body)
    if err is not None:
        raise err
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _protocol_error("no choices", body)
    choice = _first_choice(choices)
    if not isinstance(choice, dict):
        raise _protocol_error("choice is not an object", body)
    message = choice.get("message")
    if not isinstance(message, dict):
        message = choice.get("delta")
    if not isinstance(message, dict):
        if isinstance(choice.get("text"), str):  # a /completions-style choice
            message = {"content": choice["text"]}
        else:
            raise _protocol_error("choice has no message", body)
    finish = choice.get("finish_reason")
    reasoning, content = split_reasoning(message, spec, truncated=finish == "length")
    usage = body.get("usage")
    return WireMessage(
        content=content,
        reasoning=reasoning,
        tool_calls=_parse_tool_calls(message),
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage if isinstance(usage, dict) else None,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        id=body.get("id") if isinstance(body.get("id"), str) else None,
    )


# --------------------------------------------------------------------------- streams


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
            raise _protocol_error("stream chunk is not a JSON object", chunk)
        if "choices" not in chunk or "error" in chunk or "success" in chunk:
            err = _error_in_body(chunk)
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
        choice = choices[0] if len(choices) == 1 else _first_choice(choices)
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
            reasoning = rf
            self._field_reasoning.append(rf)
        text = d.get("content")
        if text:
            r, c = self._splitter.feed(text if isinstance(text, str) else _text_of(text))
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
            args = _json_text(fn.get("arguments"))
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

    def message(self) -> WireMessage:
        """Everything assembled so far (a snapshot; later chunks do not change it)."""
        content = "".join(self._content)
        reasoning = "".join(self._reasoning)
        held = self._splitter.held
        if held and not self._finished:
            if self._splitter.in_reasoning:
                reasoning += held
            else:
                content += held
        return WireMessage(
            content=content,
            reasoning=reasoning,
            tool_calls=[replace(c) for c in sorted(self.tool_calls, key=lambda c: c.index)],
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
            id=self.id,
        )

    def interrupted(self, resolved: ResolvedModel, cause: str = "") -> StreamInterruptedError:
        """The error for a stream that broke after output began, carrying everything so far."""
        partial = self.message()
        return StreamInterruptedError(
            f"The stream from {resolved.key} broke after output had started"
            + (f": {cause}" if cause else "."),
            hint="The partial output is kept on this error (partial_content, "
            "partial_reasoning, partial_tool_calls); the request was not retried, so nothing "
            "is duplicated.",
            partial_content=partial.content,
            partial_reasoning=partial.reasoning,
            partial_tool_calls=[
                {"index": tc.index, "id": tc.id, "name": tc.name, "arguments": tc.arguments}
                for tc in partial.tool_calls
            ],
            provider=resolved.provider.name,
            model=resolved.model.id,
        )


# --------------------------------------------------------------------------- requests


def thinking_enabled(resolved: ResolvedModel, thinking: bool | None) -> bool:
    """Whether a request with this ``thinking`` setting runs in thinking mode.

    ``None`` means the model's default; for ``model_switch`` models the requested id decides
    (``deepseek-reasoner`` thinks, ``deepseek-chat`` does not). A model without a switch
    always runs in its default mode.

    Example:
        >>> import campusllm
        >>> thinking_enabled(campusllm.resolve("sjtu:deepseek-reasoner"), None)  # doctest: +SKIP
        True
    """
    spec = resolved.model.reasoning
    if spec.toggle == "none":
        return spec.default_on
    if thinking is not None:
        return thinking
    if spec.toggle == "model_switch":
        wire = resolved.wire_model
        if spec.thinking_model and wire == spec.thinking_model:
            return True
        if spec.non_thinking_model and wire == spec.non_thinking_model:
            return False
    return spec.default_on


def _models_that(resolved: ResolvedModel, ok: Any) -> list[str]:
    return [
        m.id
        for m in resolved.provider.models
        if m.kind == "chat" and m.status != "deprecated" and m.id != resolved.model.id and ok(m)
    ]


def _capability_error(resolved: ResolvedModel, message: str, hint: str) -> CapabilityError:
    return CapabilityError(
        message, hint=hint, provider=resolved.provider.name, model=resolved.model.id
    )


def _alternatives_hint(resolved: ResolvedModel, ids: list[str], what: str) -> str:
    if ids:
        return f"Models of {resolved.provider.name} that {what}: {', '.join(ids)}."
    return (
        f"No catalogued model of {resolved.provider.name} {what}; if yours does, register it "
        "with campusllm.register_model(...)."
    )


def has_image(messages: list[Any]) -> bool:
    """Whether any message carries an image part (OpenAI or LangChain block shapes)."""
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in (
                    "image_url",
                    "image",
                    "input_image",
                ):
                    return True
    return False


def _passback(messages: list[Any], policy: str, thinking_on: bool) -> list[Any]:
    out: list[Any] = []
    changed = False
    for m in messages:
        if (
            not isinstance(m, dict)
            or m.get("role") != "assistant"
            or (
                policy != "reasoning_content"
                and "reasoning_content" not in m
                and "reasoning" not in m
            )
        ):
            out.append(m)
            continue
        m = dict(m)
        changed = True
        r = m.pop("reasoning_content", None)
        alt = m.pop("reasoning", None)
        if not (isinstance(r, str) and r):
            r = alt if isinstance(alt, str) else r
        r = r if isinstance(r, str) else ""
        if policy == "reasoning_content":
            if thinking_on:
                m["reasoning_content"] = r
        elif policy == "think_tags" and r:
            content = m.get("content")
            block = f"{OPEN_TAG}{r}{CLOSE_TAG}\n\n"
            if isinstance(content, list):
                if not (
                    content
                    and isinstance(content[0], dict)
                    and str(content[0].get("text", "")).lstrip().startswith(OPEN_TAG)
                ):
                    m["content"] = [{"type": "text", "text": block}, *content]
            else:
                text = content if isinstance(content, str) else ""
                if not text.lstrip().startswith(OPEN_TAG):
                    m["content"] = block + text
        out.append(m)
    return out if changed else messages


def prepare_chat_payload(
    payload: dict[str, Any], resolved: ResolvedModel, *, thinking: bool | None = None
) -> dict[str, Any]:
    """Return a new request body for ``resolved`` with the registry's request rules applied.

    In order: wire model id, ``request_defaults`` (user keys win), DeepSeek's user-message
    rule, tool / image capability checks, the thinking switch (``chat_template_kwargs`` merged
    into any the caller set, or a model-id switch), reasoning pass-back on assistant messages
    and ``stream_options.include_usage`` for streams. ``payload`` is never mutated.

    Raises :class:`CapabilityError` when the model cannot do what is asked (tools, images,
    thinking on/off) and :class:`BadRequestError` for a request the gateway would silently
    answer with nothing.

    Example:
        >>> import campusllm
        >>> body = prepare_chat_payload(  # doctest: +SKIP
        ...     {"messages": [{"role": "user", "content": "hi"}]},
        ...     campusllm.resolve("oneapi:qwen3-32b"), thinking=False)
        >>> body["chat_template_kwargs"]  # doctest: +SKIP
        {'enable_thinking': False}
    """
    model: ModelSpec = resolved.model
    spec = model.reasoning
    out = dict(payload)
    if not out.get("model"):
        out["model"] = resolved.wire_model
    for key, value in model.request_defaults.items():
        if key not in out:
            out[key] = json.loads(json.dumps(value))  # a private copy of nested defaults
    messages = out.get("messages")
    if not isinstance(messages, list):
        messages = []

    if model.requires_user_message and not any(
        isinstance(m, dict) and m.get("role") == "user" for m in messages
    ):
        raise BadRequestError(
            f"{model.id} needs at least one user message; a system-only request returns "
            "nothing. Add a user message.",
            provider=resolved.provider.name,
            model=model.id,
        )

    has_tools = bool(out.get("tools") or out.get("functions"))
    if has_tools and resolved.known and not model.tools:
        raise _capability_error(
            resolved,
            f"{resolved.key} does not support tool calling.",
            _alternatives_hint(resolved, _models_that(resolved, lambda m: m.tools), "do"),
        )
    if resolved.known and not model.vision and has_image(messages):
        raise _capability_error(
            resolved,
            f"{resolved.key} cannot read images.",
            _alternatives_hint(resolved, _models_that(resolved, lambda m: m.vision), "can"),
        )

    want = thinking
    if spec.tools_only_without_thinking and has_tools and spec.toggle != "none":
        if thinking is True:
            raise _capability_error(
                resolved,
                f"{resolved.key} supports function calling only with thinking off.",
                "Pass thinking=False (or leave it unset) when you bind tools.",
            )
        want = False
    if want is not None:
        if spec.toggle == "none":
            if want != spec.default_on:
                mode = "on" if want else "off"
                can = _models_that(
                    resolved,
                    lambda m: m.reasoning.toggle != "none" or m.reasoning.default_on == want,
                )
                unknown = "" if resolved.known else " (not in the catalog: no switch known)"
                raise _capability_error(
                    resolved,
                    f"{resolved.key} cannot switch thinking {mode}{unknown}.",
                    _alternatives_hint(resolved, can, f"can run with thinking {mode}"),
                )
        elif spec.toggle in ("enable_thinking", "thinking"):
            kwargs = out.get("chat_template_kwargs")
            merged = dict(kwargs) if isinstance(kwargs, dict) else {}
            merged[spec.toggle] = bool(want)
            out["chat_template_kwargs"] = merged
        elif spec.toggle == "model_switch":
            target = spec.thinking_model if want else spec.non_thinking_model
            if not target:
                raise _capability_error(
                    resolved,
                    f"{resolved.key} has no {'thinking' if want else 'non-thinking'} variant.",
                    "Leave thinking unset to use the model as it is.",
                )
            out["model"] = target

    thinking_on = _thinking_for_wire(resolved, want, out.get("model"))
    if messages:
        new_messages = _passback(messages, spec.passback, thinking_on)
        if new_messages is not messages:
            out["messages"] = new_messages

    if out.get("stream") and resolved.provider.stream_usage and "stream_options" not in out:
        out["stream_options"] = {"include_usage": True}
    return out


def _thinking_for_wire(resolved: ResolvedModel, want: bool | None, wire: Any) -> bool:
    spec = resolved.model.reasoning
    if want is None and spec.toggle == "model_switch" and isinstance(wire, str):
        if spec.thinking_model and wire == spec.thinking_model:
            return True
        if spec.non_thinking_model and wire == spec.non_thinking_model:
            return False
    return thinking_enabled(resolved, want)
