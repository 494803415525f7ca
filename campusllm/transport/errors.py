"""Typed errors for what the wire returned: HTTP error statuses and transport exceptions.

Every failure a gateway or the network can cause becomes one error from
:mod:`campusllm.errors`, naming the cause and the fix, in the user's language for the
failures met most (no key, unreachable, 401, 429, timeouts, 5xx: :func:`campusllm.i18n.tr`).
The status → type mapping (:func:`error_for_status`) is written once and serves HTTP error
responses and the error events some gateways send in the middle of a stream. What the
transport already did about a response (how many attempts, why it stopped:
:class:`~.retry.RetryNote`) is part of the message, so "after retries" is said only when
there were retries.

Example:
    >>> import httpx
    >>> from campusllm.registry import resolve
    >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
    >>> err = error_from_response(httpx.Response(429, json={"error": {"message": "slow down"}}), r)
    >>> type(err).__name__, err.status_code
    ('RateLimitError', 429)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..auth import key_env_names, key_validity_hint
from ..errors import (
    AuthenticationError,
    BadRequestError,
    CampusLLMError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TimeoutError,
    UnreachableError,
    exception_chain,
    redact,
    scrub,
)
from ..i18n import tr
from ..registry import ResolvedModel
from ..wire.error_body import parse_gateway_error
from .deadline import AFTER_HEADERS_ATTR, DEADLINE_ATTR
from .hints import (
    is_context_overflow,
    is_gateway_credential_failure,
    is_unknown_model,
    model_hint,
    network_hint,
)
from .library import error_names
from .retry import MAX_RETRY_AFTER_S, RETRY_NOTE, RetryNote, rejects_the_request
from .retry import retry_after_seconds as retry_after_seconds

if TYPE_CHECKING:
    import httpx

__all__ = [
    "error_for_status",
    "error_from_response",
    "error_from_exception",
    "timeout_error",
    "connect_error",
    "redirect_error",
    "network_hint",
]


def format_wait(seconds: float) -> str:
    """A wait as a person reads it.

    Example:
        >>> format_wait(3600), format_wait(42)
        ('3600 s (1 h)', '42 s')
    """
    s = round(seconds)
    if s < 60:
        return tr(f"{seconds:.3g} s", f"{seconds:.3g} 秒")
    h, rem = divmod(s, 3600)
    m = rem // 60
    hours, mins = tr(f"{h} h", f"{h} 小时"), tr(f"{m} min", f"{m} 分钟")
    parts = ([hours] if h else []) + ([mins] if m else [])
    joined = " ".join(parts) or tr("1 min", "1 分钟")
    return tr(f"{s} s ({joined})", f"{s} 秒({joined})")


def _rate_limited(
    where: str,
    how: str,
    said: str,
    resolved: ResolvedModel,
    retry_after: float | None,
    note: RetryNote | None,
    during_stream: bool,
    common: dict[str, Any],
    kept: str,
) -> RateLimitError:
    lim = resolved.provider.limits
    quota = ", ".join(f"{n}={v}" for n, v in (("rpm", lim.rpm), ("tpm", lim.tpm)) if v is not None)
    if quota:
        advice = tr(f"The published quota is {quota} per key; ", f"每个密钥公布的限额为 {quota};")
    else:
        advice = tr("Lower the request rate; ", "请降低请求频率;")
    advice += tr(
        "pass rate_limits=RateLimits(rpm=…, tpm=…) matching your key, or raise max_retries.",
        "传入与你的密钥相符的 rate_limits=RateLimits(rpm=…, tpm=…),或调大 max_retries。",
    )
    answered = tr(
        f"answered 429 Too Many Requests ({how}){said}.", f"返回 429 请求过多({how}){said}。"
    )
    if during_stream:
        what = answered
    elif note is not None and note.reason == "wait_too_long" and retry_after is not None:
        what = tr(
            f"answered 429 Too Many Requests{said} and asked to wait {format_wait(retry_after)} "
            f"before the next request: longer than campusllm waits on its own "
            f"({MAX_RETRY_AFTER_S:g} s), so the request was not resent.",
            f"返回 429 请求过多{said},并要求等待 {format_wait(retry_after)} 后再发请求:超过了 "
            f"campusllm 自动等待的上限({MAX_RETRY_AFTER_S:g} 秒),所以没有重发。",
        )
        advice = (
            tr(
                "The key's quota is used up until then; wait, or use another key or provider. ",
                "在此之前这个密钥的额度已用完;请等待,或换一个密钥或提供方。",
            )
            + advice
        )
    elif note is not None and note.retried:
        n = note.attempts - 1
        what = tr(
            f"kept answering 429 Too Many Requests after {n} {'retry' if n == 1 else 'retries'}"
            f"{said}.",
            f"重试 {n} 次后仍返回 429 请求过多{said}。",
        )
    else:
        what = answered
    wait = (
        tr(
            f" It asked to wait {format_wait(retry_after)}.",
            f"网关要求等待 {format_wait(retry_after)}。",
        )
        if retry_after is not None and not (note and note.reason == "wait_too_long")
        else ""
    )
    return RateLimitError(
        f"{where} {what}{wait}", retry_after=retry_after, hint=advice + kept, **common
    )


def _tries(note: RetryNote | None) -> str:
    if note is None or not note.retried:
        return ""
    n = note.attempts - 1
    return tr(f" after {n} {'retry' if n == 1 else 'retries'}", f",重试 {n} 次后")


def error_for_status(
    status: int,
    resolved: ResolvedModel,
    *,
    message: str | None = None,
    body: str | None = None,
    retry_after: float | None = None,
    during_stream: bool = False,
    note: RetryNote | None = None,
    **partial: Any,
) -> CampusLLMError:
    """The typed error for an HTTP error ``status``, carrying the gateway's own ``message``.

    ``during_stream``: the status came as an error event in the middle of a stream (which
    campusllm never resends); ``partial`` (``partial_content``, ``partial_reasoning``,
    ``partial_tool_calls``) is what had arrived before it. ``note`` says what the transport
    did before handing the response over (attempts, why it stopped).

    Example:
        >>> from campusllm.registry import resolve
        >>> r = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:9/v1")
        >>> type(error_for_status(503, r, message="overloaded")).__name__
        'ServerError'
        >>> type(error_for_status(408, r, message="litellm.Timeout")).__name__
        'TimeoutError'
    """
    provider = resolved.provider
    where = f"{provider.name}:{resolved.model.id}"
    said = f": {message}" if message else ""
    how = (
        tr(f"error {status} in the middle of its answer", f"回答中途出现错误 {status}")
        if during_stream
        else f"HTTP {status}"
    )
    kept = (
        tr(
            " What arrived before the error is kept on it (partial_content, partial_reasoning, "
            "partial_tool_calls); streams are never resent, so nothing is duplicated.",
            "出错前已收到的内容保存在这个错误上(partial_content、partial_reasoning、"
            "partial_tool_calls);流式请求不会重发,所以不会重复。",
        )
        if during_stream
        else ""
    )
    common: dict[str, Any] = {
        "provider": provider.name,
        "model": resolved.model.id,
        "status_code": status,
        "body": body or None,
        **partial,
    }
    if status == 401:
        if is_gateway_credential_failure(message):
            return AuthenticationError(
                tr(
                    f"{where}: the gateway's own key for its model server was refused "
                    f"({how}){said}.",
                    f"{where}:网关自己访问模型服务的密钥被拒绝({how}){said}。",
                ),
                hint=tr(
                    "This is the gateway's problem, not your key: tell the gateway's "
                    f"administrator, or pick another model (`campusllm models {provider.name}`).",
                    "这是网关的问题,不是你的密钥:请告知网关管理员,或换一个模型"
                    f"(`campusllm models {provider.name}`)。",
                )
                + kept,
                **common,
            )
        envs = tr(" or ", " 或 ").join(key_env_names(provider, resolved.model))
        validity = key_validity_hint(provider)
        return AuthenticationError(
            tr(
                f"{where} rejected the API key ({how}){said}. {validity}".rstrip(),
                f"{where} 拒绝了 API 密钥({how}){said}。{validity}",
            ),
            hint=tr(
                f"Check the key in {envs} (or the api_key= you passed); keys can expire.",
                f"请检查 {envs} 中的密钥(或你传入的 api_key=);密钥可能已过期。",
            )
            + kept,
            **common,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{where}: this key may not use the model or endpoint ({how}){said}.",
            hint="Ask the gateway's administrator for access, or pick another model "
            f"(`campusllm models {provider.name}`).{kept}",
            **common,
        )
    if status == 408:
        return TimeoutError(
            tr(
                f"{where}: the gateway gave up waiting for its model server ({how}{_tries(note)})"
                f"{said}. The model is slow or overloaded right now.",
                f"{where}:网关等待其模型服务超时({how}{_tries(note)}){said}。"
                "模型现在很慢或负载过高。",
            ),
            hint=tr(
                "Each retry starts the whole answer again, so campusllm retries a 408 at most "
                "once. Stream the answer (tokens then arrive before the gateway's timeout), ask "
                "for fewer max_tokens, or try another model or later.",
                "每次重试都要重新生成整个回答,所以 campusllm 对 408 最多重试一次。请改用流式输出"
                "(这样 token 会在网关超时之前到达)、减小 max_tokens,或换个模型、稍后再试。",
            )
            + kept,
            **common,
        )
    if status == 429:
        return _rate_limited(
            where, how, said, resolved, retry_after, note, during_stream, common, kept
        )
    if status >= 500 and rejects_the_request(status, body or message):
        return BadRequestError(
            f"{where} refused the request ({how}: its model server says the request is "
            f"invalid){said}.",
            hint="This is an answer about the request, not an outage: it was not retried. "
            "Check the messages and parameters the error names." + kept,
            **common,
        )
    if status >= 500:
        if during_stream:
            what = tr(f"failed ({how}){said}.", f"出错({how}){said}。")
        else:
            what = tr(
                f"failed with HTTP {status}{_tries(note)}{said}.",
                f"出错(HTTP {status}{_tries(note)}){said}。",
            )
        return ServerError(
            f"{where} {what}",
            hint=tr(
                "The gateway is overloaded or down; try again later or another model.",
                "网关过载或宕机;请稍后再试,或换一个模型。",
            )
            + kept,
            **common,
        )
    hint = None
    low = (message or "").lower()
    if "reasoning_content" in low:
        hint = (
            "The model runs in thinking mode and needs its reasoning sent back with each "
            "assistant message of a tool loop; keep the AIMessage objects (with "
            "additional_kwargs['reasoning_content']) in the history instead of rebuilding them."
        )
    elif status == 404 or is_unknown_model(message):
        hint = model_hint(resolved)
    elif status == 413 or is_context_overflow(message):
        hint = (
            f"The request is too long for {resolved.model.id} "
            f"(context window {resolved.model.context_window or 'unknown'} tokens): shorten the "
            "messages, trim the history, or lower max_tokens."
        )
    if kept:
        hint = (hint or "") + kept
    return BadRequestError(f"{where} refused the request ({how}){said}.", hint=hint, **common)


def timeout_error(
    resolved: ResolvedModel, what: str, *, deadline_s: float | None = None
) -> TimeoutError:
    """The error for a gateway that did not answer in time.

    ``what`` names what timed out (the exception's name, or the deadline's description);
    ``deadline_s`` is the total timeout of one attempt when that is what passed.
    """
    if deadline_s is not None:
        return TimeoutError(
            tr(
                f"{resolved.key} did not finish in time: {what}.",
                f"{resolved.key} 没有在时限内完成:{what}。",
            ),
            hint=tr(
                f"timeout={deadline_s:g} bounds one whole attempt (connecting, the headers and "
                "the complete answer or stream). Raise it for long answers (reasoning models can "
                "think for minutes); set read_timeout= to notice a stalled stream sooner.",
                f"timeout={deadline_s:g} 限制一次尝试的全过程(连接、响应头以及完整的回答或流式"
                "输出)。回答较长时请调大它(推理模型可能思考好几分钟);设置 read_timeout= "
                "可以更早发现卡住的流。",
            ),
            provider=resolved.provider.name,
            model=resolved.model.id,
        )
    return TimeoutError(
        tr(
            f"{resolved.key} did not answer in time ({what}).",
            f"{resolved.key} 没有及时应答({what})。",
        ),
        hint=tr(
            "Raise timeout=…; reasoning models can think for minutes before the first token.",
            "请调大 timeout=…;推理模型在输出第一个 token 之前可能要思考好几分钟。",
        ),
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def connect_error(resolved: ResolvedModel, detail: str) -> UnreachableError:
    """The error for a gateway that could not be reached (``detail``: what failed)."""
    return UnreachableError(
        tr(
            f"Cannot connect to {resolved.base_url} ({detail}).",
            f"无法连接到 {resolved.base_url}({detail})。",
        ),
        hint=network_hint(resolved),
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def redirect_error(
    resolved: ResolvedModel,
    status: int,
    source: str,
    target: str | None,
    why: str = "it leaves the gateway's origin, and the API key must not go there",
) -> ProtocolError:
    """The error for a redirect campusllm does not follow (``why``: the reason)."""
    where = target or "no Location"
    return ProtocolError(
        f"{resolved.key}: {source} answered with a redirect (HTTP {status}) to {where}, "
        f"which campusllm does not follow: {why}.",
        hint="If that is the gateway's new address, pass it as base_url=. If it is a login "
        "page of the network (a captive portal), log in to the network first.",
        status_code=status,
        provider=resolved.provider.name,
        model=resolved.model.id,
    )


def _note(response: Any) -> RetryNote | None:
    ext = getattr(response, "extensions", None)
    note = ext.get(RETRY_NOTE) if isinstance(ext, dict) else None
    return note if isinstance(note, RetryNote) else None


def error_from_response(
    response: httpx.Response, resolved: ResolvedModel, body: bytes | None = None
) -> CampusLLMError:
    """The typed error for an HTTP error response (the gateway's own message included).

    ``response`` is an httpx or httpx2 response; ``body`` its bytes when already read
    elsewhere (a streamed response).
    """
    if body is None:
        try:
            body = response.content
        except RuntimeError:  # a streamed response nobody read (ResponseNotRead, StreamError)
            body = b""
    text = body.decode("utf-8", "replace") if body else ""
    status = response.status_code
    if 300 <= status < 400:
        try:
            source = str(response.request.url)
        except RuntimeError:  # a response built without its request
            source = resolved.base_url
        return redirect_error(resolved, status, source, response.headers.get("location"))
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = None
    said = parse_gateway_error(data, known_error=True)
    message = (said.message if said else None) or (text.strip()[:300] if text.strip() else None)
    note = _note(response)
    return error_for_status(
        status,
        resolved,
        message=message,
        body=text,
        retry_after=note.retry_after if note else retry_after_seconds(response.headers),
        note=note,
    )


def _broken_connection(
    exc: BaseException, resolved: ResolvedModel, detail: str, common: dict[str, Any]
) -> CampusLLMError:
    received = getattr(exc, AFTER_HEADERS_ATTR, None)
    if received is not None:
        return ProtocolError(
            tr(
                f"The connection to {resolved.base_url} broke after {resolved.key} had started "
                f"answering ({received} bytes of the body received; {detail}): the answer is "
                "incomplete.",
                f"{resolved.key} 开始回答后,到 {resolved.base_url} 的连接断开了(已收到 "
                f"{received} 字节;{detail}):回答不完整。",
            ),
            hint=tr(
                "A gateway or proxy cut the connection mid-answer; the request was not "
                "resent (it may have been processed). Try again; if it keeps happening with long "
                "answers, stream them or ask the gateway's administrator about its timeouts.",
                "网关或代理在回答中途切断了连接;请求没有重发(它可能已被处理)。请再试一次;"
                "如果长回答总是这样,请改用流式输出,或向网关管理员询问其超时设置。",
            ),
            **common,
        )
    return UnreachableError(
        tr(
            f"The connection to {resolved.base_url} broke before {resolved.key} answered "
            f"({detail}).",
            f"{resolved.key} 应答之前,到 {resolved.base_url} 的连接断开了({detail})。",
        ),
        hint=tr(
            "The gateway (or a proxy in between) closed the connection; retries were "
            "exhausted. Try again later, or check the base URL.",
            "网关(或中间的代理)关闭了连接,重试次数已用完。请稍后再试,或检查地址。",
        ),
        **common,
    )


def error_from_exception(exc: BaseException, resolved: ResolvedModel) -> CampusLLMError:
    """Map httpx/httpx2 and JSON exceptions to campusllm's typed errors.

    An exception that wraps an HTTP-library error (``__cause__``/``__context__``) maps by
    that error. openai SDK exceptions are mapped by :func:`campusllm.openai_sdk.map_sdk_error`.
    A failure to connect is :class:`~campusllm.errors.UnreachableError` (with the campus/VPN
    hint only for a campus-only gateway's own address); a connection that broke after the
    response had started is :class:`~campusllm.errors.ProtocolError`.
    """
    scrub(exc)
    if isinstance(exc, CampusLLMError):
        return exc
    exc = _http_error_in(exc)
    provider = resolved.provider
    common: dict[str, Any] = {"provider": provider.name, "model": resolved.model.id}
    where = f"{provider.name}:{resolved.model.id}"
    host = resolved.base_url
    names = error_names(exc)
    detail = f"{type(exc).__name__}: {redact(str(exc), 200)}"
    deadline = getattr(exc, DEADLINE_ATTR, None)
    if deadline is not None:
        return timeout_error(resolved, redact(str(exc), 300), deadline_s=deadline)
    if "TimeoutException" in names and "ConnectTimeout" not in names:
        return timeout_error(resolved, type(exc).__name__)
    if names & {"ConnectError", "ConnectTimeout"}:
        return connect_error(resolved, detail)
    if names & {"RemoteProtocolError", "ReadError", "WriteError"}:
        return _broken_connection(exc, resolved, detail, common)
    if "HTTPStatusError" in names:
        return error_from_response(exc.response, resolved)  # type: ignore[attr-defined]
    if "DecodingError" in names or isinstance(exc, (ValueError, UnicodeDecodeError)):
        return ProtocolError(
            f"{where} sent data that is not valid JSON/SSE: {redact(str(exc), 200)}",
            hint="Check that the base URL points at an OpenAI-compatible API.",
            **common,
        )
    if names:
        return UnreachableError(f"HTTP error talking to {host}: {detail}", **common)
    return CampusLLMError(f"{where}: {type(exc).__name__}: {redact(str(exc), 300)}", **common)


def _http_error_in(exc: BaseException) -> BaseException:
    """The first HTTP-library error in ``exc``'s chain, through ``__cause__`` and
    ``__context__`` alike (``exc`` itself when there is none)."""
    if isinstance(exc, (ValueError, UnicodeDecodeError)):
        return exc  # undecodable data, whatever was being handled when it was found
    return next((e for e in exception_chain(exc) if error_names(e)), exc)
