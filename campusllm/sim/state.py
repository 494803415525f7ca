"""What the simulator remembers between requests: the log, statistics, ids and scripts.

Shared by the server's request threads and the test that drives the
:class:`~campusllm.sim.Simulator`, so every change goes through one lock.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SimState"]

_MAX_REQUESTS = 20000  # the request log is bounded so long benchmarks do not grow without end


class SimState:
    """The simulator's thread-safe bookkeeping.

    Example:
        >>> state = SimState()
        >>> state.add_script("Qwen3", [{"content": "scripted"}])
        >>> state.take_script(["other-model", "qwen3"])
        {'content': 'scripted'}
        >>> state.next_id("chatcmpl")
        'chatcmpl-sim-000001'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.stats: dict[str, int] = collections.Counter()
        self._seq = 0
        self._scripts: dict[str, collections.deque[dict[str, Any]]] = {}

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the statistic ``key``."""
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def next_id(self, prefix: str) -> str:
        """A fresh response id, e.g. ``chatcmpl-sim-000042``."""
        with self._lock:
            self._seq += 1
            return f"{prefix}-sim-{self._seq:06d}"

    def add_script(self, model: str, replies: Iterable[Mapping[str, Any]]) -> None:
        """Queue ``replies`` for ``model`` (matched case-insensitively)."""
        with self._lock:
            self._scripts.setdefault(model.lower(), collections.deque()).extend(
                dict(r) for r in replies
            )

    def take_script(self, names: Iterable[str]) -> dict[str, Any] | None:
        """The next scripted reply queued under any of ``names``, else ``None``."""
        with self._lock:
            for name in names:
                q = self._scripts.get(name.lower())
                if q:
                    return q.popleft()
        return None

    def record(
        self,
        method: str,
        path: str,
        provider: str | None,
        headers: Iterable[tuple[str, str]],
        body: Any,
    ) -> None:
        """Log one request, its credentials redacted to the auth scheme."""
        clean = {}
        for k, v in headers:
            lk = k.lower()
            if lk in ("authorization", "api-key", "x-api-key"):
                scheme = v.split(" ", 1)[0] if " " in v.strip() else ""
                v = f"{scheme} ***" if scheme else "***"
            clean[lk] = v
        rec = {"method": method, "path": path, "provider": provider, "headers": clean}
        rec["json"] = body
        with self._lock:
            self.requests.append(rec)
            if len(self.requests) > _MAX_REQUESTS:
                del self.requests[: _MAX_REQUESTS // 2]
            self.stats["requests"] = self.stats.get("requests", 0) + 1

    def snapshot(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Copies of the statistics and the request log, taken together."""
        with self._lock:
            return dict(self.stats), list(self.requests)

    def clear(self) -> None:
        """Forget requests, statistics and scripts."""
        with self._lock:
            self.requests.clear()
            self.stats.clear()
            self._scripts.clear()
