"""Between LlamaIndex's chat messages and the OpenAI wire format.

Example:
    >>> from llama_index.core.base.llms.types import ChatMessage
    >>> to_wire_messages([ChatMessage(role="user", content="hi")])
    [{'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.utils import parse_partial_json

from campusllm.wire import ToolCall

__all__ = [
    "to_wire_messages",
    "assistant_message",
    "call_to_wire",
    "foreign_call",
    "parse_arguments",
    "usage_kwargs",
]

_ROLE_MAP = {"chatbot": "assistant", "model": "assistant", "function": "tool"}


def _image_url(block: ImageBlock) -> dict[str, Any]:
    if block.url is not None and block.image is None and block.path is None:
        url = str(block.url)
    else:
        url = block.inline_url()
    out: dict[str, Any] = {"url": url}
    if block.detail:
        out["detail"] = block.detail
    return out


def call_to_wire(call_id: str | None, name: str, arguments: Any, pos: int) -> dict[str, Any]:
    """An OpenAI tool-call dict (arguments as JSON text; an id made up when missing)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call_id or f"call_{pos}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


def foreign_call(call: Any, pos: int) -> dict[str, Any]:
    """A tool call another integration left in additional_kwargs (SDK object or dict)."""
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    if not isinstance(call, dict):
        raise ValueError(f"Cannot send tool call {call!r}: expected an OpenAI tool-call dict.")
    fn = call.get("function") or {}
    return call_to_wire(call.get("id"), fn.get("name") or "", fn.get("arguments") or "", pos)


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
                call_to_wire(block.tool_call_id, block.tool_name, block.tool_kwargs, len(calls))
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
            calls = [foreign_call(c, i) for i, c in enumerate(extra["tool_calls"])]
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
        wire.append(call_to_wire(call_id, call.name, call.arguments, call.index))
    return blocks, wire


def assistant_message(content: str, reasoning: str, calls: list[ToolCall]) -> ChatMessage:
    """An assistant ChatMessage: a ThinkingBlock for reasoning, text, tool-call blocks."""
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


def usage_kwargs(usage: dict[str, Any] | None) -> dict[str, Any]:
    """The token counts of a usage block, for ``ChatResponse.additional_kwargs``."""
    if not usage:
        return {}
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: usage[k] for k in keys if isinstance(usage.get(k), int)}


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool arguments as a dict; what parses of incomplete JSON; ``{}`` for anything else."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = parse_partial_json(arguments)
    except (ValueError, TypeError, RecursionError, IndexError):
        return {}
    return value if isinstance(value, dict) else {}
