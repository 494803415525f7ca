"""Finding the API key for a model without ever printing it, and what the catalog says about it.

The key for a model is the first found, most specific first:

1. the explicit ``api_key`` argument;
2. the model's own key, if the provider hands out one key per group of models: the env vars
   of the provider's key group holding the model (``ONEAPI_API_KEY_QWEN3``), then the config
   file's ``[keys.PROVIDER]`` entries naming the model, then its key group, then a pattern
   matching it (``"qwen3-*" = "..."``, in file order);
3. the provider's key: its ``key_env`` variables in order (``SJTU_API_KEY``), then the config
   file's ``[keys] PROVIDER = "..."`` (or ``default`` in ``[keys.PROVIDER]``);
4. ``CAMPUSLLM_API_KEY``, only for providers that list it (``custom``), unless the user opts in
   with ``CAMPUSLLM_API_KEY_ANY_PROVIDER=1`` or ``api_key_any_provider = true`` in the config
   file: a key meant for one gateway is not sent to another by accident.

Surrounding spaces and quotes and a pasted ``Bearer`` prefix are removed; any other character
that cannot be in a key (a zero-width space, a full-width digit, a line break, a Chinese
character) is an :class:`~campusllm.errors.AuthenticationError` naming where the key came from
and the position, never the key. Every key found is registered with
:func:`campusllm.errors.register_secret`, so messages and logs that might echo it are scrubbed.

Example:
    >>> import os
    >>> from campusllm.registry import get_registry
    >>> os.environ["SJTU_API_KEY"] = "sk-example-123456"
    >>> get_api_key(get_registry().provider("sjtu"))
    SecretStr('**********')
    >>> get_api_key(get_registry().provider("sjtu"), "sk-abc\\u200bdef")
    Traceback (most recent call last):
    ...
    campusllm.errors.AuthenticationError: The API key from the api_key argument contains an \
invisible character (U+200B ZERO WIDTH SPACE) at position 7. ...
    >>> del os.environ["SJTU_API_KEY"]
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain

from pydantic import SecretStr

from .errors import AuthenticationError, ConfigError, register_secret
from .i18n import tr
from .registry import ConfigKey, ModelSpec, ProviderSpec, Registry, get_registry
from .registry.keys import DEFAULT_ENTRY, is_pattern, pattern_matches
from .registry.loading import ANY_PROVIDER_SETTING

__all__ = [
    "GENERIC_KEY_ENV",
    "ANY_PROVIDER_ENV",
    "FoundKey",
    "KeySlot",
    "KeyValidity",
    "key_env_names",
    "generic_key_allowed",
    "find_api_key",
    "get_api_key",
    "missing_key_error",
    "key_slots",
    "key_validity",
    "key_validity_hint",
]

GENERIC_KEY_ENV = "CAMPUSLLM_API_KEY"
"""The key of the ``custom`` provider (and of every provider, once the user opts in)."""
ANY_PROVIDER_ENV = "CAMPUSLLM_API_KEY_ANY_PROVIDER"
"""Set to ``1`` to send ``CAMPUSLLM_API_KEY`` to providers that have their own key variable."""

_TRUE = ("1", "true", "yes", "on")
ModelRef = ModelSpec | str | None


def _names(model: ModelRef) -> list[str]:
    if model is None:
        return []
    return model.names() if isinstance(model, ModelSpec) else [model]


def generic_key_allowed(provider: ProviderSpec) -> bool:
    """Whether ``CAMPUSLLM_API_KEY`` may be sent to ``provider``.

    Example:
        >>> from campusllm.registry import get_registry
        >>> generic_key_allowed(get_registry().provider("custom"))
        True
        >>> generic_key_allowed(get_registry().provider("sjtu"))  # unless opted in
        False
    """
    if GENERIC_KEY_ENV in provider.key_env:
        return True
    if os.environ.get(ANY_PROVIDER_ENV, "").strip().lower() in _TRUE:
        return True
    return get_registry().api_key_any_provider


def key_env_names(provider: ProviderSpec, model: ModelRef = None) -> list[str]:
    """Env vars searched for the key of ``provider`` (and ``model``'s key group), in order.

    Example:
        >>> from campusllm.registry import get_registry
        >>> key_env_names(get_registry().provider("sjtu"))
        ['SJTU_API_KEY']
        >>> key_env_names(get_registry().provider("oneapi"), "qwen3-32b")
        ['ONEAPI_API_KEY_QWEN3', 'ONEAPI_API_KEY']
    """
    names: list[str] = []
    group = provider.key_group(_names(model))
    if group is not None:
        names += provider.key_groups[group].key_env
    names += provider.key_env
    if generic_key_allowed(provider):
        names.append(GENERIC_KEY_ENV)
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- one key


@dataclass(frozen=True)
class FoundKey:
    """A key and where it was found (``$ONEAPI_API_KEY_QWEN3``, the argument, a config entry).

    ``group`` is the key group or config entry the key serves; ``None`` for the provider's
    own key.

    Example:
        >>> FoundKey(SecretStr("sk-example"), "$SJTU_API_KEY")
        FoundKey(key=SecretStr('**********'), source='$SJTU_API_KEY', group=None)
    """

    key: SecretStr
    source: str
    group: str | None = None


def _clean(value: str) -> str:
    value = value.strip().strip("\"'").strip()
    # A key pasted together with its header prefix would be sent as "Bearer Bearer ...".
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def _describe(ch: str) -> str:
    """What ``ch`` is, in words; code points only for characters that cannot be key text."""
    if ch in "\r\n":
        return "a line break (CR/LF)"
    if ch == " ":
        return "a space"
    if ch == "\t":
        return "a tab"
    category = unicodedata.category(ch)
    code = f"U+{ord(ch):04X}"
    if category in ("Cc", "Cf", "Zs", "Zl", "Zp"):
        name = unicodedata.name(ch, "")
        return f"an invisible character ({code}{' ' + name if name else ''})"
    if 0xFF01 <= ord(ch) <= 0xFF5E:
        return "a full-width character (typed with the input method in full-width mode)"
    return "a non-ASCII character"


def _check(key: str, raw: str, where: str, provider: ProviderSpec) -> None:
    """AuthenticationError naming ``where`` and the position of a character no key has."""
    bad = next((i for i, ch in enumerate(key) if not "!" <= ch <= "~"), None)
    if bad is None:
        return
    position = max(0, raw.find(key)) + bad + 1  # counted in the value as the user wrote it
    raise AuthenticationError(
        f"The API key from {where} contains {_describe(key[bad])} at position {position}. Keys "
        "are plain ASCII letters, digits and punctuation.",
        hint="Copy the key again from where it was issued, or retype it: invisible and "
        "full-width characters come from chat apps, PDFs, Word, or an input method in "
        "full-width mode.",
        provider=provider.name,
    )


def _take(provider: ProviderSpec, where: str, raw: str, group: str | None) -> FoundKey | None:
    key = _clean(raw)
    if not key:
        return None
    _check(key, raw, where, provider)
    register_secret(key)
    return FoundKey(SecretStr(key), where, group)


Source = tuple[str, str, str | None]  # where, the raw value, the group it serves


def _env(names: Sequence[str], group: str | None) -> Iterator[Source]:
    for name in names:
        yield f"${name}", os.environ.get(name, ""), group


def _config(entries: Sequence[ConfigKey]) -> Iterator[Source]:
    for ck in entries:
        group = None if ck.entry == DEFAULT_ENTRY else ck.entry
        yield ck.where, ck.key.get_secret_value(), group


def _matching_entries(
    entries: dict[str, ConfigKey], names: Sequence[str], group: str | None
) -> list[ConfigKey]:
    """Config entries for a model: its exact names, then its key group, then patterns."""
    low = {n.lower() for n in names}
    named = [ck for e, ck in entries.items() if not is_pattern(e) and e.lower() in low]
    grouped = [ck for e, ck in entries.items() if group is not None and e.lower() == group]
    globbed = [ck for e, ck in entries.items() if is_pattern(e) and pattern_matches(e, names)]
    out: dict[str, ConfigKey] = {}
    for ck in (*named, *grouped, *globbed):
        if ck.entry != DEFAULT_ENTRY:
            out.setdefault(ck.entry, ck)
    return list(out.values())


def _model_sources(provider: ProviderSpec, names: Sequence[str], reg: Registry) -> Iterator[Source]:
    if not names:
        return
    group = provider.key_group(names)
    if group is not None:
        yield from _env(provider.key_groups[group].key_env, group)
    yield from _config(_matching_entries(reg.config_keys(provider.name), names, group))


def _provider_sources(provider: ProviderSpec, reg: Registry) -> Iterator[Source]:
    yield from _env(provider.key_env, None)
    default = reg.config_keys(provider.name).get(DEFAULT_ENTRY)
    if default is not None:
        yield from _config([default])
    if GENERIC_KEY_ENV not in provider.key_env and generic_key_allowed(provider):
        yield from _env([GENERIC_KEY_ENV], None)


def find_api_key(
    provider: ProviderSpec, explicit: str | SecretStr | None = None, *, model: ModelRef = None
) -> FoundKey:
    """The key for ``model`` of ``provider`` and where it was found (see the module's order).

    Raises AuthenticationError naming the env vars to set when there is none, or naming the
    source and the position when a key holds a character that cannot be in a key.

    Example:
        >>> import os
        >>> from campusllm.registry import get_registry
        >>> os.environ["ONEAPI_API_KEY"] = "sk-default-123"
        >>> os.environ["ONEAPI_API_KEY_QWEN3"] = "sk-qwen3-456"
        >>> oneapi = get_registry().provider("oneapi")
        >>> find_api_key(oneapi, model="qwen3-32b").source
        '$ONEAPI_API_KEY_QWEN3'
        >>> find_api_key(oneapi, model="qwq-32b").source  # no key of its group is set
        '$ONEAPI_API_KEY'
        >>> del os.environ["ONEAPI_API_KEY"], os.environ["ONEAPI_API_KEY_QWEN3"]
    """
    if isinstance(explicit, SecretStr):
        explicit = explicit.get_secret_value()
    if explicit is not None:
        if not isinstance(explicit, str):
            raise ConfigError(
                f"api_key must be a string or SecretStr, not {type(explicit).__name__}.",
                provider=provider.name,
            )
        found = _take(provider, "the api_key argument", explicit, None)
        if found is not None:
            return found
    reg = get_registry()
    names = _names(model)
    for where, raw, group in chain(
        _model_sources(provider, names, reg), _provider_sources(provider, reg)
    ):
        found = _take(provider, where, raw, group)
        if found is not None:
            return found
    raise missing_key_error(provider, names[0] if names else None)


def get_api_key(
    provider: ProviderSpec, explicit: str | SecretStr | None = None, *, model: ModelRef = None
) -> SecretStr:
    """The key for ``model`` of ``provider``; AuthenticationError naming the env vars if none.

    Example:
        >>> from campusllm.registry import get_registry
        >>> get_api_key(get_registry().provider("ecnu"), "sk-abc-123456").get_secret_value()
        'sk-abc-123456'
    """
    return find_api_key(provider, explicit, model=model).key


def missing_key_error(provider: ProviderSpec, model: ModelRef = None) -> AuthenticationError:
    """The error for no key at all: which env vars to set, and why the generic key was not used.

    Example:
        >>> from campusllm.registry import get_registry
        >>> print(missing_key_error(get_registry().provider("ecnu")).message)
        No API key for provider 'ecnu'.
    """
    names = _names(model)
    group = provider.key_group(names)
    envs = key_env_names(provider, model)
    if group is not None:
        own = provider.key_groups[group].key_env
        rest = [e for e in envs if e not in own]
        where = tr(
            f"{' or '.join(own)} (the key of its group {group!r})",
            f"{' 或 '.join(own)}(其密钥组 {group!r} 的密钥)",
        )
        if rest:
            where += tr(f" or {' or '.join(rest)}", f" 或 {' 或 '.join(rest)}")
        what = tr(
            f" for {names[0]!r} on provider {provider.name!r} (key group {group!r})",
            f"(提供方 {provider.name!r} 的 {names[0]!r},密钥组 {group!r})",
        )
    else:
        where = tr(" or ", " 或 ").join(envs)
        what = tr(f" for provider {provider.name!r}", f"(提供方 {provider.name!r})")
    generic = ""
    if os.environ.get(GENERIC_KEY_ENV, "").strip() and not generic_key_allowed(provider):
        generic = tr(
            f" {GENERIC_KEY_ENV} is set, but it is sent only to providers that list it (custom), "
            f"so that a key meant for one gateway never reaches another; to use it for "
            f"{provider.name} too, set {ANY_PROVIDER_ENV}=1 (or {ANY_PROVIDER_SETTING} = true "
            "in the config file).",
            f"已设置 {GENERIC_KEY_ENV},但它只发给声明使用它的提供方(custom),以免给一个网关的密钥"
            f"被发到另一个网关;若也要用于 {provider.name},请设置 {ANY_PROVIDER_ENV}=1"
            f"(或在配置文件中写 {ANY_PROVIDER_SETTING} = true)。",
        )
    return AuthenticationError(
        tr(f"No API key{what}.", f"没有找到 API 密钥{what}。"),
        hint=tr(
            f"Set {where}, pass api_key=..., or add it under [keys] in your campusllm config "
            f"file (`campusllm doctor {provider.name}` shows where keys are looked for).",
            f"请设置 {where},或传入 api_key=...,或写在 campusllm 配置文件的 [keys] 下"
            f"(`campusllm doctor {provider.name}` 会列出查找密钥的位置)。",
        )
        + generic,
        provider=provider.name,
    )


# ----------------------------------------------------------------------------- all keys


@dataclass(frozen=True)
class KeySlot:
    """One key a provider may need: its default key, a key group's, or a config pattern's.

    ``models`` are the model patterns it serves (empty for the default key), ``sources``
    where it is looked for; ``found`` is the key itself (``None`` when none is set: the
    default key then serves those models too), ``error`` the problem with a key that is set.

    Example:
        >>> from campusllm.registry import get_registry
        >>> [s.name for s in key_slots(get_registry().provider("oneapi"))]
        ['default', 'qwen25', 'qwen3']
    """

    name: str
    models: tuple[str, ...]
    sources: tuple[str, ...]
    found: FoundKey | None = None
    error: AuthenticationError | None = None


def _slot(
    provider: ProviderSpec, name: str, models: Sequence[str], sources: Sequence[Source]
) -> KeySlot:
    where = tuple(dict.fromkeys(w for w, _, _ in sources))
    try:
        for w, raw, group in sources:
            found = _take(provider, w, raw, group)
            if found is not None:
                return KeySlot(name, tuple(models), where, found)
    except AuthenticationError as e:
        return KeySlot(name, tuple(models), where, error=e)
    return KeySlot(name, tuple(models), where)


def key_slots(provider: ProviderSpec) -> list[KeySlot]:
    """Every key ``provider`` may use: its own, each key group's, each config pattern's.

    For ``campusllm doctor``: each slot says where its key is looked for and whether it is
    set, never the key.
    """
    reg = get_registry()
    entries = reg.config_keys(provider.name)
    slots = [_slot(provider, DEFAULT_ENTRY, (), list(_provider_sources(provider, reg)))]
    for name, group in provider.key_groups.items():
        sources = list(_env(group.key_env, name))
        if name in entries:
            sources += _config([entries[name]])
        slots.append(_slot(provider, name, group.models, sources))
    for entry, ck in entries.items():
        if entry != DEFAULT_ENTRY and entry not in provider.key_groups:
            slots.append(_slot(provider, entry, (entry,), list(_config([ck]))))
    return slots


# ----------------------------------------------------------------------------- validity


@dataclass(frozen=True)
class KeyValidity:
    """A provider's documented key validity, seen on ``today``.

    Example:
        >>> v = KeyValidity("sjtu", date(2026, 9, 30), date(2026, 9, 1), "交我办")
        >>> v.days_left, v.ended
        (29, False)
        >>> str(v)
        "sjtu's default keys are documented as valid until 2026-09-30 (29 days left)."
    """

    provider: str
    valid_until: date
    today: date
    renewal: str = ""

    @property
    def days_left(self) -> int:
        """Days until the last valid day (0 on that day, negative after it)."""
        return (self.valid_until - self.today).days

    @property
    def ended(self) -> bool:
        """Whether the documented validity is over (the last day itself still counts)."""
        return self.days_left < 0

    def __str__(self) -> str:
        if not self.ended:
            return tr(
                f"{self.provider}'s default keys are documented as valid until "
                f"{self.valid_until} ({self.days_left} days left).",
                f"{self.provider} 的默认密钥按文档有效至 {self.valid_until}"
                f"(还剩 {self.days_left} 天)。",
            )
        renew = tr(f" Renew it: {self.renewal}.", f"续期方式:{self.renewal}。")
        return tr(
            f"{self.provider}'s default keys were documented as valid until {self.valid_until}, "
            f"{-self.days_left} days ago: this key has probably expired.",
            f"{self.provider} 的默认密钥按文档有效至 {self.valid_until},已过去 "
            f"{-self.days_left} 天:这个密钥很可能已经过期。",
        ) + (renew if self.renewal else "")


def key_validity(provider: ProviderSpec, today: date | None = None) -> KeyValidity | None:
    """The documented validity of ``provider``'s keys on ``today`` (default: the real date).

    Example:
        >>> from campusllm.registry import get_registry
        >>> v = key_validity(get_registry().provider("sjtu"), today=date(2026, 11, 30))
        >>> v.ended, v.days_left
        (True, -61)
        >>> key_validity(get_registry().provider("ecnu")) is None
        True
    """
    if provider.key_valid_until is None:
        return None
    return KeyValidity(
        provider.display_name or provider.name,
        provider.key_valid_until,
        today or date.today(),
        provider.key_renewal,
    )


def key_validity_hint(provider: ProviderSpec, today: date | None = None) -> str:
    """For a 401 from ``provider``: the sentence saying its keys' documented validity ended.

    Empty while the documented validity lasts (or when none is documented).

    Example:
        >>> from campusllm.registry import get_registry
        >>> sjtu = get_registry().provider("sjtu")
        >>> key_validity_hint(sjtu, today=date(2026, 9, 30))
        ''
        >>> key_validity_hint(sjtu, today=date(2026, 10, 1))[:60]
        "SJTU 本地大模型 API's default keys were documented as valid until"
    """
    validity = key_validity(provider, today)
    return str(validity) if validity is not None and validity.ended else ""
