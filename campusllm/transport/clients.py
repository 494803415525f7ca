"""Building HTTP clients that send through campusllm's transports.

Example:
    >>> import httpx
    >>> from campusllm.registry import resolve
    >>> from pydantic import SecretStr
    >>> r = resolve("ecnu:ecnu-plus", base_url="http://127.0.0.1:9/v1")
    >>> http, ahttp = build_http_clients(r, SecretStr("sk-example"), lib=httpx)
    >>> http.close()
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..clock import Clock
from ..limiter import RateLimiter
from ..registry import ResolvedModel
from .deadline import Timeouts
from .library import core_http_library, ssl_context
from .logs import protect_http_logs
from .retry import RetryPolicy
from .transports import DEFAULT_TOTAL_TIMEOUT, AsyncCampusTransport, CampusTransport

if TYPE_CHECKING:
    import httpx

__all__ = ["PoolLimits", "build_http_clients", "proxy_for"]

USER_AGENT = "campusllm"


@dataclass(frozen=True)
class PoolLimits:
    """How many connections one client pair keeps to the gateway.

    ``max_connections`` caps requests in flight per client (more wait for a free
    connection); ``max_keepalive_connections`` is how many stay open between requests. The
    default keeps every connection of a burst open for ``keepalive_expiry`` seconds, so a
    second burst does not reconnect (httpx's own default keeps 20 of 100).

    Example:
        >>> PoolLimits().max_connections
        100
        >>> PoolLimits(max_connections=300).max_keepalive_connections
        300
    """

    max_connections: int = 100
    max_keepalive_connections: int | None = None
    """``None``: the same as ``max_connections``."""
    keepalive_expiry: float = 5.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_keepalive_connections is None:
            object.__setattr__(self, "max_keepalive_connections", self.max_connections)


def proxy_for(url: str) -> str | None:
    """The proxy the environment asks for, honouring NO_PROXY (as httpx would)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def build_http_clients(
    resolved: ResolvedModel,
    api_key: SecretStr,
    *,
    timeout: float | Timeouts | httpx.Timeout = DEFAULT_TOTAL_TIMEOUT,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    lib: ModuleType | None = None,
    pool: PoolLimits | None = None,
    headers: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> tuple[httpx.Client, httpx.AsyncClient]:
    """Sync and async clients of ``lib`` (httpx, the default, or httpx2) on our transports.

    ``timeout`` is the total of one attempt in seconds, a :class:`~.deadline.Timeouts`, or
    the library's ``Timeout`` of per-phase limits (the total is then
    :data:`~.transports.DEFAULT_TOTAL_TIMEOUT`). The clients do not read proxies themselves
    (``trust_env=False``): an env proxy mounted by the library would bypass our transport,
    so the proxy is set on the socket layer.
    """
    lib = lib or core_http_library()
    pool = pool or PoolLimits()
    timeouts = Timeouts.of(timeout, total=DEFAULT_TOTAL_TIMEOUT)
    total = timeouts.total
    phases = lib.Timeout(
        connect=timeouts.connect or total,
        read=timeouts.read or total,
        write=timeouts.write or total,
        pool=timeouts.pool or total,
    )
    limits = lib.Limits(
        max_connections=pool.max_connections,
        max_keepalive_connections=pool.max_keepalive_connections,
        keepalive_expiry=pool.keepalive_expiry,
    )
    proxy = proxy_for(resolved.base_url)
    ctx = ssl_context(lib)
    protect_http_logs()
    common: dict[str, Any] = {
        "limiter": limiter,
        "retry": retry,
        "resolved": resolved,
        "timeouts": timeouts,
        "clock": clock,
    }
    sync_t = CampusTransport(
        resolved.provider,
        api_key,
        inner_factory=lambda: lib.HTTPTransport(verify=ctx, proxy=proxy, limits=limits),
        **common,
    )
    async_t = AsyncCampusTransport(
        resolved.provider,
        api_key,
        inner_factory=lambda: lib.AsyncHTTPTransport(verify=ctx, proxy=proxy, limits=limits),
        **common,
    )
    sent = {"User-Agent": USER_AGENT, **(headers or {})}
    http: httpx.Client = lib.Client(transport=sync_t, timeout=phases, trust_env=False, headers=sent)
    ahttp: httpx.AsyncClient = lib.AsyncClient(
        transport=async_t, timeout=phases, trust_env=False, headers=sent
    )
    return http, ahttp
