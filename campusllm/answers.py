"""What a gateway's answer is, decided once for every path: JSON, an event stream, or neither.

Between the HTTP status and the parsed message, every chat path (both framework adapters
through the openai SDK, :class:`~campusllm.chat.ChatCaller` through httpx) asks this module:

* a whole answer that is not JSON is a :class:`~campusllm.errors.ProtocolError` saying what
  came instead — an HTML page is most often a campus network's login page (captive portal),
  and the message says so and what to do (:func:`answer_json`, :func:`not_an_answer`);
* an error sent with HTTP 200 (one-api, new-api, LiteLLM in a stream) is the typed error for
  its code — 429 :class:`~campusllm.errors.RateLimitError`, 5xx
  :class:`~campusllm.errors.ServerError`… by the one status mapping,
  :func:`~campusllm.transport.errors.error_for_status` — and
  :class:`~campusllm.errors.BadRequestError` without a code (:func:`answer_error`);
* a body asked for as a stream is read by :class:`AnswerReader`, which looks at its first
  bytes: SSE is decoded as it arrives (remembering whether ``[DONE]`` came), a JSON
  ``chat.completion`` from a gateway that ignored ``stream=true`` becomes one chunk holding
  the whole answer, a JSON error becomes an error event, an HTML page or other text an error.

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    >>> type(answer_error({"error": {"message": "busy", "code": 429}}, r)).__name__
    'RateLimitError'
    >>> reader = AnswerReader(r)
    >>> reader.feed(b'{"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]}')
    []
    >>> [e.data[:34] for e in reader.end()]
    ['{"object": "chat.completion.chunk"', '[DONE]']
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import BadRequestError, CampusLLMError, ProtocolError, redact
from .registry import ResolvedModel
from .transport.errors import error_for_status
from .wire.completion import as_chunk, parse_completion, protocol_error
from .wire.error_body import GatewayError, parse_gateway_error
from .wire.messages import WireMessage
from .wire.sse import DONE_EVENT, BodyKind, SSEDecoder, SSEEvent, body_kind

__all__ = [
    "AnswerReader",
    "answer_error",
    "answer_json",
    "gateway_error",
    "not_an_answer",
    "read_completion",
]

# How much of a page or text that is not an answer is read before giving up on it.
_PAGE_LIMIT = 16 * 1024
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def _title(raw: bytes) -> str:
    m = _TITLE.search(raw)
    if m is None:
        return ""
    title = " ".join(m.group(1).decode("utf-8", "replace").split())
    return redact(title, 80)


def not_an_answer(
    resolved: ResolvedModel, kind: BodyKind, raw: bytes, content_type: str | None = None
) -> ProtocolError:
    """The error for a body that is neither JSON nor an event stream (``kind`` from sniffing).

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> err = not_an_answer(r, "html", b"<html><title>Campus Login</title></html>")
        >>> "HTML page" in err.message and "Campus Login" in err.message
        True
    """
    common: dict[str, Any] = {"provider": resolved.provider.name, "model": resolved.model.id}
    if kind == "html":
        title = _title(raw)
        named = f" titled {title!r}" if title else ""
        return ProtocolError(
            f"{resolved.key} answered with an HTML page{named} instead of an API answer: "
            "most likely the campus network's login page (captive portal) intercepting the "
            f"request, or a web page at {resolved.base_url}.",
            hint="Log in to the campus network in a browser (or connect to the VPN), then "
            "retry. If you are logged in already, check base_url: it must be the API root "
            "(usually ending in /v1), not the gateway's web pages.",
            body=raw[:500].decode("utf-8", "replace"),
            **common,
        )
    what = content_type.split(";")[0].strip() if content_type else "plain text"
    text = raw[:500].decode("utf-8", "replace")
    return ProtocolError(
        f"{resolved.key} answered {what} instead of an API answer: {redact(text, 200)!r}",
        hint="Check that the base URL points at an OpenAI-compatible API (usually ending in "
        "/v1); a proxy in between may be answering instead of the gateway.",
        body=text,
        **common,
    )


def answer_json(raw: bytes | str, resolved: ResolvedModel, content_type: str | None = None) -> Any:
    """A whole answer's JSON; a page or other text is the :func:`not_an_answer` error.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> answer_json(b'{"choices": []}', r)
        {'choices': []}
        >>> answer_json("<!DOCTYPE html><html></html>", r)
        Traceback (most recent call last):
        ...
        campusllm.errors.ProtocolError: sjtu:deepseek-v3.2 answered with an HTML page...
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        return json.loads(data)
    except ValueError as e:
        kind = body_kind(data, content_type, final=True)
        if kind == "json":  # cut short, or not JSON after all
            raise ProtocolError(
                f"{resolved.key} answered with malformed JSON: "
                f"{redact(data[:300].decode('utf-8', 'replace'), 200)!r}",
                hint="The answer may have been cut short; retry. If it keeps happening, "
                "check that the base URL points at an OpenAI-compatible API.",
                provider=resolved.provider.name,
                model=resolved.model.id,
            ) from e
        if kind == "sse":
            kind = "text"  # an event stream where a whole answer was asked for
        raise not_an_answer(resolved, kind or "text", data, content_type) from e


