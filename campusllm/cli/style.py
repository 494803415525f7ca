"""Terminal output for the command line: dim/bold text (off with NO_COLOR or no tty), tables.

Example:
    >>> print(table(["model", "kind"], [["glm-5.1", "chat"]]))
    model    kind
    -------  ----
    glm-5.1  chat
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from ..registry import ModelSpec, ProviderSpec

__all__ = ["dim", "bold", "table", "fmt_int", "limits_text", "capabilities_text"]


def _style(code: str, text: str, stream: TextIO | None = None) -> str:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def dim(text: str) -> str:
    """``text`` dimmed on a colour terminal (reasoning, usage)."""
    return _style("2", text)


def bold(text: str) -> str:
    """``text`` in bold on a colour terminal (headings)."""
    return _style("1", text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with columns as wide as their widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
    return "\n".join(out)


def fmt_int(n: int | None) -> str:
    """``131072`` as ``128K``, ``32000`` as ``32k``; ``-`` when unknown."""
    if n is None:
        return "-"
    if n >= 1000 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def limits_text(p: ProviderSpec) -> str:
    """A provider's published quotas, e.g. ``10 rpm, 100000 tpm``."""
    parts = []
    if p.limits.rpm:
        parts.append(f"{p.limits.rpm} rpm")
    if p.limits.tpm:
        parts.append(f"{p.limits.tpm} tpm")
    if p.limits.weekly_tokens:
        parts.append(f"{p.limits.weekly_tokens} tok/week")
    return ", ".join(parts) or "-"


def capabilities_text(m: ModelSpec) -> str:
    """What a model can do, e.g. ``tools,reasoning``."""
    caps = []
    if m.tools:
        caps.append("tools")
    if m.vision:
        caps.append("vision")
    if m.reasoning.shape != "none":
        caps.append("reasoning")
    if m.reasoning.toggle != "none":
        caps.append("thinking-switch")
    if m.endpoint != "chat":  # serves /completions (text completion)
        caps.append("completions" if m.endpoint == "both" else "completions-only")
    return ",".join(caps) or "-"
