"""The software behind each simulated provider, and what it says that the others do not.

The campus gateways run different software: SJTU's 致远一号 is a LiteLLM proxy in front of
vLLM servers (the answers in "本地大模型API使用文档" carry LiteLLM's
``provider_specific_fields``), the one-api / new-api gateways and MaaS platforms pass vLLM's
answers on, and a lab's own server is often llama.cpp's ``llama-server``. Where they differ on
the wire (an unknown model, a prompt over the context window, a quota, an upstream that
fails, how reasoning reaches the client) the simulator answers as the software its provider
runs. The wording below was taken from LiteLLM 1.108 and llama-server answering real requests.

Example:
    >>> gateway_for("sjtu").name, gateway_for("oneapi").name
    ('litellm', 'vllm')
    >>> litellm = GATEWAYS["litellm"]
    >>> status, body = litellm.unknown_model("/chat/completions", "deepseek-chatt", "sjtu")
    >>> status, body["error"]["message"].split(". ")[0]
    (400, '/chat/completions: Invalid model name passed in model=deepseek-chatt')
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any

from .http import error_body

__all__ = [
    "DEFAULT_GATEWAYS",
    "GATEWAYS",
    "Gateway",
    "LiteLLM",
    "LlamaCpp",
    "gateway_for",
    "has_null_content",
    "litellm_router_429",
    "litellm_timeout_408",
    "litellm_upstream_401",
]

Answer = tuple[int, dict[str, Any]]
"""An HTTP status and the JSON body sent with it."""

_TAGS = re.compile(
    r"<(?:think|thinking|budget:thinking)>(.*?)</(?:think|thinking|budget:thinking)>(.*)",
    re.DOTALL,
)


def _vllm_context_message(context: int, prompt: int, completion: int | None) -> str | None:
    """vLLM's refusal of a request longer than the model's context, or ``None`` if it fits."""
    if completion is None:
        if prompt < context:
            return None
        return (
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt} tokens in the messages, Please reduce the length of the messages."
        )
    if prompt + completion <= context:
        return None
    return (
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
    )


def _null_content_message(index: int) -> str:
    """llama-cpp-python's validation error for an assistant message with ``content: null``."""
    return (
        "1 validation error:\n  {'type': 'string_type', 'loc': ('body', 'messages', "
        f"{index}, 'ChatCompletionRequestAssistantMessage', 'content'), 'msg': 'Input should "
        "be a valid string', 'input': None}\n"
    )


def has_null_content(body: Any) -> int | None:
    """Index of the first assistant message whose content is not a string, else ``None``.

    llama-cpp-python's server types an assistant message's content as an optional string and
    answers a validation 500 for ``null`` and for a list of content parts alike.

    Example:
        >>> has_null_content({"messages": [{"role": "user", "content": "hi"},
        ...                                {"role": "assistant", "content": None}]})
        1
        >>> has_null_content({"messages": [{"role": "assistant",
        ...                                 "content": [{"type": "text", "text": "x"}]}]})
        0
    """
    messages = body.get("messages") if isinstance(body, dict) else None
    for i, m in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "assistant":
            if not isinstance(m.get("content", ""), str):
                return i
    return None


class Gateway:
    """vLLM's answers, as the one-api / new-api gateways and MaaS platforms pass them on.

    The default: what the simulator did before it told gateways apart. Subclasses change
    only where their software really differs; the class attributes are the switches the
    answer-writing code reads.

    Example:
        >>> Gateway().unknown_model("/chat/completions", "nope", "oneapi")[0]
        404
    """

    name = "vllm"
    provider_fields = False
    """Each non-streamed choice carries ``provider_specific_fields`` (LiteLLM)."""
    tags_to_field = False
    """A non-streamed ``<think>...</think>`` answer is moved into ``reasoning_content``."""
    blank_after_reasoning = False
    """The answer after ``reasoning_content`` keeps the ``\\n\\n`` written after ``</think>``."""
    echo_closed_think = False
    """With thinking off, the empty think block the template wrote reaches the content."""
    null_first_delta = False
    """The first stream chunk says ``"content": null`` rather than ``""``."""
    window_retry_after = False
    """A quota 429's ``retry-after`` is the whole window, not the time until a slot frees."""

    def unknown_model(self, route: str, name: str, provider: str) -> Answer:
        """The answer to a model the gateway does not serve."""
        message = f"model not found: The model `{name}` does not exist on {provider}."
        return 404, error_body(message, code="model_not_found")

    def context_overflow(
        self, model: str, context: int, prompt: int, completion: int | None
    ) -> Answer | None:
        """The refusal of a prompt (plus ``max_tokens``) over the context window, or ``None``."""
        message = _vllm_context_message(context, prompt, completion)
        if message is None:
            return None
        return 400, error_body(message, "BadRequestError", 400)

    def mid_stream_error(self, status: int) -> dict[str, Any]:
        """The error object of the event that ends a stream whose upstream failed."""
        typ = "rate_limit_error" if status == 429 else "server_error"
        return error_body(f"simulated upstream error mid-stream ({status})", typ, str(status))

    def null_content_error(self, model: str, index: int) -> Answer:
        """A strict model server's 500 for ``content: null`` (llama-cpp-python's words)."""
        body = error_body(_null_content_message(index), "internal_server_error")
        return 500, body

    def finish_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed ``chat.completion`` as this gateway hands it over."""
        return body

    def too_many(
        self, provider: str, key: str, which: str, wait_s: float, window_s: float
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """A quota refusal's body and headers (``Retry-After`` is added by the caller)."""
        message = (
            f"Rate limit reached for {provider} ({which} per key). "
            f"Please try again in {wait_s:.2f}s."
        )
        return error_body(message, "rate_limit_error", "rate_limit_exceeded"), []


