"""What goes out on a request: its token count, the key, and where a redirect may lead.

* :func:`request_tokens` estimates what a gateway's TPM counter will charge for the input;
* :func:`set_key` puts the key on a request just before it is sent and :func:`remove_key`
  takes it off right after, so the request objects that responses, exceptions and
  tracebacks keep never hold it; a key about to travel over plain ``http://`` to another
  machine is warned about once per address;
* :func:`follow_redirect` decides whether a redirect is followed: only within the origin
  (scheme, host and port) the key was meant for.

Example:
    >>> import httpx
    >>> from pydantic import SecretStr
    >>> req = httpx.Request("POST", "https://gw.example.edu.cn/v1/chat/completions")
    >>> set_key(req, SecretStr("sk-example-0123"), raw=False, who="sjtu")
    >>> req.headers["authorization"]
    'Bearer sk-example-0123'
    >>> remove_key(req)
    >>> req.headers["authorization"]
    '***'
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..tokens import estimate_tokens
from .hints import is_loopback
from .library import library_of

if TYPE_CHECKING:
    import httpx

__all__ = [
    "request_json",
    "input_tokens",
    "request_tokens",
    "set_key",
    "remove_key",
    "RedirectRefused",
    "follow_redirect",
]

log = logging.getLogger("campusllm")

REDACTED = "***"
"""The Authorization value left on a request once it was sent."""

FOLLOWED = frozenset({301, 302, 307, 308})
"""Redirects followed (within the origin) by resending the same method and body."""
MAX_REDIRECTS = 5

_clear_text_warned: set[str] = set()
_clear_text_lock = threading.Lock()


# ----------------------------------------------------------------------------- tokens


def request_json(request: httpx.Request) -> Any:
    """The request's JSON body, or None."""
    try:
        return json.loads(request.content) if request.content else None
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: body not read
        return None


def input_tokens(body: Any) -> int:
    """Input tokens of a chat, embedding or rerank request body."""
    if not isinstance(body, dict):
        return 0
    texts: list[str] = []

    def add(x: object) -> None:
        if isinstance(x, str):
            texts.append(x)
        elif isinstance(x, list):
            for part in x:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])

    for m in body.get("messages") or []:
        if isinstance(m, dict):
            add(m.get("content"))
            add(m.get("reasoning_content"))
    for field in ("prompt", "input", "query", "documents", "texts"):
        add(body.get(field))
    return sum(estimate_tokens(t) for t in texts if t)


def request_tokens(request: httpx.Request) -> int:
    """Input tokens a request will be charged, estimated like the gateways' TPM counters.

    Example:
        >>> import httpx
        >>> request_tokens(httpx.Request("POST", "http://x", json={"input": ["上海交大"]}))
        4
    """
    return input_tokens(request_json(request))


# ----------------------------------------------------------------------------- the key


def set_key(request: httpx.Request, key: SecretStr, *, raw: bool, who: str) -> None:
    """Put the key on ``request`` (``raw``: the key alone, else ``Bearer``); ``who`` names
    the provider in the plain-http warning."""
    value = key.get_secret_value()
    request.headers["Authorization"] = value if raw else f"Bearer {value}"
    if value and request.url.scheme == "http":
        _warn_clear_text(request, who)


def remove_key(request: httpx.Request) -> None:
    """Take the key off a request that was sent (it lives on in responses and exceptions)."""
    if "Authorization" in request.headers:
        request.headers["Authorization"] = REDACTED


def _warn_clear_text(request: httpx.Request, who: str) -> None:
    if is_loopback(str(request.url.host)):
        return
    origin = f"http://{request.url.netloc.decode('ascii', 'replace')}"
    with _clear_text_lock:
        if origin in _clear_text_warned:
            return
        _clear_text_warned.add(origin)
    log.warning(
        "campusllm: the API key for %s is sent unencrypted over plain http:// to %s; anyone "
        "on the network path can read it. Use an https:// base URL if the gateway offers one.",
        who,
        origin,
    )


# ----------------------------------------------------------------------------- redirects


class RedirectRefused(Exception):
    """A redirect that is not followed, and why (the transport raises a typed error for it).

    Example:
        >>> RedirectRefused(302, "https://a/v1", "https://b/", "another origin").why
        'another origin'
    """

    def __init__(self, status: int, source: str, target: str | None, why: str) -> None:
        super().__init__(why)
        self.status, self.source, self.target, self.why = status, source, target, why


def _origin(url: Any) -> tuple[str, str, int | None]:
    scheme = str(url.scheme).lower()
    port = url.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, str(url.host).lower(), port


def follow_redirect(
    response: httpx.Response, request: httpx.Request, hops: int
) -> httpx.Request | None:
    """The request to send for a redirect ``response`` to ``request``, or None if it is none.

    Followed: 301, 302, 307 and 308 within the origin of ``request``, the same method and
    body resent, at most :data:`MAX_REDIRECTS` in a row. Anything else raises
    :class:`RedirectRefused`.

    Example:
        >>> import httpx
        >>> req = httpx.Request("POST", "https://gw.example.edu.cn/v1/chat/completions")
        >>> moved = httpx.Response(307, headers={"Location": "/v2/chat/completions"})
        >>> str(follow_redirect(moved, req, 0).url)
        'https://gw.example.edu.cn/v2/chat/completions'
        >>> away = httpx.Response(302, headers={"Location": "https://login.example.com/"})
        >>> follow_redirect(away, req, 0)
        Traceback (most recent call last):
        ...
        campusllm.transport.outgoing.RedirectRefused: it leaves the gateway's origin, ...
    """
    status = response.status_code
    if not 300 <= status < 400 or status == 304:
        return None
    location = response.headers.get("location")
    target = request.url.join(location) if location else None
    why = None
    if target is None:
        why = "the answer names no Location"
    elif status not in FOLLOWED:
        why = f"HTTP {status} would turn the request into another one"
    elif _origin(target) != _origin(request.url):
        why = "it leaves the gateway's origin, and the API key must not go there"
    elif hops >= MAX_REDIRECTS:
        why = f"it is redirect number {hops + 1} in a row"
    if why is not None:
        raise RedirectRefused(status, str(request.url), str(target) if target else None, why)
    log.debug("campusllm: %s redirected (%s) to %s", request.url, status, target)
    follow: httpx.Request = library_of(request).Request(
        request.method,
        target,
        headers=request.headers,
        content=request.content,
        extensions=dict(request.extensions),
    )
    return follow
