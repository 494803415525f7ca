"""Reasoning, wherever the gateway puts it: split from the answer, think tags included.

Gateways return reasoning in three shapes: a ``reasoning_content`` field (DeepSeek, vLLM with
a reasoning parser), a ``reasoning`` field (vLLM >= 0.10, OpenRouter) or inline
``<think>…</think>`` in the content (no parser; sometimes the chat template already opened the
tag, so only ``</think>`` appears). Everything here normalises them to ``reasoning`` and
``content``; returned content never contains think tags.

Think-tag rules (the same for whole messages and streams unless noted):

* ``<think>`` anywhere switches to reasoning, ``</think>`` anywhere switches to content; the
  tags themselves are dropped, and whitespace right after either tag is stripped (models emit
  ``"\\n\\n"`` there).
* ``opens_in_template=True``: text is reasoning until ``</think>``. If the answer ends without
  any think tag it was not reasoning after all (thinking switched off, or the template did not
  open the tag): it becomes content — unless the answer was cut off (``finish_reason ==
  "length"``), where it stays reasoning. A stream has already emitted it as reasoning by then;
  the final delta carries it again as content and :meth:`StreamAssembler.message` moves it.
* Whole messages auto-detect an opened template: a ``</think>`` before any ``<think>`` makes
  everything before it reasoning. A stream cannot look ahead, so without the flag it starts in
  content and a bare ``</think>`` is only dropped (text before it stays content).
* A message that carries a reasoning field disables ``opens_in_template`` (the gateway parsed).
* The answer after a reasoning field loses its leading whitespace too, as it does after
  ``</think>``: model servers that parse the tags away leave the ``"\\n\\n"`` that followed
  them (llama.cpp ``--reasoning-format deepseek``). In a stream this holds however the
  whitespace is cut into chunks.

Example:
    >>> split_reasoning({"content": "<think>hm</think>\\n\\nHi"})
    ('hm', 'Hi')
"""

from __future__ import annotations

from typing import Any

from ..registry import ReasoningSpec

__all__ = [
    "OPEN_TAG",
    "CLOSE_TAG",
    "ThinkTagSplitter",
    "split_reasoning",
    "field_reasoning",
    "text_of",
]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
# Every proper prefix of either tag: the only text a splitter ever holds back.
_TAG_PREFIXES = frozenset(t[:i] for t in (OPEN_TAG, CLOSE_TAG) for i in range(1, len(t)))
_MAX_PREFIX = len(CLOSE_TAG) - 1


