"""What to tell the user to do, read from where the request went and what the gateway said.

A hint is only useful when it is right: "connect to the campus VPN" helps the student off
campus whose connection to the campus gateway failed, and misleads everyone else (a local
llama-server that is not running, a gateway that dropped a connection it had accepted). So
each hint here looks at the facts first: the host the request went to, and the gateway's own
wording (LiteLLM, vLLM, llama.cpp and one-api each word the same failure differently).
Hints speak the user's language (:func:`campusllm.i18n.tr`: Chinese for a Chinese locale or
``CAMPUSLLM_LANG=zh``).

Example:
    >>> from campusllm.registry import resolve
    >>> local = resolve("sjtu:deepseek-chat", base_url="http://127.0.0.1:8080/v1")
    >>> "VPN" in network_hint(local), "running" in network_hint(local)
    (False, True)
    >>> "VPN" in network_hint(resolve("sjtu:deepseek-chat"))
    True
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import urllib.parse

from ..i18n import tr
from ..registry import ResolvedModel

__all__ = [
    "is_loopback",
    "network_hint",
    "model_hint",
    "is_unknown_model",
    "is_context_overflow",
    "is_gateway_credential_failure",
]


def _host(url: str) -> str:
    try:
        return (urllib.parse.urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL (or host name) points at this machine.

    Example:
        >>> is_loopback("http://127.0.0.1:8080/v1"), is_loopback("https://models.sjtu.edu.cn")
        (True, False)
    """
    host = _host(url_or_host) if "/" in url_or_host else url_or_host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _catalogued_host(resolved: ResolvedModel) -> bool:
    """Whether the request goes to the provider's own address from the catalog."""
    catalogued = resolved.provider.base_url
    return bool(catalogued) and _host(catalogued or "") == _host(resolved.base_url)


def network_hint(resolved: ResolvedModel) -> str:
    """How to reach ``resolved``'s gateway, for a connection that could not be made.

    The campus/VPN advice is given only for the provider's own campus-only (or intranet)
    address; a loopback address or a base URL the user chose gets advice about that.
    """
    provider = resolved.provider
    name = provider.display_name or provider.name
    url = resolved.base_url
    if is_loopback(url):
        return tr(
            f"Nothing answered at {url}, an address on this machine: check that the server "
            "(llama-server, vLLM, the simulator…) is running and listening on that port.",
            f"{url} 是本机地址,但没有服务应答:请检查服务(llama-server、vLLM、模拟器……)"
            "是否已启动并在该端口监听。",
        )
    if not _catalogued_host(resolved):
        return tr(
            f"Check the base URL {url} and that the server is up and reachable from this "
            "machine (a firewall or proxy may block it), then try `campusllm doctor`.",
            f"请检查地址 {url} 是否正确、服务是否已启动、本机能否访问(防火墙或代理可能拦截),"
            "然后运行 `campusllm doctor`。",
        )
    if provider.reachability == "campus":
        return tr(
            f"{name} is reachable only from the campus network "
            f"({provider.network_hint or 'connect to the campus VPN'}). Connect to the campus "
            "network or VPN, then try `campusllm doctor`.",
            f"{name} 仅限校园网访问({provider.network_hint or '校外请连接校园 VPN'})。"
            "请连接校园网或 VPN,然后运行 `campusllm doctor`。",
        )
    if provider.reachability == "intranet":
        return tr(
            f"{name} is reachable only from its own network "
            f"({provider.network_hint or 'intranet'}). Check the VPN and the base URL, then try "
            "`campusllm doctor`.",
            f"{name} 仅限其内部网络访问({provider.network_hint or '内网'})。"
            "请检查 VPN 与地址,然后运行 `campusllm doctor`。",
        )
    return tr(
        "Check the base URL and your network connection, then try `campusllm doctor`.",
        "请检查地址与网络连接,然后运行 `campusllm doctor`。",
    )


_UNKNOWN_MODEL = re.compile(
    r"invalid model name|model[_ ]not[_ ]found|unknown model|no such model|model .{0,80}"
    r"(does not exist|not exist|is not (found|available|supported))|"
    r"(no|not a valid) model|model_group.{0,40}not found",
    re.IGNORECASE,
)


def is_unknown_model(message: str | None) -> bool:
    """Whether a gateway's message says the model name is not one it serves.

    Example:
        >>> is_unknown_model("litellm.BadRequestError: Invalid model name passed in model=x")
        True
        >>> is_unknown_model("messages must not be empty")
        False
    """
    return bool(message) and bool(_UNKNOWN_MODEL.search(message or ""))


def model_hint(resolved: ResolvedModel) -> str:
    """Check-the-model-id advice, with the catalog's closest names when there are some."""
    provider = resolved.provider
    asked = resolved.requested.split(":", 1)[-1].strip()
    names = sorted({n for m in provider.models for n in (m.id, *m.aliases)})
    close = difflib.get_close_matches(asked, names, n=3, cutoff=0.6) if asked else []
    close = [c for c in close if c != asked]
    if close:
        names_en = " or ".join(repr(c) for c in close)
        names_zh = " 或 ".join(repr(c) for c in close)
        maybe = tr(f"Did you mean {names_en}? ", f"是不是 {names_zh}?")
    else:
        maybe = ""
    return maybe + tr(
        f"Check the model id: `campusllm models {provider.name} --live` lists what the "
        f"gateway serves to your key; and check that the base URL ({resolved.base_url}) ends "
        "at the API root (usually /v1).",
        f"请检查模型名:`campusllm models {provider.name} --live` 会列出网关为你的密钥提供的模型;"
        f"并检查地址({resolved.base_url})是否以 API 根路径结尾(通常是 /v1)。",
    )


_CONTEXT = re.compile(
    r"context[_ ]?(length|window|size)|maximum context|exceeds? the (available )?context|"
    r"prompt is too long|input is too long|too many (input )?tokens|"
    r"(reduce|shorten) the (length|prompt)|max_?(model_)?len",
    re.IGNORECASE,
)


def is_context_overflow(message: str | None) -> bool:
    """Whether a gateway's message says the request is longer than the model's context.

    vLLM/OpenAI ("maximum context length is 32768 tokens"), llama.cpp ("exceeds the available
    context size"), LiteLLM ("ContextWindowExceededError") and others.

    Example:
        >>> is_context_overflow("the request exceeds the available context size, try increasing it")
        True
        >>> is_context_overflow("Invalid model name")
        False
    """
    return bool(message) and bool(_CONTEXT.search(message or ""))


_GATEWAY_CREDENTIALS = re.compile(
    r"litellm\.AuthenticationError|model group|model_group|upstream", re.IGNORECASE
)


def is_gateway_credential_failure(message: str | None) -> bool:
    """Whether a 401 is about the gateway's own key for its model server, not the user's.

    LiteLLM raises ``litellm.AuthenticationError`` (naming the model group) when the key it
    holds for an upstream is refused; a key it refuses itself is answered differently.

    Example:
        >>> is_gateway_credential_failure(
        ...     "litellm.AuthenticationError: OpenAIException - Incorrect API key provided. "
        ...     "Received Model Group=deepseek-chat")
        True
        >>> is_gateway_credential_failure("Authentication Error, Invalid proxy server token")
        False
    """
    return bool(message) and bool(_GATEWAY_CREDENTIALS.search(message or ""))
