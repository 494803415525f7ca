"""The offline gateway simulator: an OpenAI-compatible HTTP server for every registry provider.

:class:`Simulator` is the public face: start/stop, URLs, and the controls a test uses (limits,
faults, scripted replies, the request log). The work is done by the modules around it:

- :mod:`~campusllm.sim.http`: the threaded HTTP server, response and SSE writing, auth;
- :mod:`~campusllm.sim.router`: one request's way through record, auth, faults, quotas, route;
- :mod:`~campusllm.sim.chat` and :mod:`~campusllm.sim.routes`: what each route answers;
- :mod:`~campusllm.sim.replays`: the providers' documented examples, replayed;
- :mod:`~campusllm.sim.gateways`: what each gateway software (LiteLLM, vLLM, llama.cpp) says
  where they differ;
- :mod:`~campusllm.sim.faults`: injected faults; :mod:`~campusllm.sim.limits`: RPM/TPM quotas;
- :mod:`~campusllm.sim.state`: the request log, statistics and scripted replies.
"""

from __future__ import annotations

import argparse
import secrets
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError
from ..registry import ProviderSpec, Registry, get_registry
from .faults import FAULT_KINDS, Fault, FaultQueue
from .http import Handler, SimHTTPServer, error_body
from .limits import Quotas
from .router import Router
from .state import SimState

__all__ = ["SIM_KEY", "FAULT_KINDS", "Simulator", "main"]

SIM_KEY = "sk-sim-local"


