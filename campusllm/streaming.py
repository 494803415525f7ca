"""How a stream ends when it fails: one rule for every path that streams.

The LangChain and LlamaIndex adapters stream through the openai SDK, the CLI through
campusllm's own SSE reader; all three feed chunks to a :class:`StreamGuard` and ask it what
to raise, so the same fault gives the same error everywhere:

* a gateway error event in the stream (``data: {"error": {...}}``, ``event: error``) is the
  typed error for its code — :class:`~campusllm.errors.RateLimitError` for 429,
  :class:`~campusllm.errors.ServerError` for 5xx… (the HTTP status mapping), or
  :class:`~campusllm.errors.BadRequestError` without a code — carrying the output received
  before it;
* a broken connection or an unreadable chunk after output began is
  :class:`~campusllm.errors.StreamInterruptedError` with the partial content, reasoning and
  tool calls; before any output it is the plain typed error (nothing is lost).

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

import json
from collections.abc import Mapping
from typing import Any

from .errors import BadRequestError, CampusLLMError, StreamInterruptedError
from .registry import ResolvedModel
from .transport.errors import error_for_status
from .wire.error_body import GatewayError, parse_gateway_error
from .wire.messages import Delta, WireMessage
from .wire.stream import StreamAssembler

__all__ = ["StreamGuard"]


class StreamGuard:
    """One stream's assembler, and the errors it ends with when something goes wrong.

    :meth:`feed` each chunk (a gateway error chunk raises); on an exception from the
    transport, raise :meth:`failure` of its typed error; on an ``event: error``, raise
    :meth:`error_event`. Every error carries the output received so far.

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

    def finish(self) -> Delta:
        """End of stream: what the assembler held back (see :meth:`StreamAssembler.finish`)."""
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
        if not self.started or isinstance(error, StreamInterruptedError):
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
        text = json.dumps(body, ensure_ascii=False, default=str)
        status = found.status
        if status is not None:
            return error_for_status(
                status,
                self.resolved,
                message=found.describe(),
                body=text,
                during_stream=True,
                **self._partial(),
            )
        detail = ", ".join(f"{k}={v}" for k, v in (("type", found.type), ("code", found.code)) if v)
        return BadRequestError(
            f"The gateway returned an error: {found.describe()}"
            + (f" ({detail})" if detail else ""),
            hint="What arrived before the error is kept on it (partial_content, "
            "partial_reasoning, partial_tool_calls)."
            if self.started
            else None,
            body=text,
            provider=self.resolved.provider.name,
            model=self.resolved.model.id,
            **self._partial(),
        )
