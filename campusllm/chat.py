"""Framework-free chat calls: one request through the shared limiter/retry layer, SSE parsed here.

The LangChain and LlamaIndex adapters go through the openai SDK; this module serves the CLI and
anyone who wants reasoning-aware chat without a framework.

Example:
    >>> from campusllm.chat import ChatCaller  # doctest: +SKIP
    >>> caller = ChatCaller("sjtu:deepseek-reasoner")  # doctest: +SKIP
    >>> for delta in caller.stream([{"role": "user", "content": "hi"}]):  # doctest: +SKIP
    ...     print(delta.reasoning or delta.content, end="")
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from .errors import CampusLLMError, ProtocolError, redact

if TYPE_CHECKING:
    from pydantic import SecretStr

    from .registry import ResolvedModel
    from .wire import Delta, WireMessage

__all__ = ["ChatCaller", "iter_sse_data"]


def iter_sse_data(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield the JSON object of every ``data:`` event until ``[DONE]``.

    Comment lines and other SSE fields are skipped; a data line that is not JSON raises
    :class:`~campusllm.errors.ProtocolError` with a redacted snippet.

    Example:
        >>> list(iter_sse_data(['data: {"a": 1}', "", "data: [DONE]"]))
        [{'a': 1}]
    """
    buf: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if buf:
                data = "\n".join(buf)
                buf = []
                if data.strip() == "[DONE]":
                    return
                yield _load_event(data)
            continue
        if line.startswith(":"):
            continue
        if line.startswith("data:"):
            buf.append(line[5:].lstrip(" "))
        # other fields (event:, id:, retry:) carry nothing we use
    if buf:
        data = "\n".join(buf)
        if data.strip() != "[DONE]":
            yield _load_event(data)


def _load_event(data: str) -> dict[str, Any]:
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


class ChatCaller:
    """Send chat requests for one resolved model, applying the registry's request rules.

    Example:
        >>> caller = ChatCaller("sjtu:deepseek-chat", api_key="sk-sim-local",
        ...                     base_url="http://127.0.0.1:1/sjtu/api/v1")  # doctest: +SKIP
        >>> caller.invoke([{"role": "user", "content": "hi"}]).content  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | ResolvedModel,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        from .client import CampusClient
        from .registry import ResolvedModel, resolve

        self.resolved = (
            model if isinstance(model, ResolvedModel) else resolve(model, base_url=base_url)
        )
        self._client = CampusClient(self.resolved, api_key, timeout=timeout)
        self._headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"ChatCaller(model={self.resolved.key!r})"

    def _payload(
        self, messages: list[dict[str, Any]], stream: bool, thinking: bool | None, **kw: Any
    ) -> dict[str, Any]:
        from .wire import prepare_chat_payload

        body = {"model": self.resolved.wire_model, "messages": messages, "stream": stream, **kw}
        return prepare_chat_payload(body, self.resolved, thinking=thinking)

    def _url(self) -> str:
        return self.resolved.base_url.rstrip("/") + "/chat/completions"

    def invoke(
        self, messages: list[dict[str, Any]], *, thinking: bool | None = None, **kw: Any
    ) -> WireMessage:
        """Send one non-streaming request and return the parsed message."""
        from .transport import error_from_exception, error_from_response
        from .wire import parse_completion

        body = self._payload(messages, False, thinking, **kw)
        try:
            resp = self._client.http.post(self._url(), json=body, headers=self._headers)
        except httpx.HTTPError as e:
            raise error_from_exception(e, self.resolved) from e
        if resp.status_code >= 400:
            raise error_from_response(resp, self.resolved)
        try:
            data = resp.json()
        except ValueError as e:
            raise ProtocolError(
                f"The gateway answered non-JSON: {redact(resp.text, 200)!r}",
                provider=self.resolved.provider.name,
            ) from e
        return parse_completion(data, self.resolved.model.reasoning)

    def stream(
        self, messages: list[dict[str, Any]], *, thinking: bool | None = None, **kw: Any
    ) -> Iterator[Delta]:
        """Stream deltas, reasoning and content already split; a broken stream keeps partials."""
        from .transport import error_from_exception, error_from_response
        from .wire import StreamAssembler

        body = self._payload(messages, True, thinking, **kw)
        assembler = StreamAssembler(self.resolved.model.reasoning)
        try:
            with self._client.http.stream(
                "POST", self._url(), json=body, headers=self._headers
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise error_from_response(resp, self.resolved)
                started = False
                try:
                    for event in iter_sse_data(resp.iter_lines()):
                        started = True
                        yield assembler.feed(event)
                except httpx.HTTPError as e:
                    if not started:
                        raise error_from_exception(e, self.resolved) from e
                    raise assembler.interrupted(self.resolved, type(e).__name__) from e
                yield assembler.finish()
        except CampusLLMError:
            raise
        except httpx.HTTPError as e:
            raise error_from_exception(e, self.resolved) from e

    def close(self) -> None:
        """Close the underlying HTTP clients."""
        self._client.close()

    def __enter__(self) -> ChatCaller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
