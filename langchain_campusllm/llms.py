"""LangChain text-completion LLM (``/completions``) for campus and enterprise gateways.

``CampusLLMCompletion`` is to :class:`~langchain_campusllm.ChatCampusLLM` what
langchain-openai's ``OpenAI`` is to ``ChatOpenAI``: a LangChain ``BaseLLM`` that sends a prompt
to the text-completion endpoint MaaS platforms (and every vLLM server) serve beside chat, and
returns text. Requests go through campusllm's core
(:class:`~campusllm.completions.CompletionCaller`): the registry's request defaults (such as
``stop_token_ids``), the shared limiter and retries, the typed errors, and reasoning split from
the text of R1-distill/QwQ-style models (``generation_info["reasoning_content"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict, Field, SecretStr, ValidationError, model_validator

from campusllm.completions import CompletionCaller
from campusllm.connection import DEFAULT_CHAT_TIMEOUT, Connection, connect
from campusllm.errors import ConfigError
from campusllm.limiter import RateLimiter
from campusllm.registry import RateLimits, ResolvedModel
from campusllm.wire import Delta, WireMessage
from campusllm.wire.text import choice_logprobs

from ._validation import raise_campus_error
from .convert import MODEL_PROVIDER

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )

__all__ = ["CampusLLMCompletion"]

_DEFAULT_TIMEOUT = DEFAULT_CHAT_TIMEOUT
_MAX_PARALLEL = 8  # prompts of one batch in flight at once; the limiter paces them anyway


class CampusLLMCompletion(BaseLLM):
    """Text completion (a prompt in, text out) on a campus/enterprise gateway's ``/completions``.

    For models the catalog marks ``endpoint = "completions"`` or ``"both"`` (every MaaS model;
    base models without a chat template you register yourself); others raise
    :class:`~campusllm.errors.CapabilityError` at construction. ``invoke``/``stream``/
    ``batch`` and their async twins, ``stop`` (per call or as a field), ``max_tokens`` (default:
    the model's ``max_output``, else 1024 — vLLM would stop after 16 tokens), the model's
    request defaults, and the same limiter, retries and errors as ``ChatCampusLLM``. Reasoning
    that a prompt in the model's chat format leads into (``…<think>\\n``) is split from the text:
    ``generation_info["reasoning_content"]``.

    Example:
        >>> from campusllm.sim import SIM_KEY, Simulator
        >>> with Simulator() as sim:
        ...     llm = CampusLLMCompletion(model="maas:Qwen2-72B", base_url=sim.url("maas"),
        ...                               api_key=SIM_KEY, max_tokens=64)
        ...     text = llm.invoke("Once upon a time", stop=["\\n\\n"])
        >>> "Once upon a time" in text
        True
    """

    model_name: str = Field(default="", alias="model")
    """Model id or ``"provider:model"``; after construction, the id sent on the wire."""
    provider: str | None = None
    """Provider name in the campusllm registry (``maas``, ``custom``…)."""
    api_key: SecretStr | None = Field(default=None, repr=False)
    """Overrides the provider's key env vars."""
    base_url: str | None = None
    """Overrides the registry's base URL (``MAAS_BASE_URL`` for MaaS)."""
    timeout: float | None = None
    """Total seconds of one attempt, the whole answer or stream included (default 600, as
    for chat)."""
    read_timeout: float | None = None
    """Longest silence in seconds between two reads (``None``: only ``timeout`` bounds it)."""
    max_retries: int | None = None
    """Retries of 429/5xx/connection errors (default: the core's policy)."""
    rate_limits: RateLimits | None = None
    """Override the provider's rpm/tpm/window for this key (shared with other clients)."""
    limiter: str | RateLimiter | None = Field(default=None, exclude=True)
    """Who shares the key's quota: ``"local"`` (this machine's processes; default), ``"memory"``,
    ``"redis://host:port/db"``, or a :class:`~campusllm.limiter.RateLimiter` of your own."""
    default_headers: dict[str, str] | None = Field(default=None, repr=False)
    """Extra headers sent with every request."""
    temperature: float | None = None
    max_tokens: int | None = None
    """Most tokens to generate (default: the model's ``max_output``, else 1024)."""
    top_p: float | None = None
    stop: list[str] | None = None
    """Stop strings for every call (a per-call ``stop`` replaces them)."""
    streaming: bool = False
    """Stream internally in ``invoke``/``generate`` (callbacks see every token)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra body keys for every request (``logprobs``, ``repetition_penalty``, …)."""

    campus_caller: CompletionCaller | None = Field(default=None, exclude=True, repr=False)
    """Set by the constructor: the core caller on this model's connection."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            raise_campus_error(e)  # users catch campusllm's types, not pydantic's wrapper
            raise

    @model_validator(mode="before")
    @classmethod
    def _campusllm_connect(cls, values: Any) -> Any:
        """Connect (registry, key, limiter, transport) and check the model completes text."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("campus_caller"):
            return values
        name = values.pop("model", None) or values.pop("model_name", None)
        values.pop("model_name", None)
        if not name:
            raise ConfigError(
                "CampusLLMCompletion needs a model.",
                hint='Pass model="provider:model", e.g. model="maas:QwQ-32B".',
            )
        timeout = values.get("timeout")
        conn = connect(
            name,
            provider=values.get("provider"),
            base_url=values.get("base_url"),
            api_key=values.get("api_key"),
            rate_limits=values.get("rate_limits"),
            limiter=values.get("limiter"),
            max_retries=values.get("max_retries"),
            timeout=_DEFAULT_TIMEOUT if timeout is None else timeout,
            read_timeout=values.get("read_timeout"),
            headers=values.get("default_headers"),
        )
        caller = CompletionCaller(conn)
        if values.get("thinking") is not None:
            # Not a field: pydantic would drop it unseen, and the model would think anyway.
            caller.body("", thinking=values["thinking"])  # raises CapabilityError
        resolved = conn.resolved
        values.update(
            model=resolved.wire_model,
            provider=resolved.provider.name,
            base_url=resolved.base_url,
            api_key=conn.api_key,
            campus_caller=caller,
        )
        return values

    # ------------------------------------------------------------------ identity

    @property
    def caller(self) -> CompletionCaller:
        """The core caller (request preparation, HTTP, parsing) this model sends through."""
        if self.campus_caller is None:
            raise ConfigError("This CampusLLMCompletion was not built by its constructor.")
        return self.campus_caller

    @property
    def connection(self) -> Connection:
        """The connection: resolved model, key, limiter, retry policy and HTTP clients."""
        return self.caller.connection

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to."""
        return self.caller.resolved

    @property
    def _llm_type(self) -> str:
        return "campusllm-completion"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "provider": self.provider,
            "base_url": self.base_url,
            **self._defaults(),
        }

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_campusllm", "llms"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        caller = self.campus_caller
        env = caller.resolved.provider.key_env[0] if caller else None
        return {"api_key": env or "CAMPUSLLM_API_KEY"}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = MODEL_PROVIDER
        params["ls_model_name"] = self.model_name
        return params

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the HTTP connections; call it in the loop that used them."""
        await self.connection.aclose()

    # ------------------------------------------------------------------ requests

    def _defaults(self) -> dict[str, Any]:
        fields = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        fields["top_p"] = self.top_p
        return {k: v for k, v in fields.items() if v is not None}

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = {**self._defaults(), **self.model_kwargs, **kwargs}
        stops = stop if stop is not None else self.stop
        if stops:
            params["stop"] = list(stops)
        return params

    @staticmethod
    def _info(msg: WireMessage, logprobs: Any = None) -> dict[str, Any]:
        info: dict[str, Any] = {"finish_reason": msg.finish_reason}
        if msg.reasoning:
            info["reasoning_content"] = msg.reasoning
        if logprobs is not None:
            info["logprobs"] = logprobs
        if msg.model:
            info["model_name"] = msg.model
        return info

    @staticmethod
    def _chunk(delta: Delta) -> GenerationChunk | None:
        if not (delta.content or delta.reasoning or delta.finish_reason or delta.usage):
            return None
        info: dict[str, Any] = {}
        if delta.reasoning:
            info["reasoning_content"] = delta.reasoning
        if delta.finish_reason:
            info["finish_reason"] = delta.finish_reason
        if delta.usage:
            info["token_usage"] = delta.usage
        return GenerationChunk(text=delta.content, generation_info=info or None)

    def _result(self, generations: list[tuple[Generation, dict[str, Any] | None]]) -> LLMResult:
        usage: dict[str, int] = {}
        for _, u in generations:
            for k, v in (u or {}).items():
                if isinstance(v, int) and not isinstance(v, bool):
                    usage[k] = usage.get(k, 0) + v
        return LLMResult(
            generations=[[g] for g, _ in generations],
            llm_output={"token_usage": usage, "model_name": self.model_name},
        )

    def _one(
        self,
        prompt: str,
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> tuple[Generation, dict[str, Any] | None]:
        params = self._params(stop, kwargs)
        if self.streaming:
            stream = self.caller.stream(prompt, **params)
            for delta in stream:
                chunk = self._chunk(delta)
                if chunk is not None and run_manager is not None:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            msg, logprobs = stream.message(), None
        else:
            data = self.caller.post(self.caller.body(prompt, **params))
            msg, logprobs = self.caller.parse(data, prompt), choice_logprobs(data)
        return Generation(text=msg.content, generation_info=self._info(msg, logprobs)), msg.usage

    async def _aone(
        self,
        prompt: str,
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> tuple[Generation, dict[str, Any] | None]:
        params = self._params(stop, kwargs)
        if self.streaming:
            stream = self.caller.astream(prompt, **params)
            async for delta in stream:
                chunk = self._chunk(delta)
                if chunk is not None and run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            msg, logprobs = stream.message(), None
        else:
            data = await self.caller.apost(self.caller.body(prompt, **params))
            msg, logprobs = self.caller.parse(data, prompt), choice_logprobs(data)
        return Generation(text=msg.content, generation_info=self._info(msg, logprobs)), msg.usage

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """One request per prompt; a batch runs several at once (the limiter paces them)."""
        if len(prompts) == 1:
            return self._result([self._one(prompts[0], stop, run_manager, kwargs)])
        with ThreadPoolExecutor(max_workers=min(len(prompts), _MAX_PARALLEL)) as pool:
            done = list(pool.map(lambda p: self._one(p, stop, run_manager, kwargs), prompts))
        return self._result(done)

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Async :meth:`_generate`: every prompt in flight at once, paced by the limiter."""
        done = await asyncio.gather(*(self._aone(p, stop, run_manager, kwargs) for p in prompts))
        return self._result(list(done))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for delta in self.caller.stream(prompt, **self._params(stop, kwargs)):
            chunk = self._chunk(delta)
            if chunk is None:
                continue
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        async for delta in self.caller.astream(prompt, **self._params(stop, kwargs)):
            chunk = self._chunk(delta)
            if chunk is None:
                continue
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
