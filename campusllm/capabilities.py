"""What a model can do, and what happens when a request asks for more.

The registry records capabilities as data (``tools``, ``vision``, ``json_schema``,
``json_mode``, the reasoning switch); this module is the policy on top, asked by the wire
layer when it prepares a request and by both framework adapters when they bind tools or pick a
structured-output method. Models the catalog does not know are never refused: the gateway
decides for them.

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    >>> supports_function_calling(r)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from .errors import CapabilityError
from .registry import ModelSpec, ResolvedModel
from .warn import warn_user

__all__ = [
    "StructuredMethod",
    "supports_function_calling",
    "require_tools",
    "require_vision",
    "thinking_request",
    "structured_output_method",
    "serves_chat",
    "serves_completions",
    "require_chat",
    "require_completions",
]

StructuredMethod = Literal["function_calling", "json_mode", "json_schema"]


def _other_models(resolved: ResolvedModel, ok: Callable[[ModelSpec], bool]) -> list[str]:
    return [
        m.id
        for m in resolved.provider.models
        if m.kind == "chat" and m.status != "deprecated" and m.id != resolved.model.id and ok(m)
    ]


def _alternatives(resolved: ResolvedModel, ids: list[str], what: str) -> str:
    if ids:
        return f"Models of {resolved.provider.name} that {what}: {', '.join(ids)}."
    return (
        f"No catalogued model of {resolved.provider.name} {what}; if yours does, register it "
        "with campusllm.register_model(...)."
    )


def _refuse(resolved: ResolvedModel, message: str, hint: str) -> CapabilityError:
    return CapabilityError(
        message, hint=hint, provider=resolved.provider.name, model=resolved.model.id
    )


def supports_function_calling(resolved: ResolvedModel) -> bool:
    """Whether tool calls may be sent (unknown models: yes, the gateway decides).

    Example:
        >>> from campusllm.registry import resolve
        >>> supports_function_calling(resolve("oneapi:qwen3-embedding-8b"))
        False
    """
    return resolved.model.tools or not resolved.known


def require_tools(resolved: ResolvedModel) -> None:
    """CapabilityError naming models that can, when this one cannot call tools."""
    if not supports_function_calling(resolved):
        raise _refuse(
            resolved,
            f"{resolved.key} does not support tool calling.",
            _alternatives(resolved, _other_models(resolved, lambda m: m.tools), "do"),
        )


def require_vision(resolved: ResolvedModel) -> None:
    """CapabilityError naming models that can, when this one cannot read images."""
    if resolved.known and not resolved.model.vision:
        raise _refuse(
            resolved,
            f"{resolved.key} cannot read images.",
            _alternatives(resolved, _other_models(resolved, lambda m: m.vision), "can"),
        )


def thinking_request(
    resolved: ResolvedModel, thinking: bool | None, *, has_tools: bool
) -> bool | None:
    """The thinking mode to ask the gateway for (None: the model's default).

    CapabilityError when the model cannot switch as asked. A model that calls tools only
    with thinking off (Qwen3 on some one-api gateways) gets thinking off whenever tools are
    bound and nothing else was asked.
    """
    spec = resolved.model.reasoning
    want = thinking
    if spec.tools_only_without_thinking and has_tools and spec.toggle != "none":
        if thinking is True:
            raise _refuse(
                resolved,
                f"{resolved.key} supports function calling only with thinking off.",
                "Pass thinking=False (or leave it unset) when you bind tools.",
            )
        want = False
    if want is None:
        return None
    if spec.toggle == "none" and want != spec.default_on:
        mode = "on" if want else "off"
        can = _other_models(
            resolved, lambda m: m.reasoning.toggle != "none" or m.reasoning.default_on == want
        )
        unknown = "" if resolved.known else " (not in the catalog: no switch known)"
        raise _refuse(
            resolved,
            f"{resolved.key} cannot switch thinking {mode}{unknown}.",
            _alternatives(resolved, can, f"can run with thinking {mode}"),
        )
    if spec.toggle == "model_switch":
        target = spec.thinking_model if want else spec.non_thinking_model
        if not target:
            raise _refuse(
                resolved,
                f"{resolved.key} has no {'thinking' if want else 'non-thinking'} variant.",
                "Leave thinking unset to use the model as it is.",
            )
    return want


def structured_output_method(resolved: ResolvedModel, method: str) -> StructuredMethod:
    """The structured-output method to use when ``method`` is asked for.

    A method the model lacks falls back to one it has, with a warning; with neither,
    CapabilityError. Unknown models get what was asked.

    Example:
        >>> from campusllm.registry import resolve
        >>> structured_output_method(resolve("sjtu:deepseek-chat"), "function_calling")
        'function_calling'
    """
    asked = _as_method(method)
    if not resolved.known:
        return asked
    spec = resolved.model
    key = resolved.key
    if asked == "json_schema" and not spec.json_schema:
        if spec.tools:
            warn_user(
                f"{key} does not support json_schema response formats; "
                "using method='function_calling' instead."
            )
            return "function_calling"
        raise _refuse(
            resolved,
            f"{key} supports neither json_schema output nor tool calling.",
            "Use method='json_mode' with format instructions, or another model.",
        )
    if asked == "json_mode" and not (spec.json_mode or spec.json_schema):
        if spec.tools:
            warn_user(f"{key} does not support JSON mode; using method='function_calling' instead.")
            return "function_calling"
        raise _refuse(
            resolved,
            f"{key} supports neither JSON mode nor tool calling.",
            "Ask for JSON in the prompt and parse it with JsonOutputParser.",
        )
    if asked == "function_calling" and not spec.tools:
        if spec.json_schema:
            warn_user(f"{key} does not support tool calling; using method='json_schema' instead.")
            return "json_schema"
        raise _refuse(
            resolved,
            f"{key} does not support tool calling, so it cannot do "
            "function-calling structured output.",
            "Use method='json_mode' if the model supports it, or another model.",
        )
    return asked


def _as_method(method: str) -> StructuredMethod:
    if method == "json_schema":
        return "json_schema"
    if method == "json_mode":
        return "json_mode"
    if method == "function_calling":
        return "function_calling"
    raise ValueError(
        f"Unknown structured-output method {method!r}; use 'function_calling', 'json_mode' "
        "or 'json_schema'."
    )


# -- generation endpoints (ModelSpec.endpoint) ------------------------------------------


def serves_chat(resolved: ResolvedModel) -> bool:
    """Whether the model answers ``/chat/completions`` (unknown models: yes, the gateway decides).

    Example:
        >>> from campusllm.registry import resolve
        >>> serves_chat(resolve("maas:QwQ-32B", base_url="http://127.0.0.1:9/v1"))
        True
    """
    return not resolved.known or resolved.model.endpoint != "completions"


def serves_completions(resolved: ResolvedModel) -> bool:
    """Whether the model answers the text-completion ``/completions`` (unknown models: yes).

    Example:
        >>> from campusllm.registry import resolve
        >>> qwq = resolve("maas:QwQ-32B", base_url="http://127.0.0.1:9/v1")
        >>> serves_completions(qwq), serves_completions(resolve("sjtu:glm"))
        (True, False)
    """
    if not resolved.known:
        return True
    return resolved.model.kind == "chat" and resolved.model.endpoint in ("completions", "both")


def require_chat(resolved: ResolvedModel) -> None:
    """CapabilityError when the catalog says the model serves only ``/completions``."""
    if not serves_chat(resolved):
        raise _refuse(
            resolved,
            f"{resolved.key} serves only text completion (/completions), not chat: it has no "
            "chat template.",
            "Use CampusLLMCompletion (LangChain) or CampusLLM.complete() (LlamaIndex), or "
            "campusllm.completions.CompletionCaller, with a prompt instead of messages.",
        )


def require_completions(resolved: ResolvedModel) -> None:
    """CapabilityError when the catalog does not list ``/completions`` for the model.

    Example:
        >>> from campusllm.registry import resolve
        >>> require_completions(resolve("sjtu:glm"))
        Traceback (most recent call last):
        ...
        campusllm.errors.CapabilityError: sjtu:glm-5.1 is documented for chat only: ...
    """
    if serves_completions(resolved):
        return
    spec = resolved.model
    if spec.kind != "chat":
        raise _refuse(
            resolved,
            f"{resolved.key} is of kind {spec.kind!r}; it does not generate text.",
            "Use a chat or completion model.",
        )
    ids = _other_models(resolved, lambda m: m.endpoint != "chat")
    others = f"Models of {resolved.provider.name} that do: {', '.join(ids)}. " if ids else ""
    raise _refuse(
        resolved,
        f"{resolved.key} is documented for chat only: its gateway does not list text "
        "completion (/completions) for it.",
        f"Use the chat classes for it (ChatCampusLLM, CampusLLM.chat). {others}If your gateway "
        "does serve /completions for it, register the model with endpoint='both'.",
    )
