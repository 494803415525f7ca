"""Between the wire layer's shapes and LangChain's messages.

Example:
    >>> from campusllm.wire import Delta
    >>> chunk = delta_chunk(Delta(content="Hi", reasoning="hm"))
    >>> chunk.content, chunk.additional_kwargs["reasoning_content"]
    ('Hi', 'hm')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_function

from campusllm.wire import Delta, WireMessage

__all__ = [
    "MODEL_PROVIDER",
    "usage_metadata",
    "reasoning_of",
    "response_format_dict",
    "ai_message",
    "delta_chunk",
]

#: ``response_metadata["model_provider"]``: an unregistered provider makes langchain-core
#: build ``content_blocks`` from ``additional_kwargs["reasoning_content"]`` (the "openai"
#: translator would hide the reasoning).
MODEL_PROVIDER = "campusllm"


def _count(value: Any) -> int:
    """A token count from a gateway's usage block; junk counts as 0 rather than crashing."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_metadata(usage: Mapping[str, Any] | None) -> UsageMetadata | None:
    """A gateway's usage block as LangChain's ``UsageMetadata`` (None when there is none)."""
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


def reasoning_of(message: AIMessage) -> str | None:
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


def response_format_dict(schema: Any, strict: bool | None) -> dict[str, Any]:
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


def ai_message(wire: WireMessage) -> AIMessage:
    """A parsed answer as an AIMessage (reasoning in ``additional_kwargs``)."""
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
    return AIMessage(
        content=wire.content,
        additional_kwargs=additional,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(wire.usage),
        response_metadata={"model_provider": MODEL_PROVIDER},
    )


def delta_chunk(delta: Delta) -> AIMessageChunk:
    """One stream delta as an AIMessageChunk (reasoning in ``additional_kwargs``)."""
    additional: dict[str, Any] = {}
    if delta.reasoning:
        additional["reasoning_content"] = delta.reasoning
    return AIMessageChunk(
        content=delta.content,
        additional_kwargs=additional,
        tool_call_chunks=[
            tool_call_chunk(name=t.name, args=t.arguments or None, id=t.id, index=t.index)
            for t in delta.tool_calls
        ],
        usage_metadata=usage_metadata(delta.usage),
        response_metadata={"model_provider": MODEL_PROVIDER},
    )
