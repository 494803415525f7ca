"""Typed errors raised by campusllm and both framework adapters.

Every error names its cause and, where one exists, the fix. Messages never contain an
API key: anything that might echo a request or response goes through :func:`redact` first.

Example:
    >>> from campusllm.errors import AuthenticationError
    >>> try:
    ...     raise AuthenticationError("No API key for 'sjtu'.", hint="Set SJTU_API_KEY.")
    ... except AuthenticationError as e:
    ...     print(e)
    No API key for 'sjtu'. Set SJTU_API_KEY.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CampusLLMError",
    "ConfigError",
    "ModelNotFoundError",
    "AuthenticationError",
    "PermissionDeniedError",
    "RateLimitError",
    "BudgetExceededError",
    "UnreachableError",
    "TimeoutError",
    "ProtocolError",
    "BadRequestError",
    "CapabilityError",
    "ServerError",
    "StreamInterruptedError",
    "redact",
    "scrub",
    "exception_chain",
]

_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{6,}"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer)[A-Za-z0-9_\-\.=]{6,}"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9_\-\.=]{6,}"),
]

_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` removes it even if it has no known shape."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def redact(text: Any, limit: int | None = 500) -> str:
    """Return ``text`` as a string with anything key-like replaced by ``***``.

    Example:
        >>> redact("Authorization: Bearer sk-abcdefghijkl")
        'Authorization: Bearer ***'
    """
    s = text if isinstance(text, str) else repr(text)
    for secret in sorted(_registered_secrets, key=len, reverse=True):
        if secret in s:
            s = s.replace(secret, "***")
    for pat in _KEY_PATTERNS:
        if pat.groups:
            s = pat.sub(lambda m: m.group(1) + "***", s)
        else:
            s = pat.sub("***", s)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return s


def _redacted(value: Any) -> Any:
    """``value`` with keys redacted in every string it holds (dicts and lists walked)."""
    if isinstance(value, str):
        return redact(value, limit=None)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redacted(v) for v in value)
    return value


def _scrub_message(obj: Any) -> None:
    """Redact an HTTP request's or response's headers, and a read response's body, in place."""
    headers = getattr(obj, "headers", None)
    try:
        for name, value in list(headers.items()):  # type: ignore[union-attr]
            if name.lower() in ("authorization", "proxy-authorization"):
                clean = "***"
            else:
                clean = redact(value, limit=None)
            if clean != value:
                headers[name] = clean  # type: ignore[index]
    except (AttributeError, TypeError, ValueError):
        pass
    state = getattr(obj, "__dict__", {})
    content = state.get("_content")  # only a body that was read: never read one here
    if isinstance(content, bytes) and content:
        text = content.decode("utf-8", "replace")
        clean = redact(text, limit=None)
        if clean != text:
            state["_content"] = clean.encode("utf-8")
            state.pop("_text", None)


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception under it, through both ``__cause__`` and ``__context__``
    (each once; a ``__cause__`` is followed before a ``__context__``).

    Example:
        >>> try:
        ...     try:
        ...         raise KeyError("inner")
        ...     except KeyError:
        ...         raise ValueError("outer")
        ... except ValueError as e:
        ...     [type(x).__name__ for x in exception_chain(e)]
        ['ValueError', 'KeyError']
    """
    found: list[BaseException] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        found.append(cur)
        todo += [cur.__context__, cur.__cause__]
    return found


def scrub(exc: BaseException | None) -> None:
    """Redact secrets from ``exc`` and every exception chained under it, in place.

    Our errors are raised ``from`` the SDK's; a traceback prints the whole chain, and a
    gateway that echoes the rejected key would otherwise leak it there. Besides messages
    (``args``, ``message``, notes), the HTTP library's and the openai SDK's exceptions keep
    the parsed error ``body``, the ``response`` (headers and body) and the ``request``
    (headers): all are redacted, both ``__cause__`` and ``__context__`` followed.

    Example:
        >>> register_secret("sk-test-echoed-0123")
        >>> try:
        ...     try:
        ...         raise ValueError("Incorrect API key provided: sk-test-echoed-0123")
        ...     except ValueError as inner:
        ...         raise RuntimeError("failed") from inner
        ... except RuntimeError as e:
        ...     scrub(e)
        ...     print(e.__cause__)
        Incorrect API key provided: ***
    """
    for cur in exception_chain(exc):
        if isinstance(cur, CampusLLMError):
            continue  # redacted when it was made
        try:
            cur.args = tuple(_redacted(a) for a in cur.args)
            for attr in ("message", "body"):
                value = getattr(cur, attr, None)
                if value is not None:
                    setattr(cur, attr, _redacted(value))
            notes = getattr(cur, "__notes__", None)
            if isinstance(notes, list):
                cur.__notes__ = [_redacted(n) for n in notes]  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        for attr in ("response", "request"):
            try:
                obj = cur.__dict__.get(attr) or cur.__dict__.get(f"_{attr}")
            except AttributeError:
                obj = None
            if obj is not None:
                _scrub_message(obj)
                if attr == "response":
                    _scrub_message(getattr(obj, "__dict__", {}).get("_request"))


class CampusLLMError(Exception):
    """Base class of every error campusllm raises.

    Attributes carry what a program needs to react without parsing the message:
    ``provider``, ``model``, ``status_code``, ``hint`` (how to fix it), ``body``
    (the gateway's redacted response text, if any) and, for an error that ended a stream,
    what had already arrived: ``partial_content``, ``partial_reasoning`` and
    ``partial_tool_calls`` (empty otherwise). An embedding call that failed part-way keeps the
    vectors it received: ``partial_embeddings`` (one entry per input, ``None`` where its batch
    failed) and ``failed_indices`` (the inputs to embed again); ``None`` and ``[]`` otherwise.

    Example:
        >>> err = CampusLLMError("boom", hint="try again", provider="sjtu")
        >>> str(err), err.provider
        ('boom try again', 'sjtu')
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        body: str | None = None,
        partial_content: str = "",
        partial_reasoning: str = "",
        partial_tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = redact(message, limit=None)
        self.hint = redact(hint, limit=None) if hint else None
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.body = redact(body) if body is not None else None
        self.partial_content = partial_content
        self.partial_reasoning = partial_reasoning
        self.partial_tool_calls: list[dict[str, Any]] = list(partial_tool_calls or [])
        self.partial_embeddings: list[list[float] | None] | None = None
        self.failed_indices: list[int] = []
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # Chinese sentences end in a full-width mark and run on without a space
        sep = "" if self.message.endswith(("。", "!", "?", ")")) else " "
        return f"{self.message}{sep}{self.hint}"

    def __reduce__(self) -> Any:  # keep pickling (multiprocessing, joblib) working
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "hint": self.hint,
                    "provider": self.provider,
                    "model": self.model,
                    "status_code": self.status_code,
                    "body": self.body,
                },
                self.__dict__,
            ),
        )


