"""The catalogue of hostile gateways: each scenario is routes for :class:`HostileServer` plus how
the client under test is set up (model, key, prompt, timeout, retries).

A scenario says only what the gateway does. What a campusllm entry point must make of it is
in :mod:`hostile.matrix` (one table), so the two can be read side by side.

Example:
    >>> s = SCENARIOS["captive_portal"]
    >>> sorted(s.routes(KEY))
    ['chat', 'chat_stream', 'embeddings', 'rerank']
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .bodies import (
    CHAT_MODEL,
    COMPLETION_BYTES,
    DOCS,
    DONE,
    ECHO_KEY,
    EMBED_MODEL,
    GAP,
    HTML,
    KEY,
    OK_EVENTS,
    OK_ROUTES,
    PROMPT,
    QUERY,
    RERANK_MODEL,
    STARTED,
    TEXTS,
    chunk,
    completion,
    embeddings_body,
    inputs,
    ok_embeddings,
    ok_ranking,
    ok_rerank,
    ok_vector,
)
from .server import (
    Hangup,
    Mount,
    Pad,
    Reply,
    Responder,
    Seen,
    Send,
    Trickle,
    json_reply,
    sse_event,
    sse_reply,
)

__all__ = [
    "KEY",
    "ECHO_KEY",
    "CHAT_MODEL",
    "EMBED_MODEL",
    "RERANK_MODEL",
    "TEXTS",
    "DOCS",
    "OK_ROUTES",
    "Scenario",
    "SCENARIOS",
    "ok_vector",
    "ok_ranking",
]

# ----------------------------------------------------------------------------- the scenario type


@dataclass(frozen=True)
class Scenario:
    """A hostile gateway and how the client under test is configured against it.

    ``routes(key)`` builds the routes (the key lets echoing gateways echo it). ``only``
    restricts the entry points (names or families); ``needs`` lists client options an entry
    point must offer (``"retries"``: settable max_retries). ``base_url`` replaces the mount's
    URL (``"refused"``: a closed loopback port). ``watchdog`` is when the test gives up and
    has the server hang up (a call still running then has no working deadline).
    """

    name: str
    doc: str
    routes: Callable[[str], dict[str, Responder]]
    api_key: str = KEY
    prompt: str = PROMPT
    texts: tuple[str, ...] = tuple(TEXTS)
    query: str = QUERY
    chat_model: str = CHAT_MODEL
    timeout: float = 20.0
    max_retries: int = 1
    batch_size: int | None = None
    only: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    base_url: str | None = None
    watchdog: float = 25.0
    secrets: tuple[str, ...] = field(default=())


def _all(reply: Reply | Callable[..., Reply]) -> Callable[[str], dict[str, Responder]]:
    return lambda key: {r: reply for r in ("chat", "chat_stream", "embeddings", "rerank")}


def _ok_plus(**routes: Responder) -> Callable[[str], dict[str, Responder]]:
    return lambda key: {**OK_ROUTES, **routes}


def _only(**routes: Responder) -> Callable[[str], dict[str, Responder]]:
    return lambda key: dict(routes)


def _cut(events: list[bytes], framing: str = "close", rst: bool = False) -> Reply:
    """A stream that stops after ``events``: no [DONE], no finish_reason."""
    return sse_reply(events, tail=(Hangup(rst=rst),), framing=framing)  # type: ignore[arg-type]


def _half_json(body: bytes = COMPLETION_BYTES) -> Reply:
    return Reply(
        headers=(("Content-Type", "application/json"),),
        steps=(Send(body[: len(body) // 2]), Hangup()),
        framing="close",
    )


def _error_event(code: int, *, event: bool, key: bool = True) -> Reply:
    err = {"message": f"upstream failed with {code}", "type": "api_error", "code": code}
    data = {"error": err} if key else err
    return sse_reply(
        [*STARTED, sse_event(data, event="error" if event else None)], tail=(Hangup(),)
    )


def _error_200(code: int) -> Reply:
    return json_reply({"error": {"message": f"upstream failed with {code}", "code": code}})


def _status(status: int, headers: tuple[tuple[str, str], ...] = (), body: Any = None) -> Reply:
    payload = body if body is not None else {"error": {"message": f"HTTP {status}", "code": status}}
    return json_reply(payload, status=status, headers=headers)


def _retry_after(value: str, header: str = "Retry-After") -> Callable[[str], dict[str, Any]]:
    first = _status(429, ((header, value),))
    return lambda key: {
        "chat": [first, json_reply(completion())],
        "chat_stream": [first, sse_reply([*OK_EVENTS, DONE])],
        "embeddings": lambda s, m: first if s.attempt == 0 else ok_embeddings(s, m),
        "rerank": lambda s, m: first if s.attempt == 0 else ok_rerank(s, m),
    }


def _redirect(other: bool) -> Callable[[str], dict[str, Responder]]:
    def moved(seen: Seen, mount: Mount) -> Reply:
        base = mount.other_url if other else mount.url
        return Reply(
            status=307,
            headers=(("Location", f"{base}/moved{seen.path}"), ("Content-Type", "text/html")),
            steps=(Send(b"<html><body>Moved</body></html>"),),
        )

    return lambda key: {
        **{r: moved for r in ("chat", "chat_stream", "embeddings", "rerank")},
        **{f"moved_{r}": v for r, v in OK_ROUTES.items()},
    }


def _echo(status: int, key: str) -> Reply:
    msg = (
        f"Incorrect API key provided: {key}"
        if status == 401
        else f"Key {key} may not use model test-model"
    )
    return _status(
        status, (("X-Echo-Authorization", f"Bearer {key}"),), {"error": {"message": msg}}
    )


def _failing_batches(seen: Seen, mount: Mount) -> Reply:
    if "t2" in inputs(seen):
        return _status(500)
    return ok_embeddings(seen, mount)


def _nonfinite(value: float) -> Callable[[Seen, Mount], Reply]:
    def reply(seen: Seen, mount: Mount) -> Reply:
        texts = inputs(seen)
        return json_reply(embeddings_body(texts, lambda t: [0.1, value, 0.3]))

    return reply


def _trickled_json() -> Reply:
    return Reply(
        headers=(("Content-Type", "application/json"),),
        steps=(Trickle(COMPLETION_BYTES, GAP),),
    )


def _split_utf8() -> Reply:
    events = [
        sse_event(chunk(reasoning="想")),
        sse_event(chunk(content="你好")),
        sse_event(chunk(content="世界")),
        sse_event(chunk(finish="stop")),
        DONE,
    ]
    raw = b"".join(events)
    cuts = [i + 1 for i, b in enumerate(raw) if b >= 0xE0]  # inside each 3-byte character
    pieces, last = [], 0
    for c in cuts:
        pieces.append(raw[last:c])
        last = c
    pieces.append(raw[last:])
    return sse_reply([p for p in pieces if p])


def _some(names: str) -> frozenset[str]:
    """A sample of entry points (a slow scenario need not run on all of them)."""
    return frozenset(names.split())


# one entry point per adapter and family: the retry rules live in one transport
_RETRY_SAMPLE = _some("lc.invoke li.astream_chat core.stream core.aembed core.rerank")

_TOOL_START = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Sh'},
}

_LIST: list[Scenario] = [
    # -- controls: what a good gateway does, and the harness sees it
    Scenario("ok", "well-behaved gateway (control)", lambda key: dict(OK_ROUTES)),
    Scenario(
        "done_without_finish",
        "stream ends with [DONE] but no finish_reason (control: a complete answer)",
        _only(chat_stream=sse_reply([*OK_EVENTS[:3], DONE])),
    ),
    Scenario(
        "finish_without_done",
        "stream has finish_reason, then EOF without [DONE] (control)",
        _only(chat_stream=sse_reply(OK_EVENTS, framing="close")),
    ),
    Scenario(
        "sse_crlf",
        "SSE lines end in CRLF (control)",
        _only(chat_stream=sse_reply([e.replace(b"\n", b"\r\n") for e in [*OK_EVENTS, DONE]])),
    ),
    Scenario(
        "split_utf8",
        "Chinese text cut inside UTF-8 characters across TCP writes (control)",
        _only(chat_stream=_split_utf8()),
    ),
    # -- answers that are not what was asked for
    Scenario(
        "captive_portal",
        "HTTP 200 with an HTML login page",
        _all(Reply(headers=(("Content-Type", "text/html; charset=utf-8"),), steps=(Send(HTML),))),
    ),
    Scenario(
        "json_for_stream",
        "plain JSON chat.completion although stream=true was sent",
        _only(chat_stream=json_reply(completion())),
    ),
    Scenario(
        "empty_stream",
        "stream with no chunk at all, only [DONE]",
        _only(chat_stream=sse_reply([DONE])),
    ),
    Scenario(
        "empty_body",
        "HTTP 200, application/json, empty body",
        _only(chat=json_reply(b""), embeddings=json_reply(b""), rerank=json_reply(b"")),
    ),
    # -- streams cut without [DONE] or finish_reason
    Scenario(
        "cut_content_eof",
        "reasoning + content, then a clean EOF (close-delimited body)",
        _only(chat_stream=_cut(STARTED), chat=_half_json()),
    ),
    Scenario(
        "cut_content_chunked",
        "reasoning + content, then FIN inside a chunked body",
        _only(chat_stream=_cut(STARTED, framing="chunked")),
    ),
    Scenario(
        "cut_content_rst",
        "reasoning + content, then a TCP reset",
        _only(chat_stream=_cut(STARTED, framing="chunked", rst=True)),
    ),
    Scenario(
        "cut_reasoning",
        "reasoning only, then EOF",
        _only(chat_stream=_cut([sse_event(chunk(reasoning="plan A"))])),
    ),
    Scenario(
        "cut_tool_call",
        "half a tool call's arguments, then EOF",
        _only(chat_stream=_cut([sse_event(chunk(tool=_TOOL_START))])),
    ),
    Scenario(
        "cut_think_tag",
        "inline <think> reasoning cut inside the closing tag ('plan A</thi'), then EOF",
        _only(chat_stream=_cut([sse_event(chunk(content="<think>plan A</thi"))])),
    ),
    # -- errors in the middle of a stream (and in an HTTP 200 body)
    *[
        Scenario(
            f"{kind}_{code}",
            f"after content: {what} with code {code}",
            _only(chat_stream=_error_event(code, event=event, key=key)),
        )
        for kind, what, event, key, codes in (
            ("event_error", 'event: error, data {"error": {…}}', True, True, (400, 429, 500)),
            ("event_error_nokey", "event: error, data without an error key", True, False, (500,)),
            ("data_error", 'data {"error": {…}} (no event line)', False, True, (400, 429, 500)),
        )
        for code in codes
    ],
    *[
        Scenario(
            f"error_200_{code}",
            f'HTTP 200 whose body is {{"error": {{"code": {code}}}}}',
            _only(chat=_error_200(code), embeddings=_error_200(code), rerank=_error_200(code)),
        )
        for code in (400, 429, 500)
    ],
    # -- deadlines: the server stalls for 30 s, the client asks for 1 s
    Scenario(
        "keepalive_forever",
        "SSE headers, then ': keepalive' comments every 50 ms for 30 s",
        _only(chat_stream=sse_reply([], tail=(Pad(interval=GAP),))),
        timeout=1.0,
        watchdog=3.5,
        only=_some("li.stream_chat core.stream"),
    ),
    Scenario(
        "trickle_body",
        "a JSON body trickled one byte every 50 ms (15 s in all)",
        _only(chat=_trickled_json(), embeddings=_trickled_json()),
        timeout=1.0,
        watchdog=3.5,
        only=_some("lc.invoke core.embed"),
    ),
    Scenario(
        "stall_after_content",
        "reasoning + content, then keepalive comments for 30 s",
        _only(chat_stream=sse_reply(STARTED, tail=(Pad(interval=GAP),))),
        timeout=1.0,
        watchdog=3.5,
        only=_some("lc.astream li.astream_chat"),
    ),
    # -- broken transport after the connection was made
    Scenario(
        "corrupt_gzip",
        "Content-Encoding: gzip with a corrupt body",
        _all(
            Reply(
                headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
                steps=(Send(gzip.compress(COMPLETION_BYTES)[:12] + b"\x00garbage" * 8),),
            )
        ),
    ),
    Scenario(
        "short_body",
        "a body shorter than its Content-Length, then the connection closes",
        _all(
            Reply(
                headers=(("Content-Type", "application/json"),),
                steps=(Send(COMPLETION_BYTES[:40]),),
                content_length=len(COMPLETION_BYTES),
            )
        ),
    ),
    Scenario(
        "reset_after_headers",
        "status line and headers, then a TCP reset",
        _all(
            Reply(
                headers=(("Content-Type", "application/json"),),
                steps=(Hangup(rst=True),),
                content_length=len(COMPLETION_BYTES),
            )
        ),
    ),
    Scenario(
        "refused",
        "connection refused on a loopback port (custom base_url)",
        lambda key: {},
        base_url="refused",
        max_retries=0,
    ),
    Scenario(
        "refused_campus_model",
        "connection refused, campus-only provider (sjtu) with a loopback base_url",
        lambda key: {},
        base_url="refused",
        max_retries=0,
        chat_model="sjtu:deepseek-chat",
        only=_some("chat"),
    ),
    # -- redirects
    Scenario("redirect_same_host", "307 to another path on the same host", _redirect(False)),
    Scenario("redirect_other_host", "307 to another origin", _redirect(True)),
    # -- Retry-After and LiteLLM's variants
    *[
        Scenario(
            f"retry_after_{label}",
            f"429 with Retry-After: {value}, then success",
            _retry_after(value),
            max_retries=2,
            only=_RETRY_SAMPLE,
        )
        for label, value in (("zero", "0"), ("negative", "-5"), ("garbage", "soon"))
    ],
    Scenario(
        "retry_after_long",
        "429 with Retry-After: 3600",
        _all(_status(429, (("Retry-After", "3600"),))),
        max_retries=3,
    ),
    Scenario(
        "litellm_retry_after",
        "429 with only LiteLLM's llm_provider-retry-after: 3600",
        _all(_status(429, (("llm_provider-retry-after", "3600"),))),
        max_retries=1,
        needs=frozenset({"retries"}),
        only=_some("lc.invoke lc.astream li.achat core.stream lc.aembed_documents core.rerank"),
    ),
    Scenario(
        "gateway_408",
        "LiteLLM's 408 (upstream timeout) on every attempt",
        _all(
            _status(
                408,
                body={"error": {"message": "litellm.Timeout: Request timed out", "code": "408"}},
            )
        ),
        max_retries=1,
        needs=frozenset({"retries"}),
        only=_RETRY_SAMPLE,
    ),
    # -- secrets echoed back
    Scenario(
        "key_echo_401",
        "401 whose body and headers echo the key",
        lambda key: {r: _echo(401, key) for r in ("chat", "chat_stream", "embeddings", "rerank")},
        api_key=ECHO_KEY,
    ),
    Scenario(
        "key_echo_400",
        "400 whose body and headers echo the key",
        lambda key: {r: _echo(400, key) for r in ("chat", "chat_stream", "embeddings", "rerank")},
        api_key=ECHO_KEY,
    ),
    # -- bad numbers
    Scenario("nan_vector", "an embedding with NaN", _only(embeddings=_nonfinite(float("nan")))),
    Scenario(
        "inf_vector", "an embedding with Infinity", _only(embeddings=_nonfinite(float("inf")))
    ),
    Scenario(
        "nan_score",
        "a rerank score NaN",
        _only(rerank=lambda s, m: ok_rerank(s, m, lambda d: float("nan") if "cats" in d else 0.5)),
    ),
    Scenario(
        "embed_batches_fail",
        "the batch holding t2/t3 answers 500 on every attempt, the others succeed",
        _only(embeddings=_failing_batches),
        batch_size=2,
        only=_some("lc.aembed_documents li.aembed_batch core.aembed"),
    ),
    # -- hostile input from the user's side
    Scenario(
        "lone_surrogate",
        "prompt / texts / query with a lone surrogate (\\ud800)",
        lambda key: dict(OK_ROUTES),
        prompt="hi \ud800 there",
        texts=("ok", "bad \ud800 text"),
        query="where \ud800?",
    ),
    *[
        Scenario(
            f"key_{label}",
            f"API key with {what}",
            lambda key: dict(OK_ROUTES),
            api_key=bad,
        )
        for label, what, bad in (
            ("zero_width", "a zero-width space", "sk-test-abc\u200bdef012345"),
            ("fullwidth_digit", "full-width digits", "sk-test-abc\uff11\uff12def0123"),
            ("crlf", "CR/LF inside", "sk-test-abc\r\nX-Injected: 1"),
            ("non_ascii", "Chinese characters", "sk-test-密钥abcdef0123"),
        )
    ],
]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _LIST}
