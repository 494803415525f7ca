"""English or Chinese: which language campusllm speaks to the user, and one helper to say it.

Most users of campus gateways read Chinese first, so the command line (and, where it is
wired in, error hints) speaks Chinese when asked to or when the locale is Chinese:

* ``CAMPUSLLM_LANG`` decides when it is set: ``zh``, ``zh_CN``, ``zh-CN``, ``zh_CN.UTF-8``…
  give Chinese, anything else (``en``, ``C``…) English;
* otherwise the locale variables do, in POSIX order: the first of ``LC_ALL``,
  ``LC_MESSAGES`` and ``LANG`` that is set; Chinese when it starts with ``zh``;
* on Windows, where those are usually unset, the user's system locale;
* English otherwise.

The choice is made on every call (a notebook may set ``CAMPUSLLM_LANG`` between cells) and
costs a few dictionary lookups.

Call sites keep both texts side by side, formatted with ordinary f-strings, so a reader sees
what is said in either language without looking anything up, and a new message cannot lack
its translation::

    print(tr(f"No key found ({env}).", f"未找到密钥({env})。"))

Example:
    >>> language({"CAMPUSLLM_LANG": "zh_CN.UTF-8"})
    'zh'
    >>> language({"LANG": "zh_CN.UTF-8"}), language({"LANG": "en_US.UTF-8"})
    ('zh', 'en')
    >>> language({"CAMPUSLLM_LANG": "en", "LANG": "zh_CN.UTF-8"})  # the explicit choice wins
    'en'
    >>> tr("key missing", "缺少密钥", lang="zh")
    '缺少密钥'
"""

from __future__ import annotations

import locale
import os
import sys
from collections.abc import Mapping
from typing import Literal

__all__ = ["LANG_ENV", "Language", "language", "is_chinese", "tr"]

LANG_ENV = "CAMPUSLLM_LANG"
"""Environment variable that picks the language (``zh`` or ``en``), whatever the locale."""

Language = Literal["en", "zh"]

# POSIX precedence for message texts: LC_ALL overrides LC_MESSAGES, which overrides LANG.
_LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")


def _is_zh(tag: str) -> bool:
    # "zh", "zh_CN.UTF-8", "zh-Hans", "zh_TW"; Windows names it "Chinese (Simplified)_China".
    low = tag.strip().lower()
    return low.startswith("zh") or low.startswith("chinese")


def _system_locale() -> str:
    """The user's locale name where no variable says it (Windows), else ``""``."""
    if sys.platform != "win32":
        return ""
    try:
        return locale.getlocale()[0] or ""
    except ValueError:  # an unparsable locale name: not worth failing a message over
        return ""


def language(environ: Mapping[str, str] | None = None) -> Language:
    """``"zh"`` or ``"en"``, from ``CAMPUSLLM_LANG``, else the locale (see the module doc).

    ``environ`` defaults to :data:`os.environ`, read anew on each call.

    Example:
        >>> language({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"})  # LC_ALL overrides LANG
        'en'
        >>> language({"LC_MESSAGES": "zh_TW.UTF-8"})
        'zh'
    """
    env = os.environ if environ is None else environ
    chosen = env.get(LANG_ENV, "").strip()
    if chosen:
        return "zh" if _is_zh(chosen) else "en"
    for var in _LOCALE_VARS:
        value = env.get(var, "").strip()
        if value:
            return "zh" if _is_zh(value) else "en"
    if environ is None and _is_zh(_system_locale()):
        return "zh"
    return "en"


def is_chinese(environ: Mapping[str, str] | None = None) -> bool:
    """Whether messages should be in Chinese now.

    Example:
        >>> is_chinese({"CAMPUSLLM_LANG": "zh"})
        True
    """
    return language(environ) == "zh"


def tr(en: str, zh: str, *, lang: Language | None = None) -> str:
    """``en`` or ``zh``, whichever the user's language is (or ``lang``, when given).

    Example:
        >>> tr("model", "模型", lang="en"), tr("model", "模型", lang="zh")
        ('model', '模型')
    """
    return zh if (lang or language()) == "zh" else en
