"""One way to construct: what the user passed, turned into a connection ready to send.

Every campusllm object — both adapters' chat models, embeddings and rerankers, the core
client and the CLI — is built on :func:`connect`. It validates the arguments, resolves the
model, looks the key up once, picks the rate limiter shared by every object using that key,
and returns a :class:`Connection`, whose HTTP clients (and, for chat, openai SDK clients) are
built when first needed.

Example:
    >>> from campusllm.sim import SIM_KEY, Simulator
    >>> with Simulator() as sim, connect("sjtu:deepseek-chat", api_key=SIM_KEY,
    ...                                  base_url=sim.url("sjtu")) as conn:
    ...     conn.http.get(conn.resolved.base_url + "/models").status_code
    200
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import weakref
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from .auth import get_api_key
from .errors import ConfigError
from .limiter import RateLimiter, limiter_for
from .limiter.backends import has_budgets, parse_backend
from .registry import RateLimits, ResolvedModel, resolve
from .transport import PoolLimits, RetryPolicy, Timeouts, build_http_clients
from .transport.library import core_http_library

if TYPE_CHECKING:
    import httpx

    from .openai_sdk import OpenAIClients

__all__ = [
    "connect",
    "Connection",
    "Timeouts",
    "DEFAULT_TIMEOUT",
    "DEFAULT_CHAT_TIMEOUT",
    "CLIENT_LIMITS_ENV",
]

DEFAULT_TIMEOUT = 60.0
"""Total seconds for one attempt when nothing else is said: embeddings, rerank, ``/models``
(a batch of 32 texts takes a few seconds; a minute leaves room for a busy gateway)."""

DEFAULT_CHAT_TIMEOUT = 600.0
"""Total seconds for one attempt of a chat request when nothing else is said.

The timeout bounds the *whole* answer, streamed or not, so it has to fit the longest answers
users wait for: a reasoning model (DeepSeek-R1, QwQ, GLM thinking) on a busy campus gateway
can think for several minutes before its answer, and a non-streamed request sees no byte
before the end. Ten minutes is the openai SDK's own default and the usual upstream timeout
of LiteLLM proxies such as SJTU's, beyond which the gateway answers 408 anyway."""

CLIENT_LIMITS_ENV = "CAMPUSLLM_CLIENT_LIMITS"
"""Set to ``off`` to drop the catalog's client-side rate limits (tests, the simulator)."""

_OFF = ("0", "off", "false", "no")


