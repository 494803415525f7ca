"""LlamaIndex LLM for campus and enterprise OpenAI-compatible gateways.

Everything provider-specific (reasoning shape, thinking switch, reasoning pass-back, tool
support, context window) comes from the campusllm registry and wire layer; this module only
translates between LlamaIndex messages and the OpenAI wire format.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from ._common import ClosableClient

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from campusllm.wire import Delta, StreamAssembler, ToolCall

__all__ = ["CampusLLM", "to_wire_messages"]

# Used only for models the catalog does not know; LlamaIndex's own default (3900) would
# make every RAG prompt needlessly tiny on modern 32k+ models.
FALLBACK_CONTEXT_WINDOW = 32768

_ROLE_MAP = {"chatbot": "assistant", "model": "assistant", "function": "tool"}


# --------------------------------------------------------------------------- messages


def _image_url(block: ImageBlock) -> dict[str, Any]:
    if block.url is not None and block.image is None and block.path is None:
        url = str(block.url)
    else:
        url = block.inline_url()
    out: dict[str, Any] = {"url": url}
    if block.detail:
        out["detail"] = block.detail
    return out


def _call_to_wire(call_id: str | None, name: str, arguments: Any, pos: int) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call_id or f"call_{pos}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


def _foreign_call(call: Any, pos: int) -> dict[str, Any]:
    # tool_calls left in additional_kwargs by other integrations (openai SDK objects or dicts)
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    if not isinstance(call, dict):
        raise ValueError(f"Cannot send tool call {call!r}: expected an OpenAI tool-call dict.")
    fn = call.get("function") or {}
    return _call_to_wire(call.get("id"), fn.get("name") or "", fn.get("arguments") or "", pos)


def _message_to_wire(message: ChatMessage) -> dict[str, Any]:
    role = _ROLE_MAP.get(message.role.value, message.role.value)
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    has_image = False
    reasoning: str | None = None
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            has_image = True
            parts.append({"type": "image_url", "image_url": _image_url(block)})
        elif isinstance(block, ThinkingBlock):
            reasoning = (reasoning or "") + (block.content or "")
        elif isinstance(block, ToolCallBlock):
            calls.append(
                _call_to_wire(block.tool_call_id, block.tool_name, block.tool_kwargs, len(calls))
            )
        elif isinstance(block, CachePoint):
            continue
        else:
            raise ValueError(
                f"CampusLLM cannot send {block.block_type!r} blocks; OpenAI-compatible "
                "gateways accept text and images."
            )
    out: dict[str, Any] = {"role": role}
    # Tool results are text on the wire; an image there would be rejected by the gateway.
    out["content"] = parts if has_image and role != "tool" else "\n".join(texts)
    extra = message.additional_kwargs
    if role == "assistant":
        if not calls and extra.get("tool_calls"):
            calls = [_foreign_call(c, i) for i, c in enumerate(extra["tool_calls"])]
        if calls:
            out["tool_calls"] = calls
        if reasoning is None and isinstance(extra.get("reasoning_content"), str):
            reasoning = extra["reasoning_content"]
        if reasoning is not None:
            # prepare_chat_payload keeps, blanks, converts or drops it per registry policy
            out["reasoning_content"] = reasoning
    elif role == "tool" and extra.get("tool_call_id"):
        out["tool_call_id"] = extra["tool_call_id"]
    if isinstance(extra.get("name"), str):
        out["name"] = extra["name"]
    return out


def to_wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Convert LlamaIndex messages to OpenAI chat message dicts.

    Thinking blocks become ``reasoning_content`` on assistant messages, tool-call blocks
    become ``tool_calls`` and tool results keep their ``tool_call_id``.

    Example:
        >>> to_wire_messages([ChatMessage(role="user", content="hi")])
        [{'role': 'user', 'content': 'hi'}]
    """
    return [_message_to_wire(m) for m in messages]


