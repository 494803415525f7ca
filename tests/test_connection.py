"""connect(): the one way every campusllm object is built, and what the connection holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from campusllm.connection import Connection, connect
from campusllm.errors import AuthenticationError, ConfigError, ModelNotFoundError
from campusllm.registry import RateLimits
from campusllm.sim import SIM_KEY
from campusllm.transport import PoolLimits, RetryPolicy
from langchain_campusllm import CampusLLMEmbeddings, ChatCampusLLM
from llama_index_campusllm import CampusLLM, CampusLLMEmbedding

URL = "http://127.0.0.1:9/sjtu/api/v1"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model": 42}, "model must be a string"),
        ({"model": "sjtu:glm", "api_key": 42}, "api_key must be a string or SecretStr"),
        ({"model": "sjtu:glm", "api_key": lambda: "sk"}, "Callables are not supported"),
        ({"model": "sjtu:glm", "max_retries": -1}, "max_retries must be a whole number"),
        ({"model": "sjtu:glm", "max_retries": 2, "retry": RetryPolicy()}, "not both"),
        ({"model": "sjtu:glm", "timeout": 0}, "more than 0 seconds"),
        ({"model": "sjtu:glm", "rate_limits": {"rpm": -5}}, "rate_limits is not valid"),
        ({"model": "sjtu:glm", "rate_limits": 10}, "rate_limits must be RateLimits"),
        ({"model": "sjtu:glm", "pool": 10}, "pool must be PoolLimits"),
        ({"model": "sjtu:glm", "headers": {"X-A": 1}}, "headers must map"),
    ],
)
def test_bad_arguments_are_config_errors_naming_the_argument(
    kwargs: dict[str, Any], needle: str
) -> None:
    kwargs.setdefault("api_key", SIM_KEY)
    with pytest.raises(ConfigError) as info:
        connect(base_url=URL, **kwargs)
    assert needle in str(info.value)


def test_unknown_provider_and_missing_key_keep_their_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ModelNotFoundError):
        connect("nosuch:model", api_key=SIM_KEY)
    monkeypatch.delenv("SJTU_API_KEY", raising=False)
    monkeypatch.delenv("CAMPUSLLM_API_KEY", raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", "/nonexistent/campusllm.toml")
    from campusllm.registry import reset_registry

    reset_registry()
    try:
        with pytest.raises(AuthenticationError):
            connect("sjtu:glm", base_url=URL)
    finally:
        reset_registry()


def test_one_key_lookup_shared_by_everything_the_connection_builds() -> None:
    conn = connect("sjtu:glm", api_key=SecretStr(SIM_KEY), base_url=URL, rate_limits={"rpm": 3})
    assert isinstance(conn, Connection) and conn.limits == RateLimits(rpm=3)
    http, ahttp = conn.http_clients()
    # the transports read the connection's key object; the SDK never gets it
    assert http._transport._api_key is conn.api_key is ahttp._transport._api_key
    assert http._transport.limiter is conn.limiter is not None
    assert conn.openai.sync.api_key != SIM_KEY
    conn.close()
    assert conn.is_closed and http.is_closed


def test_every_adapter_class_is_built_on_a_connection(sim: Any) -> None:
    common = {"api_key": SIM_KEY, "base_url": sim.url("oneapi")}
    emb = "oneapi:qwen3-embedding-8b"
    objects = [
        ChatCampusLLM(model="oneapi:qwen3-32b", **common),
        CampusLLMEmbeddings(model=emb, **common),
        CampusLLM(model="oneapi:qwen3-32b", **common),
        CampusLLMEmbedding(model=emb, **common),
    ]
    for obj in objects:
        assert isinstance(obj.connection, Connection), type(obj).__name__
        assert obj.resolved is obj.connection.resolved
        assert obj.connection.api_key.get_secret_value() == SIM_KEY
    # nothing but the chat models has built SDK clients, and they built nothing else
    assert [len(o.connection._clients) for o in objects] == [1, 0, 0, 0]


async def test_a_burst_keeps_its_connections_for_the_next_one(sim: Any) -> None:
    # httpx's default pool keeps 20 of 100 connections: every wide burst reconnected.
    width = 40
    conn = connect(
        "sjtu:deepseek-chat",
        api_key=SIM_KEY,
        base_url=sim.url("sjtu"),
        rate_limits=RateLimits(),
        pool=PoolLimits(max_connections=width),
    )
    body = {
        "model": "deepseek-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "sim": {"chunks": 2, "delay_s": 0.1},  # a slow stream: the whole burst overlaps
    }
    url = conn.resolved.base_url + "/chat/completions"

    async def burst() -> None:
        replies = await asyncio.gather(*(conn.ahttp.post(url, json=body) for _ in range(width)))
        assert {r.status_code for r in replies} == {200}

    await burst()
    pool = conn.ahttp._transport.inner._pool
    opened = len(pool.connections)
    assert opened > 20  # wider than httpx's default keep-alive
    await burst()
    assert len(pool.connections) == opened  # all reused, none reopened
    await conn.aclose()
