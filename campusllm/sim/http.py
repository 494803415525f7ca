"""HTTP plumbing of the simulator: the threaded server, request bodies, responses, SSE, auth.

stdlib only (``http.server``): HTTP/1.1 keep-alive, one daemon thread per connection. Nothing
here knows about routes, faults or quotas: the server hands every request to an :class:`App`,
which answers through the :class:`Handler`'s writing methods.

Example:
    >>> error_body("bad model", param="model")["error"]["param"]
    'model'
"""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ..registry import ProviderSpec

__all__ = [
    "Abort",
    "App",
    "Handler",
    "SimHTTPServer",
    "authenticate",
    "error_body",
]

# Events of one SSE response are written in batches of about this many bytes when no delay is
# asked for: one syscall per event would make 200 concurrent 500-chunk streams CPU-bound.
_BATCH_WRITE = 64 * 1024


class Abort(Exception):
    """Raised inside request handling once the response (or a fault) has been written.

    Lets a helper deep inside a route answer (a 404, a 401) and end the request at once.

    Example:
        >>> def need_model(h, body):  # doctest: +SKIP
        ...     if "model" not in body:
        ...         h.send_json(400, error_body("you must provide a model parameter"))
        ...         raise Abort
    """


class App(Protocol):
    """What the HTTP server needs from the application behind it.

    Example:
        >>> class Hello:  # serve it with SimHTTPServer(("127.0.0.1", 0), Hello())
        ...     def handle(self, h: Handler, method: str, raw: bytes) -> None:
        ...         h.send_json(200, {"method": method, "path": h.path})
        ...     def count(self, key: str, n: int = 1) -> None:
        ...         pass
    """

    def handle(self, h: Handler, method: str, raw: bytes) -> None:
        """Answer one request (``raw``: its body bytes) through ``h``."""
        ...

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the statistic ``key`` (the server counts every status code it sends)."""
        ...


def error_body(
    message: str, type_: str = "invalid_request_error", code: Any = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-style error object, as the gateways send it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class SimHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections so it can drop them fast.

    Example:
        >>> import httpx
        >>> class Hello:
        ...     def handle(self, h: Handler, method: str, raw: bytes) -> None:
        ...         h.send_json(200, {"method": method, "path": h.path})
        ...     def count(self, key: str, n: int = 1) -> None:
        ...         pass
        >>> server = SimHTTPServer(("127.0.0.1", 0), Hello())
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> httpx.get(f"http://127.0.0.1:{server.server_address[1]}/hi").json()
        {'method': 'GET', 'path': '/hi'}
        >>> server.shutdown(); server.server_close(); server.drop_connections()
    """

    daemon_threads = True
    block_on_close = False  # idle keep-alive threads must not delay stop()
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, Handler)
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def track(self, sock: socket.socket, add: bool) -> None:
        """Remember (``add``) or forget an open connection."""
        with self._conns_lock:
            if add:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def drop_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones would otherwise linger)."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (resets, cancelled streams) are routine here; anything else
        # is a simulator bug and is reported as usual.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """One connection: reads requests, hands them to the app, writes what the app answers.

    Example:
        >>> def handle(h: Handler, method: str, raw: bytes) -> None:  # doctest: +SKIP
        ...     h.send_sse([b'data: {"choices": []}\\n\\n', b"data: [DONE]\\n\\n"])
    """

    protocol_version = "HTTP/1.1"
    server_version = "campusllm-sim"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are dropped after this
    server: SimHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the app's statistic ``key``."""
        self.server.app.count(key, n)

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        try:
            self.server.app.handle(self, method, raw)
        except Abort:
            pass
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as e:  # a simulator bug must still produce a response
            self.close_connection = True
            try:
                self.send_json(500, error_body(f"simulator error: {type(e).__name__}: {e}"))
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

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        """The status line and headers of a response (counted in the app's statistics)."""
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
        self.count(str(status))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A complete response with a ``Content-Length``."""
        head = self.head(
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        self.wfile.write(head + body)

    def send_json(self, status: int, obj: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        """``obj`` as a JSON response (non-ASCII text kept as UTF-8, as the gateways do)."""
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_bytes(status, body, headers=headers)

    def send_cut_body(self, body: bytes, keep: int) -> None:
        """Announce all of ``body`` but send only its first ``keep`` bytes, then hang up."""
        head = self.head(
            200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        self.wfile.write(head + body[:keep])
        self.hang_up()

    def send_sse(self, events: Sequence[bytes], *, delay_s: float = 0.0) -> None:
        """A complete chunked ``text/event-stream`` response of ``events``."""
        self.start_sse()
        self.write_events(events, delay_s=delay_s)
        self.end_sse()

    def start_sse(self, *, close: bool = False) -> None:
        """Send the headers of an SSE response; ``close``: announce and close after it."""
        if close:
            self.close_connection = True
        self.wfile.write(
            self.head(
                200,
                [
                    ("Content-Type", "text/event-stream; charset=utf-8"),
                    ("Cache-Control", "no-cache"),
                    ("Transfer-Encoding", "chunked"),
                ],
            )
        )

    def write_events(self, events: Sequence[bytes], *, delay_s: float = 0.0) -> None:
        """Send ``events`` as body chunks, ``delay_s`` apart.

        The delay is real time on purpose: it is what a client's read timeout and a user's
        first-token latency see, so it never follows an injected (virtual) clock.
        """
        if delay_s > 0:
            for ev in events:
                time.sleep(delay_s)
                self._chunk(ev)
            return
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

    def end_sse(self) -> None:
        """End the chunked body properly (the connection closes if :meth:`start_sse` said so)."""
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
        raise Abort


def authenticate(h: Handler, provider: ProviderSpec) -> str:
    """The API key of the request in ``provider``'s auth scheme, or answer 401/403 and abort.

    Any key starting ``sk-sim`` is accepted except ``sk-sim-bad`` (401) and
    ``sk-sim-forbidden`` (403, a key without access to the model).
    """
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
                error_body(
                    "this key has no access to the requested model",
                    "permission_error",
                    "forbidden",
                ),
            )
            raise Abort
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
        h.send_json(401, error_body(msg, code="invalid_api_key"))
    raise Abort
