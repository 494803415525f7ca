"""The catalog's data shapes: limits, reasoning behaviour, models, providers, a resolved model.

Everything a gateway needs is recorded here as data (one TOML file per provider in
``campusllm/providers/``), validated on load, so the rest of campusllm asks instead of
hard-coding quirks.

Example:
    >>> RateLimits(rpm=10).rpm
    10
    >>> ModelSpec(id="x", tools=True).kind
    'chat'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .keys import KeyGroup

__all__ = [
    "RateLimits",
    "ReasoningSpec",
    "ModelSpec",
    "ProviderSpec",
    "ResolvedModel",
    "Drift",
    "generic_model",
]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _check_assumed(model: type[BaseModel], names: list[str]) -> list[str]:
    """``assumed`` may only name fields that exist (``limits.rpm`` for a nested one): a typo
    would leave an assumption unmarked."""
    for name in names:
        head, _, rest = name.partition(".")
        field = model.model_fields.get(head) if head != "assumed" else None
        sub = field.annotation if field is not None else None
        ok = field is not None and (
            not rest
            or (isinstance(sub, type) and issubclass(sub, BaseModel) and rest in sub.model_fields)
        )
        if not ok:
            raise ValueError(f"assumed names {name!r}, which is not a field of {model.__name__}")
    return names


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
        >>> m.names(), m.tools
        (['glm-5.1', 'glm'], True)
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
    expected_output: int | None = Field(default=None, gt=0)
    """Output tokens the rate limiter charges a request that sets no ``max_tokens`` until the
    answer's ``usage`` says how many it took (default 1024; capped by ``max_output``). Set it
    higher for models whose answers run long, so a burst of them cannot overrun ``tpm``."""
    tools: bool = False
    parallel_tools: bool = False
    vision: bool = False
    json_schema: bool = False
    json_mode: bool = False
    reasoning: ReasoningSpec = ReasoningSpec()
    endpoint: Literal["chat", "completions", "both"] = "chat"
    """Which generation API serves the model: ``/chat/completions``, the text-completion
    ``/completions`` (a prompt in, text out; base models without a chat template), or both."""
    requires_user_message: bool = False
    status: Literal["active", "trial", "deprecated"] = "active"
    replacement: str | None = None
    note: str = ""
    assumed: list[str] = []
    """Fields whose values are our assumptions, not published by the provider (marked in tables)."""
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

    @field_validator("assumed")
    @classmethod
    def _assumed_are_fields(cls, v: list[str]) -> list[str]:
        return _check_assumed(cls, v)

    def names(self) -> list[str]:
        """Every name this model answers to: id, aliases, local aliases."""
        return [self.id, *self.aliases, *self.local_aliases]


class ProviderSpec(BaseModel):
    """One gateway: where it is, how to authenticate, its limits and its models.

    ``key_env`` defaults to ``<NAME>_API_KEY`` (``CAMPUSLLM_API_KEY`` is tried only where
    listed, or when the user opts in). ``base_url_suffix`` (e.g. ``"/v1"``) is appended to a
    user-given base URL lacking it. ``key_groups`` are models that take a key of their own
    (see :class:`~campusllm.registry.keys.KeyGroup`); ``key_valid_until`` is the documented
    last day of the provider's default keys, ``key_renewal`` where to get a new one.

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
    assumed: list[str] = []
    """Fields (``limits.rpm`` for a limit) whose values are assumptions, not published figures."""
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
    key_groups: dict[str, KeyGroup] = {}
    key_valid_until: date | None = None
    key_renewal: str = ""
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

    @field_validator("assumed")
    @classmethod
    def _assumed_are_fields(cls, v: list[str]) -> list[str]:
        return _check_assumed(cls, v)

    @field_validator("key_env")
    @classmethod
    def _check_key_env(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v if s.strip()]
        if not v:
            raise ValueError("key_env needs at least one environment variable name")
        return v

    @model_validator(mode="after")
    def _group_key_env(self) -> ProviderSpec:
        for name, group in self.key_groups.items():
            if not _NAME_RE.match(name):
                raise ValueError(f"key group name {name!r} must be letters, digits, '_', '.', '-'")
            if not group.key_env:  # ONEAPI_API_KEY -> ONEAPI_API_KEY_QWEN3
                suffix = re.sub(r"[^A-Z0-9]", "_", name.upper())
                group.key_env = [f"{self.key_env[0]}_{suffix}"]
        return self

    def key_group(self, names: Iterable[str]) -> str | None:
        """The first key group holding a model called by one of ``names``, if any.

        Example:
            >>> p = ProviderSpec(name="gw", key_groups={"new": {"models": ["qwen3-*"]}})
            >>> p.key_group(["qwen3-32b"]), p.key_groups["new"].key_env
            ('new', ['GW_API_KEY_NEW'])
        """
        names = list(names)
        return next((g for g, spec in self.key_groups.items() if spec.matches(names)), None)

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
        >>> from campusllm.registry import resolve
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


def generic_model(name: str) -> ModelSpec:
    """A spec for a model the catalog does not know (kind guessed from the name)."""
    low = name.lower()
    if "rerank" in low:
        return ModelSpec(id=name, kind="rerank", rerank_shape="jina", note="not in the catalog")
    if "embed" in low:
        return ModelSpec(id=name, kind="embedding", note="not in the catalog")
    # Unknown capabilities: claim tools so nothing is refused locally; the gateway decides.
    return ModelSpec(id=name, tools=True, note="not in the catalog; capabilities unknown")