class Simulator:
    """An offline OpenAI-compatible gateway for every provider in the registry.

    Serves ``/<provider><base path>/{models,chat/completions,completions,embeddings,rerank,
    tei/rerank}`` with each provider's auth scheme, model catalog, reasoning shapes and quirks,
    answering as the gateway software the provider runs (SJTU: a LiteLLM proxy; others: vLLM
    through one-api; see :meth:`set_gateway`); optional per-key RPM/TPM limits, injected
    faults, scripted replies and the providers' documented example responses. Prompts longer
    than a model's ``context_window`` are refused as the gateway words it. Any key starting
    ``sk-sim`` is accepted (``sk-sim-bad`` is rejected, ``sk-sim-forbidden`` gets a 403).

    Give clients :attr:`api_key`, the key of this simulator. Client-side rate limits are kept
    per key and shared by every process on the machine (the ``local`` limiter), while each
    simulator is a gateway of its own: with a key of its own, the requests sent to an earlier
    simulator (another notebook, another test run) never use up this one's quota.
    :data:`SIM_KEY` works everywhere too, but every client using it shares one budget.

    Args:
        host, port: where to listen (``port=0``: any free port, read it back from ``port``).
        window_s: the rate-limit window of :meth:`set_limits` and ``enforce_limits``.
        enforce_limits: apply each provider's catalogued RPM/TPM per key.
        retry_after: send a Retry-After header with 429s.
        registry: the registry to serve (default: the process-wide one, as it is at each request).
        clock: the time quota windows, and the Retry-After values computed from them, are
            measured on (default: the system clock). A :class:`~campusllm.clock.ManualClock`
            makes limit tests independent of how loaded the machine is. Delays written on the
            socket (``slow_first_byte``, chunk delays) stay on real time: they exist to be seen
            by a client's real timeouts.
        api_key: the key :attr:`api_key` names (default: ``sk-sim-`` and 12 random hex
            digits, new for every simulator); it must start with ``sk-sim``.

    Example:
        >>> from campusllm.sim import SIM_KEY, Simulator
        >>> import httpx
        >>> with Simulator() as sim:
        ...     r = httpx.get(sim.url("sjtu") + "/models",
        ...                   headers={"Authorization": f"Bearer {SIM_KEY}"})
        >>> r.status_code
        200
        >>> Simulator().api_key.startswith("sk-sim-"), Simulator().api_key != Simulator().api_key
        (True, True)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        window_s: float = 60.0,
        enforce_limits: bool = False,
        retry_after: bool = True,
        registry: Registry | None = None,
        clock: Clock | None = None,
        api_key: str | None = None,
    ) -> None:
        if api_key is not None and not api_key.startswith("sk-sim"):
            raise ConfigError(
                "A simulator's api_key must start with 'sk-sim' (the keys it accepts).",
                hint="Leave api_key out for a key of this simulator's own.",
            )
        self.api_key = api_key if api_key is not None else f"sk-sim-{secrets.token_hex(6)}"
        self.host = host
        self.port = port
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._registry = registry
        self._state = SimState()
        self._faults = FaultQueue()
        self._quotas = Quotas(self.clock, window_s=window_s, enforce_catalogued=enforce_limits)
        self._router = Router(
            self._state,
            self._faults,
            self._quotas,
            self._control,
            lambda: self.registry,
            retry_after=retry_after,
        )
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- settings and records ------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry given at construction, else the process-wide one *as it is now*.

        Not cached: models registered at runtime, and a registry reset after the user's
        config changed, are what clients resolve against, so the simulator must see them too.
        """
        return self._registry if self._registry is not None else get_registry()

    @property
    def window_s(self) -> float:
        """Default rate-limit window in seconds."""
        return self._quotas.window_s

    @window_s.setter
    def window_s(self, value: float) -> None:
        self._quotas.window_s = value

    @property
    def enforce_limits(self) -> bool:
        """Whether each provider's catalogued RPM/TPM apply per key."""
        return self._quotas.enforce_catalogued

    @enforce_limits.setter
    def enforce_limits(self, value: bool) -> None:
        self._quotas.enforce_catalogued = value

    @property
    def retry_after(self) -> bool:
        """Whether 429s carry a Retry-After header (kept by :meth:`reset`)."""
        return self._router.retry_after

    @retry_after.setter
    def retry_after(self, value: bool) -> None:
        self._router.retry_after = value

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request so far: ``method``, ``path``, ``provider``, ``headers`` (keys redacted),
        ``json``."""
        return self._state.requests

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``requests``, each status code sent, ``faults``, ``streams``, each route..."""
        return self._state.stats

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        _ = self.registry  # load it now, not inside the first request
        server = SimHTTPServer((self.host, self.port), self._router)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"campusllm-sim:{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (fast; safe to call twice)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- public controls -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``; each provider lives under its own prefix (:meth:`url`)."""
        return f"http://{self.host}:{self.port}"

    def url(self, provider: str) -> str:
        """Base URL of ``provider`` on this simulator, e.g. ``http://127.0.0.1:P/sjtu/api/v1``."""
        return self.base_url + self.prefix(self.registry.provider(provider))

    @staticmethod
    def prefix(provider: ProviderSpec) -> str:
        """The path a provider is served under: its name, then its real base path."""
        path = urlparse(provider.base_url).path.rstrip("/") if provider.base_url else ""
        return f"/{provider.name}{path or '/v1'}"

    def urls(self) -> dict[str, str]:
        """Base URL of every registry provider."""
        return {p.name: self.base_url + self.prefix(p) for p in self.registry.providers()}

    def set_limits(
        self,
        provider: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        window_s: float | None = None,
    ) -> None:
        """Enforce RPM/TPM per key on ``provider`` (``None``: that dimension unlimited).

        TPM counts what a gateway counts: each request's input when it is admitted, then its
        answer's tokens once the answer has been sent (a stream's at its end).
        """
        self._quotas.set(provider, rpm=rpm, tpm=tpm, window_s=window_s)

    def set_gateway(self, provider: str, gateway: str | None) -> None:
        """Answer for ``provider`` as the gateway software ``gateway`` until :meth:`reset`.

        One of ``"litellm"`` (a LiteLLM proxy in front of vLLM: SJTU's default), ``"vllm"``
        (vLLM, as one-api passes it on: every other provider's default) or ``"llama.cpp"``
        (``llama-server``); ``None``: the provider's default again. They differ in the answer
        to an unknown model, a prompt over the context window, a quota refusal and a failing
        upstream, in LiteLLM's ``provider_specific_fields`` and its non-streamed think-tag
        parsing, and in llama-server's blank lines after ``</think>`` and its empty think block
        when thinking is off.

        Example:
            >>> with Simulator() as sim:
            ...     sim.set_gateway("ecnu", "llama.cpp")
        """
        self._router.set_gateway(provider, gateway)

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        status: int = 500,
        after_chunks: int = 3,
        delay_s: float = 0.5,
        path_contains: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """Make the next ``times`` requests (whose path contains ``path_contains``) fail.

        Kinds (``FAULT_KINDS``):

        - ``status``: answer HTTP ``status`` instead (502/504 as nginx's HTML page, others as a
          JSON error); ``retry_after_s`` sets a Retry-After header (429s get 0.05 s by
          default so client retries stay fast).
        - ``reset``: reset the connection (TCP RST) before any byte of the response.
        - ``reset_mid_stream``: close the connection after ``after_chunks`` SSE events, inside
          the chunked body (no terminator); a JSON body is cut in half.
        - ``malformed_json``: a 200 whose JSON body is cut off mid-string; on a stream, like
          ``malformed_sse``.
        - ``malformed_sse``: a broken ``data:`` event after ``after_chunks`` events, the rest of
          the stream intact; without a stream, like ``malformed_json``.
        - ``slow_first_byte``: wait ``delay_s`` seconds of real time before answering normally.
        - ``error_200``: new-api's "upstream saturated" error with HTTP 200 (as the only SSE
          event, then ``[DONE]``, on a stream).
        - ``error_mid_stream``: what a gateway sends when its upstream fails during a
          stream: ``after_chunks`` events of the answer, then
          ``data: {"error": {"message", "type", "param", "code": "<status>"}}`` (``type``:
          ``server_error``, ``rate_limit_error`` for 429; behind LiteLLM see below), then the
          body ends and the connection closes, with neither a ``finish_reason`` nor
          ``[DONE]``. Without a stream: that error object with HTTP ``status``.
        - ``error_event_mid_stream``: the same, the error sent as an SSE ``event: error`` line
          followed by its ``data:`` line.
        - ``truncate_stream``: ``after_chunks`` events of the answer, then a clean end of the
          body and of the connection, with neither a ``finish_reason`` nor ``[DONE]`` (an
          upstream that went away quietly). Without a stream, like ``reset_mid_stream``.
        - ``router_429``: LiteLLM's router with no deployment left under its RPM: a 429 whose
          only hint is ``llm_provider-retry-after`` (``retry_after_s``, default 60), no
          ``Retry-After``.
        - ``gateway_408``: LiteLLM's 408 after waiting ``delay_s`` seconds (real time) for an
          upstream slower than its timeout; the body says ``litellm.Timeout``.
        - ``upstream_401``: LiteLLM passing on a 401 from its upstream: the gateway's own
          key for the model server was refused (``litellm.AuthenticationError``), not the
          caller's.
        - ``reject_null_content``: a strict model server's 500 for an assistant message whose
          content is not a string (``null``, or a list of parts: llama-cpp-python's validation
          error; behind LiteLLM, wrapped as ``litellm.InternalServerError``). Waits for a
          request that has such a message; others pass it by.

        For ``error_mid_stream``, ``error_event_mid_stream`` and ``truncate_stream``,
        ``after_chunks`` counts only events that carry part of the answer (the first,
        role-only chunk included); the finish chunk, the usage chunk and ``[DONE]`` never go
        out. A provider behind LiteLLM (SJTU) words the error event as LiteLLM does: for
        ``status`` 500, ``{"message": "litellm.APIConnectionError: ...", "type": null,
        "param": null, "code": "500"}``.

        ``times`` counts matching requests; faults are taken oldest first. An unknown ``kind``
        raises ``ValueError``.

        Example:
            >>> with Simulator() as sim:
            ...     sim.inject("error_mid_stream", status=503, after_chunks=3)
            ...     sim.inject("truncate_stream", path_contains="/chat/completions")
            ...     sim.inject("router_429", times=5)
        """
        fault = Fault(kind, times, status, after_chunks, delay_s, path_contains, retry_after_s)
        self._faults.add(fault)

    def script(self, model: str, replies: list[dict[str, Any]]) -> None:
        """Queue replies for ``model`` (id or alias); they win over the default logic.

        Each reply: ``{"content", "reasoning", "tool_calls": [{"name", "arguments"}],
        "finish_reason", "chunks", "delay_s"}``, every key optional.
        """
        self._state.add_script(model, replies)

    def reset(self) -> None:
        """Forget requests, stats, faults, scripts, explicit limits, limit windows and the
        gateways chosen with :meth:`set_gateway`."""
        self._state.clear()
        self._faults.clear()
        self._quotas.clear()
        self._router.gateways.clear()

    # -- control routes ------------------------------------------------------------------

    def _control(self, h: Handler, method: str, path: str, body: Any) -> None:
        """``/_sim/...``: the controls above over HTTP, for a simulator in another process."""
        args = body if isinstance(body, dict) else {}
        name = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if path in ("/", "/_sim", "/_sim/health"):
                return h.send_json(200, {"ok": True, "providers": self.urls(), "key": self.api_key})
            if name == "inject" and method == "POST":
                kind = args.pop("kind")
                self.inject(kind, **args)
            elif name == "script" and method == "POST":
                self.script(args["model"], list(args["replies"]))
            elif name == "limits" and method == "POST":
                self.set_limits(args.pop("provider"), **args)
            elif name == "gateway" and method == "POST":
                self.set_gateway(args["provider"], args.get("gateway"))
            elif name == "reset" and method == "POST":
                self.reset()
            elif name == "stats":
                return h.send_json(200, self._state.snapshot()[0])
            elif name == "requests":
                return h.send_json(200, self._state.snapshot()[1])
            else:
                return h.send_json(404, error_body(f"no control route {path!r}"))
        except (KeyError, TypeError, ValueError) as e:
            return h.send_json(400, error_body(f"bad control request: {e!r}"))
        h.send_json(200, {"ok": True})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m campusllm.sim``: serve in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="campusllm sim", description="Offline OpenAI-compatible gateway simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--window", type=float, default=None, help="rate-limit window in seconds (default 60)"
    )
    parser.add_argument(
        "--enforce-limits",
        action="store_true",
        help="apply each provider's catalogued RPM/TPM per key",
    )
    parser.add_argument(
        "--no-retry-after", action="store_true", help="send 429s without a Retry-After header"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    sim = Simulator(
        args.host,
        args.port,
        window_s=args.window or 60.0,
        enforce_limits=args.enforce_limits,
        retry_after=not args.no_retry_after,
        api_key=SIM_KEY,  # a server in its own process keeps the documented, stable key
    )
    sim.start()
    print(f"campusllm simulator on {sim.base_url}  (API key: {sim.api_key}; Ctrl-C to stop)")
    for name, url in sim.urls().items():
        print(f"  {name:<8} {url}")
    sys_stop = threading.Event()
    try:
        while not sys_stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        sim.stop()
    return 0
