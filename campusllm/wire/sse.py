"""Server-sent events: the framing of streamed chat answers, and telling a stream from a page.

:class:`SSEDecoder` turns the bytes of a body into events as they arrive (lines may end in LF,
CRLF or CR; a UTF-8 character may be cut between two reads) and stops at ``data: [DONE]``,
remembering that it came: a stream that ends without it, and without a ``finish_reason``, was
cut. :func:`body_kind` looks at the first bytes of a body that was asked for as a stream and
says what it is: an event stream, a JSON document (a gateway that ignored ``stream=true``, or
an error), an HTML page (a campus network's login page) or other text.

Example:
    >>> dec = SSEDecoder()
    >>> [(e.event, e.data) for e in dec.feed(b"event: error\\ndata: boom\\n\\ndata: [DO")]
    [('error', 'boom')]
    >>> [e.data for e in dec.feed(b"NE]\\n\\n")], dec.done
    (['[DONE]'], True)
    >>> body_kind(b"<!DOCTYPE html><html>"), body_kind(b'data: {"a": 1}\\n'), body_kind(b"{")
    ('html', 'sse', 'json')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal, NamedTuple

from ..errors import ProtocolError, redact

__all__ = [
    "DONE",
    "DONE_EVENT",
    "SSEEvent",
    "SSEDecoder",
    "BodyKind",
    "body_kind",
    "iter_sse_events",
    "event_json",
]

DONE = "[DONE]"
"""The data of the event that ends an OpenAI-style stream."""

BodyKind = Literal["sse", "json", "html", "text"]

# Whitespace and a UTF-8 byte-order mark may come before the first real byte of a body.
_BOM = b"\xef\xbb\xbf"
_LEADING = b" \t\r\n" + _BOM
# How much of a body's first line decides whether it is an event stream.
_FIRST_LINE = 64
_SSE_FIELDS = (b"data", b"event", b"id", b"retry")


class SSEEvent(NamedTuple):
    """One event: its ``event:`` name (None for plain data events) and its data text.

    Example:
        >>> SSEEvent(None, '{"a": 1}').data
        '{"a": 1}'
        >>> SSEEvent(None, "[DONE]").is_done
        True
    """

    event: str | None
    data: str

    @property
    def is_done(self) -> bool:
        """Whether this is the ``[DONE]`` event that ends the stream."""
        return self.event is None and self.data == DONE


DONE_EVENT = SSEEvent(None, DONE)


def body_kind(
    head: bytes, content_type: str | None = None, *, final: bool = False
) -> BodyKind | None:
    """What a body that was asked for as a stream is, from its first bytes (None: too few yet).

    The bytes decide: a body starting with ``<`` is a page, ``{`` or ``[`` a JSON document, a
    first line of SSE fields (``data:``, ``event:``, ``: comment``…) a stream, whatever the
    ``Content-Type`` says (gateways mislabel all three). The Content-Type only tells an HTML
    page without markup at its start from other text. ``final``: the body ended, decide on
    what there is (an empty body is an empty stream).

    Example:
        >>> body_kind(b"  \\n"), body_kind(b"  \\n", final=True)
        (None, 'sse')
        >>> body_kind(b"Service Unavailable\\n"), body_kind(b": keepalive\\n")
        ('text', 'sse')
    """
    start = head.lstrip(_LEADING)
    if not start:
        return "sse" if final else None
    first = start[:1]
    if first == b"<":
        return "html"
    if first in (b"{", b"["):
        return "json"
    end = min((i for i in (start.find(b"\n"), start.find(b"\r")) if i >= 0), default=-1)
    if end < 0 and len(start) < _FIRST_LINE and not final:
        return None
    line = start if end < 0 else start[:end]
    if b":" in line or line in _SSE_FIELDS:
        return "sse"
    if content_type and "html" in content_type.lower():
        return "html"
    return "text"


class SSEDecoder:
    """Incremental SSE decoding: :meth:`feed` bytes as they arrive, get the complete events.

    Comments and ``id:``/``retry:`` fields are skipped. Decoding stops at ``data: [DONE]``
    (:attr:`done`); that event is returned too, nothing after it. Data that is not UTF-8 is a
    :class:`~campusllm.errors.ProtocolError`.

    Example:
        >>> dec = SSEDecoder()
        >>> dec.feed(b'data: {"a": 1}\\r\\n\\r\\ndata: {"b"'), dec.done
        ([SSEEvent(event=None, data='{"a": 1}')], False)
        >>> dec.feed(b": 2}"), dec.end()
        ([], [SSEEvent(event=None, data='{"b": 2}')])
    """

    __slots__ = ("_pending", "_cr", "_data", "_event", "_error", "_fresh", "done")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # a line not ended yet
        self._cr = False  # the last piece ended in CR: an LF starting the next one is its CRLF
        self._data: list[bytes] = []
        self._event: str | None = None
        # an unreadable event: raised on the next call, after the events before it
        self._error: ProtocolError | None = None
        self._fresh = True  # nothing read yet: a byte-order mark may open the body
        self.done = False
        """Whether ``data: [DONE]`` arrived."""

    def feed(self, data: bytes) -> list[SSEEvent]:
        """The events completed by ``data`` (the next bytes of the body).

        An event that cannot be read raises :class:`~campusllm.errors.ProtocolError` on the
        next call, so the events before it are never lost.
        """
        if self._error is not None:
            raise self._error
        if self.done or not data:
            return []
        if self._fresh:
            self._fresh = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if self._cr:
            self._cr = False
            if data[:1] == b"\n":
                data = data[1:]
                if not data:
                    return []
        if b"\r" in data:
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._pending.append(data)
            return []
        if self._pending:
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending = []
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._pending.append(rest)
        return self._lines(lines)

    def end(self) -> list[SSEEvent]:
        """The body ended: an event still open (no blank line after it) is complete too."""
        if self._error is not None:
            raise self._error
        if self.done:
            return []
        lines = [b"".join(self._pending)] if self._pending else []
        self._pending = []
        return self._lines([*lines, b""])

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    try:
                        event = self._dispatch()
                    except ProtocolError as e:
                        self._error = e
                        break
                    events.append(event)
                    data = self._data
                    if self.done:
                        break
                else:
                    self._event = None
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
            elif line[:1] == b":":
                continue
            elif line.startswith(b"event:"):
                self._event = _text(line[6:]).strip() or None
            elif line == b"data":
                data.append(b"")
        return events

    def _dispatch(self) -> SSEEvent:
        raw = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        name, self._event = self._event, None
        text = _text(raw)
        if name is None and text.strip() == DONE:
            self.done = True
            return DONE_EVENT
        return SSEEvent(name, text)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(
            f"The gateway sent a stream event that is not UTF-8 text: {redact(repr(raw), 200)}",
            hint="The gateway or a proxy in between is misbehaving; retry, or use stream=False.",
        ) from e


def iter_sse_events(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Yield every event of already-split lines until ``data: [DONE]`` (not yielded).

    Example:
        >>> [e.data for e in iter_sse_events(["data: 1", "", "data: [DONE]", "", "data: 2"])]
        ['1']
    """
    dec = SSEDecoder()
    for line in lines:
        for event in dec.feed(line.rstrip("\r\n").encode("utf-8") + b"\n"):
            if event.is_done:
                return
            yield event
    for event in dec.end():
        if not event.is_done:
            yield event


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
