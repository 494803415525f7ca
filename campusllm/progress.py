"""Progress of a batch job (embeddings), with the rate limiter's ETA and any wait it imposes.

On a key limited to 10 requests a minute, an embedding job of 2,000 texts takes minutes, and
most of that time is the quota, not the gateway. The bar says so: after each batch it shows
how long the limiter needs, at least, to admit the batches left
(:meth:`~campusllm.limiter.RateLimiter.eta`), and while a batch waits for a slot it shows the
wait and its reason (the limiter's wait events), so a job that waits never looks hung.

A tqdm bar when tqdm is installed (it is with LlamaIndex), else one updating line on stderr.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from .limiter import RateLimiter, WaitEvent

__all__ = ["Progress"]


class Progress:
    """A progress bar for ``total`` items that knows the limiter pacing the job.

    ``update(n, batches_left=…)`` after each batch; ``close()`` at the end (it also stops
    listening to the limiter's waits). Disabled (``enabled=False``) it does nothing at all.


    Example:
        >>> import io
        >>> from campusllm.clock import ManualClock
        >>> from campusllm.limiter import RateLimiter
        >>> lim = RateLimiter(rpm=10, tpm=None, window_s=60, clock=ManualClock())
        >>> out = io.StringIO()
        >>> bar = Progress(64, True, "Embedding", limiter=lim, file=out, use_tqdm=False)
        >>> for _ in range(10):  # the window is full for the next 60 s
        ...     _ = lim.acquire()
        >>> bar.update(32, batches_left=1)
        >>> out.getvalue().strip()
        'Embedding: 32/64 (rate limit: ≥ 60 s to go)'
        >>> bar.close()
    """

    def __init__(
        self,
        total: int,
        enabled: bool,
        desc: str,
        *,
        limiter: RateLimiter | None = None,
        tokens_per_batch: int = 0,
        file: TextIO | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.desc = desc
        self._limiter = limiter
        self._tokens = max(0, tokens_per_batch)
        self._file = file
        self._done = 0
        self._note = ""
        self._lock = threading.Lock()
        self._bar: Any = None
        self._stop_listening: Any = None
        if not enabled:
            return
        if use_tqdm:
            try:
                from tqdm.auto import tqdm  # optional: a bar only if installed

                self._bar = tqdm(total=total, desc=desc, unit="doc", file=file)
            except ImportError:
                self._bar = None
        if limiter is not None:
            self._stop_listening = limiter.add_wait_listener(self._on_wait)

    def _out(self) -> TextIO:
        return self._file if self._file is not None else sys.stderr

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._note, refresh=True)
            return
        note = f" ({self._note})" if self._note else ""
        out = self._out()
        out.write(f"\r{self.desc}: {self._done}/{self.total}{note}")
        out.flush()

    def _on_wait(self, event: WaitEvent) -> None:
        with self._lock:
            self._note = f"waiting: {event.message}"
            self._show()

    def update(self, n: int, *, batches_left: int | None = None) -> None:
        """``n`` more items are done; ``batches_left`` requests are still to be sent."""
        if not self.enabled:
            return
        with self._lock:
            self._done += n
            if self._bar is not None:
                self._bar.update(n)
            self._note = ""
            if self._limiter is not None and batches_left:
                eta = self._limiter.eta(batches_left, self._tokens)
                if eta >= 1:
                    self._note = f"rate limit: ≥ {eta:.0f} s to go"
            self._show()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._stop_listening is not None:
            self._stop_listening()
        if self._bar is not None:
            self._bar.close()
        else:
            self._out().write("\n")
