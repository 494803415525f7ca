"""One thread that acts when deadlines pass: how a blocking read is ended on time.

A sync HTTP read blocks in ``recv`` with the socket timeout it started with; nothing in the
reading thread can shorten it once the read began. So the total deadline of a sync request
is kept by this watchdog: at the deadline it shuts the response's socket down, the blocked
read returns at once, and the transport raises its timeout. One daemon thread serves the
whole process (started on first use, and again in a forked child, where threads do not
survive, and without the parent's jobs); a deadline that is no longer needed is cancelled
and costs nothing.

Example:
    >>> import threading
    >>> fired = threading.Event()
    >>> job = WATCHDOG.at(time.monotonic() + 0.01, fired.set)
    >>> fired.wait(5)
    True
    >>> WATCHDOG.at(time.monotonic() + 60, fired.clear).cancel()
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Watchdog", "Job", "WATCHDOG", "shut_down_socket"]

log = logging.getLogger("campusllm")


class Job:
    """A scheduled action; :meth:`cancel` it when it is no longer wanted.

    Example:
        >>> job = Job(time.monotonic() + 60, lambda: None)
        >>> job.cancel()
        >>> job.cancelled
        True
    """

    __slots__ = ("when", "action", "cancelled", "done")

    def __init__(self, when: float, action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self.cancelled = False
        self.done = False

    def cancel(self) -> None:
        """Do not run the action (a no-op once it ran)."""
        self.cancelled = True
        self.action = _nothing  # drop references to sockets and responses at once


def _nothing() -> None:
    return None


class Watchdog:
    """Runs actions at monotonic times, on one daemon thread (lazily started, fork-safe).

    The thread sleeps until the earliest job it knows of, cancelled or not, and is woken only
    by a job due before that. A request's deadline is the request's start plus the same
    timeout, so each new job is due after the ones before it: scheduling it costs a heap push
    and no thread wake-up (a wake-up per request was ~0.1 ms of an invoke on a 2-core
    machine). Cancelled jobs are dropped when they come due or, once they pile up, all at once.

    Example:
        >>> done = threading.Event()
        >>> _ = Watchdog().at(time.monotonic(), done.set)
        >>> done.wait(5)
        True
    """

    SWEEP_MIN = 1024
    """Heap size at which cancelled jobs are first swept out (then at twice what was left)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread wakes by itself (inf: only when notified)
        self._sweep_at = self.SWEEP_MIN

    def at(self, when: float, action: Callable[[], None]) -> Job:
        """Run ``action`` at ``time.monotonic() == when`` unless the job is cancelled first."""
        job = Job(when, action)
        with self._cond:
            heap = self._heap
            if len(heap) >= self._sweep_at:
                heap[:] = [entry for entry in heap if not entry[2].cancelled]
                heapq.heapify(heap)
                self._sweep_at = max(self.SWEEP_MIN, 2 * len(heap))
            heapq.heappush(heap, (when, next(self._seq), job))
            self._ensure_thread()
            if when < self._wake_at:  # the thread would sleep past it
                self._wake_at = when
                self._cond.notify()
        return job

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="campusllm-deadlines", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's jobs would shut down sockets the parent still uses, its thread does not
        # exist here, and its lock may have been held at the fork.
        self._heap = []
        self._cond = threading.Condition()
        self._thread = None
        self._wake_at = math.inf
        self._sweep_at = self.SWEEP_MIN

    def _next_job(self) -> Job:
        """Wait for the earliest job to come due and take it off the heap (cond held)."""
        while True:
            if not self._heap:
                self._wake_at = math.inf
                self._cond.wait()
                continue
            when = self._heap[0][0]
            delay = when - time.monotonic()
            if delay <= 0:
                return heapq.heappop(self._heap)[2]
            # A cancelled job still sets the wake-up: dropping it now would leave the next
            # request's job the earliest one, and waking for it is the cost avoided here.
            self._wake_at = when
            self._cond.wait(delay)

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
            if job.cancelled:
                continue
            job.done = True
            try:
                job.action()
            except Exception:  # noqa: BLE001 - a failing action must not stop the others
                log.debug("campusllm: a deadline action failed", exc_info=True)


WATCHDOG = Watchdog()
"""The process's watchdog."""

if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=WATCHDOG._after_fork_in_child)


def shut_down_socket(network_stream: Any) -> None:
    """Shut down the socket under an httpcore network stream, so a blocked read returns.

    ``socket.socket.shutdown`` is called on the plain socket class: for TLS this ends the
    connection at the operating-system level without touching the TLS state another thread
    is reading with.
    """
    get = getattr(network_stream, "get_extra_info", None)
    sock = get("socket") if callable(get) else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
