"""Reading the catalog: packaged TOML files, user override files, and merging them.

Override files have the shape of the packaged ones; tables merge deeply, models merge by id
or alias, other lists replace. Every error names the file and the field.

Example:
    >>> names = [stem for stem, _ in packaged_catalog()]
    >>> names[:2]
    ['sjtu', 'ecnu']
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .keys import parse_config_keys
from .specs import ProviderSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ANY_PROVIDER_SETTING",
    "Overrides",
    "packaged_catalog",
    "packaged_providers",
    "read_toml",
    "parse_overrides",
    "validate_provider",
    "validation_error",
    "merge_models",
    "confirm_assumptions",
    "deep_merge",
]

ANY_PROVIDER_SETTING = "api_key_any_provider"
"""Config setting: ``true`` sends ``CAMPUSLLM_API_KEY`` to every provider, not only ``custom``."""

# Packaged providers in the order they are listed; unknown extra files come after, sorted.
_PACKAGED_ORDER = ("sjtu", "ecnu", "maas", "oneapi", "custom")


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``; ConfigError naming the file for anything unreadable.

    The file must be UTF-8 (a byte-order mark, as Windows Notepad writes it, is accepted).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = Path(d) / "config.toml"
        ...     _ = p.write_bytes('# 交大\\ndefault_provider = "sjtu"\\n'.encode("gbk"))
        ...     read_toml(p)
        Traceback (most recent call last):
        ...
        campusllm.errors.ConfigError: ...config.toml: not UTF-8 ... GBK ...
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}") from None
    text = _decode(raw, path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: {e}", hint="Fix the file or remove it."
        ) from None


def _decode(raw: bytes, path: Path) -> str:
    """``raw`` as UTF-8 text, or a ConfigError that says which encoding the file is in.

    The decoding error is not chained: its ``object`` would carry the file's bytes, keys
    included, into every traceback.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        offset = e.start
    line = raw[:offset].count(b"\n") + 1
    guess = _legacy_encoding(raw)
    saved = f"it looks saved in {guess}" if guess else "it is in some other encoding"
    raise ConfigError(
        f"{path}: not UTF-8 (first bad byte at line {line}); {saved}.",
        hint="Save the file as UTF-8: in Notepad use File > Save As > Encoding: UTF-8; in VS Code "
        "click the encoding in the status bar > Save with Encoding > UTF-8.",
    )


def _legacy_encoding(raw: bytes) -> str | None:
    """The Chinese legacy encoding ``raw`` decodes in, if any (the usual suspects only)."""
    for name, label in (
        ("gb18030", 'GBK (the "ANSI" encoding of Simplified Chinese Windows)'),
        ("big5", 'Big5 (the "ANSI" encoding of Traditional Chinese Windows)'),
    ):
        try:
            raw.decode(name)
        except UnicodeDecodeError:
            continue
        return label
    return None


@lru_cache(maxsize=1)
def packaged_catalog() -> tuple[tuple[str, dict[str, Any]], ...]:
    folder = files("campusllm").joinpath("providers")
    entries = {p.name[: -len(".toml")]: p for p in folder.iterdir() if p.name.endswith(".toml")}
    order = [n for n in _PACKAGED_ORDER if n in entries]
    order += sorted(n for n in entries if n not in _PACKAGED_ORDER)
    out = []
    for stem in order:
        text = entries[stem].read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:  # pragma: no cover - packaging bug
            raise ConfigError(f"campusllm/providers/{stem}.toml: not valid TOML: {e}") from None
        out.append((stem, data))
    return tuple(out)


