"""Shared plumbing for the LlamaIndex classes: resolve a model and build its core clients."""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

if TYPE_CHECKING:
    from pydantic import SecretStr

    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits, ResolvedModel


def resolve_model(model: str | None, provider: str | None, base_url: str | None) -> ResolvedModel:
    """Resolve ``model`` ("sjtu:glm" or a bare name with ``provider``) through the registry."""
    from campusllm.registry import resolve

    if provider:
        return resolve(provider=provider, model=model, base_url=base_url)
    return resolve(model, base_url=base_url)


_UNUSED = object()


class ClientPool:
    """The core client, plus one per extra event loop for async calls.

    httpx async connections belong to the loop that opened them; LlamaIndex runs async code
    from sync entry points on fresh loops (``asyncio_run``), and users call ``asyncio.run``
    repeatedly. Reusing one ``AsyncClient`` there fails with "Event loop is closed", so
    every loop gets its own client. They share the process-wide rate limiter of the key.

    Example:
        >>> pool = ClientPool(lambda: CampusClient(resolved, key))  # doctest: +SKIP
        >>> pool.main.embed(["hi"]); await pool.for_loop().aembed(["hi"])  # doctest: +SKIP
    """

    def __init__(self, factory: Callable[[], CampusClient]) -> None:
        self._factory = factory
        self.main = factory()
        self._main_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._others: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CampusClient] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def for_loop(self) -> CampusClient:
        """The client whose async connections belong to the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._main_loop is None:
                self._main_loop = weakref.ref(loop)  # first async use: the main client
                self._close_with(loop, self.main)
            if self._main_loop() is loop:
                return self.main
            client = self._others.get(loop)
            if client is None:
                client = self._others[loop] = self._factory()
                self._close_with(loop, client)
            return client

    def _close_with(self, loop: asyncio.AbstractEventLoop, client: CampusClient) -> None:
        # asyncio.run (and asyncio.Runner) finalise a loop's async generators before closing
        # it; one parked here closes the client's async connections while the loop still runs,
        # instead of leaving them to be reported as unclosed transports.
        async def closer() -> AsyncIterator[None]:
            try:
                yield
            finally:
                try:
                    await client.ahttp.aclose()
                except Exception:  # noqa: BLE001 - shutdown: nothing useful to report
                    pass

        agen = closer()
        self._closers[loop] = agen  # the loop only tracks it weakly
        asyncio.ensure_future(agen.__anext__(), loop=loop)

    def _all(self) -> list[tuple[object, CampusClient]]:
        # the main client's loop: _UNUSED before any async call, None once that loop is gone
        with self._lock:
            main_loop = self._main_loop() if self._main_loop is not None else _UNUSED
            return [(main_loop, self.main), *self._others.items()]

    def close(self) -> None:
        """Close every client (async connections too when no loop is running)."""
        for _, client in self._all():
            client.close()

    async def aclose(self) -> None:
        """Close every client; async connections of other loops cannot be closed from here."""
        running = asyncio.get_running_loop()
        for loop, client in self._all():
            if loop is running or loop is _UNUSED:
                await client.aclose()
            else:
                client.close()


def build_clients(
    resolved: ResolvedModel,
    api_key: str | SecretStr | None,
    *,
    timeout: float,
    max_retries: int | None,
    rate_limits: RateLimits | dict[str, Any] | None = None,
) -> tuple[SecretStr, ClientPool]:
    """Look the key up (explicit > registry env vars) and build the core client pool."""
    from campusllm.auth import get_api_key
    from campusllm.client import CampusClient
    from campusllm.registry import RateLimits
    from campusllm.transport import RetryPolicy

    key = get_api_key(resolved.provider, api_key)
    retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else None
    limits = RateLimits(**rate_limits) if isinstance(rate_limits, dict) else rate_limits

    def factory() -> CampusClient:
        return CampusClient(resolved, key, timeout=timeout, retry=retry, limits=limits)

    return key, ClientPool(factory)


class ClosableClient:
    """Mixin: the core clients of a LlamaIndex class, and how to release their connections.

    Example:
        >>> with CampusLLM(model="sjtu:deepseek-reasoner") as llm:  # doctest: +SKIP
        ...     llm.complete("hi")
    """

    if TYPE_CHECKING:
        _pool: ClientPool

    @property
    def _client(self) -> CampusClient:
        # sync calls (and the first event loop's async calls) use this one
        return self._pool.main

    def _aclient(self) -> CampusClient:
        return self._pool.for_loop()

    def close(self) -> None:
        """Close the HTTP connections (outside an event loop, the async ones too)."""
        self._pool.close()

    async def aclose(self) -> None:
        """Close the sync and async HTTP connections; call it in the loop that used them."""
        await self._pool.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
