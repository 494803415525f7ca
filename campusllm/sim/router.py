"""One request's way through the simulator: record, route, auth, faults, quotas, answer.

The order matters and mirrors a real gateway: an unknown provider or route is a 404 before
auth; a bad key is a 401 before any fault; an injected fault hits before the body is
validated (a dead upstream does not read it); the quota is charged only for well-formed
requests: their input just before the route answers, their output once it has been sent.
Each provider answers as the gateway software it runs (:mod:`campusllm.sim.gateways`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..registry import ProviderSpec, Registry
from .chat import chat
from .faults import FaultQueue, before_response
from .gateways import GATEWAYS, Gateway, gateway_for
from .http import Handler, authenticate, error_body
from .limits import Quotas, send_too_many
from .replies import input_tokens, prompt_tokens
from .routes import completions, embeddings, models, rerank
from .state import SimState

__all__ = ["ControlRoute", "Router", "route_of"]

ControlRoute = Callable[[Handler, str, str, Any], None]
"""Answers ``/_sim/...`` requests: ``(handler, method, path, parsed body)``."""

_ROUTES = (
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/embeddings", "embeddings"),
    ("/tei/rerank", "tei_rerank"),
    ("/rerank", "rerank"),
    ("/models", "models"),
)


def route_of(path: str) -> str | None:
    """The route a path ends in (``None``: not one the gateways serve).

    Example:
        >>> route_of("/sjtu/api/v1/chat/completions"), route_of("/ecnu/v1/tei/rerank/")
        ('chat', 'tei_rerank')
    """
    for suffix, route in _ROUTES:
        if path.rstrip("/").endswith(suffix):
            return route
    return None


class Router:
    """The :class:`~campusllm.sim.http.App` behind the HTTP server.

    ``registry`` is called at every request: it returns the registry to serve *as it is
    now*, so models registered at runtime are served at once. ``retry_after`` says whether
    429s (refused by a quota or injected) carry a Retry-After header. ``gateways`` names the
    gateway software of providers that do not answer as their default
    (:data:`~campusllm.sim.gateways.DEFAULT_GATEWAYS`).

    Example:
        >>> from campusllm.sim.faults import FaultQueue
        >>> from campusllm.sim.http import SimHTTPServer
        >>> from campusllm.registry import get_registry
        >>> router = Router(
        ...     SimState(), FaultQueue(), Quotas(), control=lambda *a: None, registry=get_registry
        ... )
        >>> server = SimHTTPServer(("127.0.0.1", 0), router)  # serve it as Simulator does
        >>> server.server_close()
    """

    def __init__(
        self,
        state: SimState,
        faults: FaultQueue,
        quotas: Quotas,
        control: ControlRoute,
        registry: Callable[[], Registry],
        *,
        retry_after: bool = True,
    ) -> None:
        self.state = state
        self.faults = faults
        self.quotas = quotas
        self.control = control
        self.registry = registry
        self.retry_after = retry_after
        self.gateways: dict[str, str] = {}

    def set_gateway(self, provider: str, name: str | None) -> None:
        """Answer for ``provider`` as gateway ``name`` (``None``: its default again)."""
        if name is None:
            self.gateways.pop(provider, None)
        elif name not in GATEWAYS:
            raise ValueError(f"unknown gateway {name!r}; one of {', '.join(GATEWAYS)}")
        else:
            self.gateways[provider] = name

    def gateway(self, provider: str) -> Gateway:
        """The gateway software ``provider`` answers as."""
        return gateway_for(provider, self.gateways)

    def provider(self, name: str) -> ProviderSpec | None:
        """The provider served under ``/<name>/``, or ``None``."""
        try:
            return self.registry().provider(name)
        except Exception:
            return None

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the statistic ``key``."""
        self.state.count(key, n)

    def handle(self, h: Handler, method: str, raw: bytes) -> None:
        """Answer one request (``raw``: its body bytes) through ``h``."""
        path = h.path.split("?", 1)[0]
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                bad_json = str(e)
        parts = path.strip("/").split("/")
        state = self.state
        if parts[0] == "_sim" or path == "/":
            state.record(method, path, None, h.headers.items(), body)
            return self.control(h, method, path, body)
        provider = self.provider(parts[0])
        state.record(method, path, provider.name if provider else None, h.headers.items(), body)
        if provider is None:
            return h.send_json(404, error_body(f"no provider {parts[0]!r} on this simulator"))
        route = route_of(path)
        if route is None:
            return h.send_json(404, error_body(f"no route {path!r}", code="not_found"))
        key = authenticate(h, provider)
        gateway = self.gateway(provider.name)
        fault = self.faults.take(path, body)
        stream = bool(isinstance(body, dict) and body.get("stream"))
        if fault is not None:
            state.count("faults")
            before_response(
                h, fault, stream=stream, retry_after=self.retry_after, gateway=gateway, body=body
            )
        if bad_json is not None or (method == "POST" and not isinstance(body, dict)):
            return h.send_json(400, error_body(f"request body is not a JSON object: {bad_json}"))
        if route == "models":
            tokens = 0
        elif route in ("chat", "completions"):
            tokens = prompt_tokens(body)
        else:
            tokens = input_tokens(body)
        refusal = self.quotas.admit(provider, key, tokens)
        if refusal is not None:
            return send_too_many(
                h, provider.name, refusal, retry_after=self.retry_after, key=key, gateway=gateway
            )
        state.count(route)
        if route == "models":
            return models(h, provider)
        assert isinstance(body, dict)
        if route == "chat":
            output = chat(state, h, provider, body, fault, gateway)
        elif route == "completions":
            output = completions(state, h, provider, body, fault, gateway)
        elif route == "embeddings":
            return embeddings(h, provider, body, fault, gateway)
        else:
            return rerank(state, h, provider, body, tei=route == "tei_rerank", fault=fault,
                          gateway=gateway)  # fmt: skip
        # The answer went out whole: its tokens count too, as the gateway counts them once
        # the response is done (for a stream, at its end). A broken answer is not charged.
        if fault is None or fault.kind == "slow_first_byte":
            self.quotas.charge(provider, key, output)
