"""A tiny vLLM-like model server that LiteLLM routes some models to.

LiteLLM's own ``mock_response`` cannot time out, die mid-stream or answer in vLLM's shapes; this
server can, deterministically, and counts what reached it (so a test can tell how many
generations a client's retries started). The model name picks the behaviour:

``reasoner``     reasoning in ``reasoning_content`` (as vLLM's deepseek_r1 parser sends it)
``reasoning``    reasoning in ``reasoning`` (as newer vLLM releases name the field)
``think``        reasoning inline as ``<think>...</think>`` in ``content``
``slow``         waits ``slow_s`` before answering (LiteLLM's per-model timeout is shorter)
``dies``         streams a few chunks, then drops the connection
``context``      vLLM's 400 for a prompt longer than the context window
``badcred``      401: the gateway's own upstream key is wrong
``toolstrict``   500 with a validation error when an assistant message's content is not a
                 string (``null`` or a list of parts, as llama-cpp-python's server answers);
                 otherwise a plain answer
``drop``         drops the connection halfway through a (non-streamed) response body

Example:
    >>> with Upstream() as up:
    ...     import httpx
    ...     body = {"model": "reasoner", "messages": [{"role": "user", "content": "hi"}]}
    ...     r = httpx.post(up.url + "/chat/completions", json=body)
    >>> r.json()["choices"][0]["message"]["reasoning_content"]
    'Think: the user greets.'
"""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Hello from upstream."
REASONING = "Think: the user greets."
DIES_CHUNKS = ["Partial ", "answer ", "before "]
CONTEXT_ERROR = (
    "This model's maximum context length is 32768 tokens. However, you requested 40000 "
    "tokens (39000 in the messages, 1000 in the completion). Please reduce the length of the "
    "messages or completion."
)


class Upstream:
    """Start with ``with Upstream() as up:``; ``up.url`` ends at ``/v1``."""

    def __init__(self, slow_s: float = 10.0) -> None:
        self.slow_s = slow_s
        self.hits: collections.Counter[str] = collections.Counter()
        self.bodies: list[tuple[str, dict[str, Any]]] = []  # (model, request body)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self.bodies.clear()

    def _record(self, model: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.hits[model] += 1
            self.bodies.append((model, body))


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _completion(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }


def _pieces(text: str) -> list[str]:
    """Word-sized stream pieces that join back to exactly ``text``."""
    return re.findall(r"\S+\s*|\s+", text)


def _make_handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _json(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            names = [
                "reasoner",
                "think",
                "slow",
                "dies",
                "context",
                "badcred",
                "toolstrict",
                "drop",
            ]
            self._json(200, {"object": "list", "data": [{"id": n} for n in names]})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            # Through LiteLLM the model is "slow"; called directly it is the registry id.
            model = str(body.get("model", "")).removeprefix("peer-")
            up._record(model, body)
            stream = bool(body.get("stream"))
            if model == "slow":
                time.sleep(up.slow_s)
            if model == "context":
                err = {"message": CONTEXT_ERROR, "type": "BadRequestError", "code": 400}
                return self._json(400, {"object": "error", **err})
            if model == "badcred":
                msg = "Incorrect API key provided: sk-up***. Find your API key in the console."
                err = {"message": msg, "type": "invalid_request_error", "code": "invalid_api_key"}
                return self._json(401, {"error": err})
            if model == "drop":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-upstream", "choices": [')
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if model == "toolstrict":
                for i, m in enumerate(body.get("messages", [])):
                    if m.get("role") == "assistant" and not isinstance(m.get("content"), str):
                        detail = [
                            {
                                "loc": ["body", "messages", i, "content"],
                                "type": "string_type",
                                "msg": "Input should be a valid string",
                                "input": None,
                            }
                        ]
                        return self._json(
                            500,
                            {
                                "error": {
                                    "message": json.dumps(detail),
                                    "type": "internal_server_error",
                                }
                            },
                        )
            field = "reasoning" if model == "reasoning" else "reasoning_content"
            if model == "think":
                content, reasoning = f"<think>{REASONING}</think>{ANSWER}", None
            elif model in ("reasoner", "reasoning"):
                content, reasoning = ANSWER, REASONING
            else:
                content, reasoning = ANSWER, None
            if not stream:
                msg: dict[str, Any] = {"role": "assistant", "content": content}
                if reasoning is not None:
                    msg[field] = reasoning
                return self._json(200, _completion(model, msg))
            # Chunked, so that hanging up without the last chunk is a broken response (as when
            # a model server dies), not the end of a body delimited by the connection closing.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send(_chunk(model, {"role": "assistant", "content": ""}))
            if model == "dies":
                for piece in DIES_CHUNKS:
                    self._send(_chunk(model, {"content": piece}))
                    time.sleep(0.05)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reasoning is not None:
                for piece in _pieces(reasoning):
                    self._send(_chunk(model, {field: piece}))
            for piece in _pieces(content):
                self._send(_chunk(model, {"content": piece}))
            self._send(_chunk(model, {}, "stop"))
            self._send(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _send(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
