"""One cheap token estimate, shared by the rate limiter and the simulator.

Gateways count tokens with each model's own tokenizer, which campusllm does not ship (and
loading one would cost seconds of import time). The limiter only needs an estimate that
is close and errs on the safe side for Chinese text, where one character is usually one
token or more; for other text, about four characters make a token.

Example:
    >>> from campusllm.tokens import estimate_tokens
    >>> estimate_tokens("上海交通大学")
    6
    >>> estimate_tokens("hello world!")
    3
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["estimate_tokens"]

# CJK ideographs (incl. extensions and compatibility forms), kana, hangul, CJK punctuation
# and full-width forms: the tokenizers of the catalogued models spend about one token on each.
_CJK_CLASS = (
    "["
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u31ef"  # Bopomofo, Hangul compatibility Jamo, Kanbun, CJK strokes
    "\u3200-\u4dbf"  # enclosed CJK, compatibility, extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul Jamo extended A
    "\uac00-\ud7ff"  # Hangul syllables, Jamo extended B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\ufe30-\ufe4f"  # CJK compatibility forms
    "\uff00-\uffef"  # half-width and full-width forms
    "\U00020000-\U0003134f"  # extensions B-G
    "]"
)


@cache
def _cjk() -> re.Pattern[str]:
    # Compiled on first non-ASCII text: this character class takes ~4 ms to compile, paid by
    # every process that imports the chat path, although English-only prompts never need it.
    return re.compile(_CJK_CLASS)


def estimate_tokens(text: str) -> int:
    """Estimate how many tokens ``text`` costs: one per CJK character, one per 4 other chars.

    The result is at least 1, so every request costs something against a TPM budget.

    Example:
        >>> estimate_tokens("你好, world")
        4
    """
    if not text:
        return 1
    if text.isascii():  # no CJK possible; skips the regex (and its compilation) entirely
        return max(1, (len(text) + 3) // 4)
    rest, cjk = _cjk().subn("", text)
    other = len(rest)
    return max(1, cjk + (other + 3) // 4)
