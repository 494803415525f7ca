"""What the well-behaved routes of the hostile server answer, and the constants scenarios share.

Chat answers are ``"Hello world"`` with the reasoning ``"plan"``; embeddings and rerank scores
are derived from the input text, so a test can recompute what a correct client returns.

Example:
    >>> completion()["choices"][0]["message"]["content"]
    'Hello world'
    >>> ok_ranking(DOCS)[0]
    0
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .server import Mount, Reply, Responder, Seen, json_reply, sse_event, sse_reply

__all__ = [
    "KEY",
    "ECHO_KEY",
    "CHAT_MODEL",
    "EMBED_MODEL",
    "RERANK_MODEL",
    "PROMPT",
    "GAP",
    "TEXTS",
    "DOCS",
    "QUERY",
    "HTML",
    "DONE",
    "OK_EVENTS",
    "STARTED",
    "COMPLETION_BYTES",
    "OK_ROUTES",
    "chunk",
    "completion",
    "ok_vector",
    "ok_ranking",
    "ok_embeddings",
    "ok_rerank",
    "inputs",
    "embeddings_body",
]

KEY = "sk-test-hostile-0123456789"
# Shaped like no known key pattern: only campusllm's own secret registration can redact it.
ECHO_KEY = "hostileKEY0123456789abcdef"
CHAT_MODEL = "custom:test-model"
EMBED_MODEL = "custom:test-embed"
RERANK_MODEL = "custom:test-rerank"
PROMPT = "hi"
# Bytes of a stalled answer come this often: far inside the 1 s per-read timeout of the deadline
# scenarios, so only a deadline on the whole call can end them, however loaded the machine is.
GAP = 0.05
TEXTS = ["t0", "t1", "t2", "t3", "t4", "t5"]
DOCS = ["SJTU is in Shanghai", "cats sleep a lot", "ECNU is in Shanghai too"]
QUERY = "Where is SJTU?"
HTML = (
    b"<!DOCTYPE html><html><head><title>Campus Network Login</title></head><body>"
    b"<form action='/portal/login'>Student ID <input name='u'> Password <input name='p'>"
    b"</form></body></html>"
)


# ----------------------------------------------------------------------------- wire bodies


def chunk(
    content: str | None = None,
    reasoning: str | None = None,
    tool: dict[str, Any] | None = None,
    finish: str | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    if tool is not None:
        delta["tool_calls"] = [tool]
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def completion(content: str = "Hello world", reasoning: str | None = "plan") -> dict[str, Any]:
    """A whole ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


DONE = b"data: [DONE]\n\n"
OK_EVENTS = [
    sse_event(chunk(reasoning="plan")),
    sse_event(chunk(content="Hello")),
    sse_event(chunk(content=" world")),
    sse_event(chunk(finish="stop")),
]
STARTED = [sse_event(chunk(reasoning="plan")), sse_event(chunk(content="Hello"))]
COMPLETION_BYTES = json.dumps(completion()).encode()


def ok_vector(text: str) -> list[float]:
    """The vector the well-behaved routes return for ``text`` (deterministic)."""
    return [float(len(text)), float(sum(map(ord, text)) % 97), 0.5]


def ok_ranking(documents: list[str]) -> list[int]:
    """Document indices, best first, as the well-behaved rerank route scores them."""
    return sorted(range(len(documents)), key=lambda i: -_score(documents[i]))


def _score(doc: str) -> float:
    return round(0.9 - 0.1 * len(doc) / 10, 4) if "SJTU" in doc else round(0.1 / (1 + len(doc)), 4)


def inputs(seen: Seen) -> list[str]:
    body = seen.json if isinstance(seen.json, dict) else {}
    raw = body.get("input")
    return [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]


def embeddings_body(texts: list[str], vector: Callable[[str], list[Any]] = ok_vector) -> bytes:
    data = [
        {"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)
    ]
    # json.dumps writes float("nan") as NaN, exactly as a sloppy server would.
    return json.dumps({"object": "list", "data": data, "model": "test-embed"}).encode()


def ok_embeddings(seen: Seen, mount: Mount) -> Reply:
    return json_reply(embeddings_body(inputs(seen)))


def ok_rerank(seen: Seen, mount: Mount, score: Callable[[str], float] = _score) -> Reply:
    body = seen.json if isinstance(seen.json, dict) else {}
    docs = body.get("documents") or []
    results = [{"index": i, "relevance_score": score(str(d))} for i, d in enumerate(docs)]
    return json_reply(json.dumps({"results": results}).encode())


OK_ROUTES: dict[str, Responder] = {
    "chat": json_reply(completion()),
    "chat_stream": sse_reply([*OK_EVENTS, DONE]),
    "embeddings": ok_embeddings,
    "rerank": ok_rerank,
}
