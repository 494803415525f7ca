"""LangChain chat model for campus and enterprise OpenAI-compatible gateways.

``ChatCampusLLM`` is a thin :class:`~langchain_openai.chat_models.base.BaseChatOpenAI`
subclass: every provider quirk (reasoning shapes, thinking switches, reasoning pass-back,
request defaults, capability checks) comes from the campusllm registry and wire layer, and
every request goes through campusllm's single limiter/retry transport.
"""

from __future__ import annotations

import contextvars
import inspect
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_function
from langchain_core.utils.pydantic import is_basemodel_subclass
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import ConfigDict, Field, SecretStr, ValidationError, model_validator

from campusllm.errors import (
    CampusLLMError,
    CapabilityError,
    ConfigError,
    ProtocolError,
    redact,
)
from campusllm.registry import RateLimits, ResolvedModel

from ._base import raise_campus_error
from .profile import model_profile

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )

    from campusllm.wire import Delta, StreamAssembler

__all__ = ["ChatCampusLLM"]

#: ``response_metadata["model_provider"]``: an unregistered provider makes langchain-core
#: build ``content_blocks`` from ``additional_kwargs["reasoning_content"]`` (the "openai"
#: translator would hide the reasoning).
MODEL_PROVIDER = "campusllm"
_DEFAULT_TIMEOUT = 120.0
# SDK request options that are not body fields but must stay keyword arguments.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout"})


@lru_cache(maxsize=1)
def _sdk_body_params() -> frozenset[str]:
    """Body fields the openai SDK's ``create()`` accepts as keywords; the rest go in extra_body."""
    from openai.resources.chat.completions import Completions

    params = set(inspect.signature(Completions.create).parameters)
    # response_format as a keyword makes langchain-openai switch to the SDK's parse()/beta
    # stream helpers, which would parse raw content (think tags included) themselves.
    params -= {"self", "extra_body", "response_format"}
    return frozenset(params)


class _StreamState:
    """Per-stream-call state: one assembler, so think tags split across chunks stay split."""

    __slots__ = ("assembler", "started", "finish_seen", "model_name")

    def __init__(self, assembler: StreamAssembler, model_name: str) -> None:
        self.assembler = assembler
        self.started = False
        self.finish_seen = False
        self.model_name = model_name


# Set only around each step of the parent generator, so interleaved or concurrent streams
# never see each other's assembler.
_STREAM_STATE: contextvars.ContextVar[_StreamState | None] = contextvars.ContextVar(
    "campusllm_stream_state", default=None
)


