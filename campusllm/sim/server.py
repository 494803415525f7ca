"""The offline gateway simulator: an OpenAI-compatible HTTP server for every registry provider.

stdlib only (``http.server``), HTTP/1.1 keep-alive, one daemon thread per connection. See
:class:`Simulator` and ARCHITECTURE.md "The simulator" for the behaviour it promises.
"""

from __future__ import annotations

import argparse
import collections
import email.utils
import hashlib
import json
import math
import re
import socket
import struct
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..tokens import estimate_tokens
from ..wire import has_image
from .replies import (
    DONE,
    Reply,
    SimToolCall,
    choose_tools,
    completion_body,
    embed_text,
    encode_embedding,
    lexical_score,
    message_text,
    prompt_tokens,
    sample_from_schema,
    stream_events,
    text_completion_body,
    text_completion_events,
)

if TYPE_CHECKING:
    from ..registry import ModelSpec, ProviderSpec, Registry

__all__ = ["SIM_KEY", "FAULT_KINDS", "Simulator", "main"]

SIM_KEY = "sk-sim-local"
FAULT_KINDS = (
    "status",
    "reset",
    "reset_mid_stream",
    "malformed_json",
    "malformed_sse",
    "slow_first_byte",
    "error_200",
    "error_mid_stream",
)
FIXTURES = Path(__file__).parent / "fixtures"
SHAPE_HEADER = "x-sim-reasoning-shape"
_SHAPES = ("none", "reasoning_content", "reasoning", "think_tags", "think_open")

DEEPSEEK_MISSING_REASONING = (
    "Missing `reasoning_content` field in the assistant message at message index {index}. "
    "For more information, please refer to "
    "https://api-docs.deepseek.com/guides/thinking_mode#tool-calls"
)
VLLM_NO_TOOLS = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)
_BATCH_WRITE = 64 * 1024


class _Abort(Exception):
    """Raised inside request handling once the response (or a fault) has been written."""


@dataclass
class _Replay:
    provider: str
    models: tuple[str, ...]
    user_text: str
    stream: bool
    tools: bool
    fixture: str


# The seeds' documented example requests, answered with their documented responses.
REPLAYS = (
    _Replay("sjtu", ("deepseek-chat",), "请介绍上海交通大学", False, False, "sjtu_deepseek_chat"),
    _Replay("sjtu", ("deepseek-reasoner",), "请介绍上海", False, False, "sjtu_deepseek_reasoner"),
    _Replay(
        "sjtu",
        ("qwen", "qwen3.5-27b"),
        "Explain the details in the image.",
        False,
        False,
        "sjtu_qwen_image",
    ),
    _Replay("ecnu", ("ecnu-plus",), "你好呀", False, False, "ecnu_plus_hello"),
    _Replay("ecnu", ("ecnu-plus",), "你好呀", True, False, "ecnu_plus_hello_stream"),
    _Replay("ecnu", ("ecnu-plus",), "上海今天天气如何?", False, True, "ecnu_weather_tool"),
    _Replay(
        "oneapi",
        ("qwen72b-awq",),
        "What is the weather like in Paris today?",
        False,
        True,
        "oneapi_weather_tool",
    ),
)


