"""A callback once a request has gone out, through the HTTP library's ``trace`` extension.

The limiter dates a grant when it admits a request; the gateway counts the request when it
arrives. Between the two a burst opens its connections, and a busy machine schedules late.
:func:`on_send` lets the transport tell the limiter when the request has been written
(HTTP/1.1 or HTTP/2: its body sent), so that the grant's slot in the window starts there (see
:meth:`campusllm.limiter.RateLimiter.sent`). Not when the headers start: a pause of this
process between the two (a garbage collection of a big heap takes 0.1 s) would put the
request on the wire later than its slot's start. Any ``trace`` hook the caller set still sees
every event.

Example:
    >>> import httpx
    >>> seen = []
    >>> request = httpx.Request("GET", "http://127.0.0.1:9/")
    >>> on_send(request, lambda: seen.append("sent"), is_async=False)
    >>> request.extensions["trace"]("http11.send_request_body.complete", {})
    >>> request.extensions["trace"]("http11.send_request_body.complete", {}), seen
    (None, ['sent'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["SEND_EVENTS", "on_send", "caller_trace"]

SEND_EVENTS = frozenset({"http11.send_request_body.complete", "http2.send_request_body.complete"})


def caller_trace(request: httpx.Request) -> Any:
    """The ``trace`` hook the caller set on ``request``, under any campusllm put around it."""
    trace: Any = request.extensions.get("trace")
    while getattr(trace, "_campusllm", False):
        trace = trace._inner
    return trace


def on_send(request: httpx.Request, callback: Callable[[], None], *, is_async: bool) -> None:
    """Call ``callback()`` once, when ``request`` has been written (its body sent).

    Wraps the hook already on the request (the caller's, or campusllm's deadline hook); a
    previous attempt's ``on_send`` hook is replaced, not wrapped again. Async requests need a
    coroutine hook: the async connection awaits what the hook returns.
    """
    inner: Any = request.extensions.get("trace")
    if getattr(inner, "_campusllm_send", False):
        inner = inner._inner
    fired = False

    def fire(event: str) -> None:
        nonlocal fired
        if not fired and event in SEND_EVENTS:
            fired = True
            callback()

    hook: Any
    if is_async:

        async def hook(event: str, info: Mapping[str, Any]) -> None:
            fire(event)
            if inner is not None:
                await inner(event, info)

    else:

        def hook(event: str, info: Mapping[str, Any]) -> Any:
            fire(event)
            return inner(event, info) if inner is not None else None

    hook._campusllm = True
    hook._campusllm_send = True
    hook._inner = inner
    request.extensions["trace"] = hook
