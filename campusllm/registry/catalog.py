"""The provider and model catalog: base URLs, auth, limits, capabilities and quirks.

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

Example:
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat")
    >>> r.key, r.wire_model, r.model.context_window
    ('sjtu:deepseek-v3.2', 'deepseek-chat', 32768)
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import ConfigError, ModelNotFoundError, register_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "RateLimits",
    "ReasoningSpec",
    "ModelSpec",
    "ProviderSpec",
    "ResolvedModel",
    "Drift",
    "Registry",
    "get_registry",
    "reset_registry",
    "resolve",
    "register_provider",
    "register_model",
    "markdown_table",
    "refresh_from_gateway",
    "PROVIDER_ENV",
]

PROVIDER_ENV = "CAMPUSLLM_PROVIDER"
"""Env var naming the provider of a model given without ``provider:``."""

# Packaged providers in the order they are listed; unknown extra files come after, sorted.
_PACKAGED_ORDER = ("sjtu", "ecnu", "maas", "oneapi", "custom")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


# ------------------------------------------------------------------------------------ models


class RateLimits(BaseModel):
    """A provider's published request and token quotas (``None``: no limit known).

    TOML has no null, so ``0`` in a file also means "no limit".

    Example:
        >>> RateLimits(rpm=10, tpm=100_000).rpm
        10
        >>> RateLimits(rpm=0).rpm is None
        True
    """

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weekly_tokens: int | None = Field(default=None, ge=0)
    window_s: float = Field(default=60.0, gt=0)
    """Length of the RPM/TPM window in seconds (tests shorten it)."""

    @field_validator("rpm", "tpm", "weekly_tokens")
    @classmethod
    def _zero_is_unlimited(cls, v: int | None) -> int | None:
        return v or None


class ReasoningSpec(BaseModel):
    """How a model shows its reasoning, how thinking is switched, and what goes back in history.

    Example:
        >>> spec = ReasoningSpec(shape="reasoning_content", toggle="enable_thinking")
        >>> spec.passback
        'drop'
    """

    model_config = ConfigDict(extra="forbid")

    shape: Literal["none", "reasoning_content", "reasoning", "think_tags"] = "none"
    opens_in_template: bool = False
    toggle: Literal["none", "enable_thinking", "thinking", "model_switch"] = "none"
    default_on: bool = False
    thinking_model: str | None = None
    non_thinking_model: str | None = None
    passback: Literal["drop", "reasoning_content", "think_tags"] = "drop"
    tools_only_without_thinking: bool = False

    @model_validator(mode="after")
    def _switch_targets(self) -> ReasoningSpec:
        if self.toggle == "model_switch" and not (self.thinking_model or self.non_thinking_model):
            raise ValueError("toggle 'model_switch' needs thinking_model or non_thinking_model")
        return self


class ModelSpec(BaseModel):
    """One catalogued model: names, limits, capabilities and quirks.

    ``aliases`` are other names the gateway itself accepts (sent as written);
    ``local_aliases`` are accepted by campusllm only and sent as ``id``.

    Example:
        >>> m = ModelSpec(id="glm-5.1", aliases=["glm"], context_window=131072, tools=True)
        >>> m.to_profile_dict()["max_input_tokens"], m.to_profile_dict()["tool_calling"]
        (131072, True)
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    aliases: list[str] = []
    local_aliases: list[str] = []
    kind: Literal["chat", "embedding", "rerank"] = "chat"
    family: str = ""
    display_name: str = ""
    description: str = ""
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    tools: bool = False
    parallel_tools: bool = False
    vision: bool = False
    json_schema: bool = False
    json_mode: bool = False
    reasoning: ReasoningSpec = ReasoningSpec()
    requires_user_message: bool = False
    status: Literal["active", "trial", "deprecated"] = "active"
    replacement: str | None = None
    note: str = ""
    request_defaults: dict[str, Any] = {}
    # embeddings
    dimensions: int | None = Field(default=None, gt=0)
    query_instruction: str | None = None
    default_task: str = "Given a web search query, retrieve relevant passages that answer the query"
    max_batch: int | None = Field(default=None, gt=0)
    max_input_tokens: int | None = Field(default=None, gt=0)
    # rerank
    rerank_shape: Literal["jina", "tei"] | None = None
    rerank_path: str = "/rerank"
    max_documents: int | None = Field(default=None, gt=0)

    @field_validator("id")
    @classmethod
    def _strip_id(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("model id must not be blank")
        return v

    @field_validator("query_instruction")
    @classmethod
    def _instruction_has_text(cls, v: str | None) -> str | None:
        if v and "{text}" not in v:
            raise ValueError("query_instruction must contain '{text}'")
        return v

    def names(self) -> list[str]:
        """Every name this model answers to: id, aliases, local aliases."""
        return [self.id, *self.aliases, *self.local_aliases]

    def to_profile_dict(self) -> dict[str, Any]:
        """Capabilities as a plain dict with LangChain ``ModelProfile`` keys.

        Example:
            >>> ModelSpec(id="x", vision=True).to_profile_dict()["image_inputs"]
            True
        """
        chat = self.kind == "chat"
        profile: dict[str, Any] = {
            "name": self.display_name or self.id,
            "status": self.status,
            "text_inputs": True,
            "text_outputs": chat,
            "image_inputs": self.vision,
            "image_url_inputs": self.vision,
            "tool_calling": self.tools,
            "tool_choice": self.tools,
            "tool_call_streaming": self.tools,
            "structured_output": self.json_schema,
            "reasoning_output": self.reasoning.shape != "none" or self.reasoning.default_on,
        }
        if self.context_window:
            profile["max_input_tokens"] = self.context_window
        elif self.max_input_tokens:
            profile["max_input_tokens"] = self.max_input_tokens
        if self.max_output:
            profile["max_output_tokens"] = self.max_output
        return profile


class ProviderSpec(BaseModel):
    """One gateway: where it is, how to authenticate, its limits and its models.

    ``key_env`` defaults to ``<NAME>_API_KEY``; ``CAMPUSLLM_API_KEY`` is always tried last.
    ``base_url_suffix`` (e.g. ``"/v1"``) is appended to a user-given base URL lacking it.

    Example:
        >>> p = ProviderSpec(name="lab", base_url="http://10.0.0.5:8000/v1")
        >>> p.key_env, p.find_model("anything") is None
        (['LAB_API_KEY'], True)
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    display_name: str = ""
    docs: str = ""
    note: str = ""
    base_url: str | None = None
    base_url_env: str | None = None
    base_url_suffix: str = ""
    auth: Literal["bearer", "raw"] = "bearer"
    key_env: list[str]
    limits: RateLimits = RateLimits()
    reachability: Literal["public", "campus", "intranet"] = "public"
    network_hint: str = ""
    stream_usage: bool = True
    embedding_batch: int = Field(default=32, gt=0)
    embedding_batch_tokens: int = Field(default=8192, gt=0)
    models: list[ModelSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _default_key_env(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and "key_env" not in data
            and isinstance(data.get("name"), str)
        ):
            data = dict(data)
            data["key_env"] = [re.sub(r"[^A-Z0-9]", "_", data["name"].upper()) + "_API_KEY"]
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        v = v.strip().lower()
        if not _NAME_RE.match(v):
            raise ValueError(
                f"provider name {v!r} must be letters, digits, '_', '.', '-' (no ':' or spaces)"
            )
        return v

    @field_validator("key_env")
    @classmethod
    def _check_key_env(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v if s.strip()]
        if not v:
            raise ValueError("key_env needs at least one environment variable name")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> ProviderSpec:
        seen: dict[str, str] = {}
        for m in self.models:
            for n in dict.fromkeys(x.lower() for x in m.names()):
                if n in seen:
                    raise ValueError(f"model name {n!r} is used by both {seen[n]!r} and {m.id!r}")
                seen[n] = m.id
        return self

    def find_model(self, name: str) -> ModelSpec | None:
        """The model whose id or alias is ``name`` (exact first, then case-insensitive)."""
        name = name.strip()
        for m in self.models:
            if name in m.names():
                return m
        low = name.lower()
        for m in self.models:
            if any(low == n.lower() for n in m.names()):
                return m
        return None


class ResolvedModel(BaseModel):
    """A model picked for use: provider spec, model spec, the name asked for and the base URL.

    ``known`` is False when the model is not in the catalog (a generic spec stands in).

    Example:
        >>> r = resolve("sjtu:glm")
        >>> r.key, r.wire_model, r.known
        ('sjtu:glm-5.1', 'glm', True)
    """

    model_config = ConfigDict(extra="forbid")

    provider: ProviderSpec
    model: ModelSpec
    requested: str
    base_url: str
    known: bool = True

    @property
    def key(self) -> str:
        """``"provider:model-id"``, e.g. ``"sjtu:deepseek-v3.2"``."""
        return f"{self.provider.name}:{self.model.id}"

    @property
    def wire_model(self) -> str:
        """The id to send as ``model``: the requested name if the gateway knows it, else the id."""
        asked = self.requested.strip()
        if not self.known:
            return asked
        gateway_names = [self.model.id, *self.model.aliases]
        if asked in gateway_names:
            return asked
        low = asked.lower()
        for n in gateway_names:
            if n.lower() == low:
                return n  # the gateway's spelling: model names are usually case-sensitive
        return self.model.id


class Drift(BaseModel):
    """Differences between a gateway's live ``/models`` list and the catalog.

    Example:
        >>> d = Drift(missing_in_catalog=["new-model"], missing_on_gateway=[])
        >>> d.in_sync
        False
    """

    missing_in_catalog: list[str] = []
    """Ids the gateway lists that the catalog does not know (new models)."""
    missing_on_gateway: list[str] = []
    """Catalogued model ids the gateway does not list under any of their names (retired)."""

    @property
    def in_sync(self) -> bool:
        return not (self.missing_in_catalog or self.missing_on_gateway)


# ------------------------------------------------------------------------------- loading


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: {e}", hint="Fix the file or remove it."
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}") from None


@lru_cache(maxsize=1)
def _packaged_raw() -> tuple[tuple[str, dict[str, Any]], ...]:
    from importlib.resources import files

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


def _validation_error(source: str, prefix: str, err: ValidationError, data: Any) -> ConfigError:
    lines = []
    for e in err.errors():
        where = _loc_text(tuple(e["loc"]), data if isinstance(data, Mapping) else {})
        field = ".".join(p for p in (prefix, where) if p)
        lines.append(f"{field}: {e['msg']}" if field else e["msg"])
    return ConfigError(
        f"{source}: invalid configuration: " + "; ".join(lines) + ".",
        hint="See the field names in campusllm/providers/*.toml for the expected shape.",
    )


def _merge_models(base: list[Any], override: Any, source: str, prefix: str) -> list[Any]:
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
                merged = _deep_merge(existing, {k: v for k, v in entry.items() if k != "id"})
                out[i] = merged
                break
        else:
            out.append(dict(entry))
    return out


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _norm_base_url(url: str, suffix: str, source: str) -> str:
    url = url.strip().rstrip("/")
    for tail in ("/chat/completions", "/completions", "/embeddings", "/models"):
        if url.endswith(tail):  # a full endpoint URL pasted from the docs
            url = url[: -len(tail)]
            break
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(
            f"Base URL {url!r} from {source} is not an http(s) URL.",
            hint="Use the form https://host[:port]/path, e.g. https://models.sjtu.edu.cn/api/v1.",
        )
    if suffix and not url.endswith(suffix.rstrip("/")):
        url += suffix.rstrip("/")
    return url


def _warn(message: str) -> None:
    """Warn at the first frame outside campusllm and its adapters (the user's call)."""
    level = 2  # 1 would be this function; 2 is its caller
    frame: Any = sys._getframe(1)
    internal = (
        "campusllm",
        "langchain_campusllm",
        "llama_index_campusllm",
        "pydantic",
        "langchain_core",  # adapters are constructed through its Serializable.__init__
        "llama_index.core",
    )
    while frame is not None:
        mod = frame.f_globals.get("__name__", "")
        if not any(mod == p or mod.startswith(p + ".") for p in internal):
            break
        frame = frame.f_back
        level += 1
    warnings.warn(message, UserWarning, stacklevel=level)


# ------------------------------------------------------------------------------ registry


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
        self._keys: dict[str, SecretStr] = {}
        self.default_provider: str | None = None
        self.sources: list[str] = []
        """Files merged into this registry, in order (packaged files first)."""
        if providers is None:
            for stem, data in _packaged_raw():
                source = f"campusllm/providers/{stem}.toml"
                self._add(self._validate(copy.deepcopy(data), source, ""))
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
        with self._lock:
            spec = self._providers.get(name.strip().lower())
            if spec is None:
                raise ModelNotFoundError(
                    f"Unknown provider {name!r}. Known providers: {', '.join(self._providers)}.",
                    hint="Register it with campusllm.register_provider(...) or in your config "
                    "file under [providers.NAME].",
                    provider=name,
                )
            return spec

    def models(
        self, provider: str | None = None, kind: str | None = None
    ) -> list[tuple[ProviderSpec, ModelSpec]]:
        """``(provider, model)`` pairs, optionally of one provider and/or one kind."""
        provs = [self.provider(provider)] if provider else self.providers()
        return [(p, m) for p in provs for m in p.models if kind is None or m.kind == kind]

    def config_key(self, provider: str) -> SecretStr | None:
        """The key stored for ``provider`` under ``[keys]`` in a config file, if any."""
        with self._lock:
            return self._keys.get(provider.strip().lower())

    # -- resolution --------------------------------------------------------------------------

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
        prov_name, model_name = self._split(spec, provider, model)
        prov = self.provider(prov_name)
        found = prov.find_model(model_name)
        if found is None:
            if prov.models:
                names = [n for m in prov.models for n in m.names()]
                close = difflib.get_close_matches(model_name, names, n=3, cutoff=0.5)
                if not close:
                    low = model_name.lower()
                    close = [n for n in names if low in n.lower() or n.lower() in low][:3]
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                known = ", ".join(m.id for m in prov.models)
                _warn(
                    f"Model {model_name!r} is not in the {prov.name} catalog; sending it as is "
                    f"with unknown capabilities.{hint} Known: {known}."
                )
            model_spec = _generic_model(model_name)
        else:
            model_spec = found
            if found.status == "deprecated":
                repl = f" Switch to {prov.name}:{found.replacement}." if found.replacement else ""
                _warn(f"{prov.name}:{found.id} is deprecated and may disappear.{repl}")
        url = self.base_url_for(prov, base_url)
        return ResolvedModel(
            provider=prov,
            model=model_spec,
            requested=model_name,
            base_url=url,
            known=found is not None,
        )

    def base_url_for(self, provider: ProviderSpec | str, explicit: str | None = None) -> str:
        """Base URL: ``explicit`` > the provider's ``base_url_env`` > its ``base_url``."""
        prov = self.provider(provider) if isinstance(provider, str) else provider
        if explicit and explicit.strip():
            return _norm_base_url(explicit, prov.base_url_suffix, "base_url=")
        env = prov.base_url_env
        if env and os.environ.get(env, "").strip():
            return _norm_base_url(os.environ[env], prov.base_url_suffix, f"${env}")
        if prov.base_url:
            return _norm_base_url(prov.base_url, "", f"the {prov.name} catalog entry")
        where = f"Set {env}" if env else "Set base_url in your config file"
        raise ConfigError(
            f"No base URL for provider {prov.name!r}.",
            hint=f"{where} or pass base_url=... ({prov.network_hint or 'your gateway address'}).",
            provider=prov.name,
        )

    def _split(self, spec: str | None, provider: str | None, model: str | None) -> tuple[str, str]:
        if spec is not None and model is not None:
            raise ConfigError(
                f"Got both a model spec {spec!r} and model={model!r}; pass one of them."
            )
        text = (spec if spec is not None else model or "").strip()
        if provider:
            provider = provider.strip().lower()
        if ":" in text:
            head, rest = text.split(":", 1)
            if head.strip().lower() in self._providers:
                head = head.strip().lower()
                if provider and provider != head:
                    raise ConfigError(
                        f"Model {text!r} names provider {head!r} but provider={provider!r}."
                    )
                if not rest.strip():
                    raise ConfigError(
                        f"No model after {head!r}:.",
                        hint=self._examples(head),
                        provider=head,
                    )
                return head, rest.strip()
            if not provider and not self._default():
                unique = self._unique_owner(text)
                if unique:
                    return unique, text
                raise ModelNotFoundError(
                    f"Unknown provider {head!r} in {text!r}. Known providers: "
                    f"{', '.join(self._providers)}.",
                    hint="Write 'provider:model', e.g. 'sjtu:deepseek-chat'.",
                    provider=head,
                )
        if not text:
            raise ConfigError(
                "No model given.",
                hint="Name one as 'provider:model', e.g. 'sjtu:deepseek-chat'.",
                provider=provider,
            )
        if provider:
            return provider, text
        default = self._default()
        if default:
            return default, text
        unique = self._unique_owner(text)
        if unique:
            return unique, text
        owners = self._owners(text)
        if owners:
            listed = ", ".join(f"{p}:{text}" for p in owners)
            raise ModelNotFoundError(
                f"Model {text!r} exists on several providers: {listed}.",
                hint=f"Write one of them, or set {PROVIDER_ENV}.",
                model=text,
            )
        raise ModelNotFoundError(
            f"Model {text!r} is in no provider's catalog and no provider was given.",
            hint=f"Write 'provider:model' (providers: {', '.join(self._providers)}) "
            f"or set {PROVIDER_ENV}.",
            model=text,
        )

    def _default(self) -> str | None:
        env = os.environ.get(PROVIDER_ENV, "").strip().lower()
        return env or self.default_provider

    def _owners(self, name: str) -> list[str]:
        return [p.name for p in self.providers() if p.find_model(name) is not None]

    def _unique_owner(self, name: str) -> str | None:
        owners = self._owners(name)
        return owners[0] if len(owners) == 1 else None

    def _examples(self, provider: str) -> str:
        ids = [m.id for m in self.provider(provider).models][:4]
        return f"Known models: {', '.join(ids)}." if ids else "Any model name is accepted."

    # -- changes ---------------------------------------------------------------------------

    def register_provider(self, spec: ProviderSpec | Mapping[str, Any]) -> None:
        """Add a provider, or replace the one with the same name."""
        if not isinstance(spec, ProviderSpec):
            name = spec.get("name", "?") if isinstance(spec, Mapping) else "?"
            spec = self._validate(dict(spec), "register_provider()", f"providers.{name}")
        self._add(spec)

    def register_model(self, provider: str, spec: ModelSpec | Mapping[str, Any]) -> None:
        """Add a model to ``provider``, or replace the model with the same id."""
        with self._lock:
            prov = self.provider(provider)
            if not isinstance(spec, ModelSpec):
                raw = dict(spec)
                try:
                    spec = ModelSpec.model_validate(raw)
                except ValidationError as e:
                    where = f"providers.{prov.name}.models"
                    if isinstance(raw.get("id"), str):
                        where += f'."{raw["id"]}"'
                    raise _validation_error("register_model()", where, e, {}) from None
            low = spec.id.lower()
            models = [m for m in prov.models if m.id.lower() != low]
            data = prov.model_dump()
            data["models"] = [m.model_dump() for m in models] + [spec.model_dump()]
            self._add(self._validate(data, "register_model()", ""))

    def load_overrides(self, path: str | os.PathLike[str]) -> None:
        """Deep-merge a TOML file: ``[providers.NAME...]`` tables, ``[keys]``, ``default_provider``.

        A single provider file (top-level ``name = ...``) works too. Models merge by id or
        alias; other lists replace. Errors name the file and the field.
        """
        p = Path(path).expanduser()
        data = _read_toml(p)
        self.merge(data, str(p))

    def merge(self, data: Mapping[str, Any], source: str = "<overrides>") -> None:
        """Deep-merge an already parsed override mapping (see :meth:`load_overrides`)."""
        data = dict(data)
        if "name" in data and "providers" not in data:
            data = {"providers": {str(data["name"]): data}}
        unknown = set(data) - {"providers", "keys", "default_provider"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}.",
                hint="Allowed: [providers.NAME], [keys], default_provider.",
            )
        provs = data.get("providers", {})
        if not isinstance(provs, Mapping):
            raise ConfigError(f"{source}: providers: expected a table of providers")
        keys = data.get("keys", {})
        if not isinstance(keys, Mapping) or not all(isinstance(v, str) for v in keys.values()):
            raise ConfigError(f'{source}: keys: expected provider = "key" string entries')
        default = data.get("default_provider")
        if default is not None and not isinstance(default, str):
            raise ConfigError(f"{source}: default_provider: expected a provider name string")

        with self._lock:
            new: list[ProviderSpec] = []
            for raw_name, table in provs.items():
                name = str(raw_name).strip().lower()
                prefix = f"providers.{raw_name}"
                if not isinstance(table, Mapping):
                    raise ConfigError(f"{source}: {prefix}: expected a table")
                table = dict(table)
                if "name" in table and str(table["name"]).strip().lower() != name:
                    raise ConfigError(f"{source}: {prefix}.name: differs from the table name")
                current = self._providers.get(name)
                if current is None:
                    merged = {"name": name, **table}
                    if "models" in table:
                        merged["models"] = _merge_models([], table["models"], source, prefix)
                else:
                    base = current.model_dump(exclude_unset=False)
                    merged = _deep_merge(base, {k: v for k, v in table.items() if k != "models"})
                    if "models" in table:
                        merged["models"] = _merge_models(
                            base["models"], table["models"], source, prefix
                        )
                new.append(self._validate(merged, source, prefix))
            if default is not None:
                d = default.strip().lower()
                if d not in self._providers and d not in {p.name for p in new}:
                    raise ConfigError(
                        f"{source}: default_provider: unknown provider {default!r}.",
                        hint=f"Known providers: {', '.join(self._providers)}.",
                    )
            for spec in new:
                self._add(spec)
            for prov_name, key in keys.items():
                if key.strip():
                    register_secret(key.strip())
                    self._keys[str(prov_name).strip().lower()] = SecretStr(key.strip())
            if default is not None:
                self.default_provider = default.strip().lower()
            self.sources.append(source)

    def _validate(self, data: dict[str, Any], source: str, prefix: str) -> ProviderSpec:
        try:
            return ProviderSpec.model_validate(data)
        except ValidationError as e:
            raise _validation_error(source, prefix, e, data) from None

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
            spec = _generic_model(mid)
            spec.note = "listed by the gateway's /models; not in campusllm's catalog"
            self.register_model(provider, spec)
        return drift

    def markdown_table(self, kind: str | None = None) -> str:
        """A Markdown table of every provider's models (for the README)."""
        header = "| Provider | Model | Aliases | Kind | Context | Capabilities | Status |"
        rows = [header, "|---|---|---|---|---|---|---|"]
        for p in self.providers():
            models = [m for m in p.models if kind is None or m.kind == kind]
            if not p.models and kind in (None, "chat"):
                rows.append(f"| `{p.name}` | *any* | - | chat | - | unknown | - |")
            for m in models:
                aliases = ", ".join(f"`{a}`" for a in m.aliases + m.local_aliases) or "-"
                status: str = m.status
                if m.replacement:
                    status += f" → `{m.replacement}`"
                cells = [
                    f"`{p.name}`",
                    f"`{m.id}`",
                    aliases,
                    m.kind,
                    _fmt_tokens(m.context_window),
                    ", ".join(_capabilities(m)) or "-",
                    status,
                ]
                rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(rows) + "\n"


def _generic_model(name: str) -> ModelSpec:
    low = name.lower()
    if "rerank" in low:
        return ModelSpec(id=name, kind="rerank", rerank_shape="jina", note="not in the catalog")
    if "embed" in low:
        return ModelSpec(id=name, kind="embedding", note="not in the catalog")
    # Unknown capabilities: claim tools so nothing is refused locally; the gateway decides.
    return ModelSpec(id=name, tools=True, note="not in the catalog; capabilities unknown")


def _fmt_tokens(n: int | None) -> str:
    if not n:
        return "-"
    if n % 1024 == 0:
        return f"{n // 1024}K"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _capabilities(m: ModelSpec) -> list[str]:
    caps: list[str] = []
    if m.kind == "embedding":
        if m.dimensions:
            caps.append(f"{m.dimensions} dims")
        if m.query_instruction:
            caps.append("query instruction")
        return caps
    if m.kind == "rerank":
        return [f"{m.rerank_shape or 'jina'} API"]
    if m.tools:
        caps.append("tools")
    if m.vision:
        caps.append("vision")
    if m.json_schema:
        caps.append("json schema")
    r = m.reasoning
    if r.shape != "none" or r.default_on:
        caps.append("reasoning")
    if r.toggle != "none":
        caps.append("thinking switch")
    return caps


# ------------------------------------------------------------------------ process singleton

_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry: packaged catalog plus the user's config file, if present.

    Example:
        >>> get_registry() is get_registry()
        True
    """
    global _registry
    reg = _registry
    if reg is not None:
        return reg
    with _registry_lock:
        if _registry is None:
            from ..config import config_path

            reg = Registry()
            path = config_path()
            if path.is_file():
                reg.load_overrides(path)
            _registry = reg
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (tests; after changing the config file or env)."""
    global _registry
    with _registry_lock:
        _registry = None


def resolve(spec: str | None = None, **kw: Any) -> ResolvedModel:
    """:meth:`Registry.resolve` on the process-wide registry."""
    return get_registry().resolve(spec, **kw)


def register_provider(spec: ProviderSpec | Mapping[str, Any]) -> None:
    """:meth:`Registry.register_provider` on the process-wide registry."""
    get_registry().register_provider(spec)


def register_model(provider: str, spec: ModelSpec | Mapping[str, Any]) -> None:
    """:meth:`Registry.register_model` on the process-wide registry."""
    get_registry().register_model(provider, spec)


def refresh_from_gateway(
    provider: str, *, api_key: str | None = None, base_url: str | None = None
) -> Drift:
    """Fetch ``GET /models`` from ``provider``'s gateway and merge it into the registry.

    Example:
        >>> drift = refresh_from_gateway("sjtu")  # doctest: +SKIP
        >>> drift.missing_in_catalog  # now resolvable: resolve("sjtu:<new id>")  # doctest: +SKIP
    """
    from ..client import CampusClient

    reg = get_registry()
    prov = reg.provider(provider)
    chat = [m for m in prov.models if m.kind == "chat"]
    spec = f"{prov.name}:{chat[0].id}" if chat else f"{prov.name}:models"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolved = reg.resolve(spec, base_url=base_url)
    with CampusClient(resolved, api_key) as client:
        live = client.list_models()
    return reg.merge_live(provider, live)


def markdown_table(kind: str | None = None) -> str:
    """:meth:`Registry.markdown_table` of the packaged catalog (no user overrides)."""
    return Registry().markdown_table(kind)
