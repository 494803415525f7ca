"""One request's way through the simulator: record, route, auth, faults, quotas, answer.

The order matters and mirrors a real gateway: an unknown provider or route is a 404 before
auth; a bad key is a 401 before any fault; an injected fault hits before the body is even
parsed (a dead upstream does not read it); the quota is charged only for well-formed
requests, just before the route answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..registry import ProviderSpec, Registry
from .chat import chat
from .faults import FaultQueue, before_response
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
    429s (refused by a quota or injected) carry a Retry-After header.

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
        fault = self.faults.take(path)
        stream = bool(isinstance(body, dict) and body.get("stream"))
        if fault is not None:
            state.count("faults")
            before_response(h, fault, stream=stream, retry_after=self.retry_after)
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
            return send_too_many(h, provider.name, refusal, retry_after=self.retry_after)
        state.count(route)
        if route == "models":
            return models(h, provider)
        assert isinstance(body, dict)
        if route == "chat":
            return chat(state, h, provider, body, fault)
        if route == "completions":
            return completions(state, h, provider, body, fault)
        if route == "embeddings":
            return embeddings(h, provider, body, fault)
        return rerank(state, h, provider, body, tei=route == "tei_rerank", fault=fault)
