"""Connection pools that follow the process and the event loop they belong to.

Two things outlive a pool's owner without help:

* **event loops.** Async connections belong to the loop that opened them, and users run many
  loops: ``asyncio.run`` per call, and LlamaIndex's ``asyncio_run`` (used by its sync methods
  in Jupyter) runs each call on a fresh loop in a thread and closes it *without*
  ``shutdown_asyncgens``. :class:`LoopPools` keeps one pool per loop and closes it when the
  loop closes, however it closes: ``loop.close`` is wrapped to close the pools first (while
  the loop can still run their shutdown), and an async generator parked on the loop does the
  same for ``asyncio.run``'s ``shutdown_asyncgens`` where ``close`` cannot be wrapped
  (uvloop).
* **processes.** After ``os.fork()`` a child holds copies of the parent's sockets; reusing
  one mixes two processes' requests on one connection. Objects registered with
  :func:`on_fork` are told to drop their pools in the child (without closing them: the
  parent still uses those connections).

Example:
    >>> import asyncio, httpx
    >>> pools = LoopPools(httpx.AsyncHTTPTransport)
    >>> async def use() -> bool:
    ...     return pools.current() is pools.current()
    >>> asyncio.run(use()), len(pools)
    (True, 0)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

__all__ = ["LoopPools", "on_fork"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_fork_aware: weakref.WeakSet[Any] = weakref.WeakSet()


def on_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in the child after every ``os.fork()``."""
    _fork_aware.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_fork_aware):
        with contextlib.suppress(Exception):
            obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


# loop -> the LoopPools with a pool on it (weak both ways: neither keeps the other alive)
_owners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[LoopPools]] = (
    weakref.WeakKeyDictionary()
)
_owners_lock = threading.Lock()


def _close_pools_of(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed() or loop.is_running():
        return
    with _owners_lock:
        owners = list(_owners.pop(loop, ()))
    for owner in owners:
        with contextlib.suppress(Exception):
            loop.run_until_complete(owner._aclose_on(loop))


def _wrap_close(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop.close()`` close this module's pools on the loop first."""
    if getattr(loop.close, "_campusllm", False):
        return
    original = loop.close
    ref = weakref.ref(loop)

    def close() -> None:
        current = ref()
        if current is not None:
            _close_pools_of(current)
        original()

    close._campusllm = True  # type: ignore[attr-defined]
    with contextlib.suppress(AttributeError, TypeError):  # a loop without a __dict__ (uvloop)
        loop.close = close  # type: ignore[method-assign]


class LoopPools:
    """One async transport per running event loop, made by ``factory`` on first use.

    Example:
        >>> import httpx
        >>> LoopPools(httpx.AsyncHTTPTransport)
        LoopPools(loops=0)
    """

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncBaseTransport
        ] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        on_fork(self)

    def __len__(self) -> int:
        return len(self._pools)

    def __repr__(self) -> str:
        return f"LoopPools(loops={len(self)})"

    def current(self) -> httpx.AsyncBaseTransport:
        """The running loop's pool (made now if this loop has none)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is not None:
                return pool
            pool = self._pools[loop] = self._factory()
            self._closers[loop] = self._park_closer(pool)
        with _owners_lock:
            _owners.setdefault(loop, weakref.WeakSet()).add(self)
        _wrap_close(loop)
        return pool

    def _park_closer(self, pool: httpx.AsyncBaseTransport) -> AsyncGenerator[None, None]:
        # asyncio.run finalises pending async generators before it closes the loop; one
        # parked here closes this loop's sockets while the loop can still do it.
        async def closer() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await pool.aclose()
                # the pool references its loop, which would pin the weak-keyed entry
                running = asyncio.get_running_loop()
                with self._lock:
                    if self._pools.get(running) is pool:
                        del self._pools[running]
                    self._closers.pop(running, None)

        agen = closer()
        # Run it to its ``yield`` now (nothing there awaits): a task would start it later,
        # and a generator closed before it started never runs its ``finally``.
        try:
            agen.__anext__().send(None)
        except StopIteration:
            pass
        return agen

    async def _aclose_on(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            pool = self._pools.pop(loop, None)
            agen = self._closers.pop(loop, None)
        if agen is not None:
            await agen.aclose()  # its finally closes the pool
        elif pool is not None:
            await pool.aclose()

    async def aclose_current(self) -> None:
        """Close the running loop's pool (other loops' close with their loop)."""
        await self._aclose_on(asyncio.get_running_loop())

    def _after_fork_in_child(self) -> None:
        # The parent's loops and sockets are not this process's to use or to close.
        self._lock = threading.Lock()
        self._pools = weakref.WeakKeyDictionary()
        self._closers = weakref.WeakKeyDictionary()