class ThinkTagSplitter:
    """Split streamed text with inline ``<think>…</think>`` into (reasoning, content) pieces.

    Split-invariant: however the text is cut into pieces (a tag may be cut anywhere), the
    concatenated output equals feeding it in one piece. Only a trailing proper prefix of a tag
    (at most 7 characters) is held back until the next piece or :meth:`flush`.

    ``opens_in_template=True`` starts in reasoning. If :meth:`flush` finds that no tag ever
    appeared, the text was an answer, not reasoning: flush returns all of it as content and sets
    :attr:`moved` to it, so the caller can retract the reasoning emitted so far — unless
    ``flush(truncated=True)`` says the answer was cut off mid-thought.

    Example:
        >>> sp = ThinkTagSplitter()
        >>> sp.feed("<thi"), sp.feed("nk>plan</th"), sp.feed("ink>\\n\\nAnswer")
        (('', ''), ('plan', ''), ('', 'Answer'))
        >>> sp.flush()
        ('', '')
    """

    __slots__ = (
        "_reasoning_mode",
        "_skip_ws",
        "_held",
        "_template_open",
        "_template_text",
        "moved",
    )

    def __init__(self, opens_in_template: bool = False) -> None:
        self._reasoning_mode = opens_in_template
        self._skip_ws = opens_in_template
        self._held = ""
        self._template_open = opens_in_template
        self._template_text: list[str] = []
        self.moved = ""

    @property
    def in_reasoning(self) -> bool:
        """True while text goes to reasoning."""
        return self._reasoning_mode

    @property
    def held(self) -> str:
        """The tag prefix held back so far (emitted literally by :meth:`flush` if no tag)."""
        return self._held

    def skip_whitespace(self) -> None:
        """Drop whitespace at the start of the next text emitted (an answer after reasoning)."""
        self._skip_ws = True

    def disable_template(self) -> bool:
        """Leave opens-in-template mode if nothing was emitted yet (the gateway parses)."""
        if self._template_open and not self._template_text and not self._held:
            self._template_open = False
            self._reasoning_mode = False
            self._skip_ws = False
            return True
        return False

    def feed(self, text: str) -> tuple[str, str]:
        """Add a piece; return the (reasoning, content) that can be emitted now."""
        if not text:
            return "", ""
        if not self._held and "<" not in text:
            # fast path: the bulk of chunks in a long stream
            if self._skip_ws:
                text = text.lstrip()
                if not text:
                    return "", ""
                self._skip_ws = False
            if self._reasoning_mode:
                if self._template_open:
                    self._template_text.append(text)
                return text, ""
            return "", text
        return self._scan(self._held + text if self._held else text)

    def flush(self, truncated: bool = False) -> tuple[str, str]:
        """End of text: emit any held tag prefix literally and settle opens-in-template text."""
        r_parts: list[str] = []
        c_parts: list[str] = []
        held, self._held = self._held, ""
        if held:
            self._emit(held, r_parts, c_parts)
        if self._template_open:
            self._template_open = False
            if not truncated:
                self.moved = "".join(self._template_text)
                self._template_text = []
                self._reasoning_mode = False
                return "", self.moved
            self._template_text = []
        return "".join(r_parts), "".join(c_parts)

    def _emit(self, text: str, r_parts: list[str], c_parts: list[str]) -> None:
        if self._skip_ws:
            text = text.lstrip()
            if not text:
                return
            self._skip_ws = False
        if self._reasoning_mode:
            if self._template_open:
                self._template_text.append(text)
            r_parts.append(text)
        else:
            c_parts.append(text)

    def _switch(self, reasoning: bool) -> None:
        self._reasoning_mode = reasoning
        self._skip_ws = True
        self._template_open = False
        self._template_text = []

    def _scan(self, s: str) -> tuple[str, str]:
        r_parts: list[str] = []
        c_parts: list[str] = []
        self._held = ""
        n = len(s)
        pos = 0
        while pos < n:
            i = s.find("<", pos)
            if i < 0:
                self._emit(s[pos:], r_parts, c_parts)
                break
            if i > pos:
                self._emit(s[pos:i], r_parts, c_parts)
            if s.startswith(OPEN_TAG, i):
                self._switch(True)
                pos = i + len(OPEN_TAG)
            elif s.startswith(CLOSE_TAG, i):
                self._switch(False)
                pos = i + len(CLOSE_TAG)
            elif n - i <= _MAX_PREFIX and s[i:] in _TAG_PREFIXES:
                self._held = s[i:]
                break
            else:
                self._emit("<", r_parts, c_parts)
                pos = i + 1
        return "".join(r_parts), "".join(c_parts)


def _split_think_text(text: str, opens_in_template: bool, truncated: bool) -> tuple[str, str]:
    if not opens_in_template:
        close = text.find(CLOSE_TAG)
        if close >= 0:
            open_ = text.find(OPEN_TAG)
            opens_in_template = open_ < 0 or close < open_
        elif "<" not in text:
            return "", text
    sp = ThinkTagSplitter(opens_in_template)
    r1, c1 = sp.feed(text)
    r2, c2 = sp.flush(truncated=truncated)
    if sp.moved:
        return "", sp.moved
    return r1 + r2, c1 + c2


def text_of(content: Any) -> str:
    """Message content as text: strings as-is, lists of parts joined, anything else empty."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "".join(parts)
    return str(content)


def field_reasoning(message: dict[str, Any]) -> str:
    # vLLM versions that send both fields send the same text: never concatenate them.
    r = message.get("reasoning_content")
    if not (isinstance(r, str) and r):
        r = message.get("reasoning")
    return r if isinstance(r, str) else ""


def split_reasoning(
    message: dict[str, Any], spec: ReasoningSpec | None = None, *, truncated: bool = False
) -> tuple[str, str]:
    """Return ``(reasoning, content)`` of an assistant message dict, whatever the shape.

    ``truncated`` (the answer hit ``max_tokens``) keeps unterminated opens-in-template text
    as reasoning; see the module docstring for the rules.

    Example:
        >>> split_reasoning({"content": "plan</think>\\n\\nAnswer"})
        ('plan', 'Answer')
        >>> split_reasoning({"reasoning_content": "plan", "content": "Answer"})
        ('plan', 'Answer')
    """
    field_r = field_reasoning(message)
    text = text_of(message.get("content"))
    template = bool(spec is not None and spec.opens_in_template) and not field_r
    tag_r, content = _split_think_text(text, template, truncated)
    if field_r:
        content = content.lstrip()
    return field_r + tag_r, content
