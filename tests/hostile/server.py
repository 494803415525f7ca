"""A hostile OpenAI-compatible gateway: raw asyncio streams on 127.0.0.1, in a background thread.

Unlike the simulator, nothing here tries to be a good gateway. Every answer is scripted as a
:class:`Reply`: a status line, headers, a body framing and a list of steps (send bytes, pause,
trickle one byte at a time, pad with SSE comments, hang up with FIN or RST). So a test can
produce exactly what a captive portal, a cutting proxy or a buggy gateway sends, down to the
byte and the TCP close.

The server listens on two ports sharing one state: the second one plays "another host" (a
redirect target of a different origin). A test *mounts* a set of routes and gets a base URL
unique to it; every request to that mount is recorded (:class:`Seen`) with the Authorization
header reduced to a presence flag, so tests can assert what a client sent, when, and whether
a watched secret appeared anywhere in the raw request.

Example:
    >>> server = HostileServer().start()
    >>> m = server.mount({"models": json_reply({"data": [{"id": "m"}]})})
    >>> import httpx
    >>> httpx.get(m.url + "/models").json()
    {'data': [{'id': 'm'}]}
    >>> [s.route for s in m.requests]
    ['models']
    >>> server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

__all__ = [
    "Send",
    "Pause",
    "Trickle",
    "Pad",
    "Hangup",
    "Reply",
    "Seen",
    "Mount",
    "HostileServer",
    "Responder",
    "json_reply",
    "sse_reply",
    "sse_event",
]

# ----------------------------------------------------------------------------- the vocabulary


@dataclass(frozen=True)
class Send:
    """Write these bytes (one chunk under chunked framing)."""

    data: bytes


@dataclass(frozen=True)
class Pause:
    """Wait before the next step (ends early when the test aborts the mount)."""

    seconds: float


@dataclass(frozen=True)
class Trickle:
    """Write ``data`` one byte at a time, ``interval`` seconds apart."""

    data: bytes
    interval: float = 0.2


@dataclass(frozen=True)
class Pad:
    """Write an SSE comment every ``interval`` seconds for ``for_s`` seconds (a stalled stream
    that a per-read timeout never notices)."""

    comment: bytes = b": keepalive\n\n"
    interval: float = 0.2
    for_s: float = 30.0


@dataclass(frozen=True)
class Hangup:
    """Close the connection now: FIN, or with ``rst`` a TCP reset (SO_LINGER 0)."""

    rst: bool = False


Step = Send | Pause | Trickle | Pad | Hangup


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer.

    ``framing``: ``length`` (Content-Length of the body steps, or ``content_length`` to lie
    about it), ``chunked`` (each Send is one chunk; the terminating chunk is sent unless a
    step hangs up first) or ``close`` (no length; the body ends when the server closes).
    ``head=False`` sends nothing at all before the steps (use with ``Hangup`` for a
    connection reset before any byte).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    steps: tuple[Step, ...] = ()
    framing: Literal["length", "chunked", "close"] = "length"
    content_length: int | None = None
    head: bool = True


@dataclass
class Seen:
    """One request as the server received it (the key itself is never stored)."""

    mount: str | None
    port: int
    other_host: bool
    conn: int
    method: str
    target: str
    path: str
    route: str
    headers: dict[str, str]
    auth: bool
    leaked: bool
    body: bytes
    json: Any
    t: float
    attempt: int


@dataclass
class Mount:
    """Routes served under one unique base URL, and what was received there."""

    server: HostileServer
    name: str
    routes: dict[str, Responder]
    secrets: tuple[str, ...] = ()
    requests: list[Seen] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL (ending in ``/v1``) on the main port."""
        return f"http://127.0.0.1:{self.server.port}/{self.name}/v1"

    @property
    def other_url(self) -> str:
        """The same mount on the second port: another origin, for redirect tests."""
        return f"http://127.0.0.1:{self.server.other_port}/{self.name}/v1"

    def abort(self) -> None:
        """Reset every connection still serving this mount (ends stalls and pads at once)."""
        self.server.abort(self.name)

    def seen(self, route: str | None = None) -> list[Seen]:
        """Requests received, optionally only those of one route."""
        with self.server._lock:
            return [s for s in self.requests if route is None or s.route == route]


Responder = Reply | Sequence[Reply] | Callable[[Seen, Mount], Reply]

# ----------------------------------------------------------------------------- body helpers


def json_reply(
    obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = (), **kw: Any
) -> Reply:
    """A JSON body (``NaN``/``Infinity`` are written as JavaScript literals, as some servers do)."""
    body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    hdrs = (("Content-Type", "application/json"), *headers)
    return Reply(status=status, headers=hdrs, steps=(Send(body),), **kw)


