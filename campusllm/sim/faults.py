"""Fault injection: the queue of injected faults and how each kind breaks a response.

A fault is taken by the first request whose path matches; some kinds replace the response
before any route runs (:func:`before_response`), the others are applied while the route
writes its answer (:func:`send_events` for streams, :func:`send_body` for JSON bodies).
:meth:`campusllm.sim.Simulator.inject` documents every kind.

Example:
    >>> q = FaultQueue()
    >>> q.add(Fault("status", times=1, status=503))
    >>> q.take("/sjtu/api/v1/chat/completions").status
    503
    >>> q.take("/sjtu/api/v1/chat/completions") is None
    True
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .gateways import (
    GATEWAYS,
    Gateway,
    has_null_content,
    litellm_router_429,
    litellm_timeout_408,
    litellm_upstream_401,
)
from .http import Abort, Handler, error_body
from .replies import DONE

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultQueue",
    "before_response",
    "send_body",
    "send_events",
    "send_raw_sse",
]

FAULT_KINDS = (
    "status",
    "reset",
    "reset_mid_stream",
    "malformed_json",
    "malformed_sse",
    "slow_first_byte",
    "error_200",
    "error_mid_stream",
    "error_event_mid_stream",
    "truncate_stream",
    "router_429",
    "gateway_408",
    "upstream_401",
    "reject_null_content",
)
_VLLM = GATEWAYS["vllm"]

# new-api's wording when its upstream pool is saturated, sent with HTTP 200.
_SATURATED = "当前分组上游负载已饱和，请稍后再试 (request id: sim)"
_BROKEN_JSON = (
    b'{"id": "chatcmpl-sim-broken", "object": "chat.completion", '
    b'"choices": [{"index": 0, "message": {"content": "trunc'
)
_BROKEN_EVENT = b'data: {"id": "chatcmpl-sim-broken", "choices": [{"delta": {"content\n\n'


@dataclass
class Fault:
    """One injected fault; see :meth:`campusllm.sim.Simulator.inject` for the fields.

    Example:
        >>> Fault("reset_mid_stream", after_chunks=2).after_chunks
        2
        >>> Fault("timeout")
        Traceback (most recent call last):
        ...
        ValueError: unknown fault kind 'timeout'; one of status, ...
    """

    kind: str
    times: int = 1
    status: int = 500
    after_chunks: int = 3
    delay_s: float = 0.5
    path_contains: str | None = None
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")


class FaultQueue:
    """Injected faults waiting for matching requests, oldest first (thread-safe).

    Example:
        >>> q = FaultQueue()
        >>> q.add(Fault("status", status=502, path_contains="/embeddings"))
        >>> q.take("/sjtu/api/v1/chat/completions") is None
        True
        >>> q.take("/sjtu/api/v1/embeddings").status
        502
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` behind the ones already waiting."""
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str, body: Any = None) -> Fault | None:
        """The first fault matching ``path`` (one of its ``times`` used up), else ``None``.

        A ``reject_null_content`` fault waits for a request whose ``body`` has an assistant
        message with ``content: null``.
        """
        with self._lock:
            for f in self._faults:
                if f.kind == "reject_null_content" and has_null_content(body) is None:
                    continue
                if f.path_contains is None or f.path_contains in path:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    def clear(self) -> None:
        """Forget every waiting fault."""
        with self._lock:
            self._faults.clear()


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def before_response(
    h: Handler,
    fault: Fault,
    *,
    stream: bool,
    retry_after: bool,
    gateway: Gateway = _VLLM,
    body: Any = None,
) -> None:
    """Apply the faults that replace the response entirely (they raise :class:`Abort`).

    ``slow_first_byte`` only waits, on real time (a client's read timeout is real), and lets
    the request go on; kinds applied while answering are left alone. ``body``: the request,
    parsed (its model is named in LiteLLM's errors).
    """
    kind = fault.kind
    model = str(body.get("model", "")) if isinstance(body, dict) else ""
    if kind == "slow_first_byte":
        time.sleep(fault.delay_s)
    elif kind in ("router_429", "gateway_408", "upstream_401", "reject_null_content"):
        _send_gateway_failure(h, fault, gateway, model, body, stream=stream)
        raise Abort
    elif kind == "reset":
        h.hang_up(rst=True)
    elif kind == "status":
        _send_status(h, fault, retry_after=retry_after)
        raise Abort
    elif kind == "error_200":
        err = {"error": {"message": _SATURATED, "type": "new_api_error", "param": "", "code": None}}
        if stream:
            h.send_sse([_event(err), DONE])
        else:
            h.send_json(200, err)
        raise Abort
    elif kind in ("malformed_json", "malformed_sse") and not stream:
        h.send_bytes(200, _BROKEN_JSON)
        raise Abort
    elif kind in ("error_mid_stream", "error_event_mid_stream") and not stream:
        # Without a stream there is nothing to interrupt: the error is the whole response.
        h.send_json(fault.status, gateway.mid_stream_error(fault.status))
        raise Abort


def _send_gateway_failure(
    h: Handler, fault: Fault, gateway: Gateway, model: str, body: Any, *, stream: bool
) -> None:
    """The failures LiteLLM reports for its router or its upstream (see ``Simulator.inject``)."""
    if fault.kind == "router_429":
        ra = fault.retry_after_s if fault.retry_after_s is not None else 60.0
        err, headers = litellm_router_429(model, ra)
        h.send_json(429, err, headers)
    elif fault.kind == "gateway_408":
        time.sleep(fault.delay_s)  # the gateway waited this long for its upstream
        err, headers = litellm_timeout_408(model, fault.delay_s, stream=stream)
        h.send_json(408, err, headers)
    elif fault.kind == "upstream_401":
        h.send_json(401, litellm_upstream_401(model))
    else:
        status, err = gateway.null_content_error(model, has_null_content(body) or 0)
        h.send_json(status, err)


def _send_status(h: Handler, fault: Fault, *, retry_after: bool) -> None:
    st = fault.status
    headers: list[tuple[str, str]] = []
    # 429s get a short Retry-After by default so client retries stay fast.
    ra = fault.retry_after_s if fault.retry_after_s is not None else (0.05 if st == 429 else None)
    if ra is not None and retry_after:
        headers.append(("Retry-After", f"{ra:g}"))
    if st in (502, 504):  # what an nginx in front of a dead upstream sends
        html = f"<html><body><h1>{st} {HTTPStatus(st).phrase}</h1></body></html>"
        h.send_bytes(st, html.encode(), "text/html", headers)
    else:
        typ = "rate_limit_error" if st == 429 else "server_error"
        h.send_json(st, error_body(f"simulated upstream error ({st})", typ, st), headers)


def _is_body_event(event: bytes) -> bool:
    """A chunk carrying part of the answer: not ``[DONE]``, a finish chunk or a usage chunk."""
    if not event.startswith(b"data: ") or event.strip() == DONE.strip():
        return False
    try:
        obj = json.loads(event[len(b"data: ") :])
    except ValueError:
        return True
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not choices:
        return False
    return not any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _answer_events(events: Sequence[bytes], n: int) -> list[bytes]:
    """The first ``n`` events that carry part of the answer."""
    return [e for e in events if _is_body_event(e)][:n]


def send_events(
    h: Handler,
    events: Sequence[bytes],
    fault: Fault | None,
    delay_s: float = 0.0,
    gateway: Gateway = _VLLM,
) -> None:
    """Stream ``events`` as SSE, broken the way ``fault`` says (``delay_s``: real time).

    ``gateway`` words the error event of ``error_mid_stream`` and ``error_event_mid_stream``.
    """
    h.count("streams")
    kind = fault.kind if fault is not None else None
    if fault is not None and kind == "reset_mid_stream":
        h.start_sse()
        h.write_events(events[: fault.after_chunks], delay_s=delay_s)
        h.hang_up()
    if fault is not None and kind in ("error_mid_stream", "error_event_mid_stream"):
        # The answer so far, then the error as one more event; the body ends properly and
        # the connection closes, with neither a finish_reason nor [DONE].
        err = _event(gateway.mid_stream_error(fault.status))
        if kind == "error_event_mid_stream":
            err = b"event: error\n" + err
        h.start_sse(close=True)
        h.write_events([*_answer_events(events, fault.after_chunks), err], delay_s=delay_s)
        h.end_sse()
        return
    if fault is not None and kind == "truncate_stream":
        # A clean end of the body and of the connection, but the answer stops half-way.
        h.start_sse(close=True)
        h.write_events(_answer_events(events, fault.after_chunks), delay_s=delay_s)
        h.end_sse()
        return
    if fault is not None and kind in ("malformed_sse", "malformed_json"):
        k = min(fault.after_chunks, max(len(events) - 1, 0))
        events = [*events[:k], _BROKEN_EVENT, *events[k:]]
    h.send_sse(events, delay_s=delay_s)


def send_raw_sse(h: Handler, data: bytes, fault: Fault | None, gateway: Gateway = _VLLM) -> None:
    """Stream an SSE body kept as bytes (a replayed example), event by event."""
    send_events(h, [e + b"\n\n" for e in data.split(b"\n\n") if e], fault, gateway=gateway)


def send_body(h: Handler, obj: Any, fault: Fault | None) -> None:
    """A 200 JSON response (``obj``: bytes as they are, else JSON-encoded), broken by ``fault``.

    ``reset_mid_stream`` and ``truncate_stream`` send half of the body and hang up.
    """
    body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    if fault is not None and fault.kind in ("reset_mid_stream", "truncate_stream"):
        h.send_cut_body(body, len(body) // 2)
    h.send_bytes(200, body)
