"""Framework-free text completion: a prompt to ``/completions``, through the shared limiter.

The counterpart of :class:`~campusllm.chat.ChatCaller` for the text-completion endpoint that
MaaS platforms (and every vLLM server) serve beside chat. The LangChain ``CampusLLMCompletion``,
LlamaIndex's ``CampusLLM.complete()`` on completion models and ``campusllm complete`` all send
through it. Requests go out on the connection's HTTP clients (key, limiter, retries of
429/5xx), answers are parsed by :mod:`campusllm.wire.text` (reasoning split by the prompt), and
a failing stream ends by the chat rules (:class:`~campusllm.streaming.StreamGuard`).

Example:
    >>> from campusllm.sim import SIM_KEY, Simulator
    >>> with Simulator() as sim, CompletionCaller("maas:Qwen2-72B", api_key=SIM_KEY,
    ...                                           base_url=sim.url("maas")) as caller:
    ...     text = caller.invoke("Once upon a time").content
    ...     streamed = "".join(d.content for d in caller.stream("Once upon a time"))
    >>> text == streamed and "Once upon a time" in text
    True
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .caller import Caller
from .capabilities import require_completions
from .errors import CampusLLMError, CapabilityError, ProtocolError, redact
from .registry import ResolvedModel
from .streaming import StreamGuard
from .transport import error_from_exception, error_from_response
from .transport.library import is_http_error
from .wire import Delta, WireMessage
from .wire.error_body import error_event_body
from .wire.sse import SSEEvent, event_json, iter_sse_events
from .wire.text import (
    as_chat_chunk,
    parse_text_completion,
    prepare_completion_payload,
    text_reasoning_spec,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["CompletionCaller", "TextStream", "AsyncTextStream"]


class CompletionCaller(Caller):
    """Send text-completion requests for one model, applying the registry's request rules.

    ``model`` is ``"provider:model"``, a resolved model, or a :class:`Connection` to share
    (the adapters pass theirs). The model must serve ``/completions``
    (``endpoint = "completions"`` or ``"both"`` in the catalog; models the catalog does not
    know are let through): otherwise :class:`~campusllm.errors.CapabilityError` before any
    request. ``timeout`` (total seconds of one attempt, default
    :data:`~campusllm.connection.DEFAULT_CHAT_TIMEOUT`), ``read_timeout``, ``max_retries`` and
    ``retry`` are :class:`~campusllm.chat.ChatCaller`'s.

    Example:
        >>> caller = CompletionCaller("maas:QwQ-32B", api_key="sk-example",
        ...                           base_url="http://127.0.0.1:9/v1")
        >>> caller.body("Q: 1+1?\\n<think>\\n", stop=["Q:"])["stop"]
        ['Q:']
        >>> CompletionCaller("sjtu:glm", api_key="sk-example")
        Traceback (most recent call last):
        ...
        campusllm.errors.CapabilityError: sjtu:glm-5.1 is documented for chat only: ...
    """

    def _accept(self, resolved: ResolvedModel) -> None:
        require_completions(resolved)

    @property
    def url(self) -> str:
        """The ``/completions`` URL of the model's gateway."""
        return self.resolved.base_url.rstrip("/") + "/completions"

    def body(
        self,
        prompt: str,
        *,
        stop: list[str] | None = None,
        stream: bool = False,
        thinking: bool | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """The request body: ``prompt``, ``stop`` and extra keys, with the registry's defaults.

        ``thinking`` is refused (:class:`~campusllm.errors.CapabilityError`): thinking is
        switched through the chat template, and ``/completions`` applies none.
        """
        if thinking is not None:
            raise CapabilityError(
                f"{self.resolved.key} completes text without a chat template, so thinking "
                "cannot be switched per request.",
                hint="Leave thinking unset; write the switch into the prompt if the model's "
                "format has one (e.g. an empty <think></think> block).",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
            )
        payload: dict[str, Any] = {"prompt": prompt, **kw}
        if stop:
            payload["stop"] = list(stop)
        return prepare_completion_payload(payload, self.resolved, stream=stream)

    # -- whole answers -----------------------------------------------------------------

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a prepared body (not streamed); the answer's JSON, or the typed error."""
        try:
            resp = self.connection.http.post(self.url, json=body)
        except Exception as e:
            if not is_http_error(e):
                raise
            raise error_from_exception(e, self.resolved) from e
        return self._json(resp)

    async def apost(self, body: dict[str, Any]) -> dict[str, Any]:
        """Async :meth:`post`."""
        try:
            resp = await self.connection.ahttp.post(self.url, json=body)
        except Exception as e:
            if not is_http_error(e):
                raise
            raise error_from_exception(e, self.resolved) from e
        return self._json(resp)

    def _json(self, resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code >= 400:
            raise error_from_response(resp, self.resolved)
        try:
            data = resp.json()
        except ValueError as e:
            raise ProtocolError(
                f"The gateway answered non-JSON: {redact(resp.text, 200)!r}",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
            ) from e
        if not isinstance(data, dict):
            raise ProtocolError(
                f"The gateway's answer is not a JSON object: {redact(resp.text, 200)!r}",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
            )
        return data

    def parse(self, data: dict[str, Any], prompt: str) -> WireMessage:
        """Parse an answer of :meth:`post`; errors name this provider and model."""
        try:
            return parse_text_completion(data, prompt)
        except CampusLLMError as e:
            e.provider = e.provider or self.resolved.provider.name
            e.model = e.model or self.resolved.model.id
            raise

    def invoke(self, prompt: str, *, stop: list[str] | None = None, **kw: Any) -> WireMessage:
        """Complete ``prompt``; the text is ``.content``, any reasoning ``.reasoning``."""
        return self.parse(self.post(self.body(prompt, stop=stop, **kw)), prompt)

    async def ainvoke(
        self, prompt: str, *, stop: list[str] | None = None, **kw: Any
    ) -> WireMessage:
        """Async :meth:`invoke`."""
        return self.parse(await self.apost(self.body(prompt, stop=stop, **kw)), prompt)

    # -- streams -----------------------------------------------------------------------

    def stream(self, prompt: str, *, stop: list[str] | None = None, **kw: Any) -> TextStream:
        """Stream ``prompt``'s completion: iterate the result for :class:`Delta` objects.

        The returned :class:`TextStream` also has :meth:`TextStream.message`, everything
        assembled (authoritative at the end, see :meth:`StreamGuard.message`).
        """
        return TextStream(self, self.body(prompt, stop=stop, stream=True, **kw), prompt)

    def astream(self, prompt: str, *, stop: list[str] | None = None, **kw: Any) -> AsyncTextStream:
        """Async :meth:`stream`: ``async for delta in caller.astream(prompt)``."""
        return AsyncTextStream(self, self.body(prompt, stop=stop, stream=True, **kw), prompt)

    def guard(self, prompt: str) -> StreamGuard:
        """A stream guard whose think-tag splitter starts where ``prompt`` leaves off."""
        model = self.resolved.model.model_copy(update={"reasoning": text_reasoning_spec(prompt)})
        return StreamGuard(self.resolved.model_copy(update={"model": model}))


class _Frames:
    """SSE framing line by line (sync and async alike); remembers whether ``[DONE]`` came."""

    def __init__(self) -> None:
        self.block: list[str] = []
        self.done = False

    def line(self, raw: str) -> list[SSEEvent]:
        self.block.append(raw)
        if raw.rstrip("\r\n"):
            return []
        return self.end()

    def end(self) -> list[SSEEvent]:
        block, self.block = self.block, []
        events = list(iter_sse_events(block))
        data = [b.rstrip("\r\n")[5:].strip() for b in block if b.startswith("data:")]
        if data == ["[DONE]"]:
            self.done = True
        return events


class _StreamRun:
    """What the sync and async streams share: one guard, feeding, and how the stream ends."""

    def __init__(self, caller: CompletionCaller, body: dict[str, Any], prompt: str) -> None:
        self.caller = caller
        self.body = body
        self.guard = caller.guard(prompt)
        self.frames = _Frames()
        self._used = False

    def _start(self) -> None:
        if self._used:
            raise RuntimeError("A text stream can be iterated only once.")
        self._used = True

    def message(self) -> WireMessage:
        """Everything received so far (final once the stream is exhausted)."""
        return self.guard.message()

    def _opened(self, resp: httpx.Response) -> bool:
        """Whether the answer is one JSON body instead of SSE (read it whole)."""
        kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        return kind == "application/json"

    def _whole(self, text: str) -> Delta:
        # A gateway that ignores stream=true answers one body: it is the one chunk.
        try:
            data = event_json(text)
        except ProtocolError as e:
            raise self.guard.failure(e) from e
        self.frames.done = True
        return self.guard.feed(as_chat_chunk(data))

    def _event(self, event: SSEEvent) -> Delta:
        if event.event == "error":
            raise self.guard.error_event(error_event_body(event.data))
        try:
            chunk = event_json(event.data)
        except ProtocolError as e:
            raise self.guard.failure(e) from e
        return self.guard.feed(as_chat_chunk(chunk))

    def _broken(self, e: Exception) -> CampusLLMError:
        return self.guard.failure(error_from_exception(e, self.caller.resolved))

    def _end(self) -> Delta:
        resolved = self.caller.resolved
        if not self.guard.started:
            raise ProtocolError(
                f"The stream from {resolved.key} ended before any completion arrived.",
                hint="The gateway or a proxy in between closed an empty stream; retry, or "
                "use a non-streaming call.",
                provider=resolved.provider.name,
                model=resolved.model.id,
            )
        if not self.frames.done and self.guard.message().finish_reason is None:
            raise self.guard.failure(
                ProtocolError(
                    f"The stream from {resolved.key} ended without a finish_reason or [DONE]: "
                    "the text may be cut off.",
                    provider=resolved.provider.name,
                    model=resolved.model.id,
                )
            )
        return self.guard.finish()


class TextStream(_StreamRun):
    """One streamed completion: iterate it (once) for deltas; :meth:`message` for the whole.

    Example:
        >>> from campusllm.sim import SIM_KEY, Simulator
        >>> with Simulator() as sim:
        ...     caller = CompletionCaller("maas:QwQ-32B", api_key=SIM_KEY,
        ...                               base_url=sim.url("maas"))
        ...     stream = caller.stream("Question: 1+1?\\n<think>\\n")
        ...     deltas = list(stream)
        ...     caller.close()
        >>> bool(stream.message().reasoning), stream.message().finish_reason
        (True, 'stop')
    """

    def __iter__(self) -> Iterator[Delta]:
        self._start()
        resolved = self.caller.resolved
        try:
            with self.caller.connection.http.stream("POST", self.caller.url, json=self.body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise error_from_response(r, resolved)
                if self._opened(r):
                    yield self._whole(r.read().decode("utf-8", "replace"))
                else:
                    for event in self._events(r):
                        yield self._event(event)
                yield self._end()
        except CampusLLMError:
            raise
        except Exception as e:  # opening the stream failed: nothing was received
            if not is_http_error(e):
                raise
            raise error_from_exception(e, resolved) from e

    def _events(self, resp: httpx.Response) -> Iterator[SSEEvent]:
        lines = resp.iter_lines()
        while True:
            try:
                line = next(lines)
            except StopIteration:
                yield from self.frames.end()
                return
            except Exception as e:
                if not is_http_error(e):
                    raise
                raise self._broken(e) from e
            yield from self.frames.line(line)


class AsyncTextStream(_StreamRun):
    """Async twin of :class:`TextStream`: ``async for delta in stream``.

    Example:
        >>> import asyncio
        >>> from campusllm.sim import SIM_KEY, Simulator
        >>> async def complete(url: str) -> str:
        ...     async with CompletionCaller("maas:Qwen2-72B", api_key=SIM_KEY,
        ...                                 base_url=url) as caller:
        ...         stream = caller.astream("Once upon a time")
        ...         async for _ in stream:
        ...             pass
        ...         return stream.message().finish_reason
        >>> with Simulator() as sim:
        ...     asyncio.run(complete(sim.url("maas")))
        'stop'
    """

    async def __aiter__(self) -> AsyncIterator[Delta]:
        self._start()
        resolved = self.caller.resolved
        try:
            async with self.caller.connection.ahttp.stream(
                "POST", self.caller.url, json=self.body
            ) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise error_from_response(r, resolved)
                if self._opened(r):
                    yield self._whole((await r.aread()).decode("utf-8", "replace"))
                else:
                    async for event in self._events(r):
                        yield self._event(event)
                yield self._end()
        except CampusLLMError:
            raise
        except Exception as e:  # opening the stream failed: nothing was received
            if not is_http_error(e):
                raise
            raise error_from_exception(e, resolved) from e

    async def _events(self, resp: httpx.Response) -> AsyncIterator[SSEEvent]:
        lines = resp.aiter_lines()
        while True:
            try:
                line = await lines.__anext__()
            except StopAsyncIteration:
                for event in self.frames.end():
                    yield event
                return
            except Exception as e:
                if not is_http_error(e):
                    raise
                raise self._broken(e) from e
            for event in self.frames.line(line):
                yield event
