"""LangChain chat model for campus and enterprise OpenAI-compatible gateways.

``ChatCampusLLM`` is a thin :class:`~langchain_openai.chat_models.base.BaseChatOpenAI`
subclass: every provider quirk (reasoning shapes, thinking switches, reasoning pass-back,
request defaults, capability checks) comes from the campusllm registry and wire layer, every
request goes through campusllm's single limiter/retry transport, and everything about the
openai SDK (its clients, its arguments, its errors, failing streams) through
:mod:`campusllm.openai_sdk`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.pydantic import is_basemodel_subclass
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import ConfigDict, Field, ValidationError, model_validator

from campusllm.capabilities import require_tools, structured_output_method
from campusllm.connection import DEFAULT_CHAT_TIMEOUT, Connection, connect
from campusllm.errors import CampusLLMError, ConfigError, ProtocolError, redact
from campusllm.limiter import RateLimiter
from campusllm.openai_sdk import (
    OpenAIClients,
    as_dict,
    completion,
    map_sdk_error,
    sdk_arguments,
    stream_error,
)
from campusllm.registry import RateLimits, ResolvedModel
from campusllm.streaming import StreamGuard

from ._validation import raise_campus_error
from .convert import MODEL_PROVIDER, ai_message, reasoning_of, response_format_dict
from .profile import model_profile
from .streams import STREAM_STATE, StreamState, aguarded, delta_to_chunk, guarded, tail_chunk
from .structured import json_schema_runnable

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )

__all__ = ["ChatCampusLLM"]

_DEFAULT_TIMEOUT = DEFAULT_CHAT_TIMEOUT  # the total of one attempt, stream included
# langchain-openai reading an SDK object of the wrong shape ("usage": [], "data: null")
_MALFORMED = (AttributeError, TypeError, KeyError)


class ChatCampusLLM(BaseChatOpenAI):
    """Chat model for campus/enterprise OpenAI-compatible gateways (SJTU, ECNU, MaaS, OneAPI).

    The model is looked up in the campusllm registry (``"provider:model"`` or ``provider=`` +
    ``model=``); base URL, API key (from the provider's env var unless ``api_key=`` is
    given), default ``max_tokens`` and every gateway quirk come from there. Reasoning is
    returned in ``additional_kwargs["reasoning_content"]`` (and as a ``reasoning`` block in
    ``content_blocks``) whatever shape the gateway uses, and is passed back in multi-turn
    tool loops when the model needs it. ``thinking=True/False`` switches thinking mode where
    the model allows it (also per call: ``invoke(..., thinking=False)``).

    Example:
        >>> from langchain_campusllm import ChatCampusLLM
        >>> llm = ChatCampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
        >>> msg = llm.invoke("Why is the sky blue?")  # doctest: +SKIP
        >>> msg.additional_kwargs["reasoning_content"], msg.content  # doctest: +SKIP
    """

    model_name: str = Field(default="", alias="model")
    """Model id or ``"provider:model"``; after construction, the id sent on the wire."""
    provider: str | None = None
    """Provider name in the campusllm registry (``sjtu``, ``ecnu``, ``maas``, ``oneapi``...)."""
    thinking: bool | None = None
    """Thinking mode: ``None`` keeps the model's default; ``True``/``False`` switch it."""
    rate_limits: RateLimits | None = None
    """Override the provider's rpm/tpm/window for this key (shared with other clients)."""
    read_timeout: float | None = None
    """Longest silence in seconds between two reads (``None``: only ``timeout``, the total of
    one attempt with the whole stream, bounds it); set it below ``timeout`` to notice a
    stalled stream early."""
    limiter: str | RateLimiter | None = Field(default=None, exclude=True)
    """Who shares the key's quota: ``"local"`` (this machine's processes; default), ``"memory"``,
    ``"redis://host:port/db"``, or a :class:`~campusllm.limiter.RateLimiter` of your own."""

    campus_connection: Connection | None = Field(default=None, exclude=True, repr=False)
    """Set by the constructor: the :class:`~campusllm.connection.Connection` it sends on."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            raise_campus_error(e)  # users catch campusllm's types, not pydantic's wrapper
            raise

    @model_validator(mode="before")
    @classmethod
    def _campusllm_resolve(cls, values: Any) -> Any:
        """Connect (registry, key, limiter, transport) and build the SDK clients on it."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        name = values.pop("model", None) or values.pop("model_name", None)
        values.pop("model_name", None)
        base_url = values.pop("base_url", None) or values.pop("openai_api_base", None)
        values.pop("openai_api_base", None)
        api_key = values.pop("api_key", None) or values.pop("openai_api_key", None)
        values.pop("openai_api_key", None)
        if not name:
            raise ConfigError(
                "ChatCampusLLM needs a model.",
                hint='Pass model="provider:model", e.g. model="sjtu:deepseek-chat".',
            )
        timeout = values.get("timeout", values.get("request_timeout"))
        if timeout is None:
            timeout = values["timeout"] = _DEFAULT_TIMEOUT
        numeric = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        conn = connect(
            name,
            provider=values.get("provider"),
            base_url=base_url,
            api_key=api_key,
            rate_limits=values.get("rate_limits"),
            limiter=values.get("limiter"),
            max_retries=values.get("max_retries"),
            timeout=timeout if numeric else _DEFAULT_TIMEOUT,
            read_timeout=values.get("read_timeout"),
        )
        resolved = conn.resolved
        values["model"] = resolved.wire_model
        values["provider"] = resolved.provider.name
        values["base_url"] = resolved.base_url
        values["api_key"] = conn.api_key
        if values.get("max_tokens") is None and resolved.model.max_output:
            values["max_tokens"] = resolved.model.max_output
        if values.get("stream_usage") is None:
            values["stream_usage"] = resolved.provider.stream_usage
        # Chat Completions only: campus gateways do not implement the Responses API.
        values["use_responses_api"] = False
        if not values.get("client"):
            sdk = OpenAIClients(
                conn,
                timeout=timeout,
                default_headers=values.get("default_headers"),
                default_query=values.get("default_query"),
                http_client=values.get("http_client"),
                http_async_client=values.get("http_async_client"),
            )
            values["root_client"] = sdk.sync
            values["client"] = sdk.sync.chat.completions
            values["root_async_client"] = sdk.async_
            values["async_client"] = sdk.async_.chat.completions
        values["campus_connection"] = conn
        return values

    # ------------------------------------------------------------------ identity

    @property
    def connection(self) -> Connection:
        """The connection: resolved model, key, limiter, retry policy and HTTP clients."""
        if self.campus_connection is None:  # only a model built around the constructor
            raise ConfigError("This ChatCampusLLM was not built by its constructor.")
        return self.campus_connection

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to (provider, model spec, base URL)."""
        return self.connection.resolved

    @property
    def _llm_type(self) -> str:
        return "campusllm"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_campusllm", "chat_models"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        conn = self.campus_connection
        env = conn.resolved.provider.key_env[0] if conn and conn.resolved.provider.key_env else None
        return {"openai_api_key": env or "CAMPUSLLM_API_KEY"}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        # LangSmith groups traces by ls_provider: name the gateway ("campusllm-sjtu"), so SJTU
        # and one-api traffic stay apart, and the catalog's model id ("glm-5.1" for "glm").
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = MODEL_PROVIDER
        if self.campus_connection is not None:
            resolved = self.campus_connection.resolved
            params["ls_provider"] = f"{MODEL_PROVIDER}-{resolved.provider.name}"
            if not isinstance(kwargs.get("model"), str):  # a per-call model is reported as sent
                params["ls_model_name"] = resolved.model.id
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        if self.campus_connection is None:
            return None
        return model_profile(self.campus_connection.resolved.model)

    def _use_responses_api(self, payload: dict) -> bool:
        return False

    # ------------------------------------------------------------------ requests

    def _get_request_payload(
        self,
        input_: LanguageModelInput,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        thinking = kwargs.pop("thinking", None)
        if thinking is None:
            thinking = self.thinking
        if isinstance(input_, list) and all(isinstance(m, BaseMessage) for m in input_):
            messages = input_  # _generate/_stream already hand us messages: skip a conversion
        else:
            messages = self._convert_input(input_).to_messages()
        payload = super()._get_request_payload(messages, stop=stop, **kwargs)

        # Hand reasoning back to the wire layer; its policy decides what is sent.
        wire_messages = list(payload.get("messages") or [])
        if len(wire_messages) == len(messages):
            for i, (msg, d) in enumerate(zip(messages, wire_messages, strict=True)):
                if isinstance(msg, AIMessage) and isinstance(d, dict):
                    reasoning = reasoning_of(msg)
                    if reasoning is not None:
                        wire_messages[i] = {**d, "reasoning_content": reasoning}
            payload["messages"] = wire_messages

        if payload.get("stream") and "stream_options" not in payload:
            payload["stream_options"] = None  # the user turned stream usage off
        rf = payload.get("response_format")
        if isinstance(rf, type) and is_basemodel_subclass(rf):
            payload["response_format"] = response_format_dict(rf, strict=True)
        return sdk_arguments(payload, self.resolved, thinking=thinking)

    def _create_chat_result(
        self,
        response: dict | Any,
        generation_info: dict | None = None,
    ) -> ChatResult:
        if isinstance(response, (str, bytes)):  # the SDK's text of a body that is not JSON
            completion(response, self.resolved)  # raises what the page or text stands for
        if not isinstance(response, dict) and not hasattr(response, "model_dump"):
            raise ProtocolError(
                f"The gateway answered something that is not JSON: {redact(response, 200)!r}",
                hint="Check that the base URL points at an OpenAI-compatible API.",
                provider=self.resolved.provider.name,
                model=self.resolved.model.id,
            )
        body = as_dict(response)
        choices = body.get("choices")
        bodies = (
            [{**body, "choices": [c]} for c in choices]
            if isinstance(choices, list) and len(choices) > 1
            else [body]
        )
        generations = []
        wire = None
        for one in bodies:
            wire = completion(one, self.resolved)
            info = dict(generation_info or {})
            info["finish_reason"] = wire.finish_reason
            generations.append(ChatGeneration(message=ai_message(wire), generation_info=info))
        usage = body.get("usage")
        llm_output: dict[str, Any] = {
            "token_usage": usage if isinstance(usage, dict) else None,
            "model_provider": MODEL_PROVIDER,
            "model_name": (wire.model if wire else None) or self.model_name,
            "system_fingerprint": body.get("system_fingerprint") or "",
        }
        if body.get("id"):
            llm_output["id"] = body["id"]
        return ChatResult(generations=generations, llm_output=llm_output)

    # ------------------------------------------------------------------ errors

    def _malformed(self, exc: BaseException, what: str = "an unexpected shape") -> ProtocolError:
        return ProtocolError(
            f"{self.resolved.key} answered in {what} ({exc}).",
            hint="Check that the base URL points at an OpenAI-compatible API.",
            provider=self.resolved.provider.name,
            model=self.resolved.model.id,
        )

    def _call_error(self, exc: Exception) -> BaseException:
        """The error a failed call raises (``exc`` itself when it is not ours to type)."""
        if isinstance(exc, _MALFORMED) and not isinstance(exc, CampusLLMError):
            return self._malformed(exc)
        return map_sdk_error(exc, self.resolved)

    def _stream_error(self, exc: Exception, state: StreamState) -> BaseException:
        """The error a failing stream raises (``exc`` itself when it is not ours to type)."""
        if isinstance(exc, _MALFORMED) and not isinstance(exc, CampusLLMError):
            return state.guard.failure(self._malformed(exc, "a malformed stream chunk"))
        return stream_error(exc, state.guard)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as e:
            mapped = self._call_error(e)
            if mapped is e:
                raise
            raise mapped from e

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as e:
            mapped = self._call_error(e)
            if mapped is e:
                raise
            raise mapped from e

    # ------------------------------------------------------------------ streaming

    def _new_stream_state(self) -> StreamState:
        return StreamState(StreamGuard(self.resolved), self.model_name)

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict,
        default_chunk_class: type,
        base_generation_info: dict | None,
    ) -> ChatGenerationChunk | None:
        state = STREAM_STATE.get()
        if state is None:  # called outside _stream (e.g. directly): no cross-chunk state
            state = self._new_stream_state()
        if isinstance(chunk.get("type"), str) and "choices" not in chunk:
            inner = chunk.get("chunk")  # SDK stream-helper events wrap the raw chunk
            if chunk["type"] != "chunk" or not isinstance(inner, dict):
                return None
            chunk = inner
        return delta_to_chunk(state.guard.feed(chunk), state, base_generation_info)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        state = self._new_stream_state()
        gen = super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        yield from guarded(gen, state, self._stream_error)
        tail = tail_chunk(state)  # raises for a stream that was cut or empty
        if tail is not None:
            if run_manager:
                run_manager.on_llm_new_token(tail.text, chunk=tail)
            yield tail

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        state = self._new_stream_state()
        gen = super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
        async for chunk in aguarded(gen, state, self._stream_error):
            yield chunk
        tail = tail_chunk(state)
        if tail is not None:
            if run_manager:
                await run_manager.on_llm_new_token(tail.text, chunk=tail)
            yield tail

    # ------------------------------------------------------------------ structured output

    def with_structured_output(
        self,
        schema: Any = None,
        *,
        method: Literal["function_calling", "json_mode", "json_schema"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        tools: list | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Return a runnable that answers with ``schema``-shaped output.

        ``function_calling`` (default) works on every model with tools; ``json_schema`` is
        used only where the registry says the model supports it, else it falls back to
        function calling with a warning (or raises :class:`CapabilityError` when the model
        has neither) — see :func:`campusllm.capabilities.structured_output_method`.
        """
        method = structured_output_method(self.resolved, method)
        if method == "json_schema":
            return json_schema_runnable(
                self, schema, include_raw=include_raw, strict=strict, tools=tools, **kwargs
            )
        return super().with_structured_output(
            schema, method=method, include_raw=include_raw, strict=strict, tools=tools, **kwargs
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | Any],
        *,
        tool_choice: dict | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format); :class:`CapabilityError` if the model has no tools.

        Example:
            >>> llm.bind_tools([get_weather]).invoke("Weather in Shanghai?")  # doctest: +SKIP
        """
        if tools:
            require_tools(self.resolved)  # the error a request would get, raised early
        return super().bind_tools(
            tools,
            tool_choice=tool_choice,
            strict=strict,
            parallel_tool_calls=parallel_tool_calls,
            response_format=response_format,
            **kwargs,
        )