def sse_event(obj: Any = None, *, event: str | None = None, raw: str | None = None) -> bytes:
    """One SSE event: ``data: <json>`` (or ``raw`` text), with an optional ``event:`` line."""
    data = raw if raw is not None else json.dumps(obj, ensure_ascii=False)
    lines = ([f"event: {event}"] if event else []) + [f"data: {d}" for d in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def sse_reply(
    events: Sequence[bytes],
    *,
    tail: Sequence[Step] = (),
    framing: Literal["chunked", "close", "length"] = "chunked",
    headers: Iterable[tuple[str, str]] = (),
) -> Reply:
    """A ``text/event-stream`` answer: the events, then the ``tail`` steps."""
    hdrs = (("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"))
    return Reply(
        headers=(*hdrs, *headers),
        steps=(*(Send(e) for e in events), *tail),
        framing=framing,
    )


# ----------------------------------------------------------------------------- the server


class _Closed(Exception):
    """The connection is gone (hung up by the script, the client or an abort)."""


class HostileServer:
    """The scripted gateway: start it, mount routes, read what it received.

    Routes are keyed ``chat`` (non-streaming chat completions), ``chat_stream`` (requests with
    ``"stream": true``), ``embeddings``, ``rerank`` and ``models``; a path starting with
    ``/moved/`` after ``/v1`` uses the key prefixed ``moved_`` (redirect targets). A route may
    be a :class:`Reply`, a sequence (attempt *n* of that route gets item *n*, the last one
    repeats) or a callable ``(seen, mount) -> Reply``. Unmounted paths answer 404.

    Absolute-form request targets (``POST http://host/path``) are accepted, so the server can
    also stand in as a forward proxy for a host name that does not exist.
    """

    def __init__(self) -> None:
        self.port = 0
        self.other_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._mounts: dict[str, Mount] = {}
        self._conns: dict[int, tuple[str | None, asyncio.StreamWriter, asyncio.Event]] = {}
        self._conn_ids = itertools.count(1)
        self._mount_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.open_connections = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> HostileServer:
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        def handler(other: bool) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
            return lambda r, w: self._serve(r, w, other)

        async def listen() -> None:
            for other in (False, True):
                srv = await asyncio.start_server(handler(other), "127.0.0.1", 0, limit=2**20)
                port = srv.sockets[0].getsockname()[1]
                if other:
                    self.other_port = port
                else:
                    self.port = port
                self._servers.append(srv)

        loop.run_until_complete(listen())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        for srv in self._servers:
            srv.close()
        for _, writer, ev in list(self._conns.values()):
            ev.set()
            _reset(writer)

    # -- mounts -----------------------------------------------------------------------------

    def mount(self, routes: dict[str, Responder], *, secrets: Sequence[str] = ()) -> Mount:
        """Serve ``routes`` under a fresh base URL; ``secrets`` are watched in raw requests."""
        name = f"m{next(self._mount_ids)}"
        m = Mount(self, name, dict(routes), tuple(s for s in secrets if s))
        with self._lock:
            self._mounts[name] = m
        return m

    def abort(self, mount: str) -> None:
        """Reset the connections currently serving ``mount``."""
        loop = self._loop
        if loop is None:
            return

        def do() -> None:
            for owner, writer, ev in list(self._conns.values()):
                if owner == mount:
                    ev.set()
                    _reset(writer)

        loop.call_soon_threadsafe(do)

    # -- one connection ---------------------------------------------------------------------

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: bool
    ) -> None:
        conn = next(self._conn_ids)
        aborted = asyncio.Event()
        self._conns[conn] = (None, writer, aborted)
        self.open_connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = self.other_port if other else self.port
        try:
            while not aborted.is_set():
                request = await _read_request(reader)
                if request is None:
                    break
                keep = await self._answer(request, conn, port, other, writer, aborted)
                if not keep:
                    break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.LimitOverrunError:
            pass
        finally:
            self.open_connections -= 1
            self._conns.pop(conn, None)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self,
        request: tuple[str, str, list[tuple[str, str]], bytes, bytes],
        conn: int,
        port: int,
        other: bool,
        writer: asyncio.StreamWriter,
        aborted: asyncio.Event,
    ) -> bool:
        method, target, headers, body, raw = request
        url = urllib.parse.urlsplit(target)
        path = url.path or "/"
        parts = path.lstrip("/").split("/", 1)
        with self._lock:
            mount = self._mounts.get(parts[0])
        rest = "/" + (parts[1] if len(parts) > 1 else "")
        rest = rest[3:] if rest.startswith("/v1/") else rest
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = None
        route = _route_of(rest, method, data)
        hdrs = {k.lower(): v for k, v in headers}
        auth = "authorization" in hdrs
        if auth:
            hdrs["authorization"] = "<present>"
        seen = Seen(
            mount=mount.name if mount else None,
            port=port,
            other_host=other,
            conn=conn,
            method=method,
            target=target,
            path=rest,
            route=route,
            headers=hdrs,
            auth=auth,
            leaked=bool(mount and any(s.encode() in raw for s in mount.secrets)),
            body=body,
            json=data,
            t=time.monotonic(),
            attempt=0,
        )
        if mount is None:
            reply = json_reply({"error": {"message": f"no mount at {path}"}}, status=404)
        else:
            self._conns[conn] = (mount.name, writer, aborted)
            with self._lock:
                seen.attempt = mount.attempts.get(route, 0)
                mount.attempts[route] = seen.attempt + 1
                mount.requests.append(seen)
            try:
                reply = _pick(mount, route, seen)
            except Exception as e:  # a bug in a scenario must show, not hang the client
                reply = json_reply({"error": {"message": f"scenario bug: {e!r}"}}, status=599)
        close = hdrs.get("connection", "").lower() == "close"
        return await _play(reply, writer, aborted) and not close