def _loc_text(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str:
    """Dotted field path, naming models by id instead of their list index."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            entry = node[item] if item < len(node) else None
            ident = entry.get("id") if isinstance(entry, Mapping) else None
            parts.append(f'"{ident}"' if ident else f"[{item}]")
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts)


def validation_error(source: str, prefix: str, err: ValidationError, data: Any) -> ConfigError:
    lines = []
    for e in err.errors():
        where = _loc_text(tuple(e["loc"]), data if isinstance(data, Mapping) else {})
        field = ".".join(p for p in (prefix, where) if p)
        lines.append(f"{field}: {e['msg']}" if field else e["msg"])
    return ConfigError(
        f"{source}: invalid configuration: " + "; ".join(lines) + ".",
        hint="See the field names in campusllm/providers/*.toml for the expected shape.",
    )


def merge_models(base: list[Any], override: Any, source: str, prefix: str) -> list[Any]:
    if isinstance(override, Mapping):  # [providers.x.models."id"] tables keyed by id
        items = []
        for mid, fields in override.items():
            if not isinstance(fields, Mapping):
                raise ConfigError(f"{source}: {prefix}.models.{mid}: expected a table")
            items.append({"id": mid, **fields})
        override = items
    if not isinstance(override, list):
        raise ConfigError(f"{source}: {prefix}.models: expected an array of tables")
    out = [dict(m) for m in base]
    for entry in override:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            raise ConfigError(f'{source}: {prefix}.models: every model needs an id = "..."')
        low = entry["id"].strip().lower()
        for i, existing in enumerate(out):
            names = [existing.get("id", ""), *existing.get("aliases", [])]
            names += existing.get("local_aliases", [])
            if any(str(n).lower() == low for n in names):
                merged = deep_merge(existing, {k: v for k, v in entry.items() if k != "id"})
                out[i] = confirm_assumptions(merged, entry)
                break
        else:
            out.append(dict(entry))
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def confirm_assumptions(merged: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Unmark the assumed figures ``override`` sets: a value the user gives is theirs, not ours.

    An override that lists ``assumed`` itself decides alone.

    Example:
        >>> confirm_assumptions({"context_window": 65536, "assumed": ["context_window"]},
        ...                     {"context_window": 65536})["assumed"]
        []
    """
    if "assumed" in override or not merged.get("assumed"):
        return merged
    given = set(override)
    for k, v in override.items():
        if isinstance(v, Mapping):
            given.update(f"{k}.{sub}" for sub in v)
    merged["assumed"] = [n for n in merged["assumed"] if n not in given]
    return merged


def validate_provider(data: dict[str, Any], source: str, prefix: str) -> ProviderSpec:
    """``data`` as a ProviderSpec; ConfigError naming ``source`` and the field otherwise."""
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as e:
        raise validation_error(source, prefix, e, data) from None


def packaged_providers() -> list[tuple[str, ProviderSpec]]:
    """``(source, spec)`` of every packaged provider file, in catalog order."""
    out = []
    for stem, data in packaged_catalog():
        source = f"campusllm/providers/{stem}.toml"
        out.append((source, validate_provider(copy.deepcopy(data), source, "")))
    return out


@dataclass
class Overrides:
    """What one override file changes: providers (merged already), keys, default provider.

    ``keys`` maps a provider to its ``[keys]`` entries (``"default"`` and model patterns or key
    group names); ``api_key_any_provider`` is the opt-in that lets ``CAMPUSLLM_API_KEY`` go to
    every provider (``None``: not set in this file).

    Example:
        >>> Overrides(default_provider="ecnu").providers
        []
    """

    providers: list[ProviderSpec] = field(default_factory=list)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    default_provider: str | None = None
    api_key_any_provider: bool | None = None
    limiter: dict[str, Any] | None = None
    """The ``[limiter]`` table as written (checked and applied by ``campusllm.limiter``)."""


def parse_overrides(
    data: Mapping[str, Any], current: Mapping[str, ProviderSpec], source: str
) -> Overrides:
    """Check an override mapping and merge its providers into ``current``'s (not in place).

    Example:
        >>> from campusllm.registry import Registry
        >>> reg = Registry()
        >>> o = parse_overrides({"providers": {"sjtu": {"limits": {"rpm": 20}}}},
        ...                     {p.name: p for p in reg.providers()}, "<example>")
        >>> o.providers[0].limits.rpm
        20
    """
    data = dict(data)
    if "name" in data and "providers" not in data:
        data = {"providers": {str(data["name"]): data}}
    allowed = {"providers", "keys", "limiter", "default_provider", ANY_PROVIDER_SETTING}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}.",
            hint="Allowed: [providers.NAME], [keys], [limiter], default_provider, "
            f"{ANY_PROVIDER_SETTING}.",
        )
    limiter = data.get("limiter")
    if limiter is not None and not isinstance(limiter, Mapping):
        raise ConfigError(f"{source}: limiter: expected a table ([limiter])")
    provs = data.get("providers", {})
    if not isinstance(provs, Mapping):
        raise ConfigError(f"{source}: providers: expected a table of providers")
    keys = parse_config_keys(data.get("keys", {}), source)
    if isinstance(keys, str):
        raise ConfigError(
            keys,
            hint='Write provider = "key", or [keys.PROVIDER] with default = "key" and '
            '"model-pattern" = "key" entries.',
        )
    any_provider = data.get(ANY_PROVIDER_SETTING)
    if any_provider is not None and not isinstance(any_provider, bool):
        raise ConfigError(f"{source}: {ANY_PROVIDER_SETTING}: expected true or false")
    default = data.get("default_provider")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{source}: default_provider: expected a provider name string")

    out = Overrides()
    for raw_name, table in provs.items():
        name = str(raw_name).strip().lower()
        prefix = f"providers.{raw_name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: {prefix}: expected a table")
        table = dict(table)
        if "name" in table and str(table["name"]).strip().lower() != name:
            raise ConfigError(f"{source}: {prefix}.name: differs from the table name")
        existing = current.get(name)
        if existing is None:
            merged = {"name": name, **table}
            if "models" in table:
                merged["models"] = merge_models([], table["models"], source, prefix)
        else:
            base = existing.model_dump(exclude_unset=False)
            merged = deep_merge(base, {k: v for k, v in table.items() if k != "models"})
            merged = confirm_assumptions(merged, table)
            if "models" in table:
                merged["models"] = merge_models(base["models"], table["models"], source, prefix)
        out.providers.append(validate_provider(merged, source, prefix))
    if default is not None:
        d = default.strip().lower()
        if d not in current and d not in {p.name for p in out.providers}:
            raise ConfigError(
                f"{source}: default_provider: unknown provider {default!r}.",
                hint=f"Known providers: {', '.join(current)}.",
            )
        out.default_provider = d
    out.keys = keys
    out.api_key_any_provider = any_provider
    out.limiter = dict(limiter) if limiter is not None else None
    return out
