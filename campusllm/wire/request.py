"""Request bodies: the registry's rules applied before a chat request is sent.

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("oneapi:qwen3-32b", base_url="http://127.0.0.1:9/v1")
    >>> body = prepare_chat_payload({"messages": [{"role": "user", "content": "hi"}]}, r,
    ...                             thinking=False)
    >>> body["chat_template_kwargs"]
    {'enable_thinking': False}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..capabilities import require_chat, require_tools, require_vision, thinking_request
from ..errors import BadRequestError
from ..registry import ModelSpec, ResolvedModel
from .reasoning import CLOSE_TAG, OPEN_TAG

__all__ = [
    "prepare_chat_payload",
    "thinking_enabled",
    "has_image",
    "find_lone_surrogate",
    "refuse_lone_surrogates",
]

# Any surrogate code point in a str is unpaired for UTF-8: it cannot be encoded at all.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def find_lone_surrogate(value: Any, where: str = "") -> tuple[str, int, str] | None:
    """Where the first lone surrogate in ``value``'s strings is: ``(path, position, char)``.

    Dicts and lists are walked; ``path`` names the string as ``where`` plus keys and indices
    (``messages[1].content``), ``position`` is the index in that string. None when there is
    none (the common case costs one regex scan of the non-ASCII strings).

    Example:
        >>> find_lone_surrogate([{"role": "user", "content": "hi \\ud800"}], "messages")
        ('messages[0].content', 3, '\\ud800')
        >>> find_lone_surrogate({"content": "你好"}) is None
        True
    """
    for path, text in _strings(value, where):
        if text.isascii():
            continue
        m = _SURROGATE.search(text)
        if m is not None:
            return path, m.start(), m.group()
    return None


def refuse_lone_surrogates(
    value: Any, where: str, *, provider: str | None = None, model: str | None = None
) -> None:
    """Raise :class:`BadRequestError` if ``value`` holds a lone surrogate, before anything is sent.

    A lone surrogate (``"\\ud800"``) is a half of a UTF-16 pair: it is not Unicode text
    and cannot be encoded as UTF-8, so no request holding it can be sent. It comes from text
    decoded with ``errors="surrogateescape"``, from JSON with a cut ``\\ud83d`` escape, or
    from an emoji split in half. campusllm refuses it rather than changing the user's text;
    clean it first: ``text.encode("utf-8", "replace").decode("utf-8")`` turns each into
    ``"?"``, ``text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")`` into
    U+FFFD.

    Example:
        >>> refuse_lone_surrogates(["ok", "bad \\ud800"], "input")
        Traceback (most recent call last):
        ...
        campusllm.errors.BadRequestError: input[1] contains a lone surrogate (U+D800) at position...
    """
    found = find_lone_surrogate(value, where)
    if found is None:
        return
    path, pos, char = found
    raise BadRequestError(
        f"{path} contains a lone surrogate (U+{ord(char):04X}) at position {pos}: half of a "
        "UTF-16 pair, which is not text and cannot be sent as UTF-8. Nothing was sent.",
        hint="Clean the text first, e.g. text.encode('utf-16', 'surrogatepass')"
        ".decode('utf-16', 'replace') replaces it with U+FFFD; it usually comes from a file "
        "or JSON decoded with errors='surrogateescape' or an emoji cut in half.",
        provider=provider,
        model=model,
    )


def thinking_enabled(resolved: ResolvedModel, thinking: bool | None) -> bool:
    """Whether a request with this ``thinking`` setting runs in thinking mode.

    ``None`` means the model's default; for ``model_switch`` models the requested id decides
    (``deepseek-reasoner`` thinks, ``deepseek-chat`` does not). A model without a switch
    always runs in its default mode.

    Example:
        >>> import campusllm
        >>> thinking_enabled(campusllm.resolve("sjtu:deepseek-reasoner"), None)  # doctest: +SKIP
        True
    """
    spec = resolved.model.reasoning
    if spec.toggle == "none":
        return spec.default_on
    if thinking is not None:
        return thinking
    if spec.toggle == "model_switch":
        wire = resolved.wire_model
        if spec.thinking_model and wire == spec.thinking_model:
            return True
        if spec.non_thinking_model and wire == spec.non_thinking_model:
            return False
    return spec.default_on


def has_image(messages: list[Any]) -> bool:
    """Whether any message carries an image part (OpenAI or LangChain block shapes)."""
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in (
                    "image_url",
                    "image",
                    "input_image",
                ):
                    return True
    return False


def _passback(messages: list[Any], policy: str, thinking_on: bool) -> list[Any]:
    out: list[Any] = []
    changed = False
    for m in messages:
        if (
            not isinstance(m, dict)
            or m.get("role") != "assistant"
            or (
                policy != "reasoning_content"
                and "reasoning_content" not in m
                and "reasoning" not in m
            )
        ):
            out.append(m)
            continue
        m = dict(m)
        changed = True
        r = m.pop("reasoning_content", None)
        alt = m.pop("reasoning", None)
        if not (isinstance(r, str) and r):
            r = alt if isinstance(alt, str) else r
        r = r if isinstance(r, str) else ""
        if policy == "reasoning_content":
            if thinking_on:
                m["reasoning_content"] = r
        elif policy == "think_tags" and r:
            content = m.get("content")
            block = f"{OPEN_TAG}{r}{CLOSE_TAG}\n\n"
            if isinstance(content, list):
                if not (
                    content
                    and isinstance(content[0], dict)
                    and str(content[0].get("text", "")).lstrip().startswith(OPEN_TAG)
                ):
                    m["content"] = [{"type": "text", "text": block}, *content]
            else:
                text = content if isinstance(content, str) else ""
                if not text.lstrip().startswith(OPEN_TAG):
                    m["content"] = block + text
        out.append(m)
    return out if changed else messages


def _fill_assistant_content(messages: list[Any]) -> list[Any]:
    """Assistant messages with ``content: null`` (tool-call turns) get ``""``.

    OpenAI accepts both, but llama-cpp-python's server and LiteLLM's template path answer
    a 500 for null; an empty string means the same everywhere.
    """
    out: list[Any] | None = None
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None:
            if out is None:
                out = list(messages)
            out[i] = {**m, "content": ""}
    return messages if out is None else out


def prepare_chat_payload(
    payload: dict[str, Any], resolved: ResolvedModel, *, thinking: bool | None = None
) -> dict[str, Any]:
    """Return a new request body for ``resolved`` with the registry's request rules applied.

    In order: wire model id, ``request_defaults`` (user keys win), DeepSeek's user-message
    rule, tool / image capability checks, the thinking switch (``chat_template_kwargs`` merged
    into any the caller set, or a model-id switch), reasoning pass-back on assistant messages,
    ``""`` for an assistant message's ``content: null`` and ``stream_options.include_usage``
    for streams. ``payload`` is never mutated.

    Raises :class:`CapabilityError` when the model cannot do what is asked (tools, images,
    thinking on/off) and :class:`BadRequestError` for a request the gateway would silently
    answer with nothing, or that cannot be sent at all (a lone surrogate in the text, see
    :func:`refuse_lone_surrogates`).

    Example:
        >>> import campusllm
        >>> body = prepare_chat_payload(  # doctest: +SKIP
        ...     {"messages": [{"role": "user", "content": "hi"}]},
        ...     campusllm.resolve("oneapi:qwen3-32b"), thinking=False)
        >>> body["chat_template_kwargs"]  # doctest: +SKIP
        {'enable_thinking': False}
    """
    model: ModelSpec = resolved.model
    spec = model.reasoning
    require_chat(resolved)  # a completion-only model has no chat template
    out = dict(payload)
    if not out.get("model"):
        out["model"] = resolved.wire_model
    for key, value in model.request_defaults.items():
        if key not in out:
            out[key] = json.loads(json.dumps(value))  # a private copy of nested defaults
    messages = out.get("messages")
    if not isinstance(messages, list):
        messages = []

    if model.requires_user_message and not any(
        isinstance(m, dict) and m.get("role") == "user" for m in messages
    ):
        raise BadRequestError(
            f"{model.id} needs at least one user message; a system-only request returns "
            "nothing. Add a user message.",
            provider=resolved.provider.name,
            model=model.id,
        )

    has_tools = bool(out.get("tools") or out.get("functions"))
    if has_tools:
        require_tools(resolved)
    if has_image(messages):
        require_vision(resolved)

    want = thinking_request(resolved, thinking, has_tools=has_tools)
    if want is not None:
        if spec.toggle in ("enable_thinking", "thinking"):
            kwargs = out.get("chat_template_kwargs")
            merged = dict(kwargs) if isinstance(kwargs, dict) else {}
            merged[spec.toggle] = bool(want)
            out["chat_template_kwargs"] = merged
        elif spec.toggle == "model_switch":
            out["model"] = spec.thinking_model if want else spec.non_thinking_model

    thinking_on = _thinking_for_wire(resolved, want, out.get("model"))
    if messages:
        new_messages = _fill_assistant_content(_passback(messages, spec.passback, thinking_on))
        if new_messages is not messages:
            out["messages"] = new_messages
    refuse_lone_surrogates(out, "", provider=resolved.provider.name, model=model.id)

    if out.get("stream") and resolved.provider.stream_usage and "stream_options" not in out:
        out["stream_options"] = {"include_usage": True}
    return out


def _thinking_for_wire(resolved: ResolvedModel, want: bool | None, wire: Any) -> bool:
    spec = resolved.model.reasoning
    if want is None and spec.toggle == "model_switch" and isinstance(wire, str):
        if spec.thinking_model and wire == spec.thinking_model:
            return True
        if spec.non_thinking_model and wire == spec.non_thinking_model:
            return False
    return thinking_enabled(resolved, want)