def _route_of(rest: str, method: str, data: Any) -> str:
    prefix = ""
    if rest.startswith("/moved/"):
        prefix, rest = "moved_", rest[len("/moved") :]
    tail = rest.rstrip("/")
    if tail.endswith("/chat/completions"):
        stream = isinstance(data, dict) and data.get("stream") is True
        key = "chat_stream" if stream else "chat"
    elif tail.endswith("/embeddings"):
        key = "embeddings"
    elif tail.endswith("/rerank"):
        key = "rerank"
    elif tail.endswith("/models"):
        key = "models"
    else:
        key = tail.rsplit("/", 1)[-1] or "root"
    return prefix + key


def _pick(mount: Mount, route: str, seen: Seen) -> Reply:
    responder = mount.routes.get(route)
    if responder is None:
        return json_reply({"error": {"message": f"no route {route!r} in this scenario"}}, 404)
    if isinstance(responder, Reply):
        return responder
    if callable(responder):
        return responder(seen, mount)
    seq = list(responder)
    return seq[min(seen.attempt, len(seq) - 1)]


# ----------------------------------------------------------------------------- HTTP plumbing


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, list[tuple[str, str]], bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    lower = {k.lower(): v for k, v in headers}
    if lower.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        n = int(lower.get("content-length") or 0)
        body = await reader.readexactly(n) if n else b""
    return method, target, headers, body, head + body


def _frame(data: bytes, framing: str) -> bytes:
    if framing == "chunked":
        return b"%x\r\n" % len(data) + data + b"\r\n" if data else b""
    return data


async def _wait(aborted: asyncio.Event, seconds: float) -> None:
    """Sleep, but end the whole reply at once when the test aborts the mount."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(aborted.wait(), max(0.0, seconds))
    if aborted.is_set():
        raise _Closed


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if writer.is_closing():
        raise _Closed
    writer.write(data)
    await writer.drain()


async def _play(reply: Reply, writer: asyncio.StreamWriter, aborted: asyncio.Event) -> bool:
    """Send ``reply``; True when the connection may serve another request."""
    framing = reply.framing
    if reply.head:
        body_len = sum(len(s.data) for s in reply.steps if isinstance(s, (Send, Trickle)))
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {reply.status} {phrase}", "Server: hostile"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if framing == "length":
            n = reply.content_length if reply.content_length is not None else body_len
            lines.append(f"Content-Length: {n}")
        elif framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append("Connection: close")
        await _write(writer, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    for step in reply.steps:
        if isinstance(step, Send):
            await _write(writer, _frame(step.data, framing))
        elif isinstance(step, Pause):
            await _wait(aborted, step.seconds)
        elif isinstance(step, Trickle):
            for i in range(len(step.data)):
                await _write(writer, _frame(step.data[i : i + 1], framing))
                await _wait(aborted, step.interval)
        elif isinstance(step, Pad):
            end = time.monotonic() + step.for_s
            while time.monotonic() < end:
                await _write(writer, _frame(step.comment, framing))
                await _wait(aborted, step.interval)
        elif isinstance(step, Hangup):
            if step.rst:
                # a reset discards what the peer has not read yet: let it read first
                await _wait(aborted, 0.05)
                _reset(writer)
            else:
                writer.close()  # asyncio flushes what was written, then sends FIN
            raise _Closed
    if framing == "chunked":
        await _write(writer, b"0\r\n\r\n")
    if framing == "close" or (
        reply.content_length is not None and reply.content_length != body_len
    ):
        # the body ends where the connection does (or, lying about its length, early)
        writer.close()
        return False
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