def _rebuild(
    cls: type[CampusLLMError], message: str, kwargs: dict[str, Any], state: dict[str, Any]
) -> Any:
    obj = Exception.__new__(cls)
    CampusLLMError.__init__(obj, message, **kwargs)
    obj.__dict__.update(state)
    return obj


class ConfigError(CampusLLMError, ValueError):
    """The configuration is incomplete or inconsistent (no base URL, bad override file…).

    Example:
        >>> from campusllm.registry import resolve
        >>> try:  # with CAMPUSLLM_BASE_URL unset
        ...     resolve("custom:my-model")
        ... except ConfigError as e:
        ...     print(e.hint)  # doctest: +SKIP
        Set CAMPUSLLM_BASE_URL or pass base_url=... (your gateway address).
    """


class ModelNotFoundError(ConfigError):
    """The provider or model name is not known to the registry.

    Example:
        >>> from campusllm.registry import resolve
        >>> try:
        ...     resolve("nosuch:model")
        ... except ModelNotFoundError as e:
        ...     print(e.message.split(".")[0])
        Unknown provider 'nosuch' in 'nosuch:model'
    """


class AuthenticationError(CampusLLMError):
    """No key was found, or the gateway rejected it (HTTP 401). The hint names the env var.

    Example:
        >>> try:
        ...     llm.invoke("hi")  # doctest: +SKIP
        ... except AuthenticationError as e:
        ...     print(e.hint)  # e.g. "Set SJTU_API_KEY (or CAMPUSLLM_API_KEY), ..."
    """


