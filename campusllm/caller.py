"""What the framework-free callers share: one connection built as the adapters build theirs.

:class:`~campusllm.chat.ChatCaller` (``/chat/completions``) and
:class:`~campusllm.completions.CompletionCaller` (``/completions``) take the same arguments as
both adapters' generating models, with the same defaults (a ten-minute total deadline), and
close their HTTP clients the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from .connection import DEFAULT_CHAT_TIMEOUT, Connection, Timeouts, connect
from .limiter import RateLimiter
from .registry import ResolvedModel
from .transport import RetryPolicy

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self

__all__ = ["Caller"]


class Caller:
    """A model and the connection its requests go out on; a (sync or async) context manager.

    ``model`` is ``"provider:model"``, a resolved model, or a :class:`Connection` to share (the
    other arguments are then ignored). The other arguments are
    :func:`~campusllm.connection.connect`'s: ``timeout`` is the **total** seconds of one
    attempt, the whole answer or stream included (default
    :data:`~campusllm.connection.DEFAULT_CHAT_TIMEOUT`, ten minutes, like the adapters);
    ``read_timeout`` the longest silence allowed between two reads (default: only the total
    bounds it); ``max_retries`` (or a whole ``retry`` policy) how often a 429, 5xx or failed
    connection is retried; ``limiter`` who shares the key's quota.

    Example:
        >>> from campusllm.chat import ChatCaller
        >>> with ChatCaller("sjtu:deepseek-chat", api_key="sk-example",
        ...                 base_url="http://127.0.0.1:9/v1") as caller:
        ...     caller, caller.connection.timeouts.total
        (ChatCaller(model='sjtu:deepseek-v3.2'), 600.0)
    """

    def __init__(
        self,
        model: str | ResolvedModel | Connection,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | Timeouts | httpx.Timeout | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: str | RateLimiter | None = None,
    ) -> None:
        if isinstance(model, Connection):
            self.connection = model
        else:
            self.connection = connect(
                model,
                api_key=api_key,
                base_url=base_url,
                timeout=DEFAULT_CHAT_TIMEOUT if timeout is None else timeout,
                read_timeout=read_timeout,
                max_retries=max_retries,
                retry=retry,
                headers=headers,
                limiter=limiter,
            )
        self.resolved = self.connection.resolved
        self._accept(self.resolved)

    def _accept(self, resolved: ResolvedModel) -> None:
        """Refuse a model this caller cannot serve (before any request); all pass by default."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.resolved.key!r})"

    def close(self) -> None:
        """Close the underlying HTTP clients."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the underlying HTTP clients (async ones of the running loop)."""
        await self.connection.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
