"""Keys as catalog data: key groups (one key per group of models) and keys from config files.

Some gateways hand out one key per group of models: the enterprise OneAPI manual
("本地大模型API用户使用手册") gives one key for its Qwen2.5/QwQ/VL models and another for its
Qwen3 models. A provider declares such groups as ``[key_groups.NAME]`` tables (model name
patterns and the env vars holding the group's key); a config file may add keys per group or
per model pattern under ``[keys.PROVIDER]``. Patterns are shell-style globs (``*``, ``?``,
``[...]``) matched case-insensitively against a model's id and every alias.

Example:
    >>> g = KeyGroup(models=["qwen3-*"], key_env=["ONEAPI_API_KEY_QWEN3"])
    >>> g.matches(["qwen3-32b"]), g.matches(["qwq-32b"])
    (True, False)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "KeyGroup",
    "ConfigKey",
    "DEFAULT_ENTRY",
    "pattern_matches",
    "is_pattern",
    "parse_config_keys",
]

DEFAULT_ENTRY = "default"
"""The entry of ``[keys.PROVIDER]`` holding the key for every model no other entry names."""


def is_pattern(text: str) -> bool:
    """Whether ``text`` has glob characters (``*``, ``?``, ``[``).

    Example:
        >>> is_pattern("qwen3-*"), is_pattern("qwen3-32b")
        (True, False)
    """
    return any(c in text for c in "*?[")


def pattern_matches(pattern: str, names: Iterable[str]) -> bool:
    """Whether the glob ``pattern`` matches any of ``names`` (case-insensitive).

    Example:
        >>> pattern_matches("QWQ-*", ["qwq-32b-128k"])
        True
    """
    low = pattern.strip().lower()
    return any(fnmatch.fnmatchcase(n.strip().lower(), low) for n in names)


class KeyGroup(BaseModel):
    """Models of one provider that take a key of their own.

    ``models`` are glob patterns of model names; ``key_env`` the env vars read for the group's
    key, in order (default ``<PROVIDER KEY VAR>_<GROUP>``, e.g. ``ONEAPI_API_KEY_QWEN3``). A
    model in no group, or in a group whose key is not set, uses the provider's own key.

    Example:
        >>> KeyGroup(models=["qwq-*", "qwen25-vl-*"]).matches(["QwQ-32B"])
        True
    """

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1)
    key_env: list[str] = []
    note: str = ""

    @field_validator("models", "key_env")
    @classmethod
    def _no_blanks(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v]
        if not all(v):
            raise ValueError("entries must not be blank")
        return v

    def matches(self, names: Iterable[str]) -> bool:
        """Whether one of ``names`` (a model's id and aliases) is in this group."""
        names = list(names)
        return any(pattern_matches(p, names) for p in self.models)


@dataclass(frozen=True)
class ConfigKey:
    """A key from a config file: its provider and entry, and the file it came from.

    Example:
        >>> k = ConfigKey("oneapi", "qwen3-*", SecretStr("sk-example"), "config.toml")
        >>> k.key, k.where
        (SecretStr('**********'), 'config.toml ([keys.oneapi] "qwen3-*")')
    """

    provider: str
    entry: str
    key: SecretStr
    source: str

    @property
    def where(self) -> str:
        """Where the key is written, for messages (never the key itself)."""
        if self.entry == DEFAULT_ENTRY:
            return f"{self.source} ([keys] {self.provider})"
        return f'{self.source} ([keys.{self.provider}] "{self.entry}")'


def parse_config_keys(keys: Any, source: str) -> dict[str, dict[str, str]] | str:
    """``[keys]`` of a config file as ``{provider: {entry: key}}``, or an error message.

    ``provider = "key"`` is the provider's default key; ``[keys.provider]`` tables hold
    ``default = "key"`` and ``"pattern-or-group" = "key"`` entries.

    Example:
        >>> parse_config_keys({"sjtu": "sk-a", "oneapi": {"qwen3-*": "sk-b"}}, "cfg")
        {'sjtu': {'default': 'sk-a'}, 'oneapi': {'qwen3-*': 'sk-b'}}
        >>> parse_config_keys({"sjtu": 5}, "cfg")
        'cfg: keys.sjtu: expected a key string or a table of entry = "key" strings'
    """
    if not isinstance(keys, Mapping):
        return f'{source}: keys: expected provider = "key" entries'
    out: dict[str, dict[str, str]] = {}
    for raw_name, value in keys.items():
        name = str(raw_name).strip().lower()
        if isinstance(value, str):
            entries: Mapping[str, Any] = {DEFAULT_ENTRY: value}
        elif isinstance(value, Mapping):
            entries = value
        else:
            return (
                f'{source}: keys.{raw_name}: expected a key string or a table of entry = "key" '
                "strings"
            )
        table: dict[str, str] = {}
        for entry, key in entries.items():
            if not isinstance(key, str):
                return f'{source}: keys.{raw_name}.{entry}: expected a key string ("sk-...")'
            entry = str(entry).strip()
            if key.strip() and entry:
                table[DEFAULT_ENTRY if entry.lower() == DEFAULT_ENTRY else entry] = key.strip()
        if table:
            out[name] = table
    return out
