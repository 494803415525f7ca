"""Embedding, rerank and ``/models`` answers, checked and parsed.

A malformed answer is never passed on as data: every shape problem, and a NaN or Infinity in a
vector or a score (which JSON parsers accept and which poison a vector index or a ranking),
raises :class:`~campusllm.errors.ProtocolError` with a redacted snippet.

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("oneapi:qwen3-reranker-8b", base_url="http://127.0.0.1:9/v1")
    >>> rerank_results({"results": [{"index": 0, "relevance_score": 0.9}]}, r, offset=5, n=1)
    [RerankResult(index=5, score=0.9)]
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import ProtocolError, redact
from ..registry import ResolvedModel

__all__ = ["RerankResult", "embedding_vectors", "rerank_results", "model_ids", "malformed"]


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input list and its relevance score.

    Example:
        >>> RerankResult(index=2, score=0.93)
        RerankResult(index=2, score=0.93)
    """

    index: int
    score: float


def malformed(resolved: ResolvedModel, what: str, data: Any) -> ProtocolError:
    """The error for an answer of the wrong shape (``what`` names the part)."""
    return ProtocolError(
        f"{resolved.key} sent a malformed {what}: "
        f"{redact(json.dumps(data, default=str)[:300], 300)}",
        hint="Check that the base URL and model point at the right kind of endpoint.",
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def _is_int(x: Any) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def _vector(value: Any, resolved: ResolvedModel) -> list[float]:
    if isinstance(value, str):  # base64 float32: some gateways ignore encoding_format
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error) as e:
            raise malformed(resolved, "base64 embedding", value[:50]) from e
        if len(raw) % 4:
            raise malformed(resolved, "base64 embedding", value[:50])
        vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    else:
        if not isinstance(value, list) or not value:
            raise malformed(resolved, "embedding vector", value)
        for x in value:
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                raise malformed(resolved, "embedding vector", value[:8])
        vector = [float(x) for x in value]
    if not all(math.isfinite(x) for x in vector):
        raise malformed(resolved, "embedding vector (NaN or Infinity in it)", vector[:8])
    return vector


def embedding_vectors(data: Any, resolved: ResolvedModel, n: int) -> list[list[float]]:
    """The ``n`` vectors of an ``/embeddings`` answer, in input order.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("oneapi:qwen3-embedding-8b", base_url="http://127.0.0.1:9/v1")
        >>> embedding_vectors({"data": [{"index": 1, "embedding": [1.0]},
        ...                             {"index": 0, "embedding": [0.5]}]}, r, 2)
        [[0.5], [1.0]]
    """
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != n:
        raise malformed(resolved, f"embedding response (expected {n} vectors)", data)
    out: list[list[float] | None] = [None] * n
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise malformed(resolved, "embedding item", item)
        idx = item.get("index", pos)
        if not _is_int(idx) or not 0 <= idx < n or out[idx]:
            raise malformed(resolved, "embedding index", item)
        out[idx] = _vector(item.get("embedding"), resolved)
    return [v for v in out if v is not None]  # n distinct indices: every slot is filled


def rerank_results(
    data: Any, resolved: ResolvedModel, *, offset: int, n: int
) -> list[RerankResult]:
    """Scores of a rerank answer (Jina/Cohere ``results`` or TEI's bare list) for ``n`` docs.

    ``offset`` is the position of this batch's first document in the whole list.
    """
    items = data
    if isinstance(data, dict):
        items = data.get("results", data.get("data"))
    if not isinstance(items, list):
        raise malformed(resolved, "rerank response", data)
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise malformed(resolved, "rerank item", item)
        idx = item.get("index")
        score = item.get("relevance_score", item.get("score"))
        if (
            not _is_int(idx)
            or not 0 <= idx < n
            or not isinstance(score, (int, float))
            or isinstance(score, bool)
        ):
            raise malformed(resolved, "rerank item", item)
        if not math.isfinite(score):
            raise malformed(resolved, "rerank score (NaN or Infinity)", item)
        out.append(RerankResult(index=offset + idx, score=float(score)))
    return out


def model_ids(data: Any, resolved: ResolvedModel) -> list[str]:
    """The ids of a ``/models`` answer (``{"data": [{"id": ...}]}`` or a bare list).

    Example:
        >>> from campusllm.registry import resolve
        >>> model_ids({"data": [{"id": "glm-5.1"}, {"id": "qwen3"}]}, resolve("sjtu:glm"))
        ['glm-5.1', 'qwen3']
    """
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise malformed(resolved, "model list", data)
    ids = []
    for m in items:
        mid = m.get("id") if isinstance(m, dict) else m
        if isinstance(mid, str):
            ids.append(mid)
    return ids
