"""Visible waits: a limiter that holds a request back for more than a moment says so.

A call that blocks for a minute in silence looks like a hang, in a notebook above all. Any
wait longer than :data:`NOTICE_S` is logged once at INFO on the ``campusllm`` logger with its
reason (``"sjtu: next slot in 41 s — 10 requests/min quota"``) and handed to every wait
listener, so a UI or progress bar can show it too. Where the program has set up no logging at
all (a notebook, a plain script), an INFO record would go nowhere, so the line is written to
standard error instead; configuring logging hands the choice back to the program.

Example:
    >>> seen = []
    >>> remove = add_wait_listener(seen.append)
    >>> notify(WaitEvent("sjtu", "0123abcd", "rpm", 41.0, 10, 60.0))
    >>> seen[0].message
    'sjtu: next slot in 41 s — 10 requests/min quota'
    >>> remove()
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["NOTICE_S", "WaitEvent", "add_wait_listener", "remove_wait_listener", "notify"]

log = logging.getLogger("campusllm")

NOTICE_S = 2.0
"""Waits longer than this (seconds) are announced."""


def _per(window_s: float) -> str:
    if abs(window_s - 60.0) < 1e-9:
        return "/min"
    if abs(window_s - 1.0) < 1e-9:
        return "/s"
    return f" per {window_s:g} s"


@dataclass(frozen=True)
class WaitEvent:
    """A request is held back: by whom, why, and for about how long.

    ``reason`` is ``"rpm"`` or ``"tpm"`` (the window is full) or ``"retry_after"`` (the gateway
    asked for a pause after a 429). ``seconds`` is the wait until the next slot as known when
    announced; other processes on the key may take that slot and lengthen it.

    Example:
        >>> WaitEvent("sjtu", "0123", "tpm", 12.0, 100_000, 60.0).message
        'sjtu: next slot in 12 s — 100,000 tokens/min quota'
    """

    provider: str
    key_fingerprint: str
    reason: str
    seconds: float
    limit: int | None = None
    window_s: float = 60.0

    @property
    def message(self) -> str:
        who = self.provider or "rate limiter"
        secs = f"{self.seconds:.0f} s" if self.seconds >= 10 else f"{self.seconds:.1f} s"
        if self.reason == "rpm":
            why = f"{self.limit:,} requests{_per(self.window_s)} quota"
        elif self.reason == "tpm":
            why = f"{self.limit:,} tokens{_per(self.window_s)} quota"
        elif self.reason == "retry_after":
            why = "the gateway asked to pause after a 429"
        else:
            why = f"{self.reason} limit"
        return f"{who}: next slot in {secs} — {why}"


WaitListener = Callable[[WaitEvent], object]

_listeners: list[WaitListener] = []
_lock = threading.Lock()


def add_wait_listener(callback: WaitListener) -> Callable[[], None]:
    """Call ``callback(event)`` for every announced wait of any limiter; returns a remover."""
    with _lock:
        _listeners.append(callback)
    return lambda: remove_wait_listener(callback)


def remove_wait_listener(callback: WaitListener) -> None:
    """Stop calling ``callback`` (no error if it was not registered)."""
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def notify(event: WaitEvent, extra: Iterable[WaitListener] = (), *, log_it: bool = True) -> None:
    """Log ``event`` at INFO (unless ``log_it`` is false) and hand it to every listener.

    Without any logging handler configured, the line goes to standard error instead.

    A listener that raises is logged and skipped: a broken progress bar must not fail a call.
    """
    if log_it:
        if log.hasHandlers():
            log.info("%s", event.message)
        else:  # no logging set up: an INFO record would vanish, and the wait look like a hang
            sys.stderr.write(f"campusllm: {event.message}\n")
    with _lock:
        targets = [*_listeners, *extra]
    for cb in targets:
        try:
            cb(event)
        except Exception:  # noqa: BLE001 - a UI hook never breaks the request
            log.exception("campusllm: wait listener %r failed", cb)
