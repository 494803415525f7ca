"""Whole chat completions: the first choice of a ``chat.completion`` body, reasoning split.

Example:
    >>> m = parse_completion({"choices": [{"message": {"content": "<think>hm</think>Hi"}}]})
    >>> m.content, m.reasoning
    ('Hi', 'hm')
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRequestError, ProtocolError, redact
from ..registry import ReasoningSpec
from .error_body import parse_gateway_error
from .messages import ToolCall, WireMessage, json_text
from .reasoning import split_reasoning

__all__ = ["parse_completion", "error_in_body", "protocol_error", "first_choice", "as_chunk"]


def error_in_body(body: Any) -> BadRequestError | None:
    """The gateway's error as a BadRequestError, or None when ``body`` is not an error.

    For bodies that arrived as an answer (HTTP 200): one-api/new-api report errors so.

    Example:
        >>> error_in_body({"success": False, "message": "quota exceeded"}).message
        'The gateway returned an error: quota exceeded'
    """
    found = parse_gateway_error(body)
    if found is None:
        return None
    detail = ", ".join(f"{k}={v}" for k, v in (("type", found.type), ("code", found.code)) if v)
    text = f"The gateway returned an error: {found.describe()}"
    if detail:
        text += f" ({detail})"
    return BadRequestError(
        text, status_code=found.status, body=json.dumps(body, ensure_ascii=False, default=str)
    )


def _snippet(body: Any) -> str:
    try:
        text = json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(body)
    return redact(text, 300)


def protocol_error(what: str, body: Any) -> ProtocolError:
    """The error for an answer that is not a chat completion (a redacted snippet included)."""
    return ProtocolError(
        f"The gateway's answer is not a chat completion ({what}): {_snippet(body)}",
        hint="Check that the base URL points at an OpenAI-compatible API (it usually ends in /v1).",
        body=_snippet(body),
    )


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
                    arguments=json_text(fn.get("arguments")),
                )
            )
    fc = message.get("function_call")
    if not calls and isinstance(fc, dict) and fc.get("name"):
        calls.append(ToolCall(0, None, fc["name"], json_text(fc.get("arguments"))))
    return calls


def first_choice(choices: list[Any]) -> Any:
    """The choice with index 0 (gateways do not always send it first)."""
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
        raise protocol_error("not a JSON object", body)
    err = error_in_body(body)
    if err is not None:
        raise err
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise protocol_error("no choices", body)
    choice = first_choice(choices)
    if not isinstance(choice, dict):
        raise protocol_error("choice is not an object", body)
    message = choice.get("message")
    if not isinstance(message, dict):
        message = choice.get("delta")
    if not isinstance(message, dict):
        if isinstance(choice.get("text"), str):  # a /completions-style choice
            message = {"content": choice["text"]}
        else:
            raise protocol_error("choice has no message", body)
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


def as_chunk(message: WireMessage) -> dict[str, Any]:
    """A whole answer as the one ``chat.completion.chunk`` of a stream.

    For gateways that answer ``stream=true`` with a plain ``chat.completion``: the answer is
    passed on as if streamed in one delta, reasoning already split from the content.

    Example:
        >>> body = {"choices": [{"message": {"content": "<think>hm</think>Hi"},
        ...                      "finish_reason": "stop"}]}
        >>> chunk = as_chunk(parse_completion(body))
        >>> chunk["choices"][0]["delta"], chunk["choices"][0]["finish_reason"]
        ({'role': 'assistant', 'content': 'Hi', 'reasoning_content': 'hm'}, 'stop')
    """
    delta: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.reasoning:
        delta["reasoning_content"] = message.reasoning
    if message.tool_calls:
        delta["tool_calls"] = [
            {
                "index": tc.index,
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            }
            for tc in message.tool_calls
        ]
    chunk: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": message.finish_reason}],
    }
    for key, value in (("id", message.id), ("model", message.model), ("usage", message.usage)):
        if value is not None:
            chunk[key] = value
    return chunk
