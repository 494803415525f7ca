"""Text completion (``/completions``): a prompt in, text out — request bodies and answers.

MaaS platforms serve ``/v1/completions`` beside chat ("给定一个提示,该模型将返回一个或多个预测的
完成", 常见模型 API 文档), as vLLM does for every model it loads. No chat template is applied
there, so the prompt decides where the output starts: a prompt that ends inside an open
``<think>`` (R1-distill and QwQ prompts written in their chat format) gets reasoning first and
only a ``</think>`` in the text. :func:`text_reasoning_spec` reads that from the prompt, and the
reasoning is split exactly as in chat answers (:mod:`.reasoning`).

Streams are fed to the same assembler as chat streams (:func:`as_chat_chunk` turns each
``text_completion`` chunk into the chat chunk shape), so a failing stream ends by the chat
rules too.

Example:
    >>> body = {"choices": [{"text": "plan</think>\\n\\nParis.", "finish_reason": "stop"}]}
    >>> m = parse_text_completion(body, prompt="Q: capital of France?\\n<think>\\n")
    >>> m.reasoning, m.content
    ('plan', 'Paris.')
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRequestError, ProtocolError, redact
from ..registry import ModelSpec, ReasoningSpec, ResolvedModel
from .completion import error_in_body, first_choice
from .messages import WireMessage
from .reasoning import CLOSE_TAG, OPEN_TAG, split_reasoning

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "prepare_completion_payload",
    "prompt_opens_think",
    "text_reasoning_spec",
    "parse_text_completion",
    "choice_logprobs",
    "as_chat_chunk",
]

DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` sent when neither the caller nor the catalog (``max_output``) gives one.

OpenAI's legacy API and vLLM stop a text completion after 16 tokens when the request names no
limit: a silently cut answer."""

# Chat-only request keys: a model's request_defaults may carry them for its chat requests, but
# /completions applies no chat template and has no messages or tools.
_CHAT_ONLY = frozenset(
    {"messages", "chat_template_kwargs", "tools", "tool_choice", "parallel_tool_calls"}
)


def prepare_completion_payload(
    payload: dict[str, Any], resolved: ResolvedModel, *, stream: bool | None = None
) -> dict[str, Any]:
    """Return a new ``/completions`` body for ``resolved`` with the registry's request rules.

    In order: wire model id, ``request_defaults`` (user keys win; chat-only keys such as
    ``chat_template_kwargs`` are left out), ``max_tokens`` (the model's ``max_output``, else
    :data:`DEFAULT_MAX_TOKENS`), ``stream`` and ``stream_options.include_usage`` for streams.
    ``payload`` is never mutated. Raises :class:`BadRequestError` when the prompt is not a
    string.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("maas:ChatGLM4-9B", base_url="http://127.0.0.1:9/v1")
        >>> body = prepare_completion_payload({"prompt": "Once upon a time"}, r)
        >>> body["model"], body["stop_token_ids"], body["max_tokens"]
        ('ChatGLM4-9B', [151329, 151336, 151338], 1024)
    """
    model: ModelSpec = resolved.model
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequestError(
            f"A text completion needs the prompt as a string, not {type(prompt).__name__}.",
            hint="Send one prompt per request; for chat messages use the chat classes.",
            provider=resolved.provider.name,
            model=model.id,
        )
    out = dict(payload)
    if not out.get("model"):
        out["model"] = resolved.wire_model
    for key, value in model.request_defaults.items():
        if key not in out and key not in _CHAT_ONLY:
            out[key] = json.loads(json.dumps(value))  # a private copy of nested defaults
    if out.get("max_tokens") is None:
        out["max_tokens"] = model.max_output or DEFAULT_MAX_TOKENS
    if stream is not None:
        out["stream"] = stream
    if out.get("stream") and resolved.provider.stream_usage and "stream_options" not in out:
        out["stream_options"] = {"include_usage": True}
    return out


def prompt_opens_think(prompt: str) -> bool:
    """Whether ``prompt`` ends inside an open ``<think>`` block (the output starts as reasoning).

    Example:
        >>> prompt_opens_think("<|im_start|>assistant\\n<think>\\n")
        True
        >>> prompt_opens_think("<think>done</think>\\nAnswer:")
        False
    """
    return prompt.rfind(OPEN_TAG) > prompt.rfind(CLOSE_TAG)


