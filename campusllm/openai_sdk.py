"""The one seam between campusllm and the openai SDK.

Both framework adapters talk to gateways through the openai SDK; everything they need from it
is decided here, once:

* the SDK clients, built on a :class:`~campusllm.connection.Connection`'s HTTP clients (the
  SDK's own HTTP library, campusllm's transport underneath) with ``max_retries=0``, so the
  transport is the one retry layer;
* which request fields are SDK keywords and which travel in ``extra_body``
  (:func:`sdk_arguments`);
* what an SDK exception means (:func:`map_sdk_error`), walking the whole ``__cause__`` /
  ``__context__`` chain, since frameworks wrap the SDK's errors in their own;
* how a streamed body is read: the SDK's SSE decoder is campusllm's
  (:class:`~campusllm.answers.AnswerReader`), so an HTML page, a JSON answer to
  ``stream=true`` and a body that ends without ``[DONE]`` are seen here as on the core's own
  path, and ``event: error`` is not lost;
* how a failing stream ends (:func:`stream_error`), by the same rules as the core's own SSE
  path (:class:`~campusllm.streaming.StreamGuard`).

Example:
    >>> sdk_http_library().__name__ in ("httpx", "httpx2")
    True
    >>> from campusllm.registry import resolve
    >>> r = resolve("oneapi:qwen3-32b", base_url="http://127.0.0.1:9/v1")
    >>> args = sdk_arguments({"messages": [{"role": "user", "content": "hi"}]}, r, thinking=False)
    >>> args["extra_body"]
    {'chat_template_kwargs': {'enable_thinking': False}}
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import cached_property, lru_cache
from types import ModuleType
from typing import Any, Protocol

import openai
import openai._base_client as _sdk_base
from openai._streaming import ServerSentEvent, SSEBytesDecoder, SSEDecoder
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from pydantic import SecretStr

from .answers import AnswerReader, answer_json, read_completion
from .errors import CampusLLMError, ProtocolError, exception_chain, redact, scrub
from .registry import ResolvedModel
from .streaming import StreamEnded, StreamGuard
from .transport.errors import (
    connect_error,
    error_from_exception,
    error_from_response,
    timeout_error,
)
from .transport.library import is_http_error
from .wire import WireMessage, prepare_chat_payload
from .wire.error_body import error_event_body
from .wire.sse import SSEEvent

__all__ = [
    "OpenAIClients",
    "sdk_http_library",
    "sdk_arguments",
    "map_sdk_error",
    "stream_error",
    "as_dict",
    "completion",
    "stream_chunks",
    "astream_chunks",
]

# The SDK insists on a key; the real one is set on every request by campusllm's transport,
# so SDK objects (which frameworks print, copy and serialise) never hold it.
_KEY_SET_BY_TRANSPORT = "set-by-campusllm-transport"
# SDK request options that are not body fields but must stay keyword arguments.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout"})


def sdk_http_library() -> ModuleType:
    """The HTTP library the installed openai SDK runs on (``httpx2`` for openai 3.x).

    Clients handed to the SDK are built on it: a client of another library works too, but
    goes through the SDK's compatibility shims on every request.
    """
    lib: ModuleType | None = getattr(_sdk_base, "httpx2", None) or getattr(_sdk_base, "httpx", None)
    if lib is None:  # pragma: no cover - an SDK release with yet another HTTP library
        raise RuntimeError("Cannot tell which HTTP library the installed openai SDK uses.")
    return lib


# --------------------------------------------------------------------------- clients


class SdkConnection(Protocol):
    """What the SDK clients need from a :class:`~campusllm.connection.Connection`.

    Example:
        >>> from campusllm.connection import Connection
        >>> hasattr(Connection, "http_clients")
        True
    """

    resolved: ResolvedModel
    api_key: SecretStr
    timeout: Any

    def http_clients(self, lib: ModuleType | None = None) -> tuple[Any, Any]: ...


class _AnswerEvents:
    """The SSE decoder of campusllm's SDK clients: :class:`~campusllm.answers.AnswerReader`.

    It reads what the gateway really sent (an HTML login page, a JSON answer to
    ``stream=true``, an event stream), raises :class:`~campusllm.streaming.StreamEnded` when
    a body ends without ``[DONE]`` (the SDK would end the iteration as if complete), and turns
    ``event: error`` into the ``{"error": ...}`` the SDK raises on (it passes an
    ``event: error`` whose data lacks the ``error`` key on as if it were a chunk).
    """

    def __init__(self, resolved: ResolvedModel) -> None:
        self._resolved = resolved

    @staticmethod
    def _sdk_event(ev: SSEEvent) -> ServerSentEvent:
        if ev.event == "error":
            body = json.dumps(error_event_body(ev.data), ensure_ascii=False)
            return ServerSentEvent(event=ev.event, data=body)
        return ServerSentEvent(event=ev.event, data=ev.data)

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[ServerSentEvent]:
        reader = AnswerReader(self._resolved)
        sdk_event = self._sdk_event
        for piece in iterator:
            for ev in reader.feed(piece):
                yield sdk_event(ev)
        for ev in reader.end():
            yield sdk_event(ev)
        if not reader.done:
            raise StreamEnded()

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        reader = AnswerReader(self._resolved)
        sdk_event = self._sdk_event
        async for piece in iterator:
            for ev in reader.feed(piece):
                yield sdk_event(ev)
        for ev in reader.end():
            yield sdk_event(ev)
        if not reader.done:
            raise StreamEnded()


class _OpenAI(openai.OpenAI):
    campus_resolved: ResolvedModel | None = None

    def _make_sse_decoder(self) -> SSEDecoder | SSEBytesDecoder:
        if self.campus_resolved is None:  # pragma: no cover - built outside OpenAIClients
            return super()._make_sse_decoder()
        return _AnswerEvents(self.campus_resolved)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        new = super().copy(*args, **kwargs)
        new.campus_resolved = self.campus_resolved
        return new

    with_options = copy


class _AsyncOpenAI(openai.AsyncOpenAI):
    campus_resolved: ResolvedModel | None = None

    def _make_sse_decoder(self) -> SSEDecoder | SSEBytesDecoder:
        if self.campus_resolved is None:  # pragma: no cover - built outside OpenAIClients
            return super()._make_sse_decoder()
        return _AnswerEvents(self.campus_resolved)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        new = super().copy(*args, **kwargs)
        new.campus_resolved = self.campus_resolved
        return new

    with_options = copy


class OpenAIClients:
    """The sync and async openai SDK clients of one connection, each built on first use.

    They send through the connection's HTTP clients on the SDK's own HTTP library (same
    transport, limiter and retry policy as everything else) and never retry themselves.
    Given ``http_client``/``http_async_client`` of the caller's own, the SDK uses those
    instead (and then holds the real key, since campusllm's transport is not there to set it).

    Example:
        >>> from campusllm.connection import connect
        >>> conn = connect("sjtu:deepseek-chat", api_key="sk-example",
        ...                base_url="http://127.0.0.1:9/v1")
        >>> conn.openai.sync.max_retries
        0
    """

    def __init__(
        self,
        conn: SdkConnection,
        *,
        timeout: Any = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        http_client: Any = None,
        http_async_client: Any = None,
    ) -> None:
        self._conn = conn
        self._timeout = conn.timeout if timeout is None else timeout
        self._headers = dict(default_headers) if default_headers else None
        self._query = dict(default_query) if default_query else None
        self._http_client = http_client
        self._http_async_client = http_async_client

    @classmethod
    def on(cls, conn: SdkConnection) -> OpenAIClients:
        """The clients of ``conn`` with its own timeout and HTTP clients."""
        return cls(conn)

    def _options(self, own_client: Any) -> dict[str, Any]:
        key = _KEY_SET_BY_TRANSPORT if own_client is None else self._conn.api_key.get_secret_value()
        return {
            "api_key": key,
            "base_url": self._conn.resolved.base_url,
            "timeout": self._timeout,
            "max_retries": 0,  # one retry layer: campusllm's transport (limiter-aware)
            "default_headers": self._headers,
            "default_query": self._query,
        }

    @cached_property
    def sync(self) -> openai.OpenAI:
        """The sync client."""
        own = self._http_client
        http = own if own is not None else self._conn.http_clients(sdk_http_library())[0]
        client = _OpenAI(**self._options(own), http_client=http)
        client.campus_resolved = self._conn.resolved
        return client

    @cached_property
    def async_(self) -> openai.AsyncOpenAI:
        """The async client (the transport keeps connections per event loop)."""
        own = self._http_async_client
        http = own if own is not None else self._conn.http_clients(sdk_http_library())[1]
        client = _AsyncOpenAI(**self._options(own), http_client=http)
        client.campus_resolved = self._conn.resolved
        return client

    # The rest of the seam, for this connection's model: an adapter holding a connection
    # reaches it through ``connection.openai`` and never imports the SDK itself.

    def arguments(
        self, payload: Mapping[str, Any], *, thinking: bool | None = None
    ) -> dict[str, Any]:
        """:func:`sdk_arguments` for this connection's model."""
        return sdk_arguments(payload, self._conn.resolved, thinking=thinking)

    def error(self, exc: BaseException) -> BaseException:
        """:func:`map_sdk_error` for this connection's model."""
        return map_sdk_error(exc, self._conn.resolved)

    @staticmethod
    def chunks(stream: Iterator[Any], guard: StreamGuard) -> Iterator[dict[str, Any]]:
        """:func:`stream_chunks`."""
        return stream_chunks(stream, guard)

    @staticmethod
    def achunks(stream: AsyncIterator[Any], guard: StreamGuard) -> AsyncIterator[dict[str, Any]]:
        """:func:`astream_chunks`."""
        return astream_chunks(stream, guard)

    @staticmethod
    def as_dict(obj: Any) -> dict[str, Any]:
        """:func:`as_dict`."""
        return as_dict(obj)

    def completion(self, obj: Any) -> WireMessage:
        """:func:`completion` for this connection's model."""
        return completion(obj, self._conn.resolved)


# --------------------------------------------------------------------------- requests


@lru_cache(maxsize=1)
def _sdk_body_params() -> frozenset[str]:
    """Body fields ``chat.completions.create()`` takes as keywords; the rest go in extra_body."""
    spec = CompletionCreateParamsStreaming  # the SDK's own list of the body's fields
    params = set(spec.__required_keys__ | spec.__optional_keys__)
    # response_format as a keyword makes frameworks switch to the SDK's parse()/stream
    # helpers, which would parse raw content (think tags included) themselves.
    params.discard("response_format")
    return frozenset(params)


def sdk_arguments(
    payload: Mapping[str, Any], resolved: ResolvedModel, *, thinking: bool | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create()`` from a request body.

    The body goes through :func:`~campusllm.wire.prepare_chat_payload` first (the caller's
    own ``extra_body`` merged in, so the registry's rules see it); fields the SDK does not
    know (``chat_template_kwargs``, ``stop_token_ids``…) then travel in ``extra_body``. A
    ``stream_options`` of ``None`` means "no usage chunk" and is dropped.
    """
    body = dict(payload)
    extra = body.pop("extra_body", None) or {}
    prepared = prepare_chat_payload({**body, **dict(extra)}, resolved, thinking=thinking)
    if prepared.get("stream_options", 0) is None:
        prepared.pop("stream_options")
    known = _sdk_body_params()
    kwargs: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    for k, v in prepared.items():
        if k in known or k in _SDK_OPTIONS:
            kwargs[k] = v
        else:
            extra_body[k] = v
    if extra_body:
        kwargs["extra_body"] = extra_body
    return kwargs


def as_dict(obj: Any) -> dict[str, Any]:
    """An SDK response object (or a dict) as a plain dict, for the wire layer to parse."""
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        # warnings=False: a body of the wrong shape is the wire layer's to report
        return dict(to_dict(warnings=False))
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dict(dump(warnings=False))
    return {"value": obj}  # parse_completion turns a wrong shape into ProtocolError


def completion(obj: Any, resolved: ResolvedModel) -> WireMessage:
    """A whole answer the SDK returned, parsed (:func:`~campusllm.answers.read_completion`).

    The SDK hands back the body's text when it is not JSON (an HTML login page): that text
    is judged like any other answer, never taken for a completion of the wrong shape.
    """
    return read_completion(obj if isinstance(obj, (str, bytes)) else as_dict(obj), resolved)


# --------------------------------------------------------------------------- errors


def _error_event(exc: BaseException) -> dict[str, Any] | None:
    """The ``{"error": ...}`` body of a gateway error event the SDK raised, if ``exc`` is one."""
    for e in exception_chain(exc):
        if isinstance(
            e,
            (openai.APIStatusError, openai.APIConnectionError, openai.APIResponseValidationError),
        ):
            return None
        if isinstance(e, openai.APIError):
            if e.body is not None:
                body = e.body if isinstance(e.body, dict) else {"message": str(e.body)}
                return {"error": body}
            return {"error": {"message": e.message}}
    return None


def _is_ours(exc: BaseException) -> bool:
    """SDK, HTTP-library and wire-decoding errors: the kinds campusllm types."""
    return any(
        isinstance(e, (openai.OpenAIError, json.JSONDecodeError, UnicodeDecodeError))
        or is_http_error(e)
        for e in exception_chain(exc)
    )


def map_sdk_error(exc: BaseException, resolved: ResolvedModel) -> BaseException:
    """The typed error an SDK call's exception stands for; ``exc`` itself if not ours to type.

    The chain is walked to the bottom: an HTTP status error maps by its status and body, a
    connection error by the HTTP-library error underneath it (a read error mid-answer is not a
    refused connection), a timeout to :class:`~campusllm.errors.TimeoutError`, an answer of
    the wrong shape to :class:`~campusllm.errors.ProtocolError`.
    """
    scrub(exc)  # gateways echo rejected keys; tracebacks print the whole chain
    if isinstance(exc, CampusLLMError):
        return exc
    if not _is_ours(exc):
        return exc
    for e in exception_chain(exc):
        if isinstance(e, CampusLLMError):
            return e
        if isinstance(e, openai.APIStatusError):
            # the response is the SDK library's (httpx2); its API is httpx's
            return error_from_response(e.response, resolved, _status_body(e))  # type: ignore[arg-type]
        if isinstance(e, json.JSONDecodeError):  # a body labelled JSON that is not
            return _not_json(e, resolved)
        if is_http_error(e) or isinstance(e, UnicodeDecodeError):
            return error_from_exception(e, resolved)
    for e in exception_chain(exc):
        if isinstance(e, openai.APITimeoutError):
            return timeout_error(resolved, type(e).__name__)
        if isinstance(e, openai.APIConnectionError):
            return connect_error(resolved, f"{type(e).__name__}: {redact(str(e), 200)}")
    event = _error_event(exc)
    if event is not None:
        return StreamGuard(resolved).error_event(event)
    return ProtocolError(
        f"{resolved.key} answered in an unexpected shape: {redact(str(exc), 200)}",
        hint="Check that the base URL points at an OpenAI-compatible API.",
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def stream_error(exc: BaseException, guard: StreamGuard) -> BaseException:
    """The error a failing SDK stream raises (``exc`` itself when it is not ours to type).

    A gateway error event becomes the typed error for its code, carrying what arrived
    before it; a broken connection or unreadable chunk after output began becomes
    :class:`~campusllm.errors.StreamInterruptedError` with the partial output.
    """
    scrub(exc)
    if isinstance(exc, CampusLLMError):  # from the decoder (an unreadable event) or the guard
        return guard.failure(exc)
    event = _error_event(exc)
    if event is not None:
        return guard.error_event(event)
    mapped = map_sdk_error(exc, guard.resolved)
    if not isinstance(mapped, CampusLLMError):
        return mapped
    return guard.failure(mapped)


def _not_json(exc: json.JSONDecodeError, resolved: ResolvedModel) -> CampusLLMError:
    """A body sent as JSON that is not (an HTML login page says what it is)."""
    try:
        answer_json(exc.doc, resolved)
    except CampusLLMError as e:
        return e
    return error_from_exception(exc, resolved)  # pragma: no cover - it failed to parse before


def _status_body(exc: openai.APIStatusError) -> bytes:
    try:
        content: bytes = exc.response.content
        return content
    except RuntimeError:  # a streamed response nobody read
        return json.dumps(exc.body).encode() if exc.body is not None else b""


def stream_chunks(stream: Iterator[Any], guard: StreamGuard) -> Iterator[dict[str, Any]]:
    """The chunks of an SDK stream as dicts; a failure raises the error :func:`stream_error` picks.

    Feed each chunk to ``guard`` (it raises the gateway's errors in chunks), then call
    ``guard.end()``: this sets ``guard.done`` when the stream ended with ``[DONE]``.
    """
    chunks = iter(stream)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:  # the SDK stops at [DONE]; without it StreamEnded comes first
            guard.done = True
            return
        except StreamEnded:
            return
        except Exception as e:
            mapped = stream_error(e, guard)
            if mapped is e:
                raise
            raise mapped from e
        yield as_dict(chunk)


async def astream_chunks(
    stream: AsyncIterator[Any], guard: StreamGuard
) -> AsyncIterator[dict[str, Any]]:
    """Async :func:`stream_chunks`."""
    chunks = stream.__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            guard.done = True
            return
        except StreamEnded:
            return
        except Exception as e:
            mapped = stream_error(e, guard)
            if mapped is e:
                raise
            raise mapped from e
        yield as_dict(chunk)
