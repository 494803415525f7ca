"""Server-sent events: the framing of streamed chat answers.

Example:
    >>> [(e.event, e.data) for e in iter_sse_events(["event: error", "data: boom", ""])]
    [('error', 'boom')]
    >>> [event_json(e.data) for e in iter_sse_events(['data: {"a": 1}', "", "data: [DONE]"])]
    [{'a': 1}]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError, redact

__all__ = ["SSEEvent", "iter_sse_events", "event_json"]


@dataclass(frozen=True)
class SSEEvent:
    """One event: its ``event:`` name (None for plain data events) and its data text.

    Example:
        >>> SSEEvent(None, '{"a": 1}').data
        '{"a": 1}'
    """

    event: str | None
    data: str


def iter_sse_events(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Yield every event until ``data: [DONE]``; comments and ``id:``/``retry:`` are skipped."""
    data: list[str] = []
    name: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                text = "\n".join(data)
                if text.strip() == "[DONE]":
                    return
                yield SSEEvent(name, text)
            data, name = [], None
            continue
        if line.startswith(":"):
            continue
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            name = line[6:].strip() or None
    if data:
        text = "\n".join(data)
        if text.strip() != "[DONE]":
            yield SSEEvent(name, text)


def event_json(data: str) -> dict[str, Any]:
    """An event's data as a JSON object; ProtocolError (redacted snippet) otherwise."""
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise ProtocolError(
            f"The gateway sent a stream event that is not JSON: {redact(data, 200)!r}",
            hint="The gateway or a proxy in between is misbehaving; retry, or use stream=False.",
        ) from e
    if not isinstance(obj, dict):
        raise ProtocolError(f"Unexpected stream event: {redact(data, 200)!r}")
    return obj
