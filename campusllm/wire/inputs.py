"""Texts for embeddings and rerank, checked before anything is estimated or sent.

A wrong type (``bytes``, a LangChain ``Document``, one string where a list belongs) is a
``TypeError`` naming the call and the input; a lone surrogate (half of a UTF-16 pair, left by
``errors="surrogateescape"`` decoding or a cut emoji) cannot be encoded as UTF-8 and is a
:class:`~campusllm.errors.BadRequestError` naming the input and the position — never a
``UnicodeEncodeError`` from deep inside the HTTP library, and never an error that blames
the gateway. Nothing is replaced silently: an embedding of altered text would be a wrong
answer presented as success.

Example:
    >>> check_texts(["交大", "ECNU"], "embed")
    ['交大', 'ECNU']
    >>> check_texts([b"x"], "embed")
    Traceback (most recent call last):
    ...
    TypeError: embed() needs strings, but input 0 is bytes ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import BadRequestError

__all__ = ["check_texts", "check_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: object, what: str, label: str) -> str:
    """``text`` if it is a string that can be sent; ``label`` names it in the error.

    Example:
        >>> check_text("where \\ud800?", "rerank", "the query")
        Traceback (most recent call last):
        ...
        campusllm.errors.BadRequestError: rerank(): the query contains a lone surrogate \
(U+D800) at position 7: ...
    """
    if not isinstance(text, str):
        how = " (decode it first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
        raise TypeError(
            f"{what}() needs strings, but {label} is {type(text).__name__}{how}. Convert "
            "documents to text first (e.g. doc.page_content)."
        )
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise BadRequestError(
            f"{what}(): {label} contains a lone surrogate (U+{ord(bad.group()):04X}) at position "
            f"{bad.start() + 1}: half of a UTF-16 pair is not valid Unicode and cannot be sent.",
            hint="It usually comes from decoding bytes with errors='surrogateescape' or from a "
            "cut emoji; clean the text, e.g. text.encode('utf-8', 'replace').decode('utf-8').",
        )
    return text


def check_texts(texts: Iterable[object], what: str) -> list[str]:
    """``texts`` as a list of strings that can be sent, or the error for the first bad one.

    A single string is refused: iterating it would send one character per input.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{what}() takes a list of texts, not one {type(texts).__name__}: pass [text]."
        )
    return [check_text(t, what, f"input {i}") for i, t in enumerate(texts)]