class Connection:
    """A resolved model with its key, rate limiter, retry policy, timeout and HTTP pools.

    Built by :func:`connect`. The HTTP clients are built on first use, per HTTP library:
    :attr:`http`/:attr:`ahttp` on httpx for campusllm's own calls, and the openai SDK's own
    library for :attr:`openai`. All of them send through the same retrying transport and
    limiter. The key is held here and nowhere else (the transports read it from here).

    Example:
        >>> conn = connect("sjtu:deepseek-chat", api_key="sk-example",
        ...                base_url="http://127.0.0.1:9/v1")
        >>> conn.resolved.key, conn.retry.max_retries
        ('sjtu:deepseek-v3.2', 6)
        >>> conn.close()
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        api_key: SecretStr,
        *,
        limits: RateLimits,
        retry: RetryPolicy,
        timeout: float | httpx.Timeout,
        pool: PoolLimits,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limiter: str | RateLimiter | None = None,
    ) -> None:
        self.resolved = resolved
        self.api_key = api_key
        self.limits = limits
        self.retry = retry
        self.timeout = timeout
        """What the openai SDK is given: the total in seconds, or the HTTP library's
        per-phase ``Timeout`` the user passed."""
        self.timeouts = timeouts or Timeouts.of(timeout, total=DEFAULT_TIMEOUT)
        """Every limit of one attempt, the total deadline included (the transport's)."""
        self.pool = pool
        self.headers = dict(headers or {})
        self.limiter: RateLimiter | None = None
        """The rate limiter every request of this connection waits for (None: no client-side
        limits). Shared by every connection on the same (provider, key) and backend."""
        if isinstance(limiter, RateLimiter):
            self.limiter = limiter
        elif (
            limits.rpm
            or limits.tpm
            or limits.weekly_tokens
            or limiter is not None
            or has_budgets(resolved.provider.name)
        ):
            self.limiter = limiter_for(
                resolved.provider.name, api_key.get_secret_value(), limits, limiter=limiter
            )
        self._clients: dict[str, tuple[httpx.Client, httpx.AsyncClient]] = {}
        self._openai: OpenAIClients | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Connection(model={self.resolved.key!r}, base_url={self.resolved.base_url!r})"

    # -- HTTP clients ------------------------------------------------------------------

    def http_clients(self, lib: ModuleType | None = None) -> tuple[httpx.Client, httpx.AsyncClient]:
        """The sync and async clients on ``lib`` (default: httpx), built on first use."""
        lib = lib or core_http_library()
        pair = self._clients.get(lib.__name__)
        if pair is None:
            pair = build_http_clients(
                self.resolved,
                self.api_key,
                timeout=self.timeouts,
                retry=self.retry,
                limiter=self.limiter,
                lib=lib,
                pool=self.pool,
                headers=self.headers,
            )
            self._clients[lib.__name__] = pair
            # Connections dropped without close() still release their sockets.
            weakref.finalize(self, _close_quietly, pair[0])
        return pair

    @property
    def http(self) -> httpx.Client:
        """Sync httpx client for campusllm's own calls (embeddings, rerank, /models, chat)."""
        return self.http_clients()[0]

    @http.setter
    def http(self, client: httpx.Client) -> None:
        # A client of the caller's (a mock transport, a proxy of its own) replaces ours.
        ours, ahttp = self.http_clients()
        if ours is not client:
            ours.close()
        self._clients[core_http_library().__name__] = (client, ahttp)

    @property
    def ahttp(self) -> httpx.AsyncClient:
        """Async twin of :attr:`http` (each event loop gets its own connection pool)."""
        return self.http_clients()[1]

    @ahttp.setter
    def ahttp(self, client: httpx.AsyncClient) -> None:
        http, _ = self.http_clients()  # the replaced async client never opened a socket
        self._clients[core_http_library().__name__] = (http, client)

    @property
    def openai(self) -> OpenAIClients:
        """openai SDK clients on this connection (``max_retries=0``: one retry layer).

        The openai SDK is imported here, on first use: embeddings and rerank never need it.
        """
        if self._openai is None:
            from .openai_sdk import OpenAIClients  # optional, heavy

            self._openai = OpenAIClients.on(self)
        return self._openai

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    def close(self) -> None:
        """Close every client built so far (the async ones too when no event loop runs)."""
        self._closed = True
        for http, ahttp in self._clients.values():
            http.close()
            _close_async(ahttp)

    async def aclose(self) -> None:
        """Close every client built so far (async connections of the running loop)."""
        self._closed = True
        for http, ahttp in self._clients.values():
            http.close()
            await ahttp.aclose()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _close_async(ahttp: httpx.AsyncClient) -> None:
    if ahttp.is_closed:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # sockets bound to a finished loop are gone anyway
        with contextlib.suppress(Exception):
            asyncio.run(ahttp.aclose())


def _close_quietly(http: httpx.Client) -> None:
    with contextlib.suppress(Exception):  # interpreter shutdown: nothing useful to report
        http.close()


def connect(
    model: str | ResolvedModel | None = None,
    *,
    provider: str | None = None,
    base_url: str | None = None,
    api_key: str | SecretStr | None = None,
    rate_limits: RateLimits | Mapping[str, Any] | None = None,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | Timeouts | httpx.Timeout | None = None,
    read_timeout: float | None = None,
    pool: PoolLimits | None = None,
    headers: Mapping[str, str] | None = None,
    limiter: str | RateLimiter | None = None,
) -> Connection:
    """Check the arguments, resolve the model, look the key up once: a ready :class:`Connection`.

    ``model`` is ``"provider:model"`` (or a model name with ``provider=``), or an already
    resolved model. ``rate_limits`` replaces the provider's published quota for this key
    (``CAMPUSLLM_CLIENT_LIMITS=off`` drops the quota when none is given); ``max_retries``
    (or a whole ``retry`` policy) apply to every request; ``pool`` sizes the connection pools
    (see :class:`~campusllm.transport.PoolLimits`); ``headers`` are sent with every request.

    ``limiter`` says who shares the key's quota: ``"local"`` (every process of this user on
    this machine; the default), ``"memory"`` (this process only) or ``"redis://host:port/db"``
    (every machine using that server) — else ``$CAMPUSLLM_LIMITER`` or the config file's
    ``[limiter]`` table decide. A :class:`~campusllm.limiter.RateLimiter` of your own is used
    as it is (its limits, clock and store), in place of ``rate_limits``.

    ``timeout`` is the **total** seconds one attempt may take — connecting, the headers and
    the whole answer or stream (default :data:`DEFAULT_TIMEOUT`; chat models default to
    :data:`DEFAULT_CHAT_TIMEOUT`). ``read_timeout`` is the longest silence allowed between
    two reads (default: only the total bounds it); set it below ``timeout`` to notice a stalled
    stream early. A :class:`~campusllm.transport.Timeouts` sets every limit at once; an httpx
    ``Timeout`` sets the per-phase limits and keeps the default total. Retries are attempts of
    their own, each with a fresh total.

    Raises :class:`~campusllm.errors.ConfigError` for an argument of the wrong type or value,
    :class:`~campusllm.errors.ModelNotFoundError` for an unknown provider and
    :class:`~campusllm.errors.AuthenticationError` when no key can be found.

    Example:
        >>> conn = connect(provider="sjtu", model="glm", api_key="sk-example",
        ...                base_url="http://127.0.0.1:9/v1", max_retries=2, timeout=30)
        >>> conn.resolved.model.id, conn.retry.max_retries, conn.timeout
        ('glm-5.1', 2, 30.0)
        >>> connect("sjtu:glm", api_key="sk-example", timeout=600, read_timeout=60).timeouts
        Timeouts(total=600.0, read=60.0, connect=10.0, write=None, pool=None)
        >>> connect("sjtu:glm", api_key=42)
        Traceback (most recent call last):
        ...
        campusllm.errors.ConfigError: api_key must be a string or SecretStr, not int. ...
    """
    resolved = _resolved(model, provider, base_url)
    if api_key is not None and not isinstance(api_key, (str, SecretStr)):
        raise ConfigError(
            f"api_key must be a string or SecretStr, not {type(api_key).__name__}.",
            hint="Callables are not supported; campusllm's transport needs the key itself.",
            provider=resolved.provider.name,
        )
    key = get_api_key(resolved.provider, api_key, model=resolved.model)
    sdk_timeout, timeouts = _timeouts(timeout, read_timeout)
    return Connection(
        resolved,
        key,
        limits=_limits(rate_limits, resolved),
        retry=_retry(max_retries, retry),
        timeout=sdk_timeout,
        pool=_pool(pool),
        headers=_headers(headers),
        timeouts=timeouts,
        limiter=_limiter(limiter, rate_limits),
    )


def _resolved(
    model: str | ResolvedModel | None, provider: str | None, base_url: str | None
) -> ResolvedModel:
    if isinstance(model, ResolvedModel):
        return model
    if model is not None and not isinstance(model, str):
        raise ConfigError(
            f"model must be a string like 'sjtu:deepseek-chat', not {type(model).__name__}."
        )
    for name, value in (("provider", provider), ("base_url", base_url)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, not {type(value).__name__}.")
    if provider:
        return resolve(provider=provider, model=model, base_url=base_url)
    return resolve(model, base_url=base_url)


def _limits(value: RateLimits | Mapping[str, Any] | None, resolved: ResolvedModel) -> RateLimits:
    if value is None:
        if os.environ.get(CLIENT_LIMITS_ENV, "").lower() in _OFF:
            return RateLimits()
        return resolved.provider.limits
    if isinstance(value, RateLimits):
        return value
    if isinstance(value, Mapping):
        try:
            return RateLimits.model_validate(dict(value))
        except ValidationError as e:
            raise ConfigError(
                f"rate_limits is not valid: {e.errors()[0]['msg']}.",
                hint="Pass RateLimits(rpm=…, tpm=…, window_s=…) or a dict with those keys.",
            ) from None
    raise ConfigError(
        f"rate_limits must be RateLimits or a dict, not {type(value).__name__}.",
        hint="Pass RateLimits(rpm=…, tpm=…, window_s=…).",
    )


def _limiter(value: str | RateLimiter | None, rate_limits: object) -> str | RateLimiter | None:
    if value is None or isinstance(value, RateLimiter):
        if isinstance(value, RateLimiter) and rate_limits is not None:
            raise ConfigError(
                "Pass rate_limits or a RateLimiter as limiter=, not both.",
                hint="A RateLimiter carries its own rpm/tpm/window.",
            )
        return value
    if not isinstance(value, str):
        raise ConfigError(
            f"limiter must be a backend name or a RateLimiter, not {type(value).__name__}.",
            hint="Use 'local', 'memory' or 'redis://host:port/db'.",
        )
    parse_backend(value)  # an unknown name is a ConfigError now, not at the first request
    return value


def _retry(max_retries: int | None, retry: RetryPolicy | None) -> RetryPolicy:
    if retry is not None:
        if max_retries is not None:
            raise ConfigError("Pass max_retries or a retry policy, not both.")
        if not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, not {type(retry).__name__}.")
        return retry
    if max_retries is None:
        return RetryPolicy()
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be a whole number >= 0, not {max_retries!r}.")
    return RetryPolicy(max_retries=max_retries)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be seconds, not {value!r}.")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be more than 0 seconds, not {value!r}.")
    return float(value)


def _timeouts(
    value: float | Timeouts | httpx.Timeout | None, read_timeout: float | None
) -> tuple[float | httpx.Timeout, Timeouts]:
    """(what the openai SDK is given, every limit of one attempt)."""
    read = None if read_timeout is None else _seconds("read_timeout", read_timeout)
    sdk: float | httpx.Timeout
    if value is None:
        value = DEFAULT_TIMEOUT
    if isinstance(value, Timeouts):
        timeouts, sdk = value, value.total
    elif isinstance(value, (int, float)) or isinstance(value, bool):
        sdk = _seconds("timeout", value)
        timeouts = Timeouts.of(sdk, total=sdk)
    elif all(hasattr(value, p) for p in ("connect", "read", "write", "pool")):
        try:
            timeouts = Timeouts.of(value, total=DEFAULT_TIMEOUT)
        except ValueError as e:
            raise ConfigError(f"timeout is not valid: {e}.") from None
        sdk = value  # an httpx Timeout with per-phase limits
    else:
        raise ConfigError(
            f"timeout must be seconds, Timeouts or an httpx.Timeout, not {type(value).__name__}."
        )
    if read is not None:
        timeouts = dataclasses.replace(timeouts, read=read)
    return sdk, timeouts


def _pool(value: PoolLimits | None) -> PoolLimits:
    if value is None:
        return PoolLimits()
    if not isinstance(value, PoolLimits):
        raise ConfigError(f"pool must be PoolLimits, not {type(value).__name__}.")
    return value


def _headers(value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("headers must map header names to string values.")
    return dict(value)
