"""Embedding batches: their size against the gateway's limit, and a job that keeps what it got.

An embedding job of thousands of texts runs for hours in batches. A batch that fails after
its retries must not throw away the others: :class:`EmbeddingJob` collects each batch's
vectors, lets the rest run after a failure that concerns one batch only (a 5xx, a timeout, a
malformed answer, a refused text), stops starting new ones after a failure that every batch
would meet (a rejected key, a spent quota, an unreachable gateway), and then raises the first
error with the vectors received and the inputs to embed again on it.

Example:
    >>> from campusllm.errors import ServerError
    >>> job = EmbeddingJob(["a", "b", "c"], [(0, 2), (2, 3)])
    >>> job.done(0, [[0.1], [0.2]])
    >>> job.failed(1, ServerError("HTTP 500"))
    >>> try:
    ...     job.result()
    ... except ServerError as e:
    ...     e.partial_embeddings, e.failed_indices
    ([[0.1], [0.2], None], [2])
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import (
    BadRequestError,
    CampusLLMError,
    ConfigError,
    ProtocolError,
    ServerError,
    TimeoutError,
)
from .registry import ResolvedModel
from .warn import warn_user

__all__ = ["EmbeddingJob", "batch_size"]

# Failures that concern one batch: the others may still succeed, so they keep running.
_ONE_BATCH = (ServerError, TimeoutError, ProtocolError, BadRequestError)

_warned: set[tuple[str, int]] = set()


def batch_size(value: object, cap: int, resolved: ResolvedModel) -> int:
    """The batch size to use for a requested ``value``: at most ``cap``, the per-request limit.

    Above the limit the gateway would refuse the request (or, worse, truncate it), so the
    size is lowered to ``cap`` with a warning once per model and size.

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("oneapi:qwen3-embedding-8b", base_url="http://127.0.0.1:9/v1")
        >>> batch_size(8, 32, r)
        8
        >>> batch_size(0, 32, r)
        Traceback (most recent call last):
        ...
        campusllm.errors.ConfigError: batch_size must be a whole number >= 1, not 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1, not {value!r}.")
    if value <= cap:
        return value
    if (resolved.key, value) not in _warned:
        _warned.add((resolved.key, value))
        warn_user(
            f"batch_size={value} is above the {cap} texts {resolved.key} accepts per embedding "
            f"request; sending batches of {cap}. If the gateway accepts more, raise "
            f"embedding_batch under [providers.{resolved.provider.name}] in your campusllm "
            "config file."
        )
    return cap


class EmbeddingJob:
    """The batches of one embedding call and what became of each.

    ``batches`` are ``(start, end)`` slices of ``texts``. Record each batch with
    :meth:`done` or :meth:`failed`; :attr:`stopped` tells whether to start more; then
    :meth:`result` returns the vectors in input order or raises.

    Example:
        >>> from campusllm.errors import AuthenticationError
        >>> job = EmbeddingJob(["a", "b"], [(0, 1), (1, 2)])
        >>> job.failed(0, AuthenticationError("HTTP 401"))
        >>> job.stopped  # a rejected key: every other batch would be rejected too
        True
    """

    def __init__(self, texts: Sequence[str], batches: list[tuple[int, int]]) -> None:
        self.texts = texts
        self.batches = batches
        self._vectors: list[list[list[float]] | None] = [None] * len(batches)
        self._errors: list[CampusLLMError] = []
        self._failed_batches = 0

    @property
    def stopped(self) -> bool:
        """Whether a failure means no further batch should be sent."""
        return any(not isinstance(e, _ONE_BATCH) for e in self._errors)

    def done(self, i: int, vectors: list[list[float]]) -> None:
        """Batch ``i`` returned ``vectors``."""
        self._vectors[i] = vectors

    def failed(self, i: int, error: CampusLLMError) -> None:
        """Batch ``i`` failed with ``error`` (after its retries)."""
        self._failed_batches += 1
        self._errors.append(error)

    def left(self) -> int:
        """Batches neither done nor failed yet (in flight or not sent)."""
        return len(self.batches) - self._failed_batches - sum(v is not None for v in self._vectors)

    def result(self) -> list[list[float]]:
        """Every vector in input order; or the first error, carrying what was received."""
        if not self._errors:
            return [v for batch in self._vectors if batch is not None for v in batch]
        partial: list[list[float] | None] = [None] * len(self.texts)
        for (a, _), vectors in zip(self.batches, self._vectors, strict=True):
            if vectors is not None:
                partial[a : a + len(vectors)] = vectors
        error = self._errors[0]
        error.partial_embeddings = partial
        error.failed_indices = [i for i, v in enumerate(partial) if v is None]
        if len(self.batches) > 1:
            missing = len(error.failed_indices)
            unsent = (
                len(self.batches) - self._failed_batches - sum(v is not None for v in self._vectors)
            )
            stopped = f", {unsent} not sent after it" if unsent else ""
            error.message += (
                f" {missing} of {len(self.texts)} texts were not embedded ({self._failed_batches} "
                f"of {len(self.batches)} batches failed{stopped}); the vectors received are kept "
                "on this error: partial_embeddings (None where missing) and failed_indices "
                "(the inputs to embed again)."
            )
            error.args = (str(error),)
        raise error
