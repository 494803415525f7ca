"""How a stream ends, well or badly: one rule for every path that streams.

The LangChain and LlamaIndex adapters stream through the openai SDK, the CLI through
campusllm's own reader; all of them read the body with :class:`~campusllm.answers.AnswerReader`
(directly, or inside the SDK's SSE decoder), feed chunks to a :class:`StreamGuard` and ask it
how the stream ended, so the same gateway behaviour gives the same result everywhere:

* a stream is complete when ``[DONE]`` or a ``finish_reason`` arrived (either is enough);
  one that ends without both after output started is cut:
  :class:`~campusllm.errors.StreamInterruptedError` with the partial content, reasoning and
  tool calls (never an answer that silently lacks its end);
* a stream with no output at all (``[DONE]`` alone) is a
  :class:`~campusllm.errors.ProtocolError`, not an empty answer;
* a gateway error event in the stream (``data: {"error": {...}}``, ``event: error``) is the
  typed error for its code — :class:`~campusllm.errors.RateLimitError` for 429,
  :class:`~campusllm.errors.ServerError` for 5xx… (the HTTP status mapping), or
  :class:`~campusllm.errors.BadRequestError` without a code — carrying the output received
  before it;
* a broken connection or an unreadable chunk after output began is
  :class:`~campusllm.errors.StreamInterruptedError` with the partial output; before any
  output it is the plain typed error (nothing is lost).

Streams are never resent once they started, so nothing is duplicated either.

Example:
    >>> from campusllm.registry import resolve
    >>> guard = StreamGuard(resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1"))
    >>> guard.feed({"choices": [{"delta": {"content": "The answer is"}}]}).content
    'The answer is'
    >>> err = guard.error_event({"error": {"message": "upstream overloaded", "code": 503}})
    >>> type(err).__name__, err.partial_content
    ('ServerError', 'The answer is')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .answers import gateway_error
from .errors import CampusLLMError, ProtocolError, StreamInterruptedError
from .registry import ResolvedModel
from .wire.error_body import GatewayError, parse_gateway_error
from .wire.messages import Delta, WireMessage
from .wire.stream import StreamAssembler

__all__ = ["StreamGuard", "StreamEnded"]


class StreamEnded(ProtocolError):
    """A stream's body ended without ``[DONE]``: raised by a reader that cannot say so otherwise.

    The openai SDK stops reading at ``[DONE]`` and says nothing about how a stream ended;
    campusllm's SSE decoder inside it raises this at the end of a body without ``[DONE]``.
    Whoever iterates the SDK stream catches it and leaves the verdict to
    :meth:`StreamGuard.end` (a ``finish_reason`` makes the stream complete after all).

    Example:
        >>> issubclass(StreamEnded, ProtocolError)
        True
    """

    def __init__(self) -> None:
        super().__init__("The stream ended without [DONE].")


class StreamGuard:
    """One stream's assembler, and how the stream ends.

    :meth:`feed` each chunk (a gateway error chunk raises); set :attr:`done` when ``[DONE]``
    arrives and call :meth:`end` when the body ends (it raises for a cut or empty stream); on
    an exception from the transport, raise :meth:`failure` of its typed error; on an
    ``event: error``, raise :meth:`error_event`. Every error carries the output received so
    far.

    Example:
        >>> from campusllm.errors import UnreachableError
        >>> from campusllm.registry import resolve
        >>> guard = StreamGuard(resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1"))
        >>> _ = guard.feed({"choices": [{"delta": {"content": "Hel"}}]})
        >>> err = guard.failure(UnreachableError("connection reset"))
        >>> type(err).__name__, err.partial_content
        ('StreamInterruptedError', 'Hel')
    """

    def __init__(self, resolved: ResolvedModel) -> None:
        self.resolved = resolved
        self.assembler = StreamAssembler(resolved.model.reasoning)
        self.started = False
        """Whether any chunk arrived (after that, a break keeps the partial output)."""
        self.done = False
        """Whether ``[DONE]`` arrived; set by the reader of the stream."""

    def feed(self, chunk: Any) -> Delta:
        """Take one ``chat.completion.chunk``; raise the gateway's error if it is one."""
        try:
            delta = self.assembler.feed(chunk)
        except CampusLLMError as e:
            # the assembler refuses error chunks and non-chunks alike; which one was it?
            found = parse_gateway_error(chunk)
            if found is not None:
                raise self._gateway_error(found, chunk) from None
            raise self.failure(e) from None  # a chunk that is not one: the stream is unusable
        self.started = True
        return delta

    def end(self) -> Delta:
        """The stream ended without an error: its last delta, or the error for how it ended.

        Complete when :attr:`done` (``[DONE]`` came) or a ``finish_reason`` arrived: the last
        delta is what the assembler held back (see :meth:`StreamAssembler.finish`). Cut after
        output began: :class:`StreamInterruptedError` with the partial output. No output at
        all: :class:`ProtocolError` (an empty answer is not an answer).

        Example:
            >>> from campusllm.registry import resolve
            >>> guard = StreamGuard(resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1"))
            >>> _ = guard.feed({"choices": [{"delta": {"content": "<think>plan A</thi"}}]})
            >>> try:
            ...     guard.end()
            ... except StreamInterruptedError as e:
            ...     print(repr(e.partial_reasoning), repr(e.partial_content))
            'plan A' ''
        """
        asm = self.assembler
        complete = self.done or asm.finish_reason is not None
        if not asm.has_output and asm.finish_reason is None:
            when = "with [DONE] and nothing else" if self.done else "before any output"
            raise ProtocolError(
                f"{self.resolved.key} answered with no output: the stream ended {when}.",
                hint="The gateway accepted the request but produced nothing; retry, or try "
                "stream=False. If it keeps happening, the model behind the gateway may be "
                "failing.",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
            )
        if not complete:
            raise StreamInterruptedError(
                f"The stream from {self.resolved.key} was cut: it ended without [DONE] or a "
                "finish_reason after output had started.",
                hint="The partial output is kept on this error (partial_content, "
                "partial_reasoning, partial_tool_calls); the request was not retried, so "
                "nothing is duplicated. A proxy or the gateway closed the connection early.",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
                **self._partial(),
            )
        return asm.finish()

    def finish(self) -> Delta:
        """What the assembler held back, without judging how the stream ended (see :meth:`end`)."""
        return self.assembler.finish()

    def message(self) -> WireMessage:
        """Everything received so far."""
        return self.assembler.message()

    def error_event(self, body: Mapping[str, Any]) -> CampusLLMError:
        """The error for an error event the gateway sent (``{"error": {...}}``)."""
        found = parse_gateway_error(body, known_error=True) or GatewayError(None)
        return self._gateway_error(found, body)

    def failure(self, error: CampusLLMError) -> CampusLLMError:
        """The error to raise for a transport or framing failure already typed as ``error``.

        Before any output: ``error`` itself. After: :class:`StreamInterruptedError` with the
        partial output (``status_code`` kept). An error that already carries partial output
        (a gateway error event) is returned as it is.
        """
        if not self.assembler.has_output or isinstance(error, StreamInterruptedError):
            return error
        if error.partial_content or error.partial_reasoning or error.partial_tool_calls:
            return error
        return StreamInterruptedError(
            f"The stream from {self.resolved.key} broke after output had started: {error.message}",
            hint="The partial output is kept on this error (partial_content, "
            "partial_reasoning, partial_tool_calls); the request was not retried, so nothing "
            "is duplicated.",
            status_code=error.status_code,
            provider=self.resolved.provider.name,
            model=self.resolved.model.id,
            **self._partial(),
        )

    def _partial(self) -> dict[str, Any]:
        got = self.assembler.message()
        return {
            "partial_content": got.content,
            "partial_reasoning": got.reasoning,
            "partial_tool_calls": [
                {"index": tc.index, "id": tc.id, "name": tc.name, "arguments": tc.arguments}
                for tc in got.tool_calls
            ],
        }

    def _gateway_error(self, found: GatewayError, body: Mapping[str, Any]) -> CampusLLMError:
        return gateway_error(
            found, body, self.resolved, during_stream=True, started=self.started, **self._partial()
        )
