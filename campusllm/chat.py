"""Framework-free chat calls: one request through the shared limiter/retry layer, SSE parsed here.

The LangChain and LlamaIndex adapters go through the openai SDK; this module serves the CLI and
anyone who wants reasoning-aware chat without a framework. A failing stream ends by the same
rules as the adapters' (:class:`~campusllm.streaming.StreamGuard`).

Example:
    >>> from campusllm.sim import SIM_KEY, Simulator
    >>> with Simulator() as sim, ChatCaller("sjtu:deepseek-reasoner", api_key=SIM_KEY,
    ...                                     base_url=sim.url("sjtu")) as caller:
    ...     deltas = list(caller.stream([{"role": "user", "content": "hi"}]))
    >>> any(d.reasoning for d in deltas) and any(d.content for d in deltas)
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .answers import AnswerReader, answer_json, read_completion
from .caller import Caller
from .errors import CampusLLMError, ProtocolError
from .streaming import StreamGuard
from .transport import error_from_exception, error_from_response
from .transport.library import is_http_error
from .wire import Delta, WireMessage, prepare_chat_payload
from .wire.error_body import error_event_body
from .wire.sse import SSEEvent, event_json

if TYPE_CHECKING:
    import httpx

__all__ = ["ChatCaller"]


class ChatCaller(Caller):
    """Send chat requests for one resolved model, applying the registry's request rules.

    The arguments are :class:`~campusllm.caller.Caller`'s, as both adapters' chat models take
    them (``timeout`` is the total of one attempt, ten minutes by default).

    Example:
        >>> caller = ChatCaller("sjtu:deepseek-chat", api_key="sk-example",
        ...                     base_url="http://127.0.0.1:9/v1", read_timeout=60, max_retries=2)
        >>> caller.connection.timeouts.total, caller.connection.timeouts.read
        (600.0, 60.0)
        >>> caller.connection.retry.max_retries
        2
        >>> caller.close()
    """

    def _payload(
        self, messages: list[dict[str, Any]], stream: bool, thinking: bool | None, **kw: Any
    ) -> dict[str, Any]:
        body = {"model": self.resolved.wire_model, "messages": messages, "stream": stream, **kw}
        return prepare_chat_payload(body, self.resolved, thinking=thinking)

    def _url(self) -> str:
        return self.resolved.base_url.rstrip("/") + "/chat/completions"

    def invoke(
        self, messages: list[dict[str, Any]], *, thinking: bool | None = None, **kw: Any
    ) -> WireMessage:
        """Send one non-streaming request and return the parsed message."""
        body = self._payload(messages, False, thinking, **kw)
        try:
            resp = self.connection.http.post(self._url(), json=body)
        except Exception as e:
            if not is_http_error(e):
                raise
            raise error_from_exception(e, self.resolved) from e
        if resp.status_code >= 400:
            raise error_from_response(resp, self.resolved)
        data = answer_json(resp.content, self.resolved, resp.headers.get("content-type"))
        return read_completion(data, self.resolved)

    def stream(
        self, messages: list[dict[str, Any]], *, thinking: bool | None = None, **kw: Any
    ) -> Iterator[Delta]:
        """Stream deltas, reasoning and content already split; a broken stream keeps partials."""
        body = self._payload(messages, True, thinking, **kw)
        guard = StreamGuard(self.resolved)
        try:
            with self.connection.http.stream("POST", self._url(), json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise error_from_response(resp, self.resolved)
                for event in self._events(resp, guard):
                    if event.event == "error":
                        raise guard.error_event(error_event_body(event.data))
                    if event.is_done:
                        break
                    try:
                        chunk = event_json(event.data)
                    except ProtocolError as e:
                        raise guard.failure(e) from e
                    yield guard.feed(chunk)
                yield guard.end()
        except CampusLLMError:
            raise
        except Exception as e:  # opening the stream failed: nothing was received
            if not is_http_error(e):
                raise
            raise error_from_exception(e, self.resolved) from e

    def _events(self, resp: httpx.Response, guard: StreamGuard) -> Iterator[SSEEvent]:
        """The body's events (:class:`~campusllm.answers.AnswerReader`); ``[DONE]`` sets
        ``guard.done``, a broken connection raises what :meth:`StreamGuard.failure` picks."""
        reader = AnswerReader(self.resolved, resp.headers.get("content-type"))
        pieces = resp.iter_bytes()
        while True:
            try:
                piece = next(pieces, None)
                events = reader.feed(piece) if piece is not None else reader.end()
            except CampusLLMError as e:
                raise guard.failure(e) from e
            except Exception as e:
                if not is_http_error(e):
                    raise
                raise guard.failure(error_from_exception(e, self.resolved)) from e
            for event in events:
                if event.is_done:
                    guard.done = True
                yield event
            if piece is None or reader.done:
                return
