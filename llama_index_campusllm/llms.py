"""LlamaIndex LLM for campus and enterprise OpenAI-compatible gateways.

Everything provider-specific (reasoning shape, thinking switch, reasoning pass-back, tool
support, context window) comes from the campusllm registry and wire layer, everything about
the openai SDK from :mod:`campusllm.openai_sdk` (reached through ``connection.openai``, so the
SDK is imported on the first chat, not with LlamaIndex); this module only translates between
LlamaIndex and them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import Model, PydanticProgramMode

from campusllm.capabilities import supports_function_calling
from campusllm.connection import DEFAULT_CHAT_TIMEOUT
from campusllm.streaming import StreamGuard
from campusllm.wire import Delta

from . import completion as text
from ._common import ClosableClient
from .messages import (
    assistant_message,
    foreign_call,
    parse_arguments,
    to_wire_messages,
    usage_kwargs,
)
from .structured import json_schema_program, uses_json_schema

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

dispatcher = get_dispatcher(__name__)

__all__ = ["CampusLLM", "to_wire_messages", "FALLBACK_CONTEXT_WINDOW"]

# Used only for models the catalog does not know; LlamaIndex's own default (3900) would
# make every RAG prompt needlessly tiny on modern 32k+ models.
FALLBACK_CONTEXT_WINDOW = 32768


class _StreamState:
    """Accumulates one stream into the cumulative messages LlamaIndex expects per chunk."""

    def __init__(self, guard: StreamGuard) -> None:
        self.guard = guard
        self.content = ""
        self.reasoning = ""

    def response(self, delta: Delta, raw: Any) -> ChatResponse:
        self.content += delta.content
        self.reasoning += delta.reasoning
        message = assistant_message(self.content, self.reasoning, self.guard.assembler.tool_calls)
        return self._wrap(message, delta, raw)

    def final(self, delta: Delta) -> ChatResponse:
        # message() is authoritative at the end (it may move reasoning that turned out to be
        # the answer when a template-opened <think> never closed).
        msg = self.guard.message()
        self.content, self.reasoning = msg.content, msg.reasoning
        message = assistant_message(msg.content, msg.reasoning, msg.tool_calls)
        return self._wrap(message, delta, None)

    @staticmethod
    def _wrap(message: ChatMessage, delta: Delta, raw: Any) -> ChatResponse:
        extra = usage_kwargs(delta.usage)
        # Present on every chunk ("" when none) so consumers never have to probe for it.
        extra["thinking_delta"] = delta.reasoning
        return ChatResponse(message=message, delta=delta.content, raw=raw, additional_kwargs=extra)


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
    timeout: float = Field(
        default=DEFAULT_CHAT_TIMEOUT,
        description="Total seconds for one attempt: connecting and the whole answer or stream.",
    )
    default_headers: dict[str, str] | None = Field(
        default=None, repr=False, description="Extra headers sent with every request."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra body keys sent with every request."
    )
    structured_output_method: Literal["function_calling", "json_schema"] | None = Field(
        default=None,
        description="How structured_predict/as_structured_llm ask for structured output. "
        "None: tool calls where the model has them, else response_format json_schema where "
        "the registry says the model supports it.",
    )

    @classmethod
    def class_name(cls) -> str:
        return "CampusLLM"

    @property
    def metadata(self) -> LLMMetadata:
        spec = self.resolved.model
        return LLMMetadata(
            context_window=self.context_window or spec.context_window or FALLBACK_CONTEXT_WINDOW,
            num_output=self.max_tokens or spec.max_output or DEFAULT_NUM_OUTPUTS,
            is_chat_model=text.uses_chat(self.resolved),
            is_function_calling_model=supports_function_calling(self.resolved),
            model_name=spec.id,
        )

    # ----------------------------------------------------------------- requests

    def _payload(
        self, messages: Sequence[ChatMessage], *, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        thinking = kwargs.pop("thinking", self.thinking)
        body: dict[str, Any] = {"messages": to_wire_messages(messages)}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.additional_kwargs)
        body.update({k: v for k, v in kwargs.items() if v is not None})
        body["stream"] = stream
        return self.connection.openai.arguments(body, thinking=thinking)

    def _error(self, exc: Exception) -> BaseException:
        return self.connection.openai.error(exc)

    def _response(self, raw: Any) -> ChatResponse:
        sdk = self.connection.openai
        msg = sdk.completion(raw)  # a login page or an error sent with HTTP 200 raises here
        return ChatResponse(
            message=assistant_message(msg.content, msg.reasoning, msg.tool_calls),
            raw=sdk.as_dict(raw),
            additional_kwargs=usage_kwargs(msg.usage),
        )

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        payload = self._payload(messages, stream=False, **kwargs)
        try:
            raw = self.connection.openai.sync.chat.completions.create(**payload)
        except Exception as e:
            mapped = self._error(e)
            if mapped is e:
                raise
            raise mapped from e
        return self._response(raw)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        payload = self._payload(messages, stream=False, **kwargs)
        try:
            raw = await self.connection.openai.async_.chat.completions.create(**payload)
        except Exception as e:
            mapped = self._error(e)
            if mapped is e:
                raise
            raise mapped from e
        return self._response(raw)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        payload = self._payload(messages, stream=True, **kwargs)

        def gen() -> ChatResponseGen:
            state = _StreamState(StreamGuard(self.resolved))
            try:
                stream = self.connection.openai.sync.chat.completions.create(**payload)
            except Exception as e:
                mapped = self._error(e)
                if mapped is e:
                    raise
                raise mapped from e
            try:
                for raw in self.connection.openai.chunks(stream, state.guard):
                    yield state.response(state.guard.feed(raw), raw)
                last = state.guard.end()  # raises for a stream that was cut or empty
                if last.content or last.reasoning:
                    yield state.final(last)
            finally:
                stream.close()

        return gen()

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        payload = self._payload(messages, stream=True, **kwargs)

        async def gen() -> ChatResponseAsyncGen:
            state = _StreamState(StreamGuard(self.resolved))
            try:
                stream = await self.connection.openai.async_.chat.completions.create(**payload)
            except Exception as e:
                mapped = self._error(e)
                if mapped is e:
                    raise
                raise mapped from e
            try:
                async for raw in self.connection.openai.achunks(stream, state.guard):
                    yield state.response(state.guard.feed(raw), raw)
                last = state.guard.end()
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
        if not text.uses_chat(self.resolved):  # a completion model: /completions
            return text.complete(self, prompt, formatted, **kwargs)
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        if not text.uses_chat(self.resolved):
            return text.stream_complete(self, prompt, formatted, **kwargs)
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
        if not text.uses_chat(self.resolved):
            return await text.acomplete(self, prompt, formatted, **kwargs)
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if not text.uses_chat(self.resolved):
            return await text.astream_complete(self, prompt, formatted, **kwargs)
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # ----------------------------------------------------------------- structured output

    def _json_schema_output(self) -> bool:
        return self.pydantic_program_mode == PydanticProgramMode.DEFAULT and uses_json_schema(
            self.resolved, self.structured_output_method
        )

    @dispatcher.span
    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Structured output: see :attr:`structured_output_method` for how it is asked for.

        Example:
            >>> llm.structured_predict(Person, PromptTemplate("Ann, 31"))  # doctest: +SKIP
            Person(name='Ann', age=31)
        """
        if not self._json_schema_output():
            return super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
        dispatcher.event(
            LLMStructuredPredictStartEvent(
                output_cls=output_cls, template=prompt, template_args=prompt_args
            )
        )
        result = json_schema_program(output_cls, prompt, self)(llm_kwargs, **prompt_args)
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

    @dispatcher.span
    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async :meth:`structured_predict`."""
        if not self._json_schema_output():
            return await super().astructured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
        dispatcher.event(
            LLMStructuredPredictStartEvent(
                output_cls=output_cls, template=prompt, template_args=prompt_args
            )
        )
        program = json_schema_program(output_cls, prompt, self)
        result = await program.acall(llm_kwargs, **prompt_args)
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

    def _structured_stream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None, None]:
        if not self._json_schema_output():
            return super()._structured_stream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        program = json_schema_program(output_cls, prompt, self)
        return program.stream_call(llm_kwargs=llm_kwargs, **prompt_args)

    async def _structured_astream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None]:
        if not self._json_schema_output():
            return await super()._structured_astream_call(
                output_cls, prompt, llm_kwargs, **prompt_args
            )
        program = json_schema_program(output_cls, prompt, self)
        return await program.astream_call(llm_kwargs=llm_kwargs, **prompt_args)

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
            if self.resolved.model.parallel_tools:
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
                        tool_kwargs=parse_arguments(block.tool_kwargs),
                    )
                )
        else:
            for pos, call in enumerate(message.additional_kwargs.get("tool_calls") or []):
                try:
                    wire = foreign_call(call, pos)
                except ValueError:
                    continue
                fn = wire["function"]
                selections.append(
                    ToolSelection(
                        tool_id=wire["id"],
                        tool_name=fn["name"],
                        tool_kwargs=parse_arguments(fn["arguments"]),
                    )
                )
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the model made none.")
        return selections
