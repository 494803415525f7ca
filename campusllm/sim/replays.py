"""The providers' documented example requests, answered with their documented responses.

The example responses of "本地大模型API使用文档" (SJTU), "通用对话" (ECNU) and
"本地大模型API用户使用手册" (one-api) are kept under ``fixtures/`` and replayed byte for byte
when a request matches the documented one (provider, model, last user message, stream, tools).

Example:
    >>> json.loads(fixture_bytes("sjtu_deepseek_chat"))["object"]
    'chat.completion'
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import ProviderSpec
from ..tokens import estimate_tokens
from .replies import Reply, SimToolCall, message_text

__all__ = [
    "FIXTURES",
    "REPLAYS",
    "Replay",
    "find_replay",
    "fixture_bytes",
    "fixture_sse",
    "replayed_tokens",
    "reply_from_fixture",
]

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Replay:
    """One documented request and the fixture holding its documented response.

    Example:
        >>> [r.fixture for r in REPLAYS if r.provider == "ecnu" and r.stream]
        ['ecnu_plus_hello_stream']
    """

    provider: str
    models: tuple[str, ...]
    user_text: str
    stream: bool
    tools: bool
    fixture: str


REPLAYS = (
    Replay("sjtu", ("deepseek-chat",), "请介绍上海交通大学", False, False, "sjtu_deepseek_chat"),
    Replay("sjtu", ("deepseek-reasoner",), "请介绍上海", False, False, "sjtu_deepseek_reasoner"),
    Replay(
        "sjtu",
        ("qwen", "qwen3.5-27b"),
        "Explain the details in the image.",
        False,
        False,
        "sjtu_qwen_image",
    ),
    Replay("ecnu", ("ecnu-plus",), "你好呀", False, False, "ecnu_plus_hello"),
    Replay("ecnu", ("ecnu-plus",), "你好呀", True, False, "ecnu_plus_hello_stream"),
    Replay("ecnu", ("ecnu-plus",), "上海今天天气如何?", False, True, "ecnu_weather_tool"),
    Replay(
        "oneapi",
        ("qwen72b-awq",),
        "What is the weather like in Paris today?",
        False,
        True,
        "oneapi_weather_tool",
    ),
)


def fixture_bytes(name: str) -> bytes:
    """Raw bytes of ``fixtures/<name>.json`` (replayed byte for byte)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture_sse(name: str) -> bytes:
    """The SSE body a stream fixture (``{"data": [lines]}``) is replayed as."""
    lines = json.loads(fixture_bytes(name))["data"]
    return b"".join(b"data: " + line.encode() + b"\n\n" for line in lines)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def find_replay(provider: ProviderSpec, body: dict[str, Any]) -> tuple[Replay, bool] | None:
    """The documented example this request repeats, if any.

    The bool is ``True`` when only a non-streamed example exists for a streamed request, so
    the stream must be synthesised from it.
    """
    model = str(body.get("model", "")).lower()
    messages = body.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None
    text = _norm(message_text(users[-1].get("content")))
    stream = bool(body.get("stream"))
    tools = bool(body.get("tools"))
    candidates = [
        r
        for r in REPLAYS
        if r.provider == provider.name
        and model in r.models
        and r.user_text == text
        and r.tools == tools
    ]
    for r in candidates:
        if r.stream == stream:
            return r, False
    for r in candidates:
        if stream and not r.stream:
            return r, True
    return None


def reply_from_fixture(name: str, fallback_id: str) -> Reply:
    """The documented non-streamed response ``name`` as a :class:`Reply` to stream."""
    body = json.loads(fixture_bytes(name))
    choice = body["choices"][0]
    msg = choice["message"]
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or ""
    calls = [
        SimToolCall(id=t["id"], name=t["function"]["name"], arguments=t["function"]["arguments"])
        for t in msg.get("tool_calls") or []
    ]
    return Reply(
        content=msg.get("content") or "",
        model=body.get("model", ""),
        id=body.get("id", fallback_id),
        reasoning=reasoning,
        shape="reasoning" if msg.get("reasoning") else "reasoning_content",
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        created=body.get("created", 0),
    )


def replayed_tokens(name: str) -> int:
    """Tokens of the answer in the stream fixture ``name`` (its content and reasoning deltas).

    Example:
        >>> replayed_tokens("ecnu_plus_hello_stream") > 0
        True
    """
    total = 0
    for line in json.loads(fixture_bytes(name))["data"]:
        try:
            chunk = json.loads(line)
        except ValueError:
            continue  # "[DONE]"
        for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
            delta = choice.get("delta") or {}
            for key in ("content", "reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str) and delta[key]:
                    total += estimate_tokens(delta[key])
    return total
