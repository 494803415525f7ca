"""What a request costs against TPM, as the gateway counts it: input plus output tokens.

Gateways count a request's input *and* its output against the per-minute token quota. The
output is unknown until the answer arrives, so admission charges the input plus the most the
answer may take (the request's ``max_tokens``, else a per-model default), and
:meth:`~campusllm.limiter.RateLimiter.settle` corrects the charge with the response's
``usage``. Charging the cap first is what keeps sustained long answers inside ``tpm``.

Example:
    >>> expected_output_tokens({"messages": [], "max_tokens": 300})
    300
    >>> expected_output_tokens({"input": ["a", "b"]})  # embeddings answer with vectors
    0
    >>> usage_tokens({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42})
    42
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_OUTPUT_TOKENS", "expected_output_tokens", "request_charge", "usage_tokens"]

DEFAULT_OUTPUT_TOKENS = 1024
"""Output charged at admission for a chat request without ``max_tokens`` when the model's
registry entry names no ``expected_output`` (settle corrects it with the real count)."""


def _positive_int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return int(v) if v > 0 else None


def expected_output_tokens(
    body: Mapping[str, Any] | None, model: Any = None, *, default: int = DEFAULT_OUTPUT_TOKENS
) -> int:
    """Output tokens to charge at admission for the request ``body``.

    In order: ``max_completion_tokens`` / ``max_tokens`` of the request; else the model's
    ``expected_output`` (an int, or an attribute/key of a registry model entry), capped by
    its ``max_output``; else ``default`` (capped by ``max_output``). Requests that produce no
    text (embeddings, rerank: a body with ``input``/``documents`` and no ``messages`` or
    ``prompt``) cost no output.

    Example:
        >>> expected_output_tokens({"messages": []}, {"max_output": 512})
        512
        >>> expected_output_tokens({"messages": []}, 2048)
        2048
    """
    body = body or {}
    for k in ("max_completion_tokens", "max_tokens"):
        n = _positive_int(body.get(k))
        if n is not None:
            return n
    if "messages" not in body and "prompt" not in body:
        if any(k in body for k in ("input", "documents", "query", "texts")):
            return 0
    if isinstance(model, (int, float)) and not isinstance(model, bool):
        return max(0, int(model))

    def field(name: str) -> int | None:
        if isinstance(model, Mapping):
            return _positive_int(model.get(name))
        return _positive_int(getattr(model, name, None))

    expected = field("expected_output") or default
    cap = field("max_output")
    return min(expected, cap) if cap else expected


def request_charge(
    input_tokens: int,
    body: Mapping[str, Any] | None,
    model: Any = None,
    *,
    default: int = DEFAULT_OUTPUT_TOKENS,
) -> int:
    """Tokens to admit a request with: its input plus :func:`expected_output_tokens`.

    Example:
        >>> request_charge(120, {"messages": [], "max_tokens": 80})
        200
    """
    return max(0, int(input_tokens)) + expected_output_tokens(body, model, default=default)


def usage_tokens(usage: Mapping[str, Any] | None) -> int | None:
    """The tokens a response's ``usage`` says the gateway counted, or None if it says nothing.

    ``total_tokens`` when present, else ``prompt_tokens + completion_tokens`` (or the
    ``input_tokens``/``output_tokens`` spelling).

    Example:
        >>> usage_tokens({"input_tokens": 5, "output_tokens": 7})
        12
        >>> usage_tokens({}) is None
        True
    """
    if not isinstance(usage, Mapping):
        return None
    total = _positive_int(usage.get("total_tokens"))
    if total is not None:
        return total
    parts = [
        _positive_int(usage.get(a)) or _positive_int(usage.get(b))
        for a, b in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens"))
    ]
    if all(p is None for p in parts):
        return None
    return sum(p or 0 for p in parts)
