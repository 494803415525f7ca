"""The simulator answers as the software each provider runs: LiteLLM (SJTU), vLLM, llama.cpp.

The wording checked here was taken from LiteLLM 1.108 and llama-server answering the same
requests; the conformance scenarios (tests/conformance_scenarios.py) check the simulator against
the real programs in the peer tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conformance_scenarios import conformance_registry

from campusllm.sim import SIM_KEY, Simulator

AUTH = {"Authorization": f"Bearer {SIM_KEY}"}
LLAMA_THINK = {"model": "smollm2-think", "messages": [{"role": "user", "content": "Tell a story."}]}


def post(sim: Simulator, provider: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    headers = {**AUTH, **kw.pop("headers", {})}
    url = sim.url(provider) + kw.pop("route", "/chat/completions")
    return httpx.post(url, json=body, headers=headers, timeout=10)


def events(r: httpx.Response) -> list[Any]:
    out = []
    for e in r.text.split("\n\n"):
        if e.startswith("data: ") and e != "data: [DONE]":
            out.append(json.loads(e[len("data: ") :]))
    return out


def streamed_content(r: httpx.Response) -> str:
    return "".join(
        (c.get("delta") or {}).get("content") or "" for e in events(r) for c in e["choices"]
    )


@pytest.fixture
def llama(sim: Simulator) -> Iterator[Simulator]:
    """The session simulator with the conformance registry: ``llamacpp`` as llama-server."""
    with conformance_registry():
        sim.set_gateway("llamacpp", "llama.cpp")
        yield sim


# ------------------------------------------------------------------------- LiteLLM (SJTU)


def test_sjtu_answers_carry_litellms_fields_as_documented(sim: Simulator) -> None:
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    data = post(sim, "sjtu", body).json()
    choice = data["choices"][0]
    # as in the answers of "本地大模型API使用文档"
    assert choice["provider_specific_fields"] == {"stop_reason": None, "token_ids": None}
    assert choice["message"]["tool_calls"] is None and choice["message"]["function_call"] is None
    for name in ("system_fingerprint", "service_tier", "prompt_logprobs", "kv_transfer_params"):
        assert name in data and data[name] is None
    other = post(sim, "oneapi", {**body, "model": "qwen72b-awq"}).json()["choices"][0]
    assert "provider_specific_fields" not in other


def test_litellm_moves_a_non_streamed_think_block_into_reasoning_content(sim: Simulator) -> None:
    body = {"model": "minimax-m2.7", "messages": [{"role": "user", "content": "hi"}]}
    msg = post(sim, "sjtu", body).json()["choices"][0]["message"]
    assert msg["reasoning_content"].strip() and "<think>" not in msg["content"]
    assert "</think>" not in msg["content"] and msg["content"].strip()
    # streamed, the tags stay inline (LiteLLM parses only whole answers)
    r = post(sim, "sjtu", {**body, "stream": True})
    text = streamed_content(r)
    assert text.startswith("<think>") and "</think>" in text
    assert not any("reasoning_content" in c["delta"] for e in events(r) for c in e["choices"])
    # an explicit wire shape is sent as asked, whatever the gateway would do
    shaped = post(sim, "sjtu", body, headers={"X-Sim-Reasoning-Shape": "think_tags"})
    assert shaped.json()["choices"][0]["message"]["content"].startswith("<think>")


def test_router_429_has_only_llm_provider_retry_after(sim: Simulator) -> None:
    sim.inject("router_429", times=2)
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    r = post(sim, "sjtu", body)
    assert r.status_code == 429 and "retry-after" not in r.headers
    assert r.headers["llm_provider-retry-after"] == "60"
    err = r.json()["error"]
    assert err["type"] == "throttling_error" and err["code"] == "429"
    assert (
        "No deployments available for selected model. Passed model=deepseek-chat"
        in (err["message"])
    )
    sim.inject("router_429", retry_after_s=7.5)
    assert post(sim, "sjtu", body).status_code == 429
    assert post(sim, "sjtu", body).headers["llm_provider-retry-after"] == "7.5"
    assert post(sim, "sjtu", body).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_gateway_408_is_litellms_timeout(sim: Simulator, stream: bool) -> None:
    sim.inject("gateway_408", delay_s=0.05)
    body = {"model": "glm-5.1", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    r = post(sim, "sjtu", body)
    assert r.status_code == 408 and r.headers["x-litellm-timeout"] == "0.05"
    err = r.json()["error"]
    assert err["code"] == "408" and err["message"].startswith("litellm.Timeout: APITimeoutError")
    assert "model group 'glm-5.1' failed" in err["message"]
    assert ("timeout value=0.05" in err["message"]) is not stream


def test_upstream_401_blames_the_gateways_own_key(sim: Simulator) -> None:
    sim.inject("upstream_401")
    body = {"model": "glm-5.1", "messages": [{"role": "user", "content": "hi"}]}
    r = post(sim, "sjtu", body)
    err = r.json()["error"]
    assert r.status_code == 401 and err["type"] == "authentication_error"
    assert err["message"].startswith("litellm.AuthenticationError: AuthenticationError: ")


TOOL_TURN = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
]  # fmt: skip


def test_null_content_is_accepted_unless_a_strict_server_is_asked_for(sim: Simulator) -> None:
    body = {"model": "deepseek-chat", "messages": TOOL_TURN}
    assert post(sim, "sjtu", body).status_code == 200  # vLLM and LiteLLM accept it
    sim.inject("reject_null_content", times=2)
    plain = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    assert post(sim, "sjtu", plain).status_code == 200  # the fault waits for content: null
    r = post(sim, "sjtu", body)
    err = r.json()["error"]
    assert r.status_code == 500 and err["code"] == "500"
    assert err["message"].startswith("litellm.InternalServerError: ")
    assert "'messages', 1, 'ChatCompletionRequestAssistantMessage', 'content'" in err["message"]
    # without LiteLLM in front: llama-cpp-python's own body
    r = post(sim, "oneapi", {**body, "model": "qwen72b-awq"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "internal_server_error"
    assert "Input should be a valid string" in r.json()["error"]["message"]
    assert post(sim, "sjtu", body).status_code == 200  # both used up


# ------------------------------------------------------------------------ context window


def test_context_window_is_checked_in_the_gateways_words(sim: Simulator) -> None:
    long_prompt = [{"role": "user", "content": "字" * 20000}]
    r = post(sim, "oneapi", {"model": "qwen72b-awq", "messages": long_prompt})  # 16384
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "This model's maximum context length is 16384 tokens. However, you requested 20000 "
        "tokens in the messages, Please reduce the length of the messages."
    )
    # vLLM counts max_tokens too; LiteLLM wraps its words
    hi = [{"role": "user", "content": "hi"}]
    r = post(sim, "sjtu", {"model": "deepseek-chat", "messages": hi, "max_tokens": 40000})
    msg = r.json()["error"]["message"]
    assert r.status_code == 400 and r.json()["error"]["code"] == "400"
    assert msg.startswith("litellm.ContextWindowExceededError: litellm.BadRequestError: ")
    assert "maximum context length is 32768 tokens. However, you requested 40001 tokens " in msg
    assert "(1 in the messages, 40000 in the completion)" in msg
    ok = post(sim, "sjtu", {"model": "deepseek-chat", "messages": hi, "max_tokens": 30000})
    assert ok.status_code == 200


def test_llama_server_counts_the_prompt_alone(llama: Simulator) -> None:
    body = {"model": "smollm2-chat", "messages": [{"role": "user", "content": "word " * 900}]}
    r = post(llama, "llamacpp", body)
    assert r.status_code == 400 and r.json() == {
        "error": {
            "code": 400,
            "message": "request (1125 tokens) exceeds the available context size (512 tokens), "
            "try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 1125,
            "n_ctx": 512,
        }
    }
    short = {"model": "smollm2-chat", "messages": [{"role": "user", "content": "hi"}]}
    assert post(llama, "llamacpp", {**short, "max_tokens": 5000}).status_code == 200


# ------------------------------------------------------------------------------ llama.cpp


@pytest.mark.parametrize("stream", [False, True])
def test_llama_server_keeps_the_blank_lines_after_the_reasoning(
    llama: Simulator, stream: bool
) -> None:
    r = post(llama, "llamacpp", {**LLAMA_THINK, "stream": stream})
    if stream:
        content = streamed_content(r)
        assert events(r)[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    else:
        msg = r.json()["choices"][0]["message"]
        content = msg["content"]
        assert msg["reasoning_content"].strip()
    assert content.startswith("\n\n") and content.strip()


def test_llama_server_echoes_the_empty_think_block_with_thinking_off(llama: Simulator) -> None:
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    tags = post(llama, "llamacpp", {**LLAMA_THINK, **off, "model": "smollm2-think-tags"})
    content = tags.json()["choices"][0]["message"]["content"]
    assert content.startswith("<think>\n\n</think>\n\n") and content[19:].strip()
    # with a reasoning parser only the tags go: the blank lines stay
    field = post(llama, "llamacpp", {**LLAMA_THINK, **off}).json()["choices"][0]["message"]
    assert field["content"].startswith("\n\n") and "reasoning_content" not in field
    # a model without reasoning gets nothing added
    plain = post(llama, "llamacpp", {**LLAMA_THINK, **off, "model": "smollm2-chat"}).json()
    assert not plain["choices"][0]["message"]["content"].startswith("\n")


def test_set_gateway_is_checked_and_undone_by_reset(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown gateway 'nginx'; one of vllm, litellm"):
        sim.set_gateway("sjtu", "nginx")
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    sim.set_gateway("sjtu", "vllm")
    assert post(sim, "sjtu", body).status_code == 404
    sim.reset()
    assert post(sim, "sjtu", body).status_code == 400  # LiteLLM again
    # the same over the control route, for a simulator in another process
    r = httpx.post(sim.base_url + "/_sim/gateway", json={"provider": "sjtu", "gateway": "vllm"})
    assert r.status_code == 200 and post(sim, "sjtu", body).status_code == 404
