"""Framework-free client for one model: embeddings, rerank and the gateway's model list.

Embeddings and rerank are plain JSON calls made here, so batching rules, the rate limiter and
typed errors are written once for both adapters. Chat goes through the openai SDK
(:mod:`campusllm.openai_sdk`) or :class:`~campusllm.chat.ChatCaller`.

Example:
    >>> from campusllm.registry import resolve
    >>> from campusllm.sim import Simulator, SIM_KEY
    >>> with Simulator() as sim:
    ...     r = resolve("oneapi:qwen3-reranker-8b", base_url=sim.url("oneapi"))
    ...     with CampusClient(r, SIM_KEY) as c:
    ...         hits = c.rerank("Where is SJTU?", ["Paris, France.", "SJTU, Shanghai."])
    >>> [hit.index for hit in hits]
    [1, 0]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from .answers import answer_error, answer_json
from .batching import EmbeddingJob
from .batching import batch_size as _batch_size
from .connection import Connection, connect
from .errors import CampusLLMError
from .limiter import RateLimiter
from .progress import Progress
from .registry import RateLimits, ResolvedModel
from .tokens import estimate_tokens
from .transport import RetryPolicy, error_from_exception, error_from_response
from .transport.library import is_http_error
from .wire.inputs import check_text, check_texts
from .wire.responses import RerankResult, embedding_vectors, model_ids, rerank_results

if TYPE_CHECKING:
    import httpx

__all__ = ["CampusClient", "EmbeddingJob", "RerankResult"]


class CampusClient:
    """Embedding, rerank and model-list calls for one model, over one :class:`Connection`.

    ``CampusClient(resolved, api_key, timeout=..., retry=..., limits=...)`` connects with
    :func:`~campusllm.connection.connect`; ``CampusClient(connection)`` uses one already
    made. Requests go through the process-wide limiter for (provider, key) and one retry
    policy.

    Example:
        >>> from campusllm.registry import resolve
        >>> from campusllm.sim import Simulator, SIM_KEY
        >>> with Simulator() as sim:
        ...     r = resolve("oneapi:qwen3-embedding-8b", base_url=sim.url("oneapi"))
        ...     with CampusClient(r, SIM_KEY) as c:
        ...         len(c.embed(["hello", "world"]))
        2
    """

    def __init__(
        self,
        resolved: ResolvedModel | Connection,
        api_key: SecretStr | str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        limits: RateLimits | None = None,
        limiter: str | RateLimiter | None = None,
    ) -> None:
        if isinstance(resolved, Connection):
            if (
                api_key is not None
                or timeout is not None
                or retry
                or limits is not None
                or limiter is not None
            ):
                raise TypeError("CampusClient(connection) takes no other arguments.")
            self.connection = resolved
        else:
            self.connection = connect(
                resolved,
                api_key=api_key,
                timeout=timeout,
                retry=retry,
                rate_limits=limits,
                limiter=limiter,
            )
        self.resolved = self.connection.resolved

    # -- the connection ----------------------------------------------------------------

    def __repr__(self) -> str:
        return f"CampusClient(model={self.resolved.key!r}, base_url={self.resolved.base_url!r})"

    @property
    def api_key(self) -> SecretStr:
        """The key in use (a SecretStr: printing it shows ``**********``)."""
        return self.connection.api_key

    @property
    def limits(self) -> RateLimits:
        """The rate limits applied to this key."""
        return self.connection.limits

    @property
    def limiter(self) -> RateLimiter | None:
        """The process-wide limiter for (provider, key), or None without limits."""
        return self.connection.limiter

    @property
    def retry(self) -> RetryPolicy:
        """How 429, 5xx and connection failures are retried."""
        return self.connection.retry

    @property
    def http(self) -> httpx.Client:
        """The sync HTTP client (see :attr:`Connection.http`)."""
        return self.connection.http

    @http.setter
    def http(self, client: httpx.Client) -> None:
        self.connection.http = client

    @property
    def ahttp(self) -> httpx.AsyncClient:
        """The async HTTP client (see :attr:`Connection.ahttp`)."""
        return self.connection.ahttp

    @ahttp.setter
    def ahttp(self, client: httpx.AsyncClient) -> None:
        self.connection.ahttp = client

    def close(self) -> None:
        """Close the connection's clients (the async ones too when no event loop is needed)."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close all clients (the async ones' connections of the running loop)."""
        await self.connection.aclose()

    def __enter__(self) -> CampusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> CampusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.resolved.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise error_from_response(response, self.resolved)
        # The same reading as chat answers: a login page is named as one, and an error sent
        # with HTTP 200 (one-api style) is typed by its code.
        data = answer_json(response.content, self.resolved, response.headers.get("content-type"))
        err = answer_error(data, self.resolved)
        if err is not None:
            raise err
        return data

    @contextlib.contextmanager
    def _typed_errors(self) -> Iterator[None]:
        """HTTP-library and decoding exceptions raised inside become campusllm's types."""
        try:
            yield
        except CampusLLMError:
            raise
        except Exception as e:
            if not (is_http_error(e) or isinstance(e, ValueError)):
                raise
            raise error_from_exception(e, self.resolved) from e

    def _get(self, path: str) -> Any:
        with self._typed_errors():
            return self._decode(self.http.get(self._url(path)))

    async def _aget(self, path: str) -> Any:
        with self._typed_errors():
            return self._decode(await self.ahttp.get(self._url(path)))

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        with self._typed_errors():
            return self._decode(self.http.post(self._url(path), json=body))

    async def _apost(self, path: str, body: dict[str, Any]) -> Any:
        with self._typed_errors():
            return self._decode(await self.ahttp.post(self._url(path), json=body))

    # -- embeddings --------------------------------------------------------------------

    def format_query(self, text: str, task: str | None = None) -> str:
        """``text`` wrapped in the model's query instruction (Qwen3-Embedding), if it has one."""
        spec = self.resolved.model
        if not spec.query_instruction:
            return text
        return spec.query_instruction.format(task=task or spec.default_task, text=text)

    def embedding_batches(
        self, texts: Sequence[str], batch_size: int | None = None
    ) -> list[tuple[int, int]]:
        """``(start, end)`` slices that respect the provider's count and token caps.

        A ``batch_size`` above the per-request limit in the catalog (the model's
        ``max_batch``, else the provider's ``embedding_batch``) is lowered to it, with a
        warning once per model and size: the gateway would refuse the larger request.
        """
        spec, prov = self.resolved.model, self.resolved.provider
        cap = spec.max_batch or prov.embedding_batch
        max_n = cap if batch_size is None else _batch_size(batch_size, cap, self.resolved)
        max_tok = prov.embedding_batch_tokens
        out: list[tuple[int, int]] = []
        start, used = 0, 0
        for i, t in enumerate(texts):
            n = estimate_tokens(t) if t else 1
            if i > start and (i - start >= max_n or used + n > max_tok):
                out.append((start, i))
                start, used = i, 0
            used += n
        if start < len(texts):
            out.append((start, len(texts)))
        return out

    def _embed_body(self, batch: Sequence[str], dimensions: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.resolved.wire_model,
            # Gateways reject empty strings; one space embeds as "nothing" and keeps positions.
            "input": [t if t else " " for t in batch],
            "encoding_format": "float",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        return body

    def _progress(self, texts: Sequence[str], job: EmbeddingJob, show: bool) -> Progress:
        """The job's bar (with ``show``): documents done, and the limiter's ETA and waits."""
        enabled = show and len(job.batches) > 1
        per_batch = sum(map(estimate_tokens, texts)) // len(job.batches) if enabled else 0
        return Progress(
            len(texts), enabled, "Embedding", limiter=self.limiter, tokens_per_batch=per_batch
        )

    def embed(
        self,
        texts: Sequence[str],
        *,
        dimensions: int | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> list[list[float]]:
        """Embed ``texts`` in order, batched by the provider's count and token limits.

        A batch that fails (after its retries) does not discard the others: the error raised
        carries ``partial_embeddings`` and ``failed_indices`` (see :class:`EmbeddingJob`).
        """
        texts = check_texts(texts, "embed")
        if not texts:
            return []
        job = EmbeddingJob(texts, self.embedding_batches(texts, batch_size))
        bar = self._progress(texts, job, show_progress)
        try:
            for i, (a, b) in enumerate(job.batches):
                if job.stopped:
                    break
                try:
                    data = self._post("/embeddings", self._embed_body(texts[a:b], dimensions))
                    job.done(i, embedding_vectors(data, self.resolved, b - a))
                except CampusLLMError as e:
                    job.failed(i, e)
                    continue
                bar.update(b - a, batches_left=len(job.batches) - i - 1)
        finally:
            bar.close()
        return job.result()

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        dimensions: int | None = None,
        batch_size: int | None = None,
        max_concurrency: int = 4,
        show_progress: bool = False,
    ) -> list[list[float]]:
        """Async :meth:`embed`: at most ``max_concurrency`` batches in flight, order kept.

        A batch that fails does not cancel the others; the error raised carries the vectors
        received (``partial_embeddings``) and the inputs to embed again (``failed_indices``).
        """
        texts = check_texts(texts, "embed")
        if not texts:
            return []
        job = EmbeddingJob(texts, self.embedding_batches(texts, batch_size))
        bar = self._progress(texts, job, show_progress)
        it = iter(enumerate(job.batches))

        # A fixed pool of workers pulling batches, not one gather over every batch: memory
        # and open sockets stay bounded by max_concurrency whatever the corpus size.
        async def worker() -> None:
            for i, (a, b) in it:
                if job.stopped:
                    return
                try:
                    body = self._embed_body(texts[a:b], dimensions)
                    data = await self._apost("/embeddings", body)
                    job.done(i, embedding_vectors(data, self.resolved, b - a))
                except CampusLLMError as e:
                    job.failed(i, e)
                    continue
                bar.update(b - a, batches_left=job.left())

        try:
            await _run_workers(worker, min(max(1, max_concurrency), len(job.batches)))
        finally:
            bar.close()
        return job.result()

    # -- rerank ------------------------------------------------------------------------

    def _rerank_batches(self, n: int) -> Iterator[tuple[int, int]]:
        size = self.resolved.model.max_documents or n
        for a in range(0, n, max(1, size)):
            yield a, min(n, a + size)

    def _rerank_body(self, query: str, docs: Sequence[str]) -> dict[str, Any]:
        if self.resolved.model.rerank_shape == "tei":
            return {"query": query, "texts": list(docs), "raw_scores": False}
        return {
            "model": self.resolved.wire_model,
            "query": query,
            "documents": list(docs),
            "top_n": len(docs),
            "return_documents": False,
        }

    @staticmethod
    def _top(results: list[RerankResult], top_n: int | None) -> list[RerankResult]:
        results.sort(key=lambda r: r.score, reverse=True)
        return results if top_n is None else results[: max(0, top_n)]

    def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Score ``documents`` against ``query``; best first, at most ``top_n``.

        Long lists are split by the model's ``max_documents`` and the scores merged (rerank
        scores are per query-document pair, so batches are comparable).
        """
        query = check_text(query, "rerank", "the query")
        docs = check_texts(documents, "rerank")
        if not docs:
            return []
        path = self.resolved.model.rerank_path
        results: list[RerankResult] = []
        for a, b in self._rerank_batches(len(docs)):
            data = self._post(path, self._rerank_body(query, docs[a:b]))
            results.extend(rerank_results(data, self.resolved, offset=a, n=b - a))
        return self._top(results, top_n)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        max_concurrency: int = 4,
    ) -> list[RerankResult]:
        """Async :meth:`rerank` (batches run concurrently, at most ``max_concurrency``)."""
        query = check_text(query, "rerank", "the query")
        docs = check_texts(documents, "rerank")
        if not docs:
            return []
        path = self.resolved.model.rerank_path
        batches = list(self._rerank_batches(len(docs)))
        parts: list[list[RerankResult]] = [[] for _ in batches]
        it = iter(enumerate(batches))

        async def worker() -> None:
            for i, (a, b) in it:
                data = await self._apost(path, self._rerank_body(query, docs[a:b]))
                parts[i] = rerank_results(data, self.resolved, offset=a, n=b - a)

        await _run_workers(worker, min(max(1, max_concurrency), len(batches)))
        return self._top([r for p in parts for r in p], top_n)

    # -- models ------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Model ids the gateway lists at ``GET /models``."""
        return model_ids(self._get("/models"), self.resolved)

    async def alist_models(self) -> list[str]:
        """Async :meth:`list_models`."""
        return model_ids(await self._aget("/models"), self.resolved)


async def _run_workers(worker: Callable[[], Coroutine[Any, Any, None]], n: int) -> None:
    tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