def gateway_error(
    found: GatewayError,
    body: Any,
    resolved: ResolvedModel,
    *,
    during_stream: bool = False,
    started: bool = False,
    **partial: Any,
) -> CampusLLMError:
    """The typed error for an error the gateway reported in a body or event (``found``).

    A code that is an HTTP status maps as that status does (429 → RateLimitError, 5xx →
    ServerError…); anything else is a BadRequestError quoting the gateway. ``partial`` is
    the output received before it (``partial_content``…), ``started`` whether there was any.
    """
    text = json.dumps(body, ensure_ascii=False, default=str)
    status = found.status
    if status is not None:
        return error_for_status(
            status,
            resolved,
            message=found.describe(),
            body=text,
            during_stream=during_stream,
            **partial,
        )
    detail = ", ".join(f"{k}={v}" for k, v in (("type", found.type), ("code", found.code)) if v)
    return BadRequestError(
        f"The gateway returned an error: {found.describe()}" + (f" ({detail})" if detail else ""),
        hint="What arrived before the error is kept on it (partial_content, "
        "partial_reasoning, partial_tool_calls)."
        if started
        else None,
        body=text,
        provider=resolved.provider.name,
        model=resolved.model.id,
        **partial,
    )


def answer_error(data: Any, resolved: ResolvedModel) -> CampusLLMError | None:
    """The error an answer reports instead of answering (sent with HTTP 200), or None.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> err = answer_error({"success": False, "message": "额度不足"}, r)
        >>> type(err).__name__, err.message
        ('BadRequestError', 'The gateway returned an error: 额度不足')
        >>> answer_error({"choices": []}, r) is None
        True
    """
    found = parse_gateway_error(data)
    if found is None:
        return None
    return gateway_error(found, data, resolved)


def read_completion(body: Any, resolved: ResolvedModel) -> WireMessage:
    """A whole chat answer (a dict, or the raw text an SDK hands back for a non-JSON body).

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-reasoner", base_url="http://127.0.0.1:9/v1")
        >>> m = read_completion({"choices": [{"message": {"content": "<think>hm</think>Hi"}}]}, r)
        >>> m.reasoning, m.content
        ('hm', 'Hi')
    """
    if isinstance(body, (str, bytes)):
        body = answer_json(body, resolved)
    err = answer_error(body, resolved)
    if err is not None:
        raise err
    try:
        return parse_completion(body, resolved.model.reasoning)
    except CampusLLMError as e:
        e.provider = e.provider or resolved.provider.name
        e.model = e.model or resolved.model.id
        raise


class AnswerReader:
    """The events of a body asked for as a stream, whatever the gateway sent.

    :meth:`feed` the body's bytes as they arrive, then :meth:`end`. The first bytes decide
    (:func:`~campusllm.wire.sse.body_kind`): an event stream is decoded as it arrives and
    :attr:`done` says whether ``[DONE]`` came (it is returned too; nothing after it); a JSON
    ``chat.completion`` comes out at the end as one chunk with the whole answer, then
    ``[DONE]``; a JSON error as one error event; an HTML page or other text raises the
    :func:`not_an_answer` error.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> reader = AnswerReader(r)
        >>> [e.data for e in reader.feed(b"data: {}\\n\\ndata: [DONE]\\n\\n")], reader.done
        (['{}', '[DONE]'], True)
    """

    __slots__ = ("_resolved", "_content_type", "_kind", "_body", "_size", "_sse")

    def __init__(self, resolved: ResolvedModel, content_type: str | None = None) -> None:
        self._resolved = resolved
        self._content_type = content_type
        self._kind: BodyKind | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._sse = SSEDecoder()

    @property
    def done(self) -> bool:
        """Whether the stream ended with ``[DONE]`` (a JSON answer counts as complete)."""
        return self._sse.done

    def feed(self, data: bytes) -> list[SSEEvent]:
        """The events completed by the next bytes of the body."""
        if self._kind == "sse":
            return self._sse.feed(data)
        self._body.append(data)
        self._size += len(data)
        if self._kind is None:
            head = b"".join(self._body)
            self._body = [head]
            self._kind = body_kind(head, self._content_type)
            if self._kind == "sse":
                self._body = []
                return self._sse.feed(head)
        if self._kind in ("html", "text") and self._size >= _PAGE_LIMIT:
            raise self._not_an_answer()
        return []

    def end(self) -> list[SSEEvent]:
        """The body ended: the last events (an open SSE event, or the whole JSON answer)."""
        if self._kind is None:
            self._kind = body_kind(b"".join(self._body), self._content_type, final=True)
        if self._kind == "sse":
            if self._body:
                events = self._sse.feed(b"".join(self._body))
                self._body = []
                return events + self._sse.end()
            return self._sse.end()
        if self._kind == "json":
            return self._json_events(b"".join(self._body))
        raise self._not_an_answer()

    def _not_an_answer(self) -> ProtocolError:
        kind = self._kind if self._kind in ("html", "text") else "text"
        return not_an_answer(self._resolved, kind, b"".join(self._body), self._content_type)

    def _json_events(self, raw: bytes) -> list[SSEEvent]:
        data = answer_json(raw, self._resolved, self._content_type)
        if not isinstance(data, Mapping):
            raise protocol_error("JSON that is neither a stream nor a chat completion", data)
        self._sse.done = True  # the whole answer is here: nothing was cut
        if parse_gateway_error(data) is not None:  # typed by whoever reads the events
            return [SSEEvent(None, raw.decode("utf-8", "replace"))]
        if "choices" not in data:
            raise protocol_error("JSON that is neither a stream nor a chat completion", data)
        message = read_completion(dict(data), self._resolved)
        chunk = json.dumps(as_chunk(message), ensure_ascii=False)
        return [SSEEvent(None, chunk), DONE_EVENT]
