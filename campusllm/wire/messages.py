"""The parsed shapes of the wire layer: tool calls, messages and stream deltas.

Example:
    >>> WireMessage(content="Hi", reasoning="", tool_calls=[]).content
    'Hi'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolCall", "WireMessage", "ToolCallDelta", "Delta", "json_text"]


def json_text(args: Any) -> str:
    """Tool-call arguments as JSON text (gateways send a string, some an object).

    Example:
        >>> json_text({"city": "上海"})
        '{"city": "上海"}'
    """
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    return json.dumps(args, ensure_ascii=False)


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
