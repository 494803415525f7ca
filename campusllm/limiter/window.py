"""Sliding-window arithmetic shared by the in-process and SQLite stores (Redis runs it in Lua).

A window holds the grants of the last ``span`` seconds as ``(timestamp, tokens)`` pairs, oldest
first. A request is admitted when fewer than ``rpm`` grants are in the window and their tokens
plus its own stay within ``tpm``. A request larger than the whole ``tpm`` is admitted once the
window is empty, so it is slow rather than stuck forever.

Example:
    >>> wait_for([(0.0, 10), (1.0, 10)], now=2.0, tokens=5, rpm=2, tpm=None, span=60.0)
    (58.0, 'rpm')
    >>> wait_for([(0.0, 10)], now=2.0, tokens=5, rpm=2, tpm=None, span=60.0) is None
    True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["wait_for", "finish_time"]


def wait_for(
    entries: Sequence[tuple[float, int]],
    now: float,
    tokens: int,
    rpm: int | None,
    tpm: int | None,
    span: float,
) -> tuple[float, str] | None:
    """``None`` if a request of ``tokens`` fits now, else ``(seconds to wait, "rpm" | "tpm")``.

    ``entries`` are the grants still inside the window (timestamp > ``now - span``), oldest
    first. The wait is the longer of the two limits' waits, so one sleep usually suffices.
    """
    horizon = now - span
    best: tuple[float, str] | None = None
    n = len(entries)
    if rpm and n >= rpm:
        best = (entries[n - rpm][0] - horizon, "rpm")
    if tpm and n:
        used = sum(t for _, t in entries)
        if used + tokens > tpm:
            freed, until = 0, entries[-1][0]
            for ts, t in entries:
                freed += t
                if used - freed + tokens <= tpm:
                    until = ts
                    break
            wait = until - horizon
            if best is None or wait > best[0]:
                best = (wait, "tpm")
    if best is not None and best[0] <= 0:  # rounding at the window's edge: it has just freed
        return None
    return best


def finish_time(
    entries: Sequence[tuple[float, int]],
    now: float,
    requests: int,
    tokens_each: int,
    rpm: int | None,
    tpm: int | None,
    span: float,
) -> float:
    """When the last of ``requests`` more requests of ``tokens_each`` would be admitted.

    A greedy replay of the window forward in time (what the limiter will do if nobody else
    uses the key), so a progress bar can show an honest ETA.

    Example:
        >>> finish_time([], now=0.0, requests=25, tokens_each=0, rpm=10, tpm=None, span=60.0)
        120.0
    """
    ts = [e[0] for e in entries]
    tok = [int(e[1]) for e in entries]
    lo, used, t = 0, sum(tok), now
    for _ in range(max(0, requests)):
        while True:
            horizon = t - span
            while lo < len(ts) and ts[lo] <= horizon:
                used -= tok[lo]
                lo += 1
            n = len(ts) - lo
            wait = 0.0
            if rpm and n >= rpm:
                wait = ts[len(ts) - rpm] - horizon
            if tpm and n and used + tokens_each > tpm:
                freed, until = 0, ts[-1]
                for i in range(lo, len(ts)):
                    freed += tok[i]
                    if used - freed + tokens_each <= tpm:
                        until = ts[i]
                        break
                wait = max(wait, until - horizon)
            if wait <= 1e-9:  # float rounding at the window's edge
                break
            t += wait
        ts.append(t)
        tok.append(tokens_each)
        used += tokens_each
    return t