def _tool_blocks(calls: list[ToolCall]) -> tuple[list[ToolCallBlock], list[dict[str, Any]]]:
    blocks: list[ToolCallBlock] = []
    wire: list[dict[str, Any]] = []
    for call in sorted(calls, key=lambda c: c.index):
        # A gateway that omits ids still needs one that tool results can refer back to.
        call_id = call.id or f"call_{call.index}"
        parsed = call.parsed_arguments()
        blocks.append(
            ToolCallBlock(
                tool_call_id=call_id,
                tool_name=call.name,
                tool_kwargs=parsed if parsed is not None else call.arguments,
            )
        )
        wire.append(_call_to_wire(call_id, call.name, call.arguments, call.index))
    return blocks, wire


def _assistant_message(content: str, reasoning: str, calls: list[ToolCall]) -> ChatMessage:
    blocks: list[Any] = []
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    blocks.append(TextBlock(text=content))
    extra: dict[str, Any] = {}
    if calls:
        call_blocks, wire = _tool_blocks(calls)
        blocks.extend(call_blocks)
        extra["tool_calls"] = wire
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def _usage_kwargs(usage: dict[str, Any] | None) -> dict[str, Any]:
    if not usage:
        return {}
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: usage[k] for k in keys if isinstance(usage.get(k), int)}


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    from llama_index.core.llms.utils import parse_partial_json

    try:
        value = parse_partial_json(arguments)
    except (ValueError, TypeError, RecursionError, IndexError):
        return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- SDK plumbing


@functools.lru_cache(maxsize=1)
def _sdk_params() -> frozenset[str]:
    from openai.resources.chat.completions import Completions

    return frozenset(inspect.signature(Completions.create).parameters) - {"self"}


def _sdk_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """Split a request body into openai SDK arguments and ``extra_body``.

    Gateway-specific keys (``chat_template_kwargs``, ``stop_token_ids``…) are unknown to the
    SDK's signature and must travel in ``extra_body``.
    """
    known = _sdk_params()
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in payload.items():
        (kwargs if key in known else extra)[key] = value
    if extra:
        kwargs["extra_body"] = {**(kwargs.get("extra_body") or {}), **extra}
    return kwargs


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dict(dump())
    return {"value": obj}  # parse_completion turns a wrong shape into ProtocolError


def _sdk_errors() -> tuple[type[BaseException], ...]:
    import httpx
    import openai

    return (openai.OpenAIError, httpx.HTTPError, ValueError)


class _StreamState:
    """Accumulates one stream into the cumulative messages LlamaIndex expects per chunk."""

    def __init__(self, assembler: StreamAssembler) -> None:
        self.asm = assembler
        self.content = ""
        self.reasoning = ""
        self.started = False

    def response(self, delta: Delta, raw: Any) -> ChatResponse:
        self.content += delta.content
        self.reasoning += delta.reasoning
        message = _assistant_message(self.content, self.reasoning, self.asm.tool_calls)
        return self._wrap(message, delta, raw)

    def final(self, delta: Delta) -> ChatResponse:
        # message() is authoritative at the end (it may move reasoning that turned out to be
        # the answer when a template-opened <think> never closed).
        msg = self.asm.message()
        self.content, self.reasoning = msg.content, msg.reasoning
        message = _assistant_message(msg.content, msg.reasoning, msg.tool_calls)
        return self._wrap(message, delta, None)

    @staticmethod
    def _wrap(message: ChatMessage, delta: Delta, raw: Any) -> ChatResponse:
        extra = _usage_kwargs(delta.usage)
        # Present on every chunk ("" when none) so consumers never have to probe for it.
        extra["thinking_delta"] = delta.reasoning
        return ChatResponse(message=message, delta=delta.content, raw=raw, additional_kwargs=extra)


# --------------------------------------------------------------------------- the LLM


