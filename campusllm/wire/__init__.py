"""Framework-free wire layer: parse chat completions and streams, prepare request bodies.

One concern per module: :mod:`.reasoning` (reasoning shapes and think tags),
:mod:`.messages` (the parsed shapes), :mod:`.completion` (whole answers), :mod:`.stream`
(stream chunks), :mod:`.error_body` (gateway error bodies), :mod:`.request` (request
bodies) and :mod:`.responses` (embedding, rerank and ``/models`` answers).

Example:
    >>> from campusllm.wire import parse_completion
    >>> parse_completion({"choices": [{"message": {"content": "<think>hm</think>\\n\\nHi"}}]})
    WireMessage(content='Hi', reasoning='hm', tool_calls=[], finish_reason=None, usage=None, model=None, id=None)
"""  # noqa: E501

from __future__ import annotations

from .completion import error_in_body, parse_completion
from .error_body import GatewayError, parse_gateway_error
from .messages import Delta, ToolCall, ToolCallDelta, WireMessage
from .reasoning import ThinkTagSplitter, split_reasoning
from .request import (
    find_lone_surrogate,
    has_image,
    prepare_chat_payload,
    refuse_lone_surrogates,
    thinking_enabled,
)
from .responses import RerankResult
from .stream import StreamAssembler

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
    "find_lone_surrogate",
    "refuse_lone_surrogates",
    "error_in_body",
    "GatewayError",
    "parse_gateway_error",
    "RerankResult",
]