def _litellm_failed(model: str) -> str:
    return (
        f"\n\nLiteLLM: model group '{model}' failed with the error above. "
        "No fallback was attempted."
    )


def _litellm_error(message: str, typ: str | None, status: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": typ, "param": None, "code": str(status)}}


# The exception LiteLLM raises for an upstream's status, as its error messages name it.
_LITELLM_EXCEPTIONS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
}


class LiteLLM(Gateway):
    """A LiteLLM proxy in front of vLLM servers: SJTU's 致远一号.

    Example:
        >>> body = LiteLLM().finish_body({"choices": [{"message": {
        ...     "role": "assistant", "content": "<think>hmm</think>Paris."}}]})
        >>> msg = body["choices"][0]["message"]
        >>> msg["reasoning_content"], msg["content"]
        ('hmm', 'Paris.')
    """

    name = "litellm"
    provider_fields = True
    tags_to_field = True
    window_retry_after = True

    def unknown_model(self, route: str, name: str, provider: str) -> Answer:
        message = (
            f"{route}: Invalid model name passed in model={name}. "
            "Call `/v1/models` to view available models for your key."
        )
        err = _litellm_error(message, "invalid_request_error", 400)
        err["error"]["provider_specific_fields"] = {"error": message}
        return 400, err

    def context_overflow(
        self, model: str, context: int, prompt: int, completion: int | None
    ) -> Answer | None:
        upstream = _vllm_context_message(context, prompt, completion)
        if upstream is None:
            return None
        message = (
            "litellm.ContextWindowExceededError: litellm.BadRequestError: "
            f"ContextWindowExceededError: OpenAIException - {upstream}\nmodel={model}. "
            "context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - "
            "https://docs.litellm.ai/docs/routing#fallbacks" + _litellm_failed(model)
        )
        return 400, _litellm_error(message, "invalid_request_error", 400)

    def mid_stream_error(self, status: int) -> dict[str, Any]:
        # What LiteLLM writes when its upstream dies mid-stream: the exception's message,
        # no type, the status as text, and json.dumps's default spacing.
        if status == 500:
            detail = "APIConnectionError: OpenAIException - Connection error."
            message = f"litellm.APIConnectionError: {detail}"
        else:
            exc = _LITELLM_EXCEPTIONS.get(status, "InternalServerError")
            detail = f"OpenAIException - upstream error mid-stream ({status})"
            message = f"litellm.{exc}: {exc}: {detail}"
        return _litellm_error(message, None, status)

    def null_content_error(self, model: str, index: int) -> Answer:
        message = (
            "litellm.InternalServerError: InternalServerError: OpenAIException - "
            + _null_content_message(index).rstrip()
            + _litellm_failed(model)
        )
        return 500, _litellm_error(message, "internal_server_error", 500)

    def finish_body(self, body: dict[str, Any]) -> dict[str, Any]:
        # As the documented answers show them: vLLM's fields passed on, null where unset.
        for choice in body.get("choices") or []:
            msg = choice.get("message")
            if isinstance(msg, dict):
                _tags_to_field(msg)
                msg.setdefault("tool_calls", None)
                msg.setdefault("function_call", None)
            choice.pop("logprobs", None)
            choice["provider_specific_fields"] = {"stop_reason": None, "token_ids": None}
        body.setdefault("system_fingerprint", None)
        usage = body.get("usage")
        if isinstance(usage, dict):
            usage.setdefault("completion_tokens_details", None)
            usage.setdefault("prompt_tokens_details", None)
        for name in ("service_tier", "prompt_logprobs", "prompt_token_ids", "kv_transfer_params"):
            body.setdefault(name, None)
        return body

    def too_many(
        self, provider: str, key: str, which: str, wait_s: float, window_s: float
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        # LiteLLM's key-level limiter: the hashed key, the limit, a reset time one window from
        # now, and retry-after set to the window whatever is left of it.
        kind, _, limit = which.partition("=")
        limit_type = "tokens" if kind == "tpm" else "requests"
        reset = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + window_s))
        digest = hashlib.sha256(key.encode()).hexdigest()
        message = (
            f"Rate limit exceeded for api_key: {digest}. Limit type: {limit_type}. "
            f"Current limit: {limit}, Remaining: 0. Limit resets at: {reset}"
        )
        headers = [("rate_limit_type", limit_type), ("reset_at", reset)]
        return _litellm_error(message, "throttling_error", 429), headers


