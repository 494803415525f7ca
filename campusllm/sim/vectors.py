"""Embeddings and rerank scores: deterministic, and close for texts that share words.

Example:
    >>> lexical_score("rate limit", "the rate limit is 10 per minute") > lexical_score(
    ...     "rate limit", "the Bund is a waterfront")
    True
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from array import array

__all__ = ["embed_text", "encode_embedding", "lexical_score", "terms"]

_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]", re.IGNORECASE)
_STOP = frozenset(
    "a an the is are was were be of in on at to for and or but does do did how what which who "
    "why when where with by from as it its this that these those i you we they".split()
)


def terms(text: str) -> list[str]:
    """Lower-cased word / CJK-character terms with a crude plural strip, stop words removed."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def embed_text(model: str, text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``(model, text)``.

    Feature hashing of the text's terms and term pairs plus a small per-text component, so
    identical texts give identical vectors while texts sharing words are closer than unrelated
    ones (useful for demos of similarity search).
    """
    vec = [0.0] * dims
    ts = terms(text)
    features = ts + [a + " " + b for a, b in zip(ts, ts[1:], strict=False)]
    for f in features:
        h = hashlib.blake2b(f"{model}\x00{f}".encode(), digest_size=8).digest()
        idx = int.from_bytes(h[:4], "little") % dims
        vec[idx] += 1.0 if h[4] & 1 else -1.0
    noise = array("h")
    noise.frombytes(hashlib.shake_256(f"{model}\x01{text}".encode()).digest(2 * dims))
    scale = (0.35 if features else 1.0) / 32768.0 * math.sqrt(max(len(features), 1) / dims)
    vec = [v + n * scale for v, n in zip(vec, noise, strict=True)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def encode_embedding(vec: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    return vec


def lexical_score(query: str, doc: str) -> float:
    """Relevance in [0, 1): share of query terms found in the document, squashed."""
    q = terms(query)
    if not q:
        return 0.0
    d = set(terms(doc))
    hits = sum(1 for t in q if t in d)
    coverage = hits / len(q)
    # tiny deterministic tie-breaker so equal-coverage documents still get distinct scores
    tb = int.from_bytes(hashlib.blake2b(doc.encode(), digest_size=2).digest(), "little") / 6.6e6
    return round(min(0.999, 0.02 + 0.95 * coverage + tb), 6)
