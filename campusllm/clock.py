"""Time as a dependency: every piece of campusllm that waits or measures windows takes a clock.

Rate windows, retry backoff and the simulator's quota enforcement all depend on time. Reading
``time.monotonic()`` directly makes their tests race the machine: on a busy two-core runner a
0.3 s window can slide between two requests that were meant to share it. So they take a
:class:`Clock`; production code uses :data:`SYSTEM_CLOCK`, and tests use a :class:`ManualClock`,
whose sleeps advance virtual time at once, so the same sequence of events always gives the
same result however loaded the machine is.

Example:
    >>> clock = ManualClock()
    >>> clock.sleep(60.0)  # returns at once
    >>> clock.monotonic()
    60.0
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "ManualClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    """What campusllm needs from time: a monotonic reading and a way to wait.

    Example:
        >>> isinstance(ManualClock(), Clock) and isinstance(SYSTEM_CLOCK, Clock)
        True
    """

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep`` and ``asyncio.sleep``.

    Example:
        >>> SYSTEM_CLOCK.monotonic() > 0
        True
    """

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A virtual clock for tests: time moves only when someone sleeps or calls :meth:`advance`.

    Thread-safe, so a simulator thread and the client under test can share one. A sleep never
    blocks: it moves the clock forward by ``seconds`` at once. ``asleep`` also yields to the
    event loop once, so other tasks run in between as they would in real time.

    Example:
        >>> c = ManualClock(start=100.0)
        >>> c.advance(1.5)
        >>> c.monotonic()
        101.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.slept: list[float] = []
        """Every sleep requested, in order (lets a test assert how long code chose to wait)."""

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (negative values are ignored)."""
        with self._lock:
            self._now += max(0.0, float(seconds))

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(float(seconds))
            self._now += max(0.0, float(seconds))

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.monotonic():.3f})"


SYSTEM_CLOCK: Clock = SystemClock()
"""The clock used unless a caller injects another."""