def _tags_to_field(msg: dict[str, Any]) -> None:
    """LiteLLM's own parsing of a non-streamed answer that starts with a think block."""
    content = msg.get("content")
    if "reasoning_content" in msg or "reasoning" in msg or not isinstance(content, str):
        return
    found = _TAGS.match(content)
    if found is not None:
        msg["content"] = found.group(2)
        msg["reasoning_content"] = found.group(1)


class LlamaCpp(Gateway):
    """llama.cpp's ``llama-server`` with a Qwen3/QwQ-style template that opens ``<think>``.

    Example:
        >>> status, body = LlamaCpp().context_overflow("m", 512, 931, None)
        >>> status, body["error"]["type"]
        (400, 'exceed_context_size_error')
    """

    name = "llama.cpp"
    blank_after_reasoning = True
    echo_closed_think = True
    null_first_delta = True

    def context_overflow(
        self, model: str, context: int, prompt: int, completion: int | None
    ) -> Answer | None:
        # llama-server checks the prompt alone against the slot's context.
        if prompt < context:
            return None
        message = (
            f"request ({prompt} tokens) exceeds the available context size ({context} "
            "tokens), try increasing it"
        )
        err = {"code": 400, "message": message, "type": "exceed_context_size_error"}
        return 400, {"error": {**err, "n_prompt_tokens": prompt, "n_ctx": context}}


GATEWAYS: Mapping[str, Gateway] = {g.name: g for g in (Gateway(), LiteLLM(), LlamaCpp())}
"""Every gateway software the simulator can answer as, by name."""

DEFAULT_GATEWAYS: Mapping[str, str] = {"sjtu": "litellm"}
"""Providers whose software is known; every other one answers as vLLM (through one-api)."""


def gateway_for(provider: str, chosen: Mapping[str, str] | None = None) -> Gateway:
    """The gateway ``provider`` runs: ``chosen`` for it, else :data:`DEFAULT_GATEWAYS`."""
    name = (chosen or {}).get(provider) or DEFAULT_GATEWAYS.get(provider, "vllm")
    return GATEWAYS[name]


# ------------------------------------------------------------------ LiteLLM's own failures


def litellm_router_429(model: str, retry_after_s: float) -> tuple[dict[str, Any], list[Any]]:
    """LiteLLM's router refusing a model whose deployments are all at their RPM limit.

    Unlike its key-level limit, the only hint is ``llm_provider-retry-after``.
    """
    deployments = {
        "sim-deployment": {"current_tpm": 0, "tpm_limit": "inf", "current_rpm": 1, "rpm_limit": 1}
    }
    message = (
        "litellm.RateLimitError: No deployments available for selected model. Passed "
        f"model={model}. Deployments={deployments}" + _litellm_failed(model)
    )
    headers = [("llm_provider-retry-after", f"{retry_after_s:g}")]
    return _litellm_error(message, "throttling_error", 429), headers


def litellm_timeout_408(
    model: str, timeout_s: float, *, stream: bool
) -> tuple[dict[str, Any], list[Any]]:
    """LiteLLM's 408 when its upstream did not answer within the deployment's timeout."""
    took = "" if stream else f" - timeout value={timeout_s:g}, time taken={timeout_s:g} seconds"
    message = (
        f"litellm.Timeout: APITimeoutError - Request timed out. Error_str: Request timed out.{took}"
        f"\n\nDeployment Info: request_timeout: None\ntimeout: {timeout_s:g}"
        + _litellm_failed(model)
    )
    headers = [("x-litellm-timeout", f"{timeout_s:g}")]
    return _litellm_error(message, "invalid_request_error", 408), headers


def litellm_upstream_401(model: str) -> dict[str, Any]:
    """LiteLLM passing on its upstream's 401: the gateway's own key was refused, not the user's."""
    message = (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key "
        "provided: sk-up***. Find your API key in the console." + _litellm_failed(model)
    )
    return _litellm_error(message, "authentication_error", 401)
