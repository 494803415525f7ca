"""The catalog of providers and models: lookup, resolution, overrides, runtime registration.

The packaged catalog lives in ``campusllm/providers/*.toml`` (one file per provider). A user
file (``$CAMPUSLLM_CONFIG`` or ``~/.config/campusllm/config.toml``) is deep-merged on top of
it, and :func:`register_provider` / :func:`register_model` change it at runtime. Everything
else in campusllm asks this module what a gateway needs instead of hard-coding it.

User file example::

    default_provider = "sjtu"          # used when a model is named without "provider:"

    [providers.sjtu.limits]
    rpm = 20                            # your quota was raised

    [[providers.sjtu.models]]           # a new model (or, with an existing id, an override)
    id = "kimi-k2"
    context_window = 131072
    tools = true

    [providers.lab]                     # a new provider
    base_url = "http://10.0.0.5:8000/v1"
    key_env = ["LAB_API_KEY"]

    [keys]                              # keys, if you keep them here rather than in env vars
    lab = "sk-..."

    [keys.oneapi]                       # one key per group of models (first match wins,
    default = "sk-..."                  # exact names before key groups before patterns)
    qwen3 = "sk-..."                    # a key group the provider declares
    "qwq-*" = "sk-..."                  # or a model name pattern

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat")
    >>> r.key, r.wire_model, r.model.context_window
    ('sjtu:deepseek-v3.2', 'deepseek-chat', 32768)
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from ..errors import ConfigError, register_secret
from .docs import markdown_table
from .keys import DEFAULT_ENTRY, ConfigKey
from .loading import (
    packaged_providers,
    parse_overrides,
    read_toml,
    validate_provider,
    validation_error,
)
from .resolution import Resolution
from .specs import Drift, ModelSpec, ProviderSpec, ResolvedModel, generic_model

__all__ = ["Registry"]


class Registry:
    """The catalog of providers and models, with overrides and runtime registration.

    ``Registry()`` holds the packaged catalog; ``Registry([])`` starts empty. The process-wide
    instance (packaged catalog + user file) comes from :func:`get_registry`.

    Example:
        >>> reg = Registry()
        >>> reg.resolve(provider="sjtu", model="glm").model.id
        'glm-5.1'
        >>> reg.register_model("sjtu", {"id": "kimi-k2", "tools": True})
        >>> reg.resolve("sjtu:kimi-k2").known
        True
    """

    def __init__(self, providers: Iterable[ProviderSpec | Mapping[str, Any]] | None = None):
        self._lock = threading.RLock()
        self._providers: dict[str, ProviderSpec] = {}
        self._keys: dict[str, dict[str, ConfigKey]] = {}
        self.default_provider: str | None = None
        self.api_key_any_provider = False
        """Config opt-in: send ``CAMPUSLLM_API_KEY`` to every provider (see campusllm.auth)."""
        self.sources: list[str] = []
        """Files merged into this registry, in order (packaged files first)."""
        self.limiter_config: dict[str, Any] = {}
        """The ``[limiter]`` tables of the merged files (later keys win), as written."""
        self.limiter_source = ""
        """The file the last ``[limiter]`` table came from (for error messages)."""
        if providers is None:
            for source, spec in packaged_providers():
                self._add(spec)
                self.sources.append(source)
        else:
            for p in providers:
                self.register_provider(p)

    # -- lookup ----------------------------------------------------------------------------

    def providers(self) -> list[ProviderSpec]:
        """All providers, packaged ones first in their fixed order."""
        with self._lock:
            return list(self._providers.values())

    def provider(self, name: str) -> ProviderSpec:
        """The provider called ``name`` (case-insensitive); ModelNotFoundError lists the known."""
        return self.resolution().provider(name)

    def models(
        self, provider: str | None = None, kind: str | None = None
    ) -> list[tuple[ProviderSpec, ModelSpec]]:
        """``(provider, model)`` pairs, optionally of one provider and/or one kind."""
        provs = [self.provider(provider)] if provider else self.providers()
        return [(p, m) for p in provs for m in p.models if kind is None or m.kind == kind]

    def config_key(self, provider: str) -> SecretStr | None:
        """The default key stored for ``provider`` under ``[keys]`` in a config file, if any."""
        entry = self.config_keys(provider).get(DEFAULT_ENTRY)
        return entry.key if entry else None

    def config_keys(self, provider: str) -> dict[str, ConfigKey]:
        """Every key stored for ``provider`` in config files, by entry, in file order.

        ``"default"`` is the provider's own key; other entries are key group names or model
        name patterns (``[keys.oneapi] "qwen3-*" = "..."``).

        Example:
            >>> reg = Registry()
            >>> reg.merge({"keys": {"oneapi": {"default": "sk-a-123", "qwen3-*": "sk-b-456"}}})
            >>> list(reg.config_keys("oneapi")), reg.config_key("oneapi")
            (['default', 'qwen3-*'], SecretStr('**********'))
        """
        with self._lock:
            return dict(self._keys.get(provider.strip().lower(), {}))

    # -- resolution --------------------------------------------------------------------------

    def resolution(self) -> Resolution:
        """The resolution rules over a snapshot of this catalog."""
        with self._lock:
            return Resolution(dict(self._providers), self.default_provider)

    def resolve(
        self,
        spec: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
    ) -> ResolvedModel:
        """Pick provider and model from ``"provider:model"``, or ``provider=`` and ``model=``.

        A model without a provider uses ``$CAMPUSLLM_PROVIDER``, the config's
        ``default_provider``, or the one provider whose catalog has that name. An unknown model
        on a known provider gets a generic spec (``known=False``) and a warning with close
        matches; a deprecated one warns naming its replacement.
        """
        return self.resolution().resolve(spec, provider=provider, model=model, base_url=base_url)

    def resolve_provider(self, provider: str, base_url: str | None = None) -> ResolvedModel:
        """Some chat model of ``provider``, for calls about the gateway, not a model (/models).

        Example:
            >>> Registry().resolve_provider("sjtu").provider.name
            'sjtu'
        """
        prov = self.provider(provider)
        first = next((m.id for m in prov.models if m.kind == "chat"), None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a provider without catalogued chat models
            return self.resolve(provider=prov.name, model=first or "models", base_url=base_url)

    def base_url_for(self, provider: ProviderSpec | str, explicit: str | None = None) -> str:
        """Base URL: ``explicit`` > the provider's ``base_url_env`` > its ``base_url``."""
        prov = self.provider(provider) if isinstance(provider, str) else provider
        return Resolution.base_url_for(prov, explicit)

    # -- changes ---------------------------------------------------------------------------

    def register_provider(self, spec: ProviderSpec | Mapping[str, Any]) -> None:
        """Add a provider, or replace the one with the same name."""
        if not isinstance(spec, ProviderSpec):
            if not isinstance(spec, Mapping):
                raise ConfigError(
                    f"register_provider() takes a ProviderSpec or a dict, not "
                    f"{type(spec).__name__}."
                )
            name = spec.get("name", "?")
            spec = validate_provider(dict(spec), "register_provider()", f"providers.{name}")
        self._add(spec)

    def register_model(self, provider: str, spec: ModelSpec | Mapping[str, Any]) -> None:
        """Add a model to ``provider``, or replace the model with the same id."""
        with self._lock:
            prov = self.provider(provider)
            if not isinstance(spec, ModelSpec):
                if not isinstance(spec, Mapping):
                    raise ConfigError(
                        f"register_model() takes a ModelSpec or a dict, not {type(spec).__name__}."
                    )
                raw = dict(spec)
                try:
                    spec = ModelSpec.model_validate(raw)
                except ValidationError as e:
                    where = f"providers.{prov.name}.models"
                    if isinstance(raw.get("id"), str):
                        where += f'."{raw["id"]}"'
                    raise validation_error("register_model()", where, e, {}) from None
            low = spec.id.lower()
            models = [m for m in prov.models if m.id.lower() != low]
            data = prov.model_dump()
            data["models"] = [m.model_dump() for m in models] + [spec.model_dump()]
            self._add(validate_provider(data, "register_model()", ""))

    def load_overrides(self, path: str | os.PathLike[str]) -> None:
        """Deep-merge a TOML file: ``[providers.NAME...]`` tables, ``[keys]``, ``default_provider``.

        A single provider file (top-level ``name = ...``) works too. Models merge by id or
        alias; other lists replace. Errors name the file and the field.
        """
        p = Path(path).expanduser()
        data = read_toml(p)
        self.merge(data, str(p))

    def merge(self, data: Mapping[str, Any], source: str = "<overrides>") -> None:
        """Deep-merge an already parsed override mapping (see :meth:`load_overrides`)."""
        with self._lock:
            changes = parse_overrides(data, self._providers, source)
            for spec in changes.providers:
                self._add(spec)
            for prov_name, entries in changes.keys.items():
                table = self._keys.setdefault(prov_name, {})
                for entry, key in entries.items():
                    register_secret(key)
                    table[entry] = ConfigKey(prov_name, entry, SecretStr(key), source)
            if changes.default_provider is not None:
                self.default_provider = changes.default_provider
            if changes.api_key_any_provider is not None:
                self.api_key_any_provider = changes.api_key_any_provider
            if changes.limiter is not None:
                self.limiter_config = {**self.limiter_config, **changes.limiter}
                self.limiter_source = source
            self.sources.append(source)

    def _add(self, spec: ProviderSpec) -> None:
        with self._lock:
            self._providers[spec.name] = spec

    # -- checks and docs --------------------------------------------------------------------

    def drift(self, provider: str, live_ids: list[str]) -> Drift:
        """Compare a gateway's live ``/models`` ids with the catalog (ids and aliases count)."""
        prov = self.provider(provider)
        known: set[str] = set()
        for m in prov.models:
            known.update(n.lower() for n in m.names())
            for n in (m.reasoning.thinking_model, m.reasoning.non_thinking_model):
                if n:
                    known.add(n.lower())
        live = list(dict.fromkeys(i.strip() for i in live_ids if i and i.strip()))
        live_low = {i.lower() for i in live}
        return Drift(
            missing_in_catalog=[i for i in live if i.lower() not in known],
            missing_on_gateway=[
                m.id
                for m in prov.models
                if not any(n.lower() in live_low for n in (m.id, *m.aliases))
            ],
        )

    def merge_live(self, provider: str, live_ids: list[str]) -> Drift:
        """Add the ids a gateway lists but the catalog lacks, and return the drift.

        New ids become catalog entries with a kind guessed from the name and unknown limits
        (nothing is refused locally; the gateway decides); resolving them afterwards gives
        no "unknown model" warning. Catalogued models the gateway no
        longer lists are reported, not removed.
        """
        drift = self.drift(provider, live_ids)
        for mid in drift.missing_in_catalog:
            spec = generic_model(mid)
            spec.note = "listed by the gateway's /models; not in campusllm's catalog"
            self.register_model(provider, spec)
        return drift

    def markdown_table(self, kind: str | None = None) -> str:
        """A Markdown table of every provider's models (for the README)."""
        return markdown_table(self.providers(), kind)