def fixture_bytes(name: str) -> bytes:
    """Raw bytes of ``fixtures/<name>.json`` (replayed byte for byte)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture_sse(name: str) -> bytes:
    """The SSE body a stream fixture (``{"data": [lines]}``) is replayed as."""
    lines = json.loads(fixture_bytes(name))["data"]
    return b"".join(b"data: " + line.encode() + b"\n\n" for line in lines)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _error(
    message: str, type_: str = "invalid_request_error", code: Any = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive threads must not delay stop()
    request_queue_size = 512
    allow_reuse_address = True
    sim: Simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (resets, cancelled streams) are routine here; anything else
        # is a simulator bug and is reported as usual.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "campusllm-sim"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are dropped after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        try:
            self.server.sim._handle(self, method, raw)
        except _Abort:
            pass
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as e:  # a simulator bug must still produce a response
            self.close_connection = True
            try:
                self.send_json(500, _error(f"simulator error: {type(e).__name__}: {e}"))
            except OSError:
                pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- writing -------------------------------------------------------------------------

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            *(f"{k}: {v}" for k, v in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self.server.sim._count(str(status))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        head = self._head(
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        self.wfile.write(head + body)

    def send_json(self, status: int, obj: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_bytes(status, body, headers=headers)

    def send_sse(
        self, events: list[bytes], *, delay_s: float = 0.0, cut_after: int | None = None
    ) -> None:
        """Chunked ``text/event-stream``; ``cut_after`` closes the socket after that many events."""
        head = self._head(
            200,
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("Transfer-Encoding", "chunked"),
            ],
        )
        self.wfile.write(head)
        if cut_after is not None:
            events = events[:cut_after]
        if delay_s > 0:
            for ev in events:
                time.sleep(delay_s)
                self._chunk(ev)
        else:
            batch: list[bytes] = []
            size = 0
            for ev in events:
                batch.append(ev)
                size += len(ev)
                if size >= _BATCH_WRITE:
                    self._chunk(b"".join(batch))
                    batch, size = [], 0
            if batch:
                self._chunk(b"".join(batch))
        if cut_after is not None:
            self.hang_up()
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def hang_up(self, rst: bool = False) -> None:
        """Close the connection now (``rst``: with a TCP reset) and stop handling it."""
        self.close_connection = True
        sock = self.connection
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        raise _Abort


@dataclass
class _Fault:
    kind: str
    times: int
    status: int
    after_chunks: int
    delay_s: float
    path_contains: str | None
    retry_after_s: float | None


@dataclass
class _Limit:
    rpm: int | None
    tpm: int | None
    window_s: float


class Simulator:
    """An offline OpenAI-compatible gateway for every provider in the registry.

    Serves ``/<provider><base path>/{models,chat/completions,completions,embeddings,rerank,
    tei/rerank}`` with each provider's auth scheme, model catalog, reasoning shapes and quirks;
    optional per-key RPM/TPM limits, injected faults, scripted replies and the seeds' example
    responses. Any key starting ``sk-sim`` is accepted (``sk-sim-bad`` is rejected).

    Example:
        >>> from campusllm.sim import SIM_KEY, Simulator
        >>> import httpx
        >>> with Simulator() as sim:
        ...     r = httpx.get(sim.url("sjtu") + "/models",
        ...                   headers={"Authorization": f"Bearer {SIM_KEY}"})
        >>> r.status_code
        200
    """

    api_key = SIM_KEY

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        window_s: float = 60.0,
        enforce_limits: bool = False,
        retry_after: bool = True,
        registry: Registry | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.window_s = window_s
        self.enforce_limits = enforce_limits
        self.retry_after = retry_after
        self._registry = registry
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._seq = 0
        self.requests: list[dict[str, Any]] = []
        self.stats: dict[str, int] = collections.Counter()
        self._faults: list[_Fault] = []
        self._scripts: dict[str, collections.deque[dict[str, Any]]] = {}
        self._limits: dict[str, _Limit] = {}
        self._windows: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry given at construction, else the process-wide one *as it is now*.

        Not cached: models registered at runtime, and a registry reset after the user's
        config changed, are what clients resolve against, so the simulator must see them too.
        """
        if self._registry is not None:
            return self._registry
        from ..registry import get_registry

        return get_registry()

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        _ = self.registry  # load it now, not inside the first request
        server = _Server((self.host, self.port), _Handler)
        server.sim = self
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
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    # -- public controls -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, provider: str) -> str:
        """Base URL of ``provider`` on this simulator, e.g. ``http://127.0.0.1:P/sjtu/api/v1``."""
        return self.base_url + self.prefix(self.registry.provider(provider))

    @staticmethod
    def prefix(provider: ProviderSpec) -> str:
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
        """Enforce RPM/TPM per key on ``provider`` (``None``: that dimension unlimited)."""
        with self._lock:
            self._limits[provider] = _Limit(rpm, tpm, window_s or self.window_s)
            for k in [k for k in self._windows if k[0] == provider]:
                del self._windows[k]

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
        """Make the next ``times`` matching requests fail in the way ``kind`` names.

        ``retry_after_s`` sets a Retry-After header on ``status`` faults (429s get 0.05 s
        by default so client retries stay fast).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(
                _Fault(kind, times, status, after_chunks, delay_s, path_contains, retry_after_s)
            )

    def script(self, model: str, replies: list[dict[str, Any]]) -> None:
        """Queue replies for ``model`` (id or alias); they win over the default logic."""
        with self._lock:
            self._scripts.setdefault(model.lower(), collections.deque()).extend(
                dict(r) for r in replies
            )

    def reset(self) -> None:
        """Forget requests, stats, faults, scripts, explicit limits and limit windows."""
        with self._lock:
            self.requests.clear()
            self.stats.clear()
            self._faults.clear()
            self._scripts.clear()
            self._limits.clear()
            self._windows.clear()

    # -- bookkeeping -----------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{prefix}-sim-{self._seq:06d}"

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.path_contains is None or f.path_contains in path:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    self.stats["faults"] = self.stats.get("faults", 0) + 1
                    return f
        return None

    def _take_script(self, names: Iterable[str]) -> dict[str, Any] | None:
        with self._lock:
            for name in names:
                q = self._scripts.get(name.lower())
                if q:
                    return q.popleft()
        return None

    def _limit_for(self, provider: ProviderSpec) -> _Limit | None:
        lim = self._limits.get(provider.name)
        if lim is None and self.enforce_limits:
            pl = provider.limits
            if pl.rpm or pl.tpm:
                lim = _Limit(pl.rpm, pl.tpm, self.window_s)
        return lim

    def _admit(self, provider: ProviderSpec, key: str, tokens: int) -> tuple[float, str] | None:
        """``None`` when the request fits the window, else (seconds to wait, which limit)."""
        with self._lock:
            lim = self._limit_for(provider)
            if lim is None or not (lim.rpm or lim.tpm):
                return None
            kid = hashlib.sha256(key.encode()).hexdigest()[:16]
            win = self._windows.setdefault((provider.name, kid), collections.deque())
            now = time.monotonic()
            while win and win[0][0] <= now - lim.window_s:
                win.popleft()
            if lim.rpm and len(win) >= lim.rpm:
                return win[len(win) - lim.rpm][0] + lim.window_s - now, f"rpm={lim.rpm}"
            if lim.tpm and win:
                used = sum(t for _, t in win)
                if used + tokens > lim.tpm:
                    freed = 0
                    for ts, t in win:
                        freed += t
                        if used - freed + tokens <= lim.tpm:
                            return ts + lim.window_s - now, f"tpm={lim.tpm}"
                    return win[-1][0] + lim.window_s - now, f"tpm={lim.tpm}"
            win.append((now, tokens))
            return None

    def _record(self, method: str, path: str, provider: str | None, h: _Handler, body: Any) -> None:
        headers = {}
        for k, v in h.headers.items():
            lk = k.lower()
            if lk in ("authorization", "api-key", "x-api-key"):
                scheme = v.split(" ", 1)[0] if " " in v.strip() else ""
                v = f"{scheme} ***" if scheme else "***"
            headers[lk] = v
        rec = {"method": method, "path": path, "provider": provider, "headers": headers}
        rec["json"] = body
        with self._lock:
            self.requests.append(rec)
            if len(self.requests) > 20000:  # bounded for long benchmarks
                del self.requests[:10000]
            self.stats["requests"] = self.stats.get("requests", 0) + 1

    # -- request handling ------------------------------------------------------------------

    def _handle(self, h: _Handler, method: str, raw: bytes) -> None:
        path = h.path.split("?", 1)[0]
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                bad_json = str(e)
        parts = path.strip("/").split("/")
        if parts[0] == "_sim" or path == "/":
            self._record(method, path, None, h, body)
            return self._control(h, method, path, body)
        provider = self._provider(parts[0])
        self._record(method, path, provider.name if provider else None, h, body)
        if provider is None:
            return h.send_json(404, _error(f"no provider {parts[0]!r} on this simulator"))
        route = self._route(path)
        if route is None:
            return h.send_json(404, _error(f"no route {path!r}", code="not_found"))
        key = self._authenticate(h, provider)
        fault = self._take_fault(path)
        stream = bool(isinstance(body, dict) and body.get("stream"))
        if fault is not None:
            self._pre_fault(h, fault, stream)
        if bad_json is not None or (method == "POST" and not isinstance(body, dict)):
            return h.send_json(400, _error(f"request body is not a JSON object: {bad_json}"))
        if route == "models":
            tokens = 0
        elif route in ("chat", "completions"):
            tokens = prompt_tokens(body)
        else:
            tokens = self._input_tokens(body)
        wait = self._admit(provider, key, tokens)
        if wait is not None:
            return self._too_many(h, provider, *wait)
        self._count(route)
        if route == "models":
            return self._models(h, provider)
        assert isinstance(body, dict)
        if route == "chat":
            return self._chat(h, provider, body, fault)
        if route == "completions":
            return self._completions(h, provider, body, fault)
        if route == "embeddings":
            return self._embeddings(h, provider, body, fault)
        return self._rerank(h, provider, body, tei=route == "tei_rerank", fault=fault)

    def _provider(self, name: str) -> ProviderSpec | None:
        try:
            return self.registry.provider(name)
        except Exception:
            return None

    @staticmethod
    def _route(path: str) -> str | None:
        for suffix, route in (
            ("/chat/completions", "chat"),
            ("/completions", "completions"),
            ("/embeddings", "embeddings"),
            ("/tei/rerank", "tei_rerank"),
            ("/rerank", "rerank"),
            ("/models", "models"),
        ):
            if path.rstrip("/").endswith(suffix):
                return route
        return None

    def _authenticate(self, h: _Handler, provider: ProviderSpec) -> str:
        value = (h.headers.get("Authorization") or "").strip()
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            key = rest.strip()
        elif provider.auth == "raw" and value and " " not in value:
            key = value
        else:
            key = ""
        if key.startswith("sk-sim") and key != "sk-sim-bad":
            if key == "sk-sim-forbidden":
                h.send_json(
                    403,
                    _error(
                        "this key has no access to the requested model",
                        "permission_error",
                        "forbidden",
                    ),
                )
                raise _Abort
            return key
        if provider.auth == "raw":
            # one-api's own wording for a bad token
            msg = "无效的令牌 (request id: sim)" if value else "未提供令牌 (request id: sim)"
            h.send_json(401, {"error": {"message": msg, "type": "one_api_error"}})
        else:
            if not value:
                msg = "Missing Authorization header; expected 'Authorization: Bearer <key>'."
            elif scheme.lower() != "bearer":
                msg = "Authorization header must use the Bearer scheme: 'Bearer <key>'."
            else:
                msg = "Incorrect API key provided."
            h.send_json(401, _error(msg, code="invalid_api_key"))
        raise _Abort

    def _too_many(self, h: _Handler, provider: ProviderSpec, wait: float, which: str) -> None:
        wait = max(wait, 0.01)
        self._count("rate_limited")
        headers = []
        if self.retry_after:
            ra = f"{math.ceil(wait * 100) / 100:.2f}" if wait < 1 else str(math.ceil(wait))
            headers.append(("Retry-After", ra))
        h.send_json(
            429,
            _error(
                f"Rate limit reached for {provider.name} ({which} per key). "
                f"Please try again in {wait:.2f}s.",
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            headers=headers,
        )

    @staticmethod
    def _input_tokens(body: Any) -> int:
        if not isinstance(body, dict):
            return 0
        texts: list[str] = []
        inp = body.get("input")
        if isinstance(inp, str):
            texts.append(inp)
        elif isinstance(inp, list):
            texts.extend(x for x in inp if isinstance(x, str))
        if isinstance(body.get("query"), str):
            texts.append(body["query"])
        for d in body.get("documents") or body.get("texts") or []:
            texts.append(d if isinstance(d, str) else str((d or {}).get("text", "")))
        return sum(estimate_tokens(t) for t in texts if t)

    # -- faults ----------------------------------------------------------------------------

    def _pre_fault(self, h: _Handler, fault: _Fault, stream: bool) -> None:
        """Faults that replace the response entirely; the rest are applied while answering."""
        kind = fault.kind
        if kind == "slow_first_byte":
            time.sleep(fault.delay_s)
        elif kind == "reset":
            h.hang_up(rst=True)
        elif kind == "status":
            st = fault.status
            headers: list[tuple[str, str]] = []
            ra = (
                fault.retry_after_s
                if fault.retry_after_s is not None
                else (0.05 if st == 429 else None)
            )
            if ra is not None and self.retry_after:
                headers.append(("Retry-After", f"{ra:g}"))
            if st in (502, 504):  # what an nginx in front of a dead upstream sends
                html = f"<html><body><h1>{st} {HTTPStatus(st).phrase}</h1></body></html>"
                h.send_bytes(st, html.encode(), "text/html", headers)
            else:
                typ = "rate_limit_error" if st == 429 else "server_error"
                h.send_json(st, _error(f"simulated upstream error ({st})", typ, st), headers)
            raise _Abort
        elif kind == "error_200":
            err = {
                "error": {
                    "message": "当前分组上游负载已饱和，请稍后再试 (request id: sim)",
                    "type": "new_api_error",
                    "param": "",
                    "code": None,
                }
            }
            if stream:
                h.send_sse(
                    [b"data: " + json.dumps(err, ensure_ascii=False).encode() + b"\n\n", DONE]
                )
            else:
                h.send_json(200, err)
            raise _Abort
        elif kind in ("malformed_json", "malformed_sse") and not stream:
            h.send_bytes(
                200,
                b'{"id": "chatcmpl-sim-broken", "object": "chat.completion", '
                b'"choices": [{"index": 0, "message": {"content": "trunc',
            )
            raise _Abort

    def _send_events(
        self, h: _Handler, events: list[bytes], fault: _Fault | None, delay_s: float = 0.0
    ) -> None:
        self._count("streams")
        if fault is not None and fault.kind == "reset_mid_stream":
            h.send_sse(events, delay_s=delay_s, cut_after=fault.after_chunks)
        if fault is not None and fault.kind == "error_mid_stream":
            # what LiteLLM-style gateways send when the upstream fails mid-answer
            typ = "rate_limit_error" if fault.status == 429 else "server_error"
            err = _error(f"simulated upstream error mid-stream ({fault.status})", typ, fault.status)
            k = min(fault.after_chunks, max(len(events) - 1, 0))
            events = [*events[:k], b"data: " + json.dumps(err).encode() + b"\n\n"]
        if fault is not None and fault.kind in ("malformed_sse", "malformed_json"):
            k = min(fault.after_chunks, max(len(events) - 1, 0))
            garbage = b'data: {"id": "chatcmpl-sim-broken", "choices": [{"delta": {"content\n\n'
            events = [*events[:k], garbage, *events[k:]]
        h.send_sse(events, delay_s=delay_s)

    def _send_body(self, h: _Handler, obj: Any, fault: _Fault | None) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
        if fault is not None and fault.kind == "reset_mid_stream":
            head = h._head(
                200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            h.wfile.write(head + body[: len(body) // 2])
            h.hang_up()
        h.send_bytes(200, body)

    # -- routes ----------------------------------------------------------------------------

    def _control(self, h: _Handler, method: str, path: str, body: Any) -> None:
        args = body if isinstance(body, dict) else {}
        name = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if path in ("/", "/_sim", "/_sim/health"):
                return h.send_json(200, {"ok": True, "providers": self.urls(), "key": SIM_KEY})
            if name == "inject" and method == "POST":
                kind = args.pop("kind")
                self.inject(kind, **args)
            elif name == "script" and method == "POST":
                self.script(args["model"], list(args["replies"]))
            elif name == "limits" and method == "POST":
                self.set_limits(args.pop("provider"), **args)
            elif name == "reset" and method == "POST":
                self.reset()
            elif name == "stats":
                with self._lock:
                    stats = dict(self.stats)
                return h.send_json(200, stats)
            elif name == "requests":
                with self._lock:
                    recs = list(self.requests)
                return h.send_json(200, recs)
            else:
                return h.send_json(404, _error(f"no control route {path!r}"))
        except (KeyError, TypeError, ValueError) as e:
            return h.send_json(400, _error(f"bad control request: {e!r}"))
        h.send_json(200, {"ok": True})

    def _models(self, h: _Handler, provider: ProviderSpec) -> None:
        if provider.name == "sjtu":
            return h.send_bytes(200, fixture_bytes("sjtu_models"))
        data = []
        seen: set[str] = set()
        for m in provider.models:
            for mid in (m.id, *m.aliases):
                if mid not in seen:
                    seen.add(mid)
                    data.append(
                        {
                            "id": mid,
                            "object": "model",
                            "created": 1700000000,
                            "owned_by": provider.name,
                        }
                    )
        h.send_json(200, {"object": "list", "data": data})

    def _model(self, h: _Handler, provider: ProviderSpec, name: Any, kind: str) -> ModelSpec:
        if not isinstance(name, str) or not name:
            h.send_json(400, _error("you must provide a model parameter", param="model"))
            raise _Abort
        spec = provider.find_model(name)
        if spec is None and not provider.models:
            from ..registry import ModelSpec

            # a provider without a catalog (custom) serves whatever model it is asked for
            spec = ModelSpec.model_validate(
                dict(
                    id=name,
                    kind=kind,
                    tools=True,
                    parallel_tools=True,
                    vision=True,
                    json_schema=True,
                    json_mode=True,
                )
            )
        if spec is None:
            h.send_json(
                404,
                _error(
                    f"model not found: The model `{name}` does not exist on {provider.name}.",
                    code="model_not_found",
                ),
            )
            raise _Abort
        if spec.kind != kind:
            what = {"chat": "chat completions", "embedding": "embeddings", "rerank": "rerank"}
            h.send_json(
                400,
                _error(
                    f"The model `{name}` is a {spec.kind} model and does not support the "
                    f"{what[kind]} API."
                ),
            )
            raise _Abort
        return spec

    def _replay(self, provider: ProviderSpec, body: dict[str, Any]) -> tuple[_Replay, bool] | None:
        """Seed example matching this request; bool: the stream must be synthesised."""
        model = str(body.get("model", "")).lower()
        messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            return None
        text = _norm(message_text(users[-1].get("content")))
        stream = bool(body.get("stream"))
        tools = bool(body.get("tools"))
        candidates = [
            r
            for r in REPLAYS
            if r.provider == provider.name
            and model in r.models
            and r.user_text == text
            and r.tools == tools
        ]
        for r in candidates:
            if r.stream == stream:
                return r, False
        for r in candidates:
            if stream and not r.stream:
                return r, True
        return None

    def _chat(
        self, h: _Handler, provider: ProviderSpec, body: dict[str, Any], fault: _Fault | None
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            h.send_json(400, _error("messages must be a non-empty list", param="messages"))
            return
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        replay = self._replay(provider, body)
        if replay is not None:
            self._count("replays")
            rp, synthesise = replay
            if not synthesise:
                if rp.stream:
                    return self._send_raw_sse(h, fixture_sse(rp.fixture), fault)
                return self._send_body(h, fixture_bytes(rp.fixture), fault)
            reply = self._reply_from_fixture(rp.fixture)
            events = stream_events(
                reply, include_usage=include_usage, prompt_tokens=prompt_tokens(body)
            )
            return self._send_events(h, events, fault)

        name = str(body.get("model", ""))
        spec = self._model(h, provider, name, "chat")
        tools = body.get("tools") or []
        if has_image(messages) and not spec.vision:
            h.send_json(
                400, _error(f"{name} is not a multimodal model; image input is not supported.")
            )
            return
        if tools and not spec.tools:
            h.send_json(400, _error(VLLM_NO_TOOLS))
            return
        thinking, shape = self._thinking(h, spec, name, body)
        if thinking and spec.reasoning.passback == "reasoning_content":
            for i, m in enumerate(messages):
                if (
                    isinstance(m, dict)
                    and m.get("role") == "assistant"
                    and m.get("tool_calls")
                    and "reasoning_content" not in m
                ):
                    h.send_json(400, _error(DEEPSEEK_MISSING_REASONING.format(index=i)))
                    return
        sim_opts = body.get("sim") if isinstance(body.get("sim"), dict) else {}
        assert isinstance(sim_opts, dict)
        reply = Reply(content="", model=name, id=self._next_id("chatcmpl"), shape=shape)
        scripted = self._take_script([name, spec.id])
        if scripted is not None:
            self._apply_script(reply, scripted)
        elif spec.requires_user_message and not any(
            isinstance(m, dict) and m.get("role") == "user" for m in messages
        ):
            pass  # DeepSeek V3.2 answers a system-only request with nothing at all
        else:
            self._default_reply(reply, spec, body, thinking)
        if sim_opts.get("chunks"):
            reply.chunks = int(sim_opts["chunks"])
        if sim_opts.get("delay_s"):
            reply.delay_s = float(sim_opts["delay_s"])
        if not thinking and scripted is None:
            reply.reasoning = ""
        if reply.reasoning and reply.shape == "none":
            reply.shape = "reasoning_content"
        ptoks = prompt_tokens(body)
        if stream:
            events = stream_events(reply, include_usage=include_usage, prompt_tokens=ptoks)
            return self._send_events(h, events, fault, reply.delay_s)
        self._send_body(h, completion_body(reply, prompt_tokens=ptoks), fault)

    def _send_raw_sse(self, h: _Handler, data: bytes, fault: _Fault | None) -> None:
        events = [e + b"\n\n" for e in data.split(b"\n\n") if e]
        self._send_events(h, events, fault)

    def _thinking(
        self, h: _Handler, spec: ModelSpec, name: str, body: dict[str, Any]
    ) -> tuple[bool, str]:
        rs = spec.reasoning
        explicit: bool | None = None
        ctk = body.get("chat_template_kwargs")
        if isinstance(ctk, dict):
            for k in ("enable_thinking", "thinking"):
                if k in ctk:
                    explicit = bool(ctk[k])
        if isinstance(body.get("enable_thinking"), bool):
            explicit = body["enable_thinking"]
        th = body.get("thinking")
        if isinstance(th, dict) and th.get("type") in ("enabled", "disabled"):
            explicit = th["type"] == "enabled"
        elif isinstance(th, bool):
            explicit = th
        if rs.toggle == "model_switch":
            low = name.lower()
            if rs.thinking_model and low == rs.thinking_model.lower():
                base = True
            elif rs.non_thinking_model and low == rs.non_thinking_model.lower():
                base = False
            else:
                base = rs.default_on
        else:
            base = rs.default_on
        if rs.toggle in ("enable_thinking", "thinking") and explicit is not None:
            on = explicit
        else:
            # a model without a body switch can only be turned off, never on, by a flag
            on = base and explicit is not False
        shape: str = rs.shape
        if shape == "think_tags" and rs.opens_in_template:
            shape = "think_open"
        override = (h.headers.get(SHAPE_HEADER) or "").strip().lower()
        if override in _SHAPES:
            shape = override
            on = explicit is not False and override != "none"
        if shape == "none":
            on = False
        return on, shape

    def _apply_script(self, reply: Reply, s: dict[str, Any]) -> None:
        reply.content = str(s.get("content") or "")
        reply.reasoning = str(s.get("reasoning") or "")
        for i, tc in enumerate(s.get("tool_calls") or []):
            args = tc.get("arguments", {})
            reply.tool_calls.append(
                SimToolCall(
                    id=str(tc.get("id") or f"call_{reply.id[-6:]}_{i}"),
                    name=str(tc["name"]),
                    arguments=args
                    if isinstance(args, str)
                    else json.dumps(args, ensure_ascii=False),
                )
            )
        reply.finish_reason = s.get("finish_reason") or (
            "tool_calls" if reply.tool_calls else "stop"
        )
        if s.get("chunks"):
            reply.chunks = int(s["chunks"])
        if s.get("delay_s"):
            reply.delay_s = float(s["delay_s"])

    def _default_reply(
        self, reply: Reply, spec: ModelSpec, body: dict[str, Any], thinking: bool
    ) -> None:
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        user_text = message_text(users[-1].get("content")) if users else ""
        last_role = messages[-1].get("role") if messages else None
        tools = body.get("tools") or []
        short = user_text.strip().replace("\n", " ")
        short = short[:160] + ("…" if len(short) > 160 else "")
        ignore_tools = spec.reasoning.tools_only_without_thinking and thinking
        if tools and last_role in ("user", "system") and not ignore_tools:
            fns = choose_tools(
                tools, body.get("tool_choice"), user_text, parallel=spec.parallel_tools
            )
            for i, fn in enumerate(fns):
                args = sample_from_schema(fn.get("parameters") or {}, hint_text=user_text)
                reply.tool_calls.append(
                    SimToolCall(
                        id=f"call_{reply.id[-6:]}_{i}",
                        name=fn["name"],
                        arguments=json.dumps(args if args is not None else {}, ensure_ascii=False),
                    )
                )
            if reply.tool_calls:
                names = ", ".join(t.name for t in reply.tool_calls)
                reply.reasoning = f"The user asks: {short} I should call {names} first."
                reply.finish_reason = "tool_calls"
                return
        if last_role == "tool":
            results = []
            for m in reversed(messages):
                if m.get("role") != "tool":
                    break
                results.append(message_text(m.get("content")))
            quoted = "; ".join(reversed(results))
            reply.reasoning = "I have the tool results now; I will summarise them for the user."
            reply.content = f"Based on the tool results: {quoted}"
        else:
            rf = body.get("response_format")
            rf_type = rf.get("type") if isinstance(rf, dict) else None
            reply.reasoning = (
                f"The user asks: {short} Let me think about it briefly and answer clearly."
            )
            if rf_type == "json_schema":
                js = (rf or {}).get("json_schema") or {}
                schema = js.get("schema") if isinstance(js, dict) else None
                value = sample_from_schema(schema or {}, hint_text=user_text)
                reply.content = json.dumps(value, ensure_ascii=False)
            elif rf_type == "json_object":
                # Like a model following "return JSON with 'a' and 'b' keys": use the quoted
                # names the prompt asks for, else one "answer" key.
                asked = re.findall(r"['\"`]([A-Za-z_][A-Za-z0-9_]{0,40})['\"`]", user_text)
                keys = list(dict.fromkeys(asked)) or ["answer"]
                reply.content = json.dumps(
                    {k: f"Simulated {k} for: {short}" for k in keys}, ensure_ascii=False
                )
            else:
                reply.content = f"Simulated answer from {reply.model}: {short}".rstrip(": ")
        reply.finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and estimate_tokens(reply.content) > limit:
            text = reply.content
            while text and estimate_tokens(text) > limit:
                text = text[: max(0, min(len(text) - 1, int(len(text) * 0.9)))]
            reply.content = text
            reply.finish_reason = "length"

    def _reply_from_fixture(self, name: str) -> Reply:
        body = json.loads(fixture_bytes(name))
        choice = body["choices"][0]
        msg = choice["message"]
        reasoning = msg.get("reasoning_content") or msg.get("reasoning") or ""
        calls = [
            SimToolCall(
                id=t["id"], name=t["function"]["name"], arguments=t["function"]["arguments"]
            )
            for t in msg.get("tool_calls") or []
        ]
        return Reply(
            content=msg.get("content") or "",
            model=body.get("model", ""),
            id=body.get("id", self._next_id("chatcmpl")),
            reasoning=reasoning,
            shape="reasoning" if msg.get("reasoning") else "reasoning_content",
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            created=body.get("created", 0),
        )

    def _completions(
        self, h: _Handler, provider: ProviderSpec, body: dict[str, Any], fault: _Fault | None
    ) -> None:
        name = str(body.get("model", ""))
        spec = self._model(h, provider, name, "chat")
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(p for p in prompt if isinstance(p, str))
        if not isinstance(prompt, str):
            h.send_json(400, _error("prompt must be a string or a list of strings", param="prompt"))
            return
        scripted = self._take_script([name, spec.id])
        if scripted is not None:
            text = str(scripted.get("content") or "")
        else:
            tail = prompt.strip().replace("\n", " ")[-120:]
            text = f" Simulated completion of: {tail}"
        cid = self._next_id("cmpl")
        ptoks = prompt_tokens(body)
        sim_opts = body.get("sim") if isinstance(body.get("sim"), dict) else {}
        assert isinstance(sim_opts, dict)
        if body.get("stream"):
            events = text_completion_events(
                text=text,
                model=name,
                id=cid,
                prompt_tokens=ptoks,
                chunks=sim_opts.get("chunks"),
                include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            )
            return self._send_events(h, events, fault)
        self._send_body(
            h, text_completion_body(text=text, model=name, id=cid, prompt_tokens=ptoks), fault
        )

    def _embeddings(
        self, h: _Handler, provider: ProviderSpec, body: dict[str, Any], fault: _Fault | None
    ) -> None:
        name = str(body.get("model", ""))
        spec = self._model(h, provider, name, "embedding")
        inp = body.get("input")
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            texts = [" ".join(map(str, inp))]  # one pre-tokenised input
        elif isinstance(inp, list) and all(isinstance(x, (str, list)) for x in inp):
            texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inp]
        else:
            h.send_json(400, _error("input must be a string or a list of strings", param="input"))
            return
        if not texts:
            h.send_json(400, _error("input must not be empty", param="input"))
            return
        limit = (
            min(x for x in (provider.embedding_batch, spec.max_batch) if x)
            if (provider.embedding_batch or spec.max_batch)
            else None
        )
        if limit and len(texts) > limit:
            h.send_json(
                400,
                _error(
                    f"batch size {len(texts)} exceeds the limit of {limit} inputs per request",
                    param="input",
                ),
            )
            return
        counts = [estimate_tokens(t) if t else 0 for t in texts]
        if spec.max_input_tokens:
            for i, n in enumerate(counts):
                if n > spec.max_input_tokens:
                    h.send_json(
                        400,
                        _error(
                            f"input {i} has {n} tokens, more than the model's maximum of "
                            f"{spec.max_input_tokens} tokens",
                            param="input",
                        ),
                    )
                    return
        if (
            provider.embedding_batch_tokens
            and len(texts) > 1
            and (sum(counts) > provider.embedding_batch_tokens)
        ):
            h.send_json(
                400,
                _error(
                    f"batch has {sum(counts)} tokens, more than the limit of "
                    f"{provider.embedding_batch_tokens} tokens per request",
                    param="input",
                ),
            )
            return
        native = spec.dimensions or 1024
        dims = body.get("dimensions") or native
        if not isinstance(dims, int) or dims < 1 or (spec.dimensions and dims > spec.dimensions):
            h.send_json(
                400, _error(f"dimensions must be between 1 and {native}", param="dimensions")
            )
            return
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            h.send_json(
                400, _error("encoding_format must be 'float' or 'base64'", param="encoding_format")
            )
            return
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode_embedding(embed_text(spec.id, t, dims), fmt),
            }
            for i, t in enumerate(texts)
        ]
        total = sum(counts)
        self._send_body(
            h,
            {
                "object": "list",
                "data": data,
                "model": name,
                "usage": {"prompt_tokens": total, "total_tokens": total},
            },
            fault,
        )

    def _rerank(
        self,
        h: _Handler,
        provider: ProviderSpec,
        body: dict[str, Any],
        *,
        tei: bool,
        fault: _Fault | None,
    ) -> None:
        name = body.get("model")
        if not name and tei:
            name = next(
                (m.id for m in provider.models if m.kind == "rerank" and m.rerank_shape == "tei"),
                None,
            ) or next((m.id for m in provider.models if m.kind == "rerank"), None)
            if name is None and not provider.models:
                name = "rerank"
        spec = self._model(h, provider, name, "rerank")
        tei = tei or (spec.rerank_shape == "tei" and "texts" in body)
        query = body.get("query")
        raw_docs = body.get("texts") if tei else body.get("documents")
        if not isinstance(query, str) or not isinstance(raw_docs, list):
            need = "texts" if tei else "documents"
            h.send_json(400, _error(f"query (string) and {need} (list) are required"))
            return
        docs = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in raw_docs]
        if spec.max_documents and len(docs) > spec.max_documents:
            h.send_json(
                400,
                _error(
                    f"{len(docs)} documents exceed the limit of {spec.max_documents} per request"
                ),
            )
            return
        scored = sorted(
            ((i, lexical_score(query, d)) for i, d in enumerate(docs)),
            key=lambda x: (-x[1], x[0]),
        )
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n >= 0:
            scored = scored[:top_n]
        tokens = self._input_tokens(body)
        if tei:
            out: Any = [
                {"index": i, "score": s, **({"text": docs[i]} if body.get("return_text") else {})}
                for i, s in scored
            ]
            return self._send_body(h, out, fault)
        results = []
        for i, s in scored:
            item: dict[str, Any] = {"index": i, "relevance_score": s}
            if body.get("return_documents"):
                item["document"] = {"text": docs[i]}
            results.append(item)
        self._send_body(
            h,
            {
                "id": self._next_id("rerank"),
                "model": name,
                "results": results,
                "usage": {"total_tokens": tokens},
            },
            fault,
        )


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
    )
    sim.start()
    print(f"campusllm simulator on {sim.base_url}  (API key: {SIM_KEY}; Ctrl-C to stop)")
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
