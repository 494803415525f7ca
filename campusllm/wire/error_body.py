"""The one parser of gateway error bodies, whatever shape a gateway uses.

Gateways report errors as OpenAI's ``{"error": {"message", "type", "code"}}``, vLLM's
``{"object": "error", ...}``, new-api's ``{"success": false, "message": ...}``, a bare
``{"code": 40001, "msg": ...}``, FastAPI's ``{"detail": ...}`` — in HTTP error responses, in
HTTP 200 bodies (one-api) and as events in the middle of a stream. Every place that reads
one asks :func:`parse_gateway_error`.

Example:
    >>> err = parse_gateway_error({"error": {"message": "overloaded", "code": 503}})
    >>> err.message, err.status
    ('overloaded', 503)
    >>> parse_gateway_error({"choices": []}) is None
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["GatewayError", "parse_gateway_error", "error_event_body"]

# What {"code": ..., "msg": ...} bodies use for "no error".
_OK_CODES = (0, 200, "0", "200", "success", "ok")


class GatewayError(NamedTuple):
    """An error as the gateway described it.

    ``code`` is what the gateway sent (an HTTP-like number, a string, or nothing);
    :attr:`status` is the HTTP status it stands for, when it is one.

    Example:
        >>> GatewayError("slow down", code="429").status
        429
    """

    message: str | None
    code: Any = None
    type: str | None = None
    raw: Any = None
    """The error object as sent (for a description when there is no message)."""

    @property
    def status(self) -> int | None:
        """``code`` as an HTTP error status (400-599), else None."""
        code = self.code
        if isinstance(code, str) and code.strip().isdigit():
            code = int(code.strip())
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            return code
        return None

    def describe(self) -> str:
        """The message, or the raw error object when the gateway sent no message."""
        if self.message:
            return self.message
        if self.raw:
            return json.dumps(self.raw, ensure_ascii=False, default=str)
        return "no message"


def _message_of(table: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = table.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def _top_level_message(body: Mapping[str, Any]) -> str | None:
    found = _message_of(body, ("message", "msg", "detail", "error_msg"))
    if found is None and isinstance(body.get("detail"), list) and body["detail"]:
        # FastAPI validation errors: a list of {"loc", "msg", "type"}
        found = json.dumps(body["detail"], ensure_ascii=False)[:300]
    return found


def parse_gateway_error(body: Any, *, known_error: bool = False) -> GatewayError | None:
    """The error ``body`` reports, or None when it does not look like one.

    ``known_error`` says the body is an error whatever its shape (an HTTP error status, an
    ``event: error`` in a stream): any message-like field is then taken.

    Example:
        >>> parse_gateway_error({"success": False, "message": "额度不足"}).message
        '额度不足'
        >>> parse_gateway_error({"detail": "Not Found"}) is None
        True
        >>> parse_gateway_error({"detail": "Not Found"}, known_error=True).message
        'Not Found'
    """
    if not isinstance(body, Mapping):
        return None
    err = body.get("error")
    found: GatewayError | None = None
    if err:
        if isinstance(err, Mapping):
            found = GatewayError(
                _message_of(err, ("message", "msg", "detail")),
                code=err.get("code"),
                type=err.get("type") if isinstance(err.get("type"), str) else None,
                raw=dict(err),
            )
        else:
            found = GatewayError(str(err), raw=err)
    elif body.get("object") == "error":  # vLLM / SGLang
        found = GatewayError(
            _message_of(body, ("message",)),
            code=body.get("code"),
            type=body.get("type") if isinstance(body.get("type"), str) else None,
        )
    elif body.get("success") is False:  # new-api and many campus gateways
        found = GatewayError(_message_of(body, ("message", "msg")), code=body.get("code"))
    elif (
        "choices" not in body
        and isinstance(body.get("msg") or body.get("message"), str)
        and ("code" in body or "status" in body)
        and body.get("code", body.get("status")) not in _OK_CODES
    ):  # {"code": 40001, "msg": "..."} style
        found = GatewayError(
            _message_of(body, ("msg", "message")), code=body.get("code", body.get("status"))
        )
    if not known_error:
        return found
    if found is None:
        return GatewayError(_top_level_message(body), code=body.get("code", body.get("status")))
    if found.message is None:
        found = GatewayError(
            _top_level_message(body), code=found.code, type=found.type, raw=found.raw
        )
    return found


def error_event_body(data: str) -> dict[str, Any]:
    """The body of an SSE ``event: error``, as an ``{"error": {...}}`` object.

    Gateways send the error object itself, an ``{"error": ...}`` wrapper, or plain text.

    Example:
        >>> error_event_body('{"message": "upstream died", "code": 502}')
        {'error': {'message': 'upstream died', 'code': 502}}
        >>> error_event_body("upstream died")
        {'error': {'message': 'upstream died'}}
    """
    try:
        parsed: Any = json.loads(data)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        if parsed.get("error"):
            return dict(parsed)
        return {"error": dict(parsed)}
    return {"error": {"message": data.strip() or "error event without a message"}}
