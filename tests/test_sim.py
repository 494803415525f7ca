"""The offline simulator: routes, seeds, reasoning shapes, tools, limits, faults, concurrency."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from campusllm.clock import ManualClock
from campusllm.errors import ConfigError
from campusllm.limiter import limiter_for
from campusllm.registry import RateLimits, get_registry
from campusllm.sim import SIM_KEY, Simulator
from campusllm.sim.replays import fixture_bytes, fixture_sse

AUTH = {"Authorization": f"Bearer {SIM_KEY}"}


def chat_model(pred: Any = lambda m: True, provider: str | None = None) -> tuple[str, str]:
    """(provider, model id) of the first catalogued chat model matching ``pred``."""
    for p, m in get_registry().models(provider, kind="chat"):
        if p.name != "custom" and m.status != "deprecated" and pred(m):
            return p.name, m.id
    pytest.skip("no catalogued model with that property")


def kind_model(kind: str, pred: Any = lambda m: True) -> tuple[str, Any]:
    for p, m in get_registry().models(kind=kind):
        if pred(m):
            return p.name, m
    pytest.skip(f"no catalogued {kind} model")


def post(
    sim: Simulator, provider: str, route: str, body: dict[str, Any], **kw: Any
) -> httpx.Response:
    headers = {**AUTH, **kw.pop("headers", {})}
    return httpx.post(sim.url(provider) + route, json=body, headers=headers, timeout=10, **kw)


def sse_payloads(text: str) -> list[Any]:
    """Decode an SSE body strictly: only ``data:`` events, blank-line separated, [DONE] last."""
    events = [e for e in text.split("\n\n") if e]
    assert text.endswith("\n\n")
    out: list[Any] = []
    for e in events:
        assert e.startswith("data: "), e
        data = e[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    assert out[-1] == "[DONE]" and "[DONE]" not in out[:-1]
    return out[:-1]


def say(text: str) -> Any:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- routes and seeds


def test_every_provider_has_a_base_url_under_its_own_prefix(sim: Simulator) -> None:
    urls = sim.urls()
    assert urls["sjtu"] == f"http://127.0.0.1:{sim.port}/sjtu/api/v1"
    for name, url in urls.items():
        assert url.startswith(f"http://127.0.0.1:{sim.port}/{name}/")
        assert sim.url(name) == url


def test_sjtu_models_replays_the_seed_list(sim: Simulator) -> None:
    r = httpx.get(sim.url("sjtu") + "/models", headers=AUTH)
    assert r.status_code == 200
    assert r.content == fixture_bytes("sjtu_models")
    ids = [m["id"] for m in r.json()["data"]]
    assert {"deepseek-chat", "deepseek-reasoner", "glm-5.1", "qwen"} <= set(ids)


def test_models_lists_catalog_ids_and_aliases_via_openai_sdk(sim: Simulator) -> None:
    import openai

    prov = get_registry().provider("oneapi")
    client = openai.OpenAI(base_url=sim.url("oneapi"), api_key=SIM_KEY, max_retries=0)
    ids = {m.id for m in client.models.list()}
    want = {m.id for m in prov.models} | {a for m in prov.models for a in m.aliases}
    assert ids == want


SEED_CASES = [
    (
        "sjtu",
        {
            "model": "deepseek-chat",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "请介绍上海交通大学"},
            ],
            "stream": False,
            "max_tokens": 1024,
        },
        "sjtu_deepseek_chat",
    ),
    (
        "sjtu",
        {
            "model": "deepseek-reasoner",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "请介绍上海"},
            ],
            "stream": False,
            "max_tokens": 1024,
        },
        "sjtu_deepseek_reasoner",
    ),
    (
        "sjtu",
        {
            "model": "qwen",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "text", "text": "Explain the details in the image."},
                    ],
                }
            ],
            "stream": False,
            "max_tokens": 1024,
        },
        "sjtu_qwen_image",
    ),
    (
        "ecnu",
        {
            "messages": [
                {"role": "system", "content": "你是华东师范大学大模型ChatECNU"},
                {"role": "user", "content": "你好呀"},
            ],
            "stream": False,
            "model": "ecnu-plus",
        },
        "ecnu_plus_hello",
    ),
    (
        "ecnu",
        {
            "messages": [{"role": "user", "content": "上海今天天气如何?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "description": "当你想查询指定城市的天气时非常有用。",
                        "parameters": {
                            "type": "object",
                            "properties": {"location": {"type": "string"}},
                        },
                    },
                }
            ],
            "stream": False,
            "model": "ecnu-plus",
        },
        "ecnu_weather_tool",
    ),
    (
        "oneapi",
        {
            "messages": [{"role": "user", "content": "What is the weather like in Paris today?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "description": "Get the current weather in a given location",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "location": {"type": "string"},
                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                            },
                            "required": ["location"],
                        },
                    },
                }
            ],
            "model": "qwen72b-awq",
        },
        "oneapi_weather_tool",
    ),
]


@pytest.mark.parametrize("provider,body,fixture", SEED_CASES, ids=[c[2] for c in SEED_CASES])
def test_seed_example_requests_replay_the_documented_response(
    sim: Simulator, provider: str, body: dict[str, Any], fixture: str
) -> None:
    headers = {"Authorization": SIM_KEY} if provider == "oneapi" else {}
    r = post(sim, provider, "/chat/completions", body, headers=headers)
    assert r.status_code == 200
    assert r.content == fixture_bytes(fixture)
    assert r.json()["choices"][0]["message"]["role"] == "assistant"


def test_ecnu_stream_seed_replays_exact_sse_lines(sim: Simulator) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "你是华东师范大学大模型ChatECNU"},
            {"role": "user", "content": "你好呀"},
        ],
        "stream": True,
        "model": "ecnu-plus",
    }
    r = post(sim, "ecnu", "/chat/completions", body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.content == fixture_sse("ecnu_plus_hello_stream")
    chunks = sse_payloads(r.text)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert text.startswith("你好!很高兴为你提供帮助。")


def test_stream_of_a_non_stream_seed_is_synthesised_from_it(sim: Simulator) -> None:
    body = dict(SEED_CASES[1][1], stream=True)
    r = post(sim, "sjtu", "/chat/completions", body)
    chunks = sse_payloads(r.text)
    seed = json.loads(fixture_bytes("sjtu_deepseek_reasoner"))["choices"][0]["message"]
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert (reasoning, content) == (seed["reasoning_content"], seed["content"])


# --------------------------------------------------------------------------- chat


def test_chat_non_stream_and_stream_via_openai_sdk(sim: Simulator) -> None:
    import openai

    provider, model = chat_model()
    client = openai.OpenAI(base_url=sim.url(provider), api_key=SIM_KEY, max_retries=0)
    done = client.chat.completions.create(model=model, messages=say("Name a colour."))
    assert "Name a colour." in (done.choices[0].message.content or "")
    assert done.usage is not None and done.usage.prompt_tokens >= 1
    stream = client.chat.completions.create(
        model=model,
        messages=say("Name a colour."),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Name a colour." in text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


@pytest.mark.parametrize("shape", ["reasoning_content", "reasoning", "think_tags", "think_open"])
@pytest.mark.parametrize("stream", [False, True])
def test_each_reasoning_shape(sim: Simulator, shape: str, stream: bool) -> None:
    provider, model = chat_model(lambda m: m.reasoning.toggle in ("none", "model_switch"))
    sim.script(model, [{"reasoning": "Step one. Step two.", "content": "Answer: 42."}])
    body = {"model": model, "messages": say("q"), "stream": stream}
    r = post(sim, provider, "/chat/completions", body, headers={"X-Sim-Reasoning-Shape": shape})
    if stream:
        deltas = [c["choices"][0]["delta"] for c in sse_payloads(r.text) if c["choices"]]
        fields = {k for d in deltas for k in d} - {"role"}
        content = "".join(d.get("content") or "" for d in deltas)
        field_text = "".join(d.get(shape) or "" for d in deltas)
        assert len(deltas) > 3
    else:
        msg = r.json()["choices"][0]["message"]
        fields = set(msg) - {"role"}
        content, field_text = msg["content"], msg.get(shape, "")
    if shape in ("reasoning_content", "reasoning"):
        assert fields == {"content", shape}
        assert (field_text, content) == ("Step one. Step two.", "Answer: 42.")
    elif shape == "think_tags":
        assert fields == {"content"}
        assert content.startswith("<think>") and content.endswith("</think>\n\nAnswer: 42.")
        assert "Step one. Step two." in content
    else:
        assert fields == {"content"} and "<think>" not in content
        assert content == "Step one. Step two.</think>\n\nAnswer: 42."


def test_registry_reasoning_shape_and_model_switch(sim: Simulator) -> None:
    reg = get_registry()
    sw = [(p, m) for p, m in reg.models(kind="chat") if m.reasoning.toggle == "model_switch"]
    if not sw:
        pytest.skip("no model_switch model")
    p, m = sw[0]
    assert m.reasoning.thinking_model and m.reasoning.non_thinking_model
    on = post(
        sim,
        p.name,
        "/chat/completions",
        {"model": m.reasoning.thinking_model, "messages": say("hi")},
    ).json()
    off = post(
        sim,
        p.name,
        "/chat/completions",
        {"model": m.reasoning.non_thinking_model, "messages": say("hi")},
    ).json()
    key = m.reasoning.shape
    assert on["choices"][0]["message"].get(key)
    assert key not in off["choices"][0]["message"]


@pytest.mark.parametrize(
    "flag",
    [
        {"chat_template_kwargs": {"enable_thinking": False}},
        {"chat_template_kwargs": {"thinking": False}},
    ],
)
def test_thinking_switched_off_emits_no_reasoning(sim: Simulator, flag: dict[str, Any]) -> None:
    key = next(iter(flag["chat_template_kwargs"]))
    if key == "thinking":
        # DeepSeek V3.x served by vLLM/SGLang: no seed gateway runs it, so register one as a
        # user would in the config file.
        get_registry().register_model(
            "maas",
            {
                "id": "deepseek-v3.2-vllm",
                "reasoning": {"shape": "reasoning_content", "toggle": "thinking"},
            },
        )
    provider, model = chat_model(
        lambda m: m.reasoning.toggle == key and m.reasoning.shape != "none"
    )
    body = {"model": model, "messages": say("hello"), "stream": True}
    on = "".join(
        json.dumps(c)
        for c in sse_payloads(
            post(
                sim,
                provider,
                "/chat/completions",
                dict(body, **{"chat_template_kwargs": {key: True}}),
            ).text
        )
    )
    off = sse_payloads(post(sim, provider, "/chat/completions", dict(body, **flag)).text)
    assert "reasoning" in on or "<think>" in on or "</think>" in on
    text = json.dumps(off)
    assert "reasoning" not in text and "think>" not in text


def test_sim_chunks_spreads_the_answer_over_many_chunks(sim: Simulator) -> None:
    provider, model = chat_model()
    r = post(
        sim,
        provider,
        "/chat/completions",
        {"model": model, "messages": say("x"), "stream": True, "sim": {"chunks": 500}},
    )
    chunks = [c for c in sse_payloads(r.text) if c["choices"]]
    assert 490 <= len(chunks) <= 510


def test_tool_calls_stream_by_index_with_fragmented_arguments(sim: Simulator) -> None:
    provider, model = chat_model(lambda m: m.tools and m.parallel_tools)
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "days": {"type": "integer", "minimum": 2},
                    },
                    "required": ["city"],
                },
            },
        }
        for name in ("get_weather", "get_time", "unused_tool")
    ]
    text = "Use get_weather and get_time for Shanghai"
    body = {
        "model": model,
        "messages": say(text),
        "tools": tools,
        "stream": True,
        "chat_template_kwargs": {"enable_thinking": False, "thinking": False},
    }
    chunks = [c for c in sse_payloads(post(sim, provider, "/chat/completions", body).text)]
    deltas = [
        tc
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        slot = calls.setdefault(d["index"], {"id": "", "name": "", "args": ""})
        if d.get("id"):
            assert not slot["id"], "id only in the first delta of a call"
            slot["id"] = d["id"]
            slot["name"] = d["function"]["name"]
        slot["args"] += d["function"].get("arguments") or ""
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    for c in calls.values():
        args = json.loads(c["args"])
        assert args["city"] == "Shanghai" and args["days"] == 2
    assert sum(1 for d in deltas if d["index"] == 0 and not d.get("id")) >= 2
    assert any(
        len(c["choices"][0]["delta"].get("tool_calls") or []) == 2 for c in chunks if c["choices"]
    )
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls"


def test_tool_loop_answer_quotes_tool_results_via_openai_sdk(sim: Simulator) -> None:
    import openai

    provider, model = chat_model(lambda m: m.tools and m.reasoning.passback != "reasoning_content")
    client = openai.OpenAI(base_url=sim.url(provider), api_key=SIM_KEY, max_retries=0)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    messages: Any = say("please lookup the Bund")
    first = client.chat.completions.create(model=model, messages=messages, tools=tools)
    call: Any = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Bund: waterfront, 1.5 km"},
    ]
    second = client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert "Bund: waterfront, 1.5 km" in (second.choices[0].message.content or "")


def test_json_schema_response_format_gives_valid_json(sim: Simulator) -> None:
    provider, model = chat_model()
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]},
            "pet": {"$ref": "#/$defs/Pet"},
        },
        "required": ["name", "age"],
        "$defs": {"Pet": {"type": "object", "properties": {"legs": {"type": "number"}}}},
    }
    body = {
        "model": model,
        "messages": say("Describe Alice"),
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    }
    value = json.loads(
        post(sim, provider, "/chat/completions", body).json()["choices"][0]["message"]["content"]
    )
    assert isinstance(value["name"], str) and value["age"] >= 18
    assert value["kind"] == "a" and isinstance(value["tags"], list)
    assert isinstance(value["pet"]["legs"], float)


def test_deepseek_thinking_tool_history_needs_reasoning_content(sim: Simulator) -> None:
    reg = get_registry()
    hits = [
        (p, m)
        for p, m in reg.models(kind="chat")
        if m.reasoning.passback == "reasoning_content" and m.tools
    ]
    if not hits:
        pytest.skip("no reasoning_content pass-back model")
    p, m = hits[0]
    name = m.reasoning.thinking_model or m.id
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    body = {
        "model": name,
        "messages": history,
        "chat_template_kwargs": {"thinking": True, "enable_thinking": True},
    }
    r = post(sim, p.name, "/chat/completions", body)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "Missing `reasoning_content` field in the assistant message at message index 1. For "
        "more information, please refer to "
        "https://api-docs.deepseek.com/guides/thinking_mode#tool-calls"
    )
    history[1]["reasoning_content"] = ""
    ok = post(sim, p.name, "/chat/completions", body)
    assert ok.status_code == 200 and "sunny" in ok.json()["choices"][0]["message"]["content"]


def test_requires_user_message_model_answers_system_only_with_nothing(sim: Simulator) -> None:
    provider, model = chat_model(lambda m: m.requires_user_message)
    body: dict[str, Any] = {"model": model, "messages": [{"role": "system", "content": "Hi."}]}
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == ""
    body["messages"].append({"role": "user", "content": "hi"})
    assert post(sim, provider, "/chat/completions", body).json()["choices"][0]["message"]["content"]


def test_image_on_non_vision_model_is_400_and_unknown_model_as_the_gateway_says(
    sim: Simulator,
) -> None:
    provider, model = chat_model(lambda m: not m.vision)
    img = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert (
        post(sim, provider, "/chat/completions", {"model": model, "messages": img}).status_code
        == 400
    )
    # vLLM (through one-api): 404 model_not_found
    r = post(sim, "oneapi", "/chat/completions", {"model": "no-such-model", "messages": say("x")})
    assert r.status_code == 404 and "model not found" in r.json()["error"]["message"]
    # SJTU's LiteLLM proxy: 400 "Invalid model name", streamed or not, on every route
    for path, stream in (("/chat/completions", False), ("/chat/completions", True)):
        body = {"model": "deepseek-chatt", "messages": say("x"), "stream": stream}
        r = post(sim, "sjtu", path, body)
        err = r.json()["error"]
        assert r.status_code == 400 and err["code"] == "400", r.text
        assert err["message"] == (
            f"{path}: Invalid model name passed in model=deepseek-chatt. "
            "Call `/v1/models` to view available models for your key."
        )
        assert err["provider_specific_fields"] == {"error": err["message"]}
    r = post(sim, "sjtu", "/embeddings", {"model": "nope", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("/embeddings: ")


def test_scripted_replies_are_served_in_order(sim: Simulator) -> None:
    provider, model = chat_model()
    sim.script(model, [{"content": "first"}, {"content": "second"}])
    got = [
        post(sim, provider, "/chat/completions", {"model": model, "messages": say("x")}).json()[
            "choices"
        ][0]["message"]["content"]
        for _ in range(3)
    ]
    assert got[:2] == ["first", "second"] and got[2] not in ("first", "second")


def test_text_completions_stream_and_non_stream(sim: Simulator) -> None:
    provider, model = chat_model(provider="maas")
    body = {"model": model, "prompt": "Once upon a time"}
    done = post(sim, provider, "/completions", body).json()
    assert done["object"] == "text_completion" and "Once upon a time" in done["choices"][0]["text"]
    chunks = sse_payloads(post(sim, provider, "/completions", dict(body, stream=True)).text)
    assert "".join(c["choices"][0]["text"] for c in chunks) == done["choices"][0]["text"]


# --------------------------------------------------------------------------- embeddings, rerank


def test_embeddings_are_deterministic_unit_vectors(sim: Simulator) -> None:
    import openai

    provider, spec = kind_model("embedding")
    client = openai.OpenAI(base_url=sim.url(provider), api_key=SIM_KEY, max_retries=0)
    texts = [
        "SJTU allows 10 requests per minute",
        "The Bund is in Shanghai",
        "How many requests per minute does SJTU allow?",
    ]
    # the SDK asks for base64 by default and decodes it
    a = [d.embedding for d in client.embeddings.create(model=spec.id, input=texts).data]
    b = post(
        sim, provider, "/embeddings", {"model": spec.id, "input": texts, "encoding_format": "float"}
    ).json()
    assert len(a[0]) == (spec.dimensions or 1024)
    for x, y in zip(a, (d["embedding"] for d in b["data"]), strict=True):
        assert x == pytest.approx(y, abs=1e-6)
        assert math.isclose(sum(v * v for v in y), 1.0, rel_tol=1e-6)

    def cos(u: list[float], v: list[float]) -> float:
        return sum(p * q for p, q in zip(u, v, strict=True))

    assert cos(a[2], a[0]) > cos(a[2], a[1])
    assert b["usage"]["prompt_tokens"] > 0
    small = post(
        sim,
        provider,
        "/embeddings",
        {"model": spec.id, "input": "x", "dimensions": 8, "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(small["data"][0]["embedding"])
    assert len(struct.unpack("<8f", raw)) == 8


def test_embedding_limits_are_enforced_with_a_clear_message(sim: Simulator) -> None:
    provider, spec = kind_model("embedding")
    limit = get_registry().provider(provider).embedding_batch
    if spec.max_batch:
        limit = min(limit, spec.max_batch)
    r = post(sim, provider, "/embeddings", {"model": spec.id, "input": ["a"] * (limit + 1)})
    assert r.status_code == 400 and str(limit) in r.json()["error"]["message"]
    if spec.max_input_tokens:
        r = post(
            sim,
            provider,
            "/embeddings",
            {"model": spec.id, "input": "字" * (spec.max_input_tokens + 1)},
        )
        assert r.status_code == 400 and str(spec.max_input_tokens) in r.json()["error"]["message"]


def test_rerank_jina_and_tei_shapes_rank_relevant_docs_first(sim: Simulator) -> None:
    provider, spec = kind_model("rerank")
    docs = [
        "The Bund is a waterfront.",
        "SJTU's gateway allows 10 requests per minute per key.",
        "Qwen3 uses an instruction prefix.",
    ]
    q = "How many requests per minute does SJTU allow?"
    j = post(
        sim,
        provider,
        "/rerank",
        {"model": spec.id, "query": q, "documents": docs, "top_n": 2, "return_documents": True},
    ).json()
    assert [r["index"] for r in j["results"]][0] == 1 and len(j["results"]) == 2
    assert j["results"][0]["relevance_score"] > j["results"][1]["relevance_score"]
    assert j["results"][0]["document"]["text"] == docs[1]
    t = post(sim, provider, "/tei/rerank", {"model": spec.id, "query": q, "texts": docs}).json()
    assert isinstance(t, list) and [x["index"] for x in t][0] == 1 and len(t) == 3
    assert {x["index"]: x["score"] for x in t}[1] == j["results"][0]["relevance_score"]


# --------------------------------------------------------------------------- auth, limits, faults


def test_auth_bearer_and_raw_schemes(sim: Simulator) -> None:
    reg = get_registry()
    bearer = next(p.name for p in reg.providers() if p.auth == "bearer")
    raw = next(p.name for p in reg.providers() if p.auth == "raw")

    def models(provider: str, value: str | None) -> httpx.Response:
        headers = {"Authorization": value} if value is not None else {}
        return httpx.get(sim.url(provider) + "/models", headers=headers)

    assert models(bearer, f"Bearer {SIM_KEY}").status_code == 200
    assert models(bearer, SIM_KEY).status_code == 401
    assert models(raw, SIM_KEY).status_code == 200
    assert models(raw, f"Bearer {SIM_KEY}").status_code == 200
    for provider in (bearer, raw):
        for value in (None, "Bearer sk-sim-bad", "Bearer sk-real-123"):
            r = models(provider, value)
            assert r.status_code == 401 and r.json()["error"]["message"]
    recorded = [q["headers"].get("authorization", "") for q in sim.requests]
    assert recorded and not any("sk-" in h for h in recorded)


# Quota windows run on a ManualClock: time moves only when a test advances it, so a loaded
# machine cannot slide a window between two requests that were meant to share it.


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
def clocked_sim(clock: ManualClock) -> Iterator[Simulator]:
    with Simulator(clock=clock) as s:
        yield s


def test_rpm_limit_gives_429_with_retry_after_then_recovers(
    clocked_sim: Simulator, clock: ManualClock
) -> None:
    sim = clocked_sim
    provider, model = chat_model(provider="oneapi")  # vLLM behind one-api
    sim.set_limits(provider, rpm=2, window_s=60)
    body = {"model": model, "messages": say("x")}
    codes = [post(sim, provider, "/chat/completions", body) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["Retry-After"] == "60"  # the whole window: all three at one instant
    assert codes[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert sim.stats["429"] == 1
    # another key has its own window
    other = post(
        sim, provider, "/chat/completions", body, headers={"Authorization": "Bearer sk-sim-other"}
    )
    assert other.status_code == 200
    clock.advance(59.5)  # Retry-After counts down on the simulator's clock
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 429 and r.headers["Retry-After"] == "0.50"
    clock.advance(0.5)
    assert post(sim, provider, "/chat/completions", body).status_code == 200


def test_sjtu_key_limit_answers_like_litellm(clocked_sim: Simulator, clock: ManualClock) -> None:
    # LiteLLM's key-level limiter: retry-after is always the whole window, with the limit
    # type and reset time in headers of their own and the hashed key in the message.
    sim = clocked_sim
    sim.set_limits("sjtu", rpm=2, window_s=60)
    body = {"model": "deepseek-chat", "messages": say("x")}
    codes = [post(sim, "sjtu", "/chat/completions", body) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    clock.advance(59.5)
    r = post(sim, "sjtu", "/chat/completions", body)
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.headers["rate_limit_type"] == "requests" and r.headers["reset_at"].endswith(" UTC")
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == ("throttling_error", "429", None)
    assert err["message"].startswith("Rate limit exceeded for api_key: ")
    assert (
        "Limit type: requests. Current limit: 2, Remaining: 0. Limit resets at: "
        in (err["message"])
    )
    assert SIM_KEY not in r.text


def test_tpm_counts_the_prompt_then_the_answer(clocked_sim: Simulator, clock: ManualClock) -> None:
    # A gateway counts prompt + completion tokens against TPM (LiteLLM: the response's
    # total_tokens): the prompt when the request is admitted, the answer once it was sent.
    sim = clocked_sim
    provider, model = chat_model(provider="oneapi")
    sim.retry_after = False
    sim.set_limits(provider, tpm=60, window_s=5)
    short = {"model": model, "messages": say("字" * 10)}  # 10 tokens in
    sim.script(model, [{"content": "答" * 40}])  # 40 tokens out: 50 of 60 used
    first = post(sim, provider, "/chat/completions", short)
    assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] == 40
    clock.advance(1.0)
    # 50 + 10 fits; had only the input been charged (10), a prompt of 45 would fit as well
    r = post(sim, provider, "/chat/completions", {"model": model, "messages": say("字" * 45)})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert "tpm=60" in r.json()["error"]["message"]
    clock.advance(4.0)  # the first request and its answer leave the window
    assert post(sim, provider, "/chat/completions", short).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_streamed_answer_is_charged_at_its_end_and_a_broken_one_not(
    clocked_sim: Simulator, clock: ManualClock, stream: bool
) -> None:
    sim = clocked_sim
    provider, model = chat_model(provider="oneapi")
    sim.set_limits(provider, tpm=100, window_s=60)
    body = {"model": model, "messages": say("字" * 10), "stream": stream}
    sim.script(model, [{"content": "答" * 50}, {"content": "答" * 50}, {"content": "答" * 20}])
    sim.inject("truncate_stream" if stream else "reset_mid_stream", after_chunks=2)
    with contextlib.suppress(httpx.HTTPError):
        post(sim, provider, "/chat/completions", body)  # broken: only its 10 tokens in count
    assert post(sim, provider, "/chat/completions", body).status_code == 200  # 10 + 60
    assert post(sim, provider, "/chat/completions", body).status_code == 200  # 70 + 30 = 100
    over = post(sim, provider, "/chat/completions", body)  # 100 + 10: the answers count
    assert over.status_code == 429 and "tpm=100" in over.json()["error"]["message"]


def test_enforce_limits_uses_the_catalogued_rpm(clock: ManualClock) -> None:
    p = next(p for p in get_registry().providers() if p.limits.rpm and p.models)
    rpm = p.limits.rpm or 0
    model = next(m.id for m in p.models if m.kind == "chat")
    body = {"model": model, "messages": say("x")}
    with Simulator(window_s=60, enforce_limits=True, clock=clock) as s:
        codes = [post(s, p.name, "/chat/completions", body).status_code for _ in range(rpm + 1)]
        clock.advance(60)
        after_window = post(s, p.name, "/chat/completions", body).status_code
    assert codes[-1] == 429 and set(codes[:-1]) == {200}
    assert after_window == 200


@pytest.mark.parametrize("stream", [False, True])
def test_status_and_error_200_faults(sim: Simulator, stream: bool) -> None:
    provider, model = chat_model()
    body = {"model": model, "messages": say("x"), "stream": stream}
    sim.inject("status", status=503, times=2)
    assert [post(sim, provider, "/chat/completions", body).status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    sim.inject("status", status=429)
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 429 and float(r.headers["Retry-After"]) > 0
    sim.inject("status", status=502)
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    sim.inject("error_200")
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 200
    err = sse_payloads(r.text)[0] if stream else r.json()
    assert err["error"]["type"] == "new_api_error"
    assert sim.stats["faults"] == 5


def test_fault_path_filter_only_hits_matching_requests(sim: Simulator) -> None:
    provider, model = chat_model()
    sim.inject("status", status=500, path_contains="/embeddings")
    ok = post(sim, provider, "/chat/completions", {"model": model, "messages": say("x")})
    assert ok.status_code == 200 and sim.stats.get("faults", 0) == 0


def test_reset_faults_break_the_connection(sim: Simulator) -> None:
    provider, model = chat_model()
    body = {"model": model, "messages": say("x")}
    sim.inject("reset")
    with pytest.raises(httpx.TransportError):
        post(sim, provider, "/chat/completions", body)
    sim.inject("reset_mid_stream", after_chunks=3)
    got: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            sim.url(provider) + "/chat/completions",
            headers=AUTH,
            json=dict(body, stream=True),
            timeout=5,
        ) as r,
    ):
        for line in r.iter_lines():
            if line:
                got.append(line)
    assert len(got) == 3 and "[DONE]" not in "".join(got)
    sim.inject("reset_mid_stream")
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim, provider, "/chat/completions", body)
    assert post(sim, provider, "/chat/completions", body).status_code == 200


def test_malformed_faults(sim: Simulator) -> None:
    provider, model = chat_model()
    body = {"model": model, "messages": say("x")}
    sim.inject("malformed_json")
    r = post(sim, provider, "/chat/completions", body)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    sim.inject("malformed_sse", after_chunks=2)
    r = post(sim, provider, "/chat/completions", dict(body, stream=True))
    with pytest.raises(json.JSONDecodeError):
        sse_payloads(r.text)
    assert r.text.endswith("data: [DONE]\n\n")


def stream_raw(sim: Simulator, provider: str, body: dict[str, Any]) -> tuple[httpx.Response, str]:
    """The whole SSE body; reading it raises if the body does not end properly."""
    url = sim.url(provider) + "/chat/completions"
    with httpx.stream("POST", url, headers=AUTH, json=body, timeout=10) as r:
        raw = r.read().decode()
    return r, raw


def answer_chunks(events: list[str]) -> list[Any]:
    """Decoded ``data:`` chunks, each checked to carry no finish_reason."""
    chunks = []
    for e in events:
        assert e.startswith("data: ") and "\n" not in e, e
        chunk = json.loads(e[len("data: ") :])
        assert [c.get("finish_reason") for c in chunk["choices"]] == [None], chunk
        chunks.append(chunk)
    return chunks


@pytest.mark.parametrize("kind", ["error_mid_stream", "error_event_mid_stream"])
def test_error_mid_stream_sends_the_gateway_error_after_some_chunks(
    sim: Simulator, kind: str
) -> None:
    import openai

    provider, model = chat_model(provider="oneapi")
    body = {
        "model": model,
        "messages": say("x"),
        "stream": True,
        "stream_options": {"include_usage": True},
        "sim": {"chunks": 20},
    }
    sim.inject(kind, status=503, after_chunks=3)
    r, raw = stream_raw(sim, provider, body)
    assert r.status_code == 200 and r.headers["connection"] == "close"
    *answer, last = [e for e in raw.split("\n\n") if e]
    assert len(answer_chunks(answer)) == 3
    lines = last.split("\n")
    if kind == "error_event_mid_stream":
        assert lines.pop(0) == "event: error"
    assert len(lines) == 1 and lines[0].startswith("data: ")
    err = json.loads(lines[0][len("data: ") :])["error"]
    assert err["code"] == "503" and err["type"] == "server_error" and "503" in err["message"]
    assert "[DONE]" not in raw
    # What a client built on the openai SDK sees: three chunks, then the gateway's error.
    client = openai.OpenAI(base_url=sim.url(provider), api_key=SIM_KEY, max_retries=0)
    sim.inject(kind, status=429, after_chunks=3)
    got = []
    with pytest.raises(openai.APIError, match="mid-stream") as info:
        for chunk in client.chat.completions.create(
            model=model, messages=say("x"), stream=True, extra_body={"sim": {"chunks": 20}}
        ):
            got.append(chunk)
    assert len(got) == 3 and info.value.body == {
        "message": "simulated upstream error mid-stream (429)",
        "type": "rate_limit_error",
        "param": None,
        "code": "429",
    }
    # Without a stream there is nothing to interrupt: the error is the response.
    sim.inject(kind, status=502)
    r = post(sim, provider, "/chat/completions", dict(body, stream=False))
    assert r.status_code == 502 and r.json()["error"]["code"] == "502"
    assert post(sim, provider, "/chat/completions", body).status_code == 200
    assert sim.stats["faults"] == 3


def test_error_mid_stream_behind_litellm_is_litellms_error_object(sim: Simulator) -> None:
    # What LiteLLM 1.108 wrote when the model server behind it died mid-stream.
    body = {"model": "deepseek-chat", "messages": say("x"), "stream": True, "sim": {"chunks": 9}}
    sim.inject("error_mid_stream", after_chunks=4)
    r, raw = stream_raw(sim, "sjtu", body)
    *answer, last = [e for e in raw.split("\n\n") if e]
    assert len(answer_chunks(answer)) == 4 and "[DONE]" not in raw
    assert last == (
        'data: {"error": {"message": "litellm.APIConnectionError: APIConnectionError: '
        'OpenAIException - Connection error.", "type": null, "param": null, "code": "500"}}'
    )


def test_truncate_stream_ends_cleanly_without_finish_reason_or_done(sim: Simulator) -> None:
    provider, model = chat_model()
    body = {"model": model, "messages": say("x"), "stream": True, "sim": {"chunks": 20}}
    sim.inject("truncate_stream", after_chunks=4)
    r, raw = stream_raw(sim, provider, body)
    assert r.status_code == 200 and r.headers["connection"] == "close"
    chunks = answer_chunks([e for e in raw.split("\n\n") if e])
    assert len(chunks) == 4 and "[DONE]" not in raw
    # A documented stream shorter than after_chunks still loses its finish chunk and [DONE].
    sim.inject("truncate_stream", after_chunks=100)
    documented = {
        "messages": [{"role": "user", "content": "你好呀"}],
        "stream": True,
        "model": "ecnu-plus",
    }
    _, raw = stream_raw(sim, "ecnu", documented)
    full = [e for e in fixture_sse("ecnu_plus_hello_stream").decode().split("\n\n") if e]
    assert [e for e in raw.split("\n\n") if e] == full[:-2]
    answer_chunks(full[:-2])
    # Without a stream: half a body, then the connection closes.
    sim.inject("truncate_stream")
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim, provider, "/chat/completions", dict(body, stream=False))
    assert sse_payloads(post(sim, provider, "/chat/completions", body).text)


def test_slow_first_byte_delays_the_headers(sim: Simulator) -> None:
    provider, model = chat_model()
    sim.inject("slow_first_byte", delay_s=0.3)
    t0 = time.monotonic()
    r = post(sim, provider, "/chat/completions", {"model": model, "messages": say("x")})
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.3
    with pytest.raises(ValueError):
        sim.inject("no_such_fault")


def test_control_endpoints_work_out_of_process(sim: Simulator) -> None:
    provider, model = chat_model()
    base = sim.base_url + "/_sim"
    assert (
        httpx.post(
            base + "/script", json={"model": model, "replies": [{"content": "scripted over http"}]}
        ).status_code
        == 200
    )
    assert httpx.post(base + "/inject", json={"kind": "status", "status": 500}).status_code == 200
    body = {"model": model, "messages": say("x")}
    assert post(sim, provider, "/chat/completions", body).status_code == 500
    r = post(sim, provider, "/chat/completions", body)
    assert r.json()["choices"][0]["message"]["content"] == "scripted over http"
    assert httpx.get(base + "/stats").json()["faults"] == 1
    assert httpx.post(base + "/inject", json={"kind": "bogus"}).status_code == 400


def test_each_simulator_has_a_key_and_so_a_client_budget_of_its_own() -> None:
    # Client budgets are kept per key and shared by every process on the machine; a key of
    # each simulator's own keeps one notebook's requests from delaying the next notebook's.
    first, second = Simulator(), Simulator()
    assert first.api_key != second.api_key and first.api_key.startswith("sk-sim-")
    one_a_minute, clock = RateLimits(rpm=1, window_s=60), ManualClock()

    def budget(key: str) -> Any:
        return limiter_for("sjtu", key, one_a_minute, limiter="memory", clock=clock)

    assert budget(first.api_key).try_acquire() is not None
    assert budget(first.api_key).try_acquire() is None  # the first simulator's minute is used
    assert budget(second.api_key).try_acquire() is not None  # the second one's is untouched
    with first:
        auth = {"Authorization": f"Bearer {first.api_key}"}
        assert httpx.get(first.url("sjtu") + "/models", headers=auth).status_code == 200
        assert httpx.get(first.base_url + "/_sim/health").json()["key"] == first.api_key
    assert Simulator(api_key=SIM_KEY).api_key == SIM_KEY
    with pytest.raises(ConfigError, match="sk-sim"):
        Simulator(api_key="sk-real-key")


def test_requests_are_recorded_with_redacted_keys(sim: Simulator) -> None:
    provider, model = chat_model()
    post(sim, provider, "/chat/completions", {"model": model, "messages": say("x")})
    rec = sim.requests[-1]
    assert rec["provider"] == provider and rec["path"].endswith("/chat/completions")
    assert rec["json"]["model"] == model and rec["headers"]["authorization"] == "Bearer ***"


# --------------------------------------------------------------------------- load and lifecycle


def test_200_concurrent_streams_complete(fresh_sim: Simulator) -> None:
    provider, model = chat_model()
    body = {"model": model, "messages": say("load"), "stream": True, "sim": {"chunks": 50}}
    url = fresh_sim.url(provider) + "/chat/completions"

    def one(client: httpx.Client) -> int:
        n = 0
        with client.stream("POST", url, json=body, headers=AUTH) as r:
            for line in r.iter_lines():
                n += line.startswith("data: ")
        return n

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    with (
        httpx.Client(limits=limits, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(200) as pool,
    ):
        counts = list(pool.map(lambda _: one(client), range(200)))
        # keep-alive: the next round reuses the pooled connections
        counts += list(pool.map(lambda _: one(client), range(200)))
    assert len(counts) == 400 and min(counts) >= 50
    assert fresh_sim.stats["streams"] == 400


def test_stop_is_fast_with_idle_keepalive_connections() -> None:
    s = Simulator().start()
    client = httpx.Client()
    assert client.get(s.url("sjtu") + "/models", headers=AUTH).status_code == 200
    t0 = time.monotonic()
    s.stop()
    s.stop()
    # A slow stop waits out the 5 s thread join or the 120 s keep-alive timeout; the bound
    # leaves room for a loaded machine without letting either through.
    assert time.monotonic() - t0 < 3.0
    with pytest.raises(httpx.TransportError):
        client.get(s.url("sjtu") + "/models", headers=AUTH)
    client.close()


def test_module_entry_point_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "campusllm.sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        head = proc.stdout.readline()
        lines = [proc.stdout.readline() for _ in get_registry().providers()]
        sjtu = next(ln.split()[-1] for ln in lines if ln.split()[0] == "sjtu")
        assert "sk-sim-local" in head
        assert httpx.get(sjtu + "/models", headers=AUTH).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