def text_reasoning_spec(prompt: str) -> ReasoningSpec:
    """How to split the output of ``prompt``: think tags, opened already if the prompt opened one.

    Text completions have no reasoning fields (no reasoning parser runs on ``/completions``)
    and no chat template, so the model's own ``ReasoningSpec`` does not apply; the prompt does.

    Example:
        >>> text_reasoning_spec("Question: 1+1?\\n<think>").opens_in_template
        True
    """
    return ReasoningSpec(shape="think_tags", opens_in_template=prompt_opens_think(prompt))


def _not_text_completion(what: str, body: Any) -> ProtocolError:
    try:
        text = json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(body)
    return ProtocolError(
        f"The gateway's answer is not a text completion ({what}): {redact(text, 300)}",
        hint="Check that the base URL points at an OpenAI-compatible API (it usually ends in "
        "/v1) and that it serves /completions for this model.",
        body=redact(text, 300),
    )


def _choice_message(choice: dict[str, Any]) -> dict[str, Any] | None:
    text = choice.get("text")
    if isinstance(text, str):
        return {"content": text}
    # Some proxies answer /completions in the chat shape (a message instead of text).
    for key in ("message", "delta"):
        message = choice.get(key)
        if isinstance(message, dict):
            return message
    return None


def parse_text_completion(body: Any, prompt: str = "") -> WireMessage:
    """Parse the first choice of a ``text_completion`` body; reasoning split by the prompt.

    Error bodies — also those sent with HTTP 200 — raise :class:`BadRequestError` with the
    gateway's message; any other shape that is not a text completion :class:`ProtocolError`.

    Example:
        >>> m = parse_text_completion({"choices": [{"text": " upon a time", "index": 0}]})
        >>> m.content
        ' upon a time'
    """
    if not isinstance(body, dict):
        raise _not_text_completion("not a JSON object", body)
    err = error_in_body(body)
    if err is not None:
        raise err
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _not_text_completion("no choices", body)
    choice = first_choice(choices)
    if not isinstance(choice, dict):
        raise _not_text_completion("choice is not an object", body)
    message = _choice_message(choice)
    if message is None:
        raise _not_text_completion("choice has no text", body)
    finish = choice.get("finish_reason")
    reasoning, content = split_reasoning(
        message, text_reasoning_spec(prompt), truncated=finish == "length"
    )
    usage = body.get("usage")
    return WireMessage(
        content=content,
        reasoning=reasoning,
        tool_calls=[],
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage if isinstance(usage, dict) else None,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        id=body.get("id") if isinstance(body.get("id"), str) else None,
    )


def choice_logprobs(body: Any) -> Any:
    """The ``logprobs`` of the first choice (None when not asked for or absent).

    Example:
        >>> choice_logprobs({"choices": [{"text": "a", "logprobs": {"tokens": ["a"]}}]})
        {'tokens': ['a']}
    """
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        return None
    choices = body["choices"]
    choice = first_choice(choices) if choices else None
    return choice.get("logprobs") if isinstance(choice, dict) else None


def as_chat_chunk(chunk: Any) -> Any:
    """A ``text_completion`` stream chunk in the ``chat.completion.chunk`` shape.

    Only the choices change (``text`` becomes ``delta.content``); anything that is not a
    text chunk (an error event, a usage-only chunk) is returned as it is, for the stream
    assembler to judge.

    Example:
        >>> as_chat_chunk({"choices": [{"index": 0, "text": "Hi", "finish_reason": None}]})
        {'choices': [{'index': 0, 'finish_reason': None, 'delta': {'content': 'Hi'}}]}
    """
    if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
        return chunk
    choices = []
    for choice in chunk["choices"]:
        if isinstance(choice, dict) and "delta" not in choice:
            message = _choice_message(choice)
            if message is not None:
                rest = {k: v for k, v in choice.items() if k not in ("text", "message")}
                choice = {**rest, "delta": message}
        choices.append(choice)
    return {**chunk, "choices": choices}