class CampusLLM(ClosableClient, FunctionCallingLLM):
    """A campus/enterprise gateway chat model as a LlamaIndex function-calling LLM.

    The model is looked up in the campusllm registry, which supplies the real context
    window, tool support and reasoning behaviour. Reasoning arrives as a ``ThinkingBlock``
    (and ``thinking_delta`` on streamed chunks) and is passed back to models that need it
    in tool loops. The API key comes from the provider's env vars unless ``api_key`` is given.
    ``close()``/``aclose()`` (or ``with``/``async with``) release the HTTP connections.

    Example:
        >>> from llama_index_campusllm import CampusLLM
        >>> llm = CampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
        >>> resp = llm.chat([ChatMessage(role="user", content="1+1?")])  # doctest: +SKIP
        >>> resp.message.blocks[0].content  # the reasoning  # doctest: +SKIP
    """

    temperature: float | None = Field(default=None, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, description="Maximum tokens to generate.")
    thinking: bool | None = Field(
        default=None,
        description="Switch thinking on/off where the model allows it; None: model default.",
    )
    context_window: int | None = Field(
        default=None, description="Overrides the registry's context window."
    )
    timeout: float = Field(default=120.0, description="Request timeout in seconds.")
    default_headers: dict[str, str] | None = Field(
        default=None, repr=False, description="Extra headers sent with every request."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra body keys sent with every request."
    )

    _sdk_sync: Any = PrivateAttr(default=None)
    _sdk_async: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "CampusLLM"

    @property
    def metadata(self) -> LLMMetadata:
        spec = self._resolved.model
        return LLMMetadata(
            context_window=self.context_window or spec.context_window or FALLBACK_CONTEXT_WINDOW,
            num_output=self.max_tokens or spec.max_output or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            # The wire layer only refuses tools for catalogued models known to lack them.
            is_function_calling_model=spec.tools or not self._resolved.known,
            model_name=spec.id,
        )

    # ----------------------------------------------------------------- requests

    def _payload(
        self, messages: Sequence[ChatMessage], *, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        from campusllm.wire import prepare_chat_payload

        thinking = kwargs.pop("thinking", self.thinking)
        body: dict[str, Any] = {"messages": to_wire_messages(messages)}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.additional_kwargs)
        body.update({k: v for k, v in kwargs.items() if v is not None})
        body["stream"] = stream
        return _sdk_kwargs(prepare_chat_payload(body, self._resolved, thinking=thinking))

    def _sdk_kwargs(self, http_client: Any) -> dict[str, Any]:
        return {
            "api_key": self._key(),
            "base_url": self._resolved.base_url,
            # our client carries the core transport (limiter, retries)...
            "http_client": http_client,
            "max_retries": 0,  # ...so it is the one retry layer
            "timeout": self.timeout,
            "default_headers": self.default_headers,
        }

    def _sdk(self) -> Any:
        if self._sdk_sync is None:
            import openai

            self._sdk_sync = openai.OpenAI(**self._sdk_kwargs(self._client.sdk_http))
        return self._sdk_sync

    def _asdk(self) -> Any:
        # one async SDK client: the core transport keeps connections per event loop
        if self._sdk_async is None:
            import openai

            self._sdk_async = openai.AsyncOpenAI(**self._sdk_kwargs(self._client.sdk_ahttp))
        return self._sdk_async

    def _key(self) -> str:
        assert self.api_key is not None  # set in __init__
        return self.api_key.get_secret_value()

    def _error(self, exc: BaseException) -> Exception:
        from campusllm.transport import error_from_exception

        return error_from_exception(exc, self._resolved)

    def _interrupted(self, exc: BaseException, state: _StreamState) -> Exception:
        import openai

        # A connection or framing failure breaks the stream; an error event the gateway sent
        # (openai.APIError) is its answer and maps to a typed error like any other.
        broken = not isinstance(exc, openai.OpenAIError) or isinstance(
            exc, openai.APIConnectionError
        )
        if not (state.started and broken):
            return self._error(exc)
        return state.asm.interrupted(self._resolved, str(self._error(exc)))

    def _response(self, raw: Any) -> ChatResponse:
        from campusllm.wire import parse_completion

        data = _as_dict(raw)
        msg = parse_completion(data, self._resolved.model.reasoning)
        return ChatResponse(
            message=_assistant_message(msg.content, msg.reasoning, msg.tool_calls),
            raw=data,
            additional_kwargs=_usage_kwargs(msg.usage),
        )

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        from campusllm.errors import CampusLLMError

        payload = self._payload(messages, stream=False, **kwargs)
        try:
            raw = self._sdk().chat.completions.create(**payload)
        except CampusLLMError:
            raise
        except _sdk_errors() as e:
            raise self._error(e) from e
        return self._response(raw)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        from campusllm.errors import CampusLLMError

        payload = self._payload(messages, stream=False, **kwargs)
        try:
            raw = await self._asdk().chat.completions.create(**payload)
        except CampusLLMError:
            raise
        except _sdk_errors() as e:
            raise self._error(e) from e
        return self._response(raw)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        from campusllm.errors import CampusLLMError
        from campusllm.wire import StreamAssembler

        payload = self._payload(messages, stream=True, **kwargs)
        errors = _sdk_errors()

        def gen() -> ChatResponseGen:
            state = _StreamState(StreamAssembler(self._resolved.model.reasoning))
            try:
                stream = self._sdk().chat.completions.create(**payload)
            except CampusLLMError:
                raise
            except errors as e:
                raise self._error(e) from e
            try:
                chunks = iter(stream)
                while True:
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    except CampusLLMError:
                        raise
                    except errors as e:
                        raise self._interrupted(e, state) from e
                    raw = _as_dict(chunk)
                    delta = state.asm.feed(raw)
                    state.started = True
                    yield state.response(delta, raw)
                last = state.asm.finish()
                if last.content or last.reasoning:
                    yield state.final(last)
            finally:
                stream.close()

        return gen()

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        from campusllm.errors import CampusLLMError
        from campusllm.wire import StreamAssembler

        payload = self._payload(messages, stream=True, **kwargs)
        errors = _sdk_errors()

        async def gen() -> ChatResponseAsyncGen:
            state = _StreamState(StreamAssembler(self._resolved.model.reasoning))
            try:
                stream = await self._asdk().chat.completions.create(**payload)
            except CampusLLMError:
                raise
            except errors as e:
                raise self._error(e) from e
            try:
                chunks = stream.__aiter__()
                while True:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                    except CampusLLMError:
                        raise
                    except errors as e:
                        raise self._interrupted(e, state) from e
                    raw = _as_dict(chunk)
                    delta = state.asm.feed(raw)
                    state.started = True
                    yield state.response(delta, raw)
                last = state.asm.finish()
                if last.content or last.reasoning:
                    yield state.final(last)
            finally:
                await stream.close()

        return gen()

    # ----------------------------------------------------------------- LlamaIndex API

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # ----------------------------------------------------------------- tools

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Build ``chat`` kwargs: OpenAI tool specs, tool choice and the message list."""
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        messages = list(chat_history or [])  # never extend the caller's history in place
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            out["tools"] = specs
            if tool_choice is None and tool_required:
                tool_choice = "required"
            if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
                tool_choice = {"type": "function", "function": {"name": tool_choice}}
            if tool_choice is not None:
                out["tool_choice"] = tool_choice
            if self._resolved.model.parallel_tools:
                out["parallel_tool_calls"] = allow_parallel_tool_calls
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if allow_parallel_tool_calls:
            return response
        message = response.message
        calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
        if len(calls) > 1:
            message.blocks = [
                b for b in message.blocks if not isinstance(b, ToolCallBlock) or b is calls[0]
            ]
            wire = message.additional_kwargs.get("tool_calls")
            if isinstance(wire, list):
                message.additional_kwargs["tool_calls"] = wire[:1]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Tool calls of a (possibly partial, streamed) response.

        Arguments that are still incomplete JSON yield what already parses; never raises on
        partial input. With ``error_on_no_tool_call`` a response without calls raises
        ``ValueError``, as in other LlamaIndex integrations.
        """
        message = response.message
        selections: list[ToolSelection] = []
        blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
        if blocks:
            for pos, block in enumerate(blocks):
                selections.append(
                    ToolSelection(
                        tool_id=block.tool_call_id or f"call_{pos}",
                        tool_name=block.tool_name,
                        tool_kwargs=_parse_arguments(block.tool_kwargs),
                    )
                )
        else:
            for pos, call in enumerate(message.additional_kwargs.get("tool_calls") or []):
                try:
                    wire = _foreign_call(call, pos)
                except ValueError:
                    continue
                fn = wire["function"]
                selections.append(
                    ToolSelection(
                        tool_id=wire["id"],
                        tool_name=fn["name"],
                        tool_kwargs=_parse_arguments(fn["arguments"]),
                    )
                )
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the model made none.")
        return selections