def _count(value: Any) -> int:
    """A token count from a gateway's usage block; junk counts as 0 rather than crashing."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage_metadata(usage: Mapping[str, Any] | None) -> UsageMetadata | None:
    if not usage:
        return None
    inp = _count(usage.get("prompt_tokens")) or _count(usage.get("input_tokens"))
    out = _count(usage.get("completion_tokens")) or _count(usage.get("output_tokens"))
    total = _count(usage.get("total_tokens")) or inp + out
    meta = UsageMetadata(input_tokens=inp, output_tokens=out, total_tokens=total)
    p_details = usage.get("prompt_tokens_details")
    if isinstance(p_details, Mapping) and p_details.get("cached_tokens") is not None:
        meta["input_token_details"] = {"cache_read": _count(p_details["cached_tokens"])}
    c_details = usage.get("completion_tokens_details")
    if isinstance(c_details, Mapping) and c_details.get("reasoning_tokens") is not None:
        meta["output_token_details"] = {"reasoning": _count(c_details["reasoning_tokens"])}
    return meta


def _reasoning_of(message: AIMessage) -> str | None:
    """Reasoning an AIMessage carries, from additional_kwargs or ``reasoning`` blocks."""
    r = message.additional_kwargs.get("reasoning_content")
    if isinstance(r, str):
        return r
    if isinstance(message.content, list):
        parts = [
            b["reasoning"]
            for b in message.content
            if isinstance(b, dict)
            and b.get("type") == "reasoning"
            and isinstance(b.get("reasoning"), str)
        ]
        if parts:
            return "".join(parts)
    return None


def _response_format_dict(schema: Any, strict: bool | None) -> dict[str, Any]:
    """An OpenAI ``json_schema`` response_format for a pydantic class / TypedDict / schema."""
    if isinstance(schema, dict) and schema.get("type") == "json_schema":
        return schema
    if isinstance(schema, dict) and "name" in schema and "schema" in schema:
        return {"type": "json_schema", "json_schema": schema}
    function = dict(convert_to_openai_function(schema, strict=strict))
    function["schema"] = function.pop("parameters")
    if strict is None:
        function.pop("strict", None)
    return {"type": "json_schema", "json_schema": function}


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

    campus_resolved: Any = Field(default=None, exclude=True, repr=False)
    """Set by the constructor: the :class:`~campusllm.registry.ResolvedModel` (see ``resolved``)."""
    campus_client: Any = Field(default=None, exclude=True, repr=False)
    """Set by the constructor: the :class:`~campusllm.client.CampusClient` owning the transport."""

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
        """Resolve the model via the registry and build the SDK clients on our transport."""
        if not isinstance(values, dict):
            return values
        from campusllm.auth import get_api_key
        from campusllm.client import CampusClient
        from campusllm.registry import resolve
        from campusllm.transport import RetryPolicy

        values = dict(values)
        name = values.pop("model", None) or values.pop("model_name", None)
        values.pop("model_name", None)
        base_url = values.pop("base_url", None) or values.pop("openai_api_base", None)
        values.pop("openai_api_base", None)
        provider = values.get("provider")
        if not name:
            raise ConfigError(
                "ChatCampusLLM needs a model.",
                hint='Pass model="provider:model", e.g. model="sjtu:deepseek-chat".',
            )
        if provider:
            resolved = resolve(provider=provider, model=name, base_url=base_url)
        else:
            resolved = resolve(name, base_url=base_url)

        explicit = values.pop("api_key", None) or values.pop("openai_api_key", None)
        values.pop("openai_api_key", None)
        if explicit is not None and not isinstance(explicit, (str, SecretStr)):
            raise ConfigError(
                "api_key must be a string or SecretStr.",
                hint="Callables are not supported; campusllm's transport needs the key.",
            )
        key = get_api_key(resolved.provider, explicit)

        values["model"] = resolved.wire_model
        values["provider"] = resolved.provider.name
        values["base_url"] = resolved.base_url
        values["api_key"] = key
        if values.get("max_tokens") is None and resolved.model.max_output:
            values["max_tokens"] = resolved.model.max_output
        if values.get("stream_usage") is None:
            values["stream_usage"] = resolved.provider.stream_usage
        # Chat Completions only: campus gateways do not implement the Responses API.
        values["use_responses_api"] = False
        timeout = values.get("timeout", values.get("request_timeout"))
        if timeout is None:
            timeout = _DEFAULT_TIMEOUT
            values["timeout"] = timeout

        if not values.get("client"):
            import openai

            max_retries = values.get("max_retries")
            retry = RetryPolicy() if max_retries is None else RetryPolicy(max_retries=max_retries)
            limits = values.get("rate_limits")
            if isinstance(limits, dict):
                limits = RateLimits(**limits)
            http_timeout = timeout if isinstance(timeout, (int, float)) else _DEFAULT_TIMEOUT
            client = CampusClient(resolved, key, timeout=http_timeout, retry=retry, limits=limits)
            common: dict[str, Any] = {
                "api_key": key.get_secret_value(),
                "base_url": resolved.base_url,
                "timeout": timeout,
                # One retry loop only: campusllm's transport (limiter-aware, Retry-After).
                "max_retries": 0,
                "default_headers": values.get("default_headers"),
                "default_query": values.get("default_query"),
            }
            # openai 3.x annotates httpx2 clients; it drives any httpx-compatible client.
            sync_http: Any = values.get("http_client") or client.sdk_http
            async_http: Any = values.get("http_async_client") or client.sdk_ahttp
            root = openai.OpenAI(**common, http_client=sync_http)
            aroot = openai.AsyncOpenAI(**common, http_client=async_http)
            values["root_client"] = root
            values["client"] = root.chat.completions
            values["root_async_client"] = aroot
            values["async_client"] = aroot.chat.completions
            values["campus_client"] = client
        values["campus_resolved"] = resolved
        return values

    # ------------------------------------------------------------------ identity

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to (provider, model spec, base URL)."""
        return cast(ResolvedModel, self.campus_resolved)

    @property
    def _resolved(self) -> ResolvedModel:
        return cast(ResolvedModel, self.campus_resolved)

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
        resolved = self.campus_resolved
        env = resolved.provider.key_env[0] if resolved and resolved.provider.key_env else None
        return {"openai_api_key": env or "CAMPUSLLM_API_KEY"}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = MODEL_PROVIDER
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        resolved = self.campus_resolved
        if resolved is None:
            return None
        return model_profile(resolved.model)

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
        from campusllm.wire import prepare_chat_payload

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
                    reasoning = _reasoning_of(msg)
                    if reasoning is not None:
                        wire_messages[i] = {**d, "reasoning_content": reasoning}
            payload["messages"] = wire_messages

        if payload.get("stream") and "stream_options" not in payload:
            payload["stream_options"] = None  # the user turned stream usage off
        rf = payload.get("response_format")
        if isinstance(rf, type) and is_basemodel_subclass(rf):
            payload["response_format"] = _response_format_dict(rf, strict=True)

        extra = payload.pop("extra_body", None) or {}
        merged = {**payload, **dict(extra)}
        out = prepare_chat_payload(merged, self._resolved, thinking=thinking)
        if out.get("stream_options") is None:
            out.pop("stream_options", None)

        sdk = _sdk_body_params()
        body: dict[str, Any] = {}
        extra_body: dict[str, Any] = {}
        for k, v in out.items():
            if k in sdk or k in _SDK_OPTIONS:
                body[k] = v
            else:
                extra_body[k] = v
        if extra_body:
            body["extra_body"] = extra_body
        return body

    def _create_chat_result(
        self,
        response: dict | Any,
        generation_info: dict | None = None,
    ) -> ChatResult:
        from campusllm.wire import parse_completion

        if isinstance(response, dict):
            body = response
        elif hasattr(response, "model_dump"):
            body = response.model_dump(warnings=False)
        else:
            raise ProtocolError(
                f"The gateway answered something that is not JSON: {redact(response, 200)!r}",
                hint="Check that the base URL points at an OpenAI-compatible API.",
                provider=self._resolved.provider.name,
                model=self._resolved.model.id,
            )
        choices = body.get("choices")
        bodies = (
            [{**body, "choices": [c]} for c in choices]
            if isinstance(choices, list) and len(choices) > 1
            else [body]
        )
        spec = self._resolved.model.reasoning
        generations = []
        wire = None
        for one in bodies:
            wire = parse_completion(one, spec)
            additional: dict[str, Any] = {}
            if wire.reasoning:
                additional["reasoning_content"] = wire.reasoning
            calls, invalid = [], []
            for tc in wire.tool_calls:
                args = tc.parsed_arguments()
                if args is None:
                    invalid.append(
                        invalid_tool_call(
                            name=tc.name,
                            args=tc.arguments,
                            id=tc.id,
                            error="Tool call arguments are not a valid JSON object.",
                        )
                    )
                else:
                    calls.append(tool_call(name=tc.name, args=args, id=tc.id))
            message = AIMessage(
                content=wire.content,
                additional_kwargs=additional,
                tool_calls=calls,
                invalid_tool_calls=invalid,
                usage_metadata=_usage_metadata(wire.usage),
                response_metadata={"model_provider": MODEL_PROVIDER},
            )
            info = dict(generation_info or {})
            info["finish_reason"] = wire.finish_reason
            generations.append(ChatGeneration(message=message, generation_info=info))
        llm_output: dict[str, Any] = {
            "token_usage": body.get("usage") if isinstance(body.get("usage"), Mapping) else None,
            "model_provider": MODEL_PROVIDER,
            "model_name": (wire.model if wire else None) or self.model_name,
            "system_fingerprint": body.get("system_fingerprint") or "",
        }
        if body.get("id"):
            llm_output["id"] = body["id"]
        return ChatResult(generations=generations, llm_output=llm_output)

    # ------------------------------------------------------------------ errors

    def _malformed(self, exc: BaseException) -> ProtocolError:
        # the SDK building its objects from a body of the wrong shape ("usage": [])
        return ProtocolError(
            f"{self._resolved.key} answered in an unexpected shape ({exc}).",
            hint="Check that the base URL points at an OpenAI-compatible API.",
            provider=self._resolved.provider.name,
            model=self._resolved.model.id,
        )

    def _map_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, CampusLLMError):
            return exc
        from campusllm.transport import error_from_exception

        return error_from_exception(exc, self._resolved)

    def _interrupted(self, exc: BaseException, state: _StreamState) -> CampusLLMError:
        mapped = self._map_error(exc)
        err = state.assembler.interrupted(self._resolved, str(mapped))
        err.status_code = getattr(mapped, "status_code", None)
        return err

    def _stream_error(self, exc: Exception, state: _StreamState) -> BaseException:
        """The error a failing stream raises (``exc`` itself when it is not ours to type)."""
        if state.started:
            return self._interrupted(exc, state)
        if isinstance(exc, CampusLLMError):
            return exc
        if isinstance(exc, (AttributeError, TypeError, KeyError)):
            # langchain-openai reading a chunk that is not an object ("data: null")
            return ProtocolError(
                f"{self._resolved.key} sent a malformed stream chunk ({exc}).",
                hint="Check that the base URL points at an OpenAI-compatible API.",
                provider=self._resolved.provider.name,
                model=self._resolved.model.id,
            )
        return self._map_error(exc) if _is_transport_error(exc) else exc

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except CampusLLMError:
            raise
        except Exception as e:
            if isinstance(e, (AttributeError, TypeError, KeyError)):
                raise self._malformed(e) from e
            if not _is_transport_error(e):
                raise
            raise self._map_error(e) from e

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except CampusLLMError:
            raise
        except Exception as e:
            if isinstance(e, (AttributeError, TypeError, KeyError)):
                raise self._malformed(e) from e
            if not _is_transport_error(e):
                raise
            raise self._map_error(e) from e

    # ------------------------------------------------------------------ streaming

    def _new_stream_state(self) -> _StreamState:
        from campusllm.wire import StreamAssembler

        return _StreamState(StreamAssembler(self._resolved.model.reasoning), self.model_name)

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict,
        default_chunk_class: type,
        base_generation_info: dict | None,
    ) -> ChatGenerationChunk | None:
        state = _STREAM_STATE.get()
        if state is None:  # called outside _stream (e.g. directly): no cross-chunk state
            state = self._new_stream_state()
        if isinstance(chunk.get("type"), str) and "choices" not in chunk:
            inner = chunk.get("chunk")  # SDK stream-helper events wrap the raw chunk
            if chunk["type"] != "chunk" or not isinstance(inner, dict):
                return None
            chunk = inner
        delta = state.assembler.feed(chunk)
        state.started = True
        return self._delta_to_chunk(delta, state, base_generation_info)

    def _delta_to_chunk(
        self, delta: Delta, state: _StreamState, base_generation_info: dict | None
    ) -> ChatGenerationChunk:
        additional: dict[str, Any] = {}
        if delta.reasoning:
            additional["reasoning_content"] = delta.reasoning
        message = AIMessageChunk(
            content=delta.content,
            additional_kwargs=additional,
            tool_call_chunks=[
                tool_call_chunk(name=t.name, args=t.arguments or None, id=t.id, index=t.index)
                for t in delta.tool_calls
            ],
            usage_metadata=_usage_metadata(delta.usage),
            response_metadata={"model_provider": MODEL_PROVIDER},
        )
        info = dict(base_generation_info or {})
        if delta.finish_reason and not state.finish_seen:
            state.finish_seen = True
            info["finish_reason"] = delta.finish_reason
            info["model_name"] = delta.model or state.assembler.model or state.model_name
        return ChatGenerationChunk(message=message, generation_info=info or None)

    def _tail_chunk(self, state: _StreamState) -> ChatGenerationChunk | None:
        delta = state.assembler.finish()
        if not (delta.content or delta.reasoning or not state.finish_seen):
            return None
        chunk = self._delta_to_chunk(delta, state, None)
        if not state.finish_seen:  # gateways that never send finish_reason
            state.finish_seen = True
            chunk.generation_info = {
                **(chunk.generation_info or {}),
                "model_name": state.assembler.model or state.model_name,
            }
        return chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        state = self._new_stream_state()
        gen = super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        try:
            while True:
                token = _STREAM_STATE.set(state)
                try:
                    chunk = next(gen)
                except StopIteration:
                    break
                except Exception as e:
                    mapped = self._stream_error(e, state)
                    if mapped is e:
                        raise
                    raise mapped from e
                finally:
                    _STREAM_STATE.reset(token)
                yield chunk
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
        tail = self._tail_chunk(state)
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
        try:
            while True:
                token = _STREAM_STATE.set(state)
                try:
                    chunk = await gen.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as e:
                    mapped = self._stream_error(e, state)
                    if mapped is e:
                        raise
                    raise mapped from e
                finally:
                    _STREAM_STATE.reset(token)
                yield chunk
        finally:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
        tail = self._tail_chunk(state)
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
        has neither).
        """
        method = self._structured_method(method)
        if method != "json_schema":
            return super().with_structured_output(
                schema,
                method=method,
                include_raw=include_raw,
                strict=strict,
                tools=tools,
                **kwargs,
            )
        if schema is None:
            raise ValueError("schema must be specified when method is 'json_schema'.")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        response_format = _response_format_dict(schema, strict)
        bind_kwargs: dict[str, Any] = {
            "response_format": response_format,
            "ls_structured_output_format": {
                "kwargs": {"method": method, "strict": strict},
                "schema": convert_to_openai_function(schema),
            },
            **kwargs,
        }
        llm: Runnable[LanguageModelInput, Any]
        if tools:
            llm = self.bind_tools(tools, strict=strict, **bind_kwargs)
        else:
            llm = self.bind(**bind_kwargs)
        # Content is already free of think tags, so ordinary parsers suffice.
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        )
        if include_raw:
            parser_assign = RunnablePassthrough.assign(
                parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
            )
            parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
            fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
            return RunnableMap(raw=llm) | fallback
        return llm | parser

    def _structured_method(self, method: str) -> Any:
        resolved = self.campus_resolved
        if resolved is None or not resolved.known:
            return method
        spec = resolved.model
        if method == "json_schema" and not spec.json_schema:
            if spec.tools:
                warnings.warn(
                    f"{resolved.key} does not support json_schema response formats; "
                    "using method='function_calling' instead.",
                    UserWarning,
                    stacklevel=3,
                )
                return "function_calling"
            raise CapabilityError(
                f"{resolved.key} supports neither json_schema output nor tool calling.",
                hint="Use method='json_mode' with format instructions, or another model.",
                provider=resolved.provider.name,
                model=spec.id,
            )
        if method == "json_mode" and not (spec.json_mode or spec.json_schema):
            if spec.tools:
                warnings.warn(
                    f"{resolved.key} does not support JSON mode; "
                    "using method='function_calling' instead.",
                    UserWarning,
                    stacklevel=3,
                )
                return "function_calling"
            raise CapabilityError(
                f"{resolved.key} supports neither JSON mode nor tool calling.",
                hint="Ask for JSON in the prompt and parse it with JsonOutputParser.",
                provider=resolved.provider.name,
                model=spec.id,
            )
        if method == "function_calling" and not spec.tools:
            if spec.json_schema:
                warnings.warn(
                    f"{resolved.key} does not support tool calling; "
                    "using method='json_schema' instead.",
                    UserWarning,
                    stacklevel=3,
                )
                return "json_schema"
            raise CapabilityError(
                f"{resolved.key} does not support tool calling, so it cannot do "
                "function-calling structured output.",
                hint="Use method='json_mode' if the model supports it, or another model.",
                provider=resolved.provider.name,
                model=spec.id,
            )
        return method

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
        resolved = self.campus_resolved
        if resolved is not None and resolved.known and not resolved.model.tools and tools:
            from campusllm.wire import prepare_chat_payload

            # Same check and message as a request would get, raised early.
            prepare_chat_payload(
                {"messages": [{"role": "user", "content": "x"}], "tools": [{}]}, resolved
            )
        return super().bind_tools(
            tools,
            tool_choice=tool_choice,
            strict=strict,
            parallel_tool_calls=parallel_tool_calls,
            response_format=response_format,
            **kwargs,
        )


def _is_transport_error(exc: BaseException) -> bool:
    """openai SDK / httpx / wire-decoding errors: the kinds error_from_exception types."""
    import json

    import httpx
    import openai

    return isinstance(
        exc, (openai.OpenAIError, httpx.HTTPError, json.JSONDecodeError, UnicodeDecodeError)
    )
