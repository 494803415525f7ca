"""What the LangChain embeddings and rerank classes share: fields, resolution, the client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from campusllm.errors import CampusLLMError
from campusllm.registry import RateLimits, ResolvedModel


def raise_campus_error(e: ValidationError) -> None:
    """Re-raise the campusllm error pydantic wrapped while running a validator, if any."""
    for err in e.errors():
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, CampusLLMError):
            raise inner from None


class CampusComponent(BaseModel):
    """A registry-resolved model with its own core client (embeddings, rerank).

    Example:
        >>> class MyTool(CampusComponent):  # doctest: +SKIP
        ...     def call(self) -> list[str]:
        ...         return self.campus_client.list_models()
    """

    model: str
    """Model id or ``"provider:model"``."""
    provider: str | None = None
    """Provider name in the campusllm registry, when ``model`` has no ``provider:`` prefix."""
    api_key: SecretStr | None = Field(default=None, repr=False)
    """Overrides the provider's key env vars."""
    base_url: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    rate_limits: RateLimits | None = None
    """Override the provider's rpm/tpm/window for this key (shared with other clients)."""

    campus_resolved: Any = Field(default=None, exclude=True, repr=False)
    campus_client: Any = Field(default=None, exclude=True, repr=False)

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _campusllm_resolve_component(cls, values: Any) -> Any:
        if not isinstance(values, dict) or not values.get("model"):
            return values  # pydantic reports a missing model
        from campusllm.auth import get_api_key
        from campusllm.client import CampusClient
        from campusllm.registry import resolve
        from campusllm.transport import RetryPolicy

        values = dict(values)
        name, provider, url = values["model"], values.get("provider"), values.get("base_url")
        if provider:
            resolved = resolve(provider=provider, model=name, base_url=url)
        else:
            resolved = resolve(name, base_url=url)
        key = get_api_key(resolved.provider, values.get("api_key"))
        values.update(
            provider=resolved.provider.name,
            base_url=resolved.base_url,
            api_key=key,
            campus_resolved=resolved,
        )
        if not values.get("campus_client"):
            retries = values.get("max_retries")
            values["campus_client"] = CampusClient(
                resolved,
                key,
                timeout=values.get("timeout") or 60.0,
                retry=None if retries is None else RetryPolicy(max_retries=retries),
                limits=values.get("rate_limits"),
            )
        return values

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            raise_campus_error(e)
            raise

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to."""
        return self.campus_resolved  # type: ignore[no-any-return]
