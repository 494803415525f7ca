"""Framework-free wire layer: parse chat completions and streams, prepare request bodies."""

from __future__ import annotations

from .reasoning import (
    Delta,
    StreamAssembler,
    ThinkTagSplitter,
    ToolCall,
    ToolCallDelta,
    WireMessage,
    _error_in_body,
    has_image,
    parse_completion,
    prepare_chat_payload,
    split_reasoning,
    thinking_enabled,
)

__all__ = [
    "ToolCall",
    "WireMessage",
    "ToolCallDelta",
    "Delta",
    "ThinkTagSplitter",
    "StreamAssembler",
    "parse_completion",
    "split_reasoning",
    "prepare_chat_payload",
    "thinking_enabled",
    "has_image",
    "_error_in_body",
]
