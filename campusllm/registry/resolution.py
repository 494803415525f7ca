"""Resolution: from what the user wrote (``"sjtu:deepseek-chat"``) to a model and a base URL.

Example:
    >>> from campusllm.registry import Registry
    >>> catalog = {p.name: p for p in Registry().providers()}
    >>> Resolution(catalog, None).split("sjtu:glm", None, None)
    ('sjtu', 'glm')
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping

from ..errors import ConfigError, ModelNotFoundError
from ..warn import warn_user
from .specs import ProviderSpec, ResolvedModel, generic_model

__all__ = ["PROVIDER_ENV", "Resolution", "normalize_base_url"]

PROVIDER_ENV = "CAMPUSLLM_PROVIDER"
"""Env var naming the provider of a model given without ``provider:``."""


def normalize_base_url(url: str, suffix: str, source: str) -> str:
    """``url`` without a pasted endpoint path, with the provider's API suffix; checked.

    Example:
        >>> normalize_base_url("https://h.example/v1/chat/completions", "", "base_url=")
        'https://h.example/v1'
    """
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


_EXAMPLES = {
    "model": "a string like 'sjtu:deepseek-chat'",
    "provider": "a provider name like 'sjtu'",
    "base_url": "a URL string like 'https://models.sjtu.edu.cn/api/v1'",
}


def _check_text(arg: str, value: object) -> None:
    """ConfigError naming ``arg`` unless ``value`` is a string (callers pass what users typed).

    Example:
        >>> _check_text("model", 123)
        Traceback (most recent call last):
        ...
        campusllm.errors.ConfigError: model must be a string like 'sjtu:deepseek-chat', not int.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{arg} must be {_EXAMPLES[arg]}, not {type(value).__name__}.")


class Resolution:
    """Resolution rules over one snapshot of the catalog.

    ``providers`` maps provider names to specs (in catalog order); ``default_provider`` is
    the config file's choice (``$CAMPUSLLM_PROVIDER`` wins over it).

    Example:
        >>> from campusllm.registry import Registry
        >>> res = Resolution({p.name: p for p in Registry().providers()}, None)
        >>> res.resolve("sjtu:glm", base_url="http://127.0.0.1:9/v1").model.id
        'glm-5.1'
    """

    def __init__(self, providers: Mapping[str, ProviderSpec], default_provider: str | None):
        self.providers = providers
        self.default_provider = default_provider

    def provider(self, name: str) -> ProviderSpec:
        """The provider called ``name`` (case-insensitive); ModelNotFoundError lists the known."""
        _check_text("provider", name)
        spec = self.providers.get(name.strip().lower())
        if spec is None:
            raise ModelNotFoundError(
                f"Unknown provider {name!r}. Known providers: {', '.join(self.providers)}.",
                hint="Register it with campusllm.register_provider(...) or in your config "
                "file under [providers.NAME].",
                provider=name,
            )
        return spec

    def resolve(
        self,
        spec: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
    ) -> ResolvedModel:
        """See :meth:`campusllm.registry.Registry.resolve`."""
        for arg, value in (("model", spec), ("provider", provider), ("model", model)):
            if value is not None:
                _check_text(arg, value)
        if base_url is not None:
            _check_text("base_url", base_url)
        prov_name, model_name = self.split(spec, provider, model)
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
                warn_user(
                    f"Model {model_name!r} is not in the {prov.name} catalog; sending it as is "
                    f"with unknown capabilities.{hint} Known: {known}."
                )
            model_spec = generic_model(model_name)
        else:
            model_spec = found
            if found.status == "deprecated":
                repl = f" Switch to {prov.name}:{found.replacement}." if found.replacement else ""
                warn_user(f"{prov.name}:{found.id} is deprecated and may disappear.{repl}")
        return ResolvedModel(
            provider=prov,
            model=model_spec,
            requested=model_name,
            base_url=self.base_url_for(prov, base_url),
            known=found is not None,
        )

    @staticmethod
    def base_url_for(prov: ProviderSpec, explicit: str | None = None) -> str:
        """Base URL: ``explicit`` > the provider's ``base_url_env`` > its ``base_url``."""
        if explicit and explicit.strip():
            return normalize_base_url(explicit, prov.base_url_suffix, "base_url=")
        env = prov.base_url_env
        if env and os.environ.get(env, "").strip():
            return normalize_base_url(os.environ[env], prov.base_url_suffix, f"${env}")
        if prov.base_url:
            return normalize_base_url(prov.base_url, "", f"the {prov.name} catalog entry")
        where = f"Set {env}" if env else "Set base_url in your config file"
        raise ConfigError(
            f"No base URL for provider {prov.name!r}.",
            hint=f"{where} or pass base_url=... ({prov.network_hint or 'your gateway address'}).",
            provider=prov.name,
        )

    def split(self, spec: str | None, provider: str | None, model: str | None) -> tuple[str, str]:
        """``(provider name, model name)`` from a spec or ``provider=``/``model=``."""
        if spec is not None and model is not None:
            raise ConfigError(
                f"Got both a model spec {spec!r} and model={model!r}; pass one of them."
            )
        text = (spec if spec is not None else model or "").strip()
        if provider:
            provider = provider.strip().lower()
        if ":" in text:
            head, rest = text.split(":", 1)
            if head.strip().lower() in self.providers:
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
                    f"{', '.join(self.providers)}.",
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
            hint=f"Write 'provider:model' (providers: {', '.join(self.providers)}) "
            f"or set {PROVIDER_ENV}.",
            model=text,
        )

    def _default(self) -> str | None:
        env = os.environ.get(PROVIDER_ENV, "").strip().lower()
        return env or self.default_provider

    def _owners(self, name: str) -> list[str]:
        return [p.name for p in self.providers.values() if p.find_model(name) is not None]

    def _unique_owner(self, name: str) -> str | None:
        owners = self._owners(name)
        return owners[0] if len(owners) == 1 else None

    def _examples(self, provider: str) -> str:
        ids = [m.id for m in self.provider(provider).models][:4]
        return f"Known models: {', '.join(ids)}." if ids else "Any model name is accepted."
