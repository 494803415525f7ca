"""What the LangChain embeddings and rerank classes share: fields, connecting, the client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from campusllm.client import CampusClient
from campusllm.connection import Connection, connect
from campusllm.errors import ConfigError
from campusllm.limiter import RateLimiter
from campusllm.registry import RateLimits, ResolvedModel

from ._validation import raise_campus_error


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
    """Total seconds of one attempt (default 60)."""
    read_timeout: float | None = None
    """Longest silence in seconds between two reads (``None``: only ``timeout`` bounds it)."""
    max_retries: int | None = None
    rate_limits: RateLimits | None = None
    """Override the provider's rpm/tpm/window for this key (shared with other clients)."""
    limiter: str | RateLimiter | None = Field(default=None, exclude=True)
    """Who shares the key's quota: ``"local"`` (this machine's processes; default), ``"memory"``,
    ``"redis://host:port/db"``, or a :class:`~campusllm.limiter.RateLimiter` of your own."""

    campus_client: CampusClient | None = Field(default=None, exclude=True, repr=False)
    """Set by the constructor: the core client (embeddings, rerank) on this model's connection."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _campusllm_connect(cls, values: Any) -> Any:
        if not isinstance(values, dict) or not values.get("model"):
            return values  # pydantic reports a missing model
        values = dict(values)
        if not values.get("campus_client"):
            conn = connect(
                values["model"],
                provider=values.get("provider"),
                base_url=values.get("base_url"),
                api_key=values.get("api_key"),
                rate_limits=values.get("rate_limits"),
                limiter=values.get("limiter"),
                max_retries=values.get("max_retries"),
                timeout=values.get("timeout"),
                read_timeout=values.get("read_timeout"),
            )
            values["campus_client"] = CampusClient(conn)
        conn = values["campus_client"].connection
        values.update(
            provider=conn.resolved.provider.name,
            base_url=conn.resolved.base_url,
            api_key=conn.api_key,
        )
        return values

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            raise_campus_error(e)
            raise

    @property
    def _client(self) -> CampusClient:
        if self.campus_client is None:
            raise ConfigError(f"This {type(self).__name__} was not built by its constructor.")
        return self.campus_client

    @property
    def connection(self) -> Connection:
        """The connection: resolved model, key, limiter, retry policy and HTTP clients."""
        return self._client.connection

    @property
    def resolved(self) -> ResolvedModel:
        """The registry entry this model was resolved to."""
        return self.connection.resolved