class PermissionDeniedError(AuthenticationError):
    """The key is valid but may not use this model or endpoint (HTTP 403).

    Example:
        >>> issubclass(PermissionDeniedError, AuthenticationError)
        True
    """


class RateLimitError(CampusLLMError):
    """The gateway kept answering 429 after all retries. ``retry_after`` is in seconds.

    Example:
        >>> err = RateLimitError("429 from sjtu", retry_after=6.0, provider="sjtu")
        >>> err.retry_after, err.provider
        (6.0, 'sjtu')
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class BudgetExceededError(RateLimitError):
    """A token budget of this key (weekly quota, or one you set) is used up; nothing was sent.

    Raised before sending, so no request is wasted on a gateway that would refuse it. A
    :class:`RateLimitError`: code that already backs off on quotas handles it too.
    ``used`` and ``limit`` are tokens, ``period`` is ``"day"``, ``"week"`` or ``"month"``,
    ``reset_at`` is when the period ends (seconds since the epoch) and ``retry_after`` the
    seconds until then.

    Example:
        >>> err = BudgetExceededError("weekly budget used up", used=1_000_000_000,
        ...                           limit=1_000_000_000, period="week", reset_at=0.0)
        >>> isinstance(err, RateLimitError), err.period
        (True, 'week')
    """

    def __init__(
        self,
        message: str,
        *,
        used: int,
        limit: int,
        period: str,
        reset_at: float,
        **kw: Any,
    ) -> None:
        self.used = used
        self.limit = limit
        self.period = period
        self.reset_at = reset_at
        super().__init__(message, **kw)


class UnreachableError(CampusLLMError, ConnectionError):
    """The host could not be reached (DNS, refused, reset). The hint names VPN when relevant.

    Example:
        >>> err = UnreachableError("Cannot reach models.sjtu.edu.cn.", hint="Use the SJTU VPN.")
        >>> isinstance(err, ConnectionError), err.hint
        (True, 'Use the SJTU VPN.')
    """


class TimeoutError(UnreachableError):  # noqa: A001 - deliberate, scoped to this module
    """The gateway did not answer in time.

    Example:
        >>> issubclass(TimeoutError, UnreachableError)
        True
    """


class ProtocolError(CampusLLMError):
    """The gateway answered something that is not valid JSON/SSE of the expected shape.

    Example:
        >>> from campusllm.wire import parse_completion
        >>> try:
        ...     parse_completion({"unexpected": True})
        ... except ProtocolError:
        ...     print("not a chat completion")
        not a chat completion
    """


class BadRequestError(CampusLLMError, ValueError):
    """The request is invalid; the gateway's own message is passed through.

    Example:
        >>> err = BadRequestError("Missing reasoning_content", status_code=400, provider="sjtu")
        >>> err.status_code, isinstance(err, ValueError)
        (400, True)
    """


class CapabilityError(BadRequestError):
    """The request asks for something the model cannot do (tools, images, thinking switch).

    Example:
        >>> issubclass(CapabilityError, BadRequestError)
        True
    """


class ServerError(CampusLLMError):
    """The gateway failed (5xx) after all retries.

    Example:
        >>> ServerError("502 Bad Gateway", status_code=502).status_code
        502
    """


class StreamInterruptedError(CampusLLMError):
    """A stream broke after output had started; nothing received is lost.

    ``partial_content``, ``partial_reasoning`` and ``partial_tool_calls`` hold what arrived
    before the break. Streams are never retried after the first byte, so nothing is
    duplicated either.

    Example:
        >>> err = StreamInterruptedError("connection reset", partial_content="The answer is")
        >>> err.partial_content
        'The answer is'
    """

    def __init__(
        self,
        message: str,
        *,
        partial_content: str = "",
        partial_reasoning: str = "",
        partial_tool_calls: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(
            message,
            partial_content=partial_content,
            partial_reasoning=partial_reasoning,
            partial_tool_calls=partial_tool_calls,
            **kw,
        )
