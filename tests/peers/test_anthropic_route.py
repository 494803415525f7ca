"""SJTU's Anthropic-format route (``/api/v1/messages``) next to chat completions, on LiteLLM.

SJTU's gateway is a LiteLLM proxy; its document says both formats are "功能等价". These tests
pin what the Anthropic format carries when the models behind the proxy are OpenAI-compatible
(vLLM-style) servers, which is why campusllm does not add it as a protocol (ARCHITECTURE.md,
decisions): the same text and reasoning; Anthropic's ``thinking`` and ``cache_control``
parameters do not reach the model server as anything that switches thinking or caches; streamed
inline ``<think>`` tags arrive as plain text; thinking blocks in history go back as
``reasoning_content`` whatever the model's pass-back rule.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import servers
from langchain_core.messages import AIMessage, HumanMessage
from upstream import ANSWER, REASONING, Upstream

from langchain_campusllm import ChatCampusLLM

pytestmark = [pytest.mark.peers, pytest.mark.timeout(300)]

USER = [{"role": "user", "content": "hi"}]


def _messages(peer: servers.Peer, body: dict[str, Any]) -> httpx.Response:
    """What ``ChatAnthropic(base_url=<gateway>, api_key=...)`` sends."""
    headers = {"x-api-key": servers.GOOD_KEY, "anthropic-version": "2023-06-01"}
    body = {"max_tokens": 256, **body}
    return httpx.post(peer.url + "/v1/messages", json=body, headers=headers, timeout=60)


def _chat(peer: servers.Peer, model: str, **kw: Any) -> ChatCampusLLM:
    # the registry's sjtu entries, pointed at the proxy
    return ChatCampusLLM(
        model=f"sjtu:{model}", base_url=peer.url + "/v1", api_key=servers.GOOD_KEY, **kw
    )


def _blocks(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data.get("type") == "message", data
    return {b["type"]: b for b in data["content"]}


def test_messages_returns_the_same_text_and_reasoning_as_chat_completions(
    litellm_peer: tuple[servers.Peer, Upstream],
) -> None:
    peer, _ = litellm_peer
    mock = _blocks(_messages(peer, {"model": "deepseek-chat", "messages": USER}))
    assert (
        mock["text"]["text"]
        == servers.MOCK_ANSWER
        == _chat(peer, "deepseek-chat").invoke("hi").content
    )
    blocks = _blocks(_messages(peer, {"model": "deepseek-reasoner", "messages": USER}))
    msg = _chat(peer, "deepseek-reasoner").invoke("hi")
    assert blocks["text"]["text"] == ANSWER == msg.content
    assert blocks["thinking"]["thinking"] == REASONING == msg.additional_kwargs["reasoning_content"]
    # no signature: a thinking block cannot be verified by an Anthropic client
    assert not blocks["thinking"].get("signature")


def test_streamed_think_tags_arrive_as_plain_text_on_messages(
    litellm_peer: tuple[servers.Peer, Upstream],
) -> None:
    peer, _ = litellm_peer
    body = {"model": "minimax-m2.7", "messages": USER, "stream": True}
    resp = _messages(peer, body)
    assert resp.status_code == 200, resp.text
    events = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data:")]
    kinds = {e.get("delta", {}).get("type") for e in events if e["type"] == "content_block_delta"}
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert kinds == {"text_delta"} and text.startswith("<think>")  # no thinking_delta at all
    chunks = list(_chat(peer, "minimax-m2.7").stream("hi"))
    assert "".join(str(c.content) for c in chunks) == ANSWER
    reasoning = "".join(c.additional_kwargs.get("reasoning_content", "") for c in chunks)
    assert reasoning == REASONING


def test_the_thinking_parameter_does_not_switch_thinking_on_the_model_server(
    litellm_peer: tuple[servers.Peer, Upstream],
) -> None:
    peer, upstream = litellm_peer
    on = {"type": "enabled", "budget_tokens": 1024}
    refused = _messages(peer, {"model": "glm-5.1", "messages": USER, "thinking": on})
    # LiteLLM turns it into OpenAI's reasoning effort, which it refuses for a model its cost
    # map does not know to reason (hosted_vllm/ deployments pass reasoning_effort on, which
    # vLLM uses for gpt-oss only); GLM on vLLM switches by chat_template_kwargs.
    assert refused.status_code == 400 and "reasoning" in refused.text
    assert upstream.bodies == []
    off = {"type": "disabled"}
    _blocks(_messages(peer, {"model": "glm-5.1", "messages": USER, "thinking": off}))
    sent_off = upstream.bodies[-1][1]
    # "disabled" reaches the model server as OpenAI's reasoning_effort "none" (not a value
    # every vLLM release accepts), never as the chat_template_kwargs switch GLM reads
    assert "chat_template_kwargs" not in sent_off and sent_off.get("reasoning_effort") == "none"
    _chat(peer, "glm-5.1", thinking=False).invoke("hi")
    assert upstream.bodies[-1][1]["chat_template_kwargs"] == {"enable_thinking": False}


def test_cache_control_does_not_reach_the_model_server(
    litellm_peer: tuple[servers.Peer, Upstream],
) -> None:
    peer, upstream = litellm_peer
    cached = {"type": "ephemeral"}
    body = {
        "model": "deepseek-reasoner",
        "system": [{"type": "text", "text": "You are terse. " * 50, "cache_control": cached}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": cached}]}
        ],
    }
    data = _messages(peer, body).json()
    assert "cache_control" not in json.dumps(upstream.bodies[-1][1])
    assert not data["usage"].get("cache_read_input_tokens")


def test_thinking_blocks_in_history_go_back_as_reasoning_content_for_every_model(
    litellm_peer: tuple[servers.Peer, Upstream],
) -> None:
    peer, upstream = litellm_peer
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Earlier thought.", "signature": ""},
                {"type": "text", "text": "Earlier answer."},
            ],
        },
        {"role": "user", "content": "again"},
    ]
    _blocks(_messages(peer, {"model": "minimax-m2.7", "messages": history}))
    sent = upstream.bodies[-1][1]["messages"][1]
    # MiniMax-M2 wants its <think> block back inside the content (the registry's pass-back
    # rule, applied by ChatCampusLLM); the Anthropic route sends a field its template ignores.
    assert sent["content"] == "Earlier answer." and sent["reasoning_content"] == "Earlier thought."
    earlier = AIMessage(
        "Earlier answer.", additional_kwargs={"reasoning_content": "Earlier thought."}
    )
    _chat(peer, "minimax-m2.7").invoke([HumanMessage("hi"), earlier, HumanMessage("again")])
    ours = upstream.bodies[-1][1]["messages"][1]
    assert ours["content"].startswith("<think>Earlier thought.</think>")
