"""Terminal output for the command line: dim/bold text (off with NO_COLOR or no tty), tables.

Tables line up by *display* width: a Chinese character takes two terminal columns, so model
names and descriptions in Chinese keep the columns straight.

Example:
    >>> print(table(["model", "kind"], [["glm-5.1", "chat"], ["通义千问", "chat"]]))
    model     kind
    --------  ----
    glm-5.1   chat
    通义千问  chat
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import TextIO

from ..i18n import tr
from ..registry import ModelSpec, ProviderSpec

__all__ = [
    "dim",
    "bold",
    "table",
    "display_width",
    "fmt_int",
    "limits_text",
    "capabilities_text",
    "kind_text",
    "reach_text",
    "ASSUMED",
    "assumed_note",
    "assumed_text",
]


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


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and full-width characters take two,
    combining marks and invisible format characters none.

    Ambiguous-width characters (``†``, ``°``) count as one, as most terminals draw them.

    Example:
        >>> display_width("glm-5.1"), display_width("通义千问"), display_width("ＡＢ")
        (7, 8, 4)
        >>> display_width("e\u0301"), display_width("a\u200bb")  # accent, zero-width space
        (1, 2)
    """
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with columns as wide as their widest cell (in terminal columns)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(cells: list[str]) -> str:
        return "  ".join(_pad(c, widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
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
    """A provider's published quotas, e.g. ``10 rpm, 100000 tpm`` (in Chinese: ``10 次/分钟…``)."""
    parts = []
    if p.limits.rpm:
        parts.append(tr(f"{p.limits.rpm} rpm", f"{p.limits.rpm} 次/分钟"))
    if p.limits.tpm:
        parts.append(tr(f"{p.limits.tpm} tpm", f"{p.limits.tpm} tokens/分钟"))
    if p.limits.weekly_tokens:
        parts.append(
            tr(f"{p.limits.weekly_tokens} tok/week", f"{p.limits.weekly_tokens} tokens/周")
        )
    return ", ".join(parts) or "-"


def capabilities_text(m: ModelSpec) -> str:
    """What a model can do, e.g. ``tools,reasoning`` (in Chinese: ``工具,思考``)."""
    caps = []
    if m.kind == "embedding" and m.dimensions:
        caps.append(assumed_text(tr(f"{m.dimensions} dims", f"{m.dimensions} 维"), m, "dimensions"))
    if m.tools:
        caps.append(tr("tools", "工具"))
    if m.vision:
        caps.append(tr("vision", "视觉"))
    if m.reasoning.shape != "none":
        caps.append(tr("reasoning", "思考"))
    if m.reasoning.toggle != "none":
        caps.append(tr("thinking-switch", "思考开关"))
    if m.endpoint != "chat":  # serves /completions (text completion)
        caps.append(
            tr("completions", "文本补全")
            if m.endpoint == "both"
            else tr("completions-only", "仅文本补全")
        )
    return ",".join(caps) or "-"


ASSUMED = "*"
"""Marks a figure the provider does not publish. Not the README's ``†``: terminals set up for
Chinese draw that ambiguous-width character two columns wide, which would skew the table."""


def assumed_text(value: str, spec: ModelSpec | ProviderSpec, field: str) -> str:
    """``value`` with :data:`ASSUMED` after it when ``field`` is an assumption of ``spec``.

    Example:
        >>> assumed_text("32K", ModelSpec(id="m", context_window=32768,
        ...                               assumed=["context_window"]), "context_window")
        '32K*'
    """
    return value + ASSUMED if field in spec.assumed and value != "-" else value


def assumed_note() -> str:
    """The footnote under a table with :data:`ASSUMED` figures, in the user's language."""
    return tr(
        "* assumed: the provider does not publish this figure",
        "* 为推测值:提供方未公布该数值",
    )


def kind_text(kind: str) -> str:
    """A model kind as the user reads it: ``chat``, or ``对话`` in Chinese."""
    zh = {"chat": "对话", "embedding": "向量", "rerank": "重排序"}
    return tr(kind, zh.get(kind, kind))


def reach_text(reachability: str) -> str:
    """Where a gateway answers from: ``campus``, or ``校园网`` in Chinese."""
    zh = {"public": "公网", "campus": "校园网", "intranet": "内网"}
    return tr(reachability, zh.get(reachability, reachability))
