"""Running the conformance scenarios: raw wire checks, our classes' outcomes, adapter checks.

The scenarios themselves (data) are in ``conformance_scenarios.py``; a :class:`Target` says
where they run (the simulator in ``tests/test_conformance_sim.py``, the real peers in
``tests/peers/test_conformance_peers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydantic
import pytest
from conformance_scenarios import (
    PERSON,
    SCENARIOS,
    WEATHER_CALL,
    Client,
    Scenario,
    Wire,
    require_registry,
)

import campusllm.errors as errors

# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    """Where a scenario runs: the simulator or the real peers."""

    name: str  # "sim" | "peer"
    base_url: Callable[[Scenario], str]  # ends at /v1 (the API root)
    keys: Mapping[str, str]
    prepare: Callable[[Scenario], None] = lambda s: None
    attempts: Callable[[Scenario], int | None] = lambda s: None
    requests: Callable[[Scenario], list[dict[str, Any]]] = lambda s: []
    """Chat request bodies that reached the model server, oldest first."""


def params(check: str, target: str, vias: bool = False) -> list[Any]:
    """pytest params for ``check`` ("wire" or "client") on ``target``, xfails attached."""
    out = []
    for s in SCENARIOS:
        if not vias and s.wire is None:
            continue
        for via in s.client.vias if vias else ("wire",):
            reason = s.why_xfail(target, via)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            ident = f"{s.id}-{via}" if vias else s.id
            out.append(pytest.param(s, via, id=ident, marks=marks))
    return out


# ----------------------------------------------------------------------------- wire check


def _request(s: Scenario) -> tuple[str, dict[str, Any]]:
    model = s.model.split(":", 1)[1]
    if s.endpoint == "embeddings":
        return "/embeddings", {"model": model, "input": ["hello world", "a dragon"]}
    if s.endpoint == "rerank":
        docs = ["Paris is the capital of France.", "Bananas are yellow."]
        return "/rerank", {"model": model, "query": "capital of France", "documents": docs}
    body: dict[str, Any] = {"model": model, "messages": list(s.messages), "stream": s.stream}
    body.update(s.body)
    if s.thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": s.thinking}
    return "/chat/completions", body


def _send(client: httpx.Client, url: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """Status, headers, parsed body (non-stream) or events (stream), done flag."""
    out: dict[str, Any] = {"events": [], "done": False, "broken": None}
    if not stream:
        try:
            r = client.post(url, json=body)
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            out.update(status=None, headers={}, broken=type(e).__name__)
            return out
        out.update(status=r.status_code, headers=r.headers, text=r.text)
        with contextlib.suppress(ValueError):
            out["json"] = r.json()
        return out
    with client.stream("POST", url, json=body) as r:
        out.update(status=r.status_code, headers=r.headers)
        if r.status_code >= 400:
            r.read()
            out["text"] = r.text
            with contextlib.suppress(ValueError):
                out["json"] = r.json()
            return out
        try:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    out["done"] = True
                    continue
                out["events"].append(json.loads(data))
        except httpx.HTTPError as e:
            out["broken"] = type(e).__name__
    return out


def run_wire(s: Scenario, target: Target) -> None:
    require_registry()
    path, body = _request(s)
    headers = {"Authorization": f"Bearer {target.keys[s.key]}"}
    target.prepare(s)
    with httpx.Client(base_url=target.base_url(s), headers=headers, timeout=60.0) as client:
        for _ in range(s.attempts):
            got = _send(client, path.lstrip("/"), body, s.stream)
            if got["status"] != 200:
                break
    assert s.wire is not None
    check_wire(s.wire, got)


def _error_message(got: Mapping[str, Any]) -> str:
    data = got.get("json")
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))
    return str(got.get("text", ""))


def check_wire(w: Wire, got: Mapping[str, Any]) -> None:
    if w.drops:
        assert got["broken"], f"the response arrived complete (HTTP {got['status']})"
        return
    assert got["status"] == w.status, (got["status"], got.get("text", "")[:500])
    for h in w.numeric_headers:
        assert h in got["headers"], f"no {h} header: {dict(got['headers'])}"
        assert float(got["headers"][h]) > 0
    if w.error_says:
        msg = _error_message(got).lower()
        for word in w.error_says:
            assert word in msg, (word, msg)
    if w.status != 200:
        return
    content, reasoning, psf = "", "", False
    if got["events"] or got.get("done") or got.get("broken"):
        errors_seen = [e for e in got["events"] if "error" in e]
        if w.stream_error_event:
            assert errors_seen, f"no in-band error event (stream broke: {got['broken']})"
            assert not got["done"], "an error event must not be followed by [DONE]"
            return
        assert got["done"] and not errors_seen and not got["broken"], got
        for e in got["events"]:
            for ch in e.get("choices") or []:
                d = ch.get("delta") or {}
                content += d.get("content") or ""
                reasoning += d.get("reasoning_content") or ""
                psf = psf or "provider_specific_fields" in ch
    elif w.stream_error_event:
        raise AssertionError("expected a stream")
    else:
        data = got["json"]
        if w.embedding_dim is not None:
            vecs = [d["embedding"] for d in data["data"]]
            assert len(vecs) == 2 and all(len(v) == w.embedding_dim for v in vecs)
            return
        if w.rerank_scores:
            results = data["results"]
            assert sorted(r["index"] for r in results) == [0, 1]
            assert all(isinstance(r["relevance_score"], float) for r in results)
            return
        ch = data["choices"][0]
        content = ch["message"].get("content") or ""
        reasoning = ch["message"].get("reasoning_content") or ""
        psf = "provider_specific_fields" in ch
    if w.content:
        assert content.strip(), "empty answer"
    if w.reasoning_field is True:
        assert reasoning.strip(), "no reasoning_content"
    if w.reasoning_field is False:
        assert not reasoning, f"unexpected reasoning_content {reasoning!r}"
    for text in w.content_has:
        assert text in content, (text, content)
    for text in w.content_lacks:
        assert text not in content, (text, content)
    if w.leading_ws:
        assert content != content.lstrip(), f"no leading whitespace: {content!r}"
    if w.json_content:
        json.loads(content)
    if w.provider_specific_fields:
        assert psf, "no provider_specific_fields in the choice"


# ----------------------------------------------------------------------------- client check


@dataclass
class Outcome:
    content: str = ""
    reasoning: str = ""
    error: BaseException | None = None
    vectors: list[list[float]] | None = None
    ranked: list[str] | None = None


def _caller(s: Scenario, url: str, key: str) -> Outcome:
    from campusllm.chat import ChatCaller

    out = Outcome()
    with ChatCaller(s.model, api_key=key, base_url=url, timeout=s.client.timeout) as caller:
        msgs = list(s.messages)
        if s.stream:
            for d in caller.stream(msgs, thinking=s.thinking, **s.body):
                out.content += d.content
                out.reasoning += d.reasoning
        else:
            msg = caller.invoke(msgs, thinking=s.thinking, **s.body)
            out.content, out.reasoning = msg.content, msg.reasoning
    return out


def _langchain(s: Scenario, url: str, key: str) -> Outcome:
    common = {"api_key": key, "base_url": url, "max_retries": s.client.max_retries,
              "timeout": s.client.timeout}  # fmt: skip
    if s.endpoint == "embeddings":
        from langchain_campusllm import CampusLLMEmbeddings

        emb = CampusLLMEmbeddings(model=s.model, **common)
        return Outcome(vectors=emb.embed_documents(["hello world", "a dragon"]))
    if s.endpoint == "rerank":
        from langchain_core.documents import Document

        from langchain_campusllm import CampusLLMRerank

        rr = CampusLLMRerank(model=s.model, top_n=2, **common)
        docs = [Document(page_content=t) for t in ("Bananas are yellow.", "Paris is in France.")]
        got = rr.compress_documents(docs, "capital of France")
        return Outcome(ranked=[d.page_content for d in got])
    from langchain_campusllm import ChatCampusLLM

    extra = dict(s.body)
    kw = {k: extra.pop(k) for k in ("temperature", "max_tokens") if k in extra}
    llm = ChatCampusLLM(model=s.model, thinking=s.thinking, model_kwargs=extra, **kw, **common)
    out = Outcome()
    msgs = [(m["role"], m["content"]) for m in s.messages]
    if s.stream:
        for chunk in llm.stream(msgs):
            out.content += chunk.content if isinstance(chunk.content, str) else ""
            out.reasoning += chunk.additional_kwargs.get("reasoning_content") or ""
    else:
        msg = llm.invoke(msgs)
        out.content = msg.content if isinstance(msg.content, str) else ""
        out.reasoning = msg.additional_kwargs.get("reasoning_content") or ""
    return out


def _llamaindex(s: Scenario, url: str, key: str) -> Outcome:
    common = {"api_key": key, "base_url": url, "max_retries": s.client.max_retries,
              "timeout": s.client.timeout}  # fmt: skip
    if s.endpoint == "embeddings":
        from llama_index_campusllm import CampusLLMEmbedding

        emb = CampusLLMEmbedding(model=s.model, **common)
        return Outcome(vectors=emb.get_text_embedding_batch(["hello world", "a dragon"]))
    if s.endpoint == "rerank":
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

        from llama_index_campusllm import CampusLLMRerank

        rr = CampusLLMRerank(model=s.model, top_n=2, **common)
        nodes = [NodeWithScore(node=TextNode(text=t)) for t in
                 ("Bananas are yellow.", "Paris is in France.")]  # fmt: skip
        got = rr.postprocess_nodes(nodes, query_bundle=QueryBundle("capital of France"))
        return Outcome(ranked=[n.node.get_content() for n in got])
    from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

    from llama_index_campusllm import CampusLLM

    body = dict(s.body)
    kw: dict[str, Any] = {"thinking": s.thinking}
    for name in ("temperature", "max_tokens"):
        if name in body:
            kw[name] = body.pop(name)
    msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in s.messages]

    async def run() -> Outcome:
        llm = CampusLLM(model=s.model, additional_kwargs=body, **kw, **common)
        out = Outcome()
        try:
            if s.stream:
                last = None
                async for r in await llm.astream_chat(msgs):
                    out.content += r.delta or ""
                    out.reasoning += r.additional_kwargs.get("thinking_delta") or ""
                    last = r
                assert last is not None
            else:
                r = await llm.achat(msgs)
                out.content = r.message.content or ""
                out.reasoning = "".join(
                    b.content or "" for b in r.message.blocks if isinstance(b, ThinkingBlock)
                )
        finally:
            await llm.aclose()
        return out

    return asyncio.run(run())


VIAS: dict[str, Callable[[Scenario, str, str], Outcome]] = {
    "caller": _caller,
    "langchain": _langchain,
    "llamaindex": _llamaindex,
}


def run_client(s: Scenario, via: str, target: Target) -> None:
    require_registry()
    target.prepare(s)
    before = target.attempts(s)
    out = Outcome()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown-model warnings are part of the scenario
        for _ in range(s.attempts):
            try:
                out = VIAS[via](s, target.base_url(s), target.keys[s.key])
            except errors.CampusLLMError as e:
                out = Outcome(error=e)
                break
    after = target.attempts(s)
    check_client(s.client, out)
    if s.client.sent:
        sent = target.requests(s)
        assert sent, "no request reached the model server"
        for path, value in s.client.sent:
            got: Any = sent[-1]
            for part in path.split("."):
                got = got.get(part) if isinstance(got, dict) else None
            assert got == value, f"the model server got {path}={got!r}, not {value!r}"
    if s.client.max_attempts is not None and before is not None and after is not None:
        assert after - before <= s.client.max_attempts, (
            f"{after - before} generations started on the model server"
        )


def check_client(c: Client, out: Outcome) -> None:
    if c.error is not None:
        assert out.error is not None, f"expected {c.error}, got an answer {out.content!r}"
        expected = getattr(errors, c.error)
        assert isinstance(out.error, expected), (
            f"expected {c.error}, got {type(out.error).__name__}: {out.error}"
        )
        text = str(out.error).lower()
        for word in c.says:
            assert word in text, (word, text)
        for word in c.never_says:
            assert word not in text, (word, text)
        if c.retry_after_min is not None:
            ra = getattr(out.error, "retry_after", None)
            assert ra is not None and ra >= c.retry_after_min, f"retry_after={ra}"
        if c.partial:
            assert getattr(out.error, "partial_content", ""), "the partial answer was lost"
        return
    assert out.error is None, f"{type(out.error).__name__}: {out.error}"
    if out.vectors is not None:
        assert len(out.vectors) == 2 and len({len(v) for v in out.vectors}) == 1
        assert out.vectors[0] != out.vectors[1]
        return
    if out.ranked is not None:
        assert sorted(out.ranked) == ["Bananas are yellow.", "Paris is in France."]
        return
    if c.content:
        assert out.content.strip(), "empty answer"
    if c.reasoning is True:
        assert out.reasoning.strip(), "no reasoning"
    if c.reasoning is False:
        assert not out.reasoning.strip(), f"unexpected reasoning {out.reasoning!r}"
    if c.no_tags:
        assert "<think>" not in out.content and "</think>" not in out.content, out.content
    if c.no_leading_ws:
        assert out.content == out.content.lstrip(), f"leading whitespace: {out.content!r}"
    if c.json_content:
        json.loads(out.content)


# ----------------------------------------------------------------------------- adapter checks
#
# Framework features that a single request/response cannot show: a tool loop's history and
# structured output. Each runs on both targets like the scenarios above.


@dataclass(frozen=True)
class AdapterCheck:
    id: str
    what: str
    scenario: Scenario  # model, peer, upstream: where it runs
    run: Callable[[Scenario, Target], None]
    xfail: Mapping[str, str] = field(default_factory=dict)  # "sim" | "peer" | "*" -> why


def _assistant_turns(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages", []) if m.get("role") == "assistant"]


def _tool_loop_langchain(s: Scenario, target: Target) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    @tool
    def get_weather(city: str) -> str:
        """The weather of a city."""
        return "sunny"

    llm = ChatCampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                        max_retries=2, timeout=60.0).bind_tools([get_weather])  # fmt: skip
    history = [
        HumanMessage("What is the weather in Paris?"),
        AIMessage(
            "", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]
        ),  # fmt: skip
        ToolMessage("sunny", tool_call_id="call_1"),
    ]
    before = target.attempts(s)
    answer = llm.invoke(history)
    _check_tool_turn(s, target, before)
    assert isinstance(answer.content, str) and answer.content.strip()


def _tool_loop_llamaindex(s: Scenario, target: Target) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from llama_index_campusllm import CampusLLM

    async def run() -> str:
        llm = CampusLLM(model=s.model, api_key=target.keys["good"],
                        base_url=target.base_url(s), max_retries=2, timeout=60.0)  # fmt: skip
        history = [
            ChatMessage(role=MessageRole.USER, content="What is the weather in Paris?"),
            ChatMessage(
                role=MessageRole.ASSISTANT,
                content="",
                additional_kwargs={"tool_calls": [WEATHER_CALL]},
            ),  # fmt: skip
            ChatMessage(
                role=MessageRole.TOOL, content="sunny", additional_kwargs={"tool_call_id": "call_1"}
            ),  # fmt: skip
        ]
        try:
            r = await llm.achat(history)
        finally:
            await llm.aclose()
        return r.message.content or ""

    before = target.attempts(s)
    answer = asyncio.run(run())
    _check_tool_turn(s, target, before)
    assert answer.strip()


def _check_tool_turn(s: Scenario, target: Target, before: int | None) -> None:
    sent = target.requests(s)
    assert sent, "no request reached the model server"
    turns = _assistant_turns(sent[-1])
    assert turns and turns[0].get("tool_calls"), sent[-1]
    # "" (or no content key at all) is what strict OpenAI-compatible servers accept.
    assert turns[0].get("content", "") is not None, "assistant tool-call turn sent content: null"
    after = target.attempts(s)
    if before is not None and after is not None:
        assert after - before == 1, f"{after - before} requests for one tool-loop step"


class Person(pydantic.BaseModel):
    name: str
    age: int


def _structured_langchain(s: Scenario, target: Target) -> None:
    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                        max_retries=0, temperature=0, max_tokens=60)  # fmt: skip
    got = llm.with_structured_output(Person, method="json_schema").invoke(PERSON[0]["content"])
    assert isinstance(got, Person) and got.name


def _structured_llamaindex(s: Scenario, target: Target) -> None:
    from llama_index.core.prompts import PromptTemplate

    from llama_index_campusllm import CampusLLM

    llm = CampusLLM(model=s.model, api_key=target.keys["good"], base_url=target.base_url(s),
                    max_retries=0, temperature=0, max_tokens=60)  # fmt: skip
    try:
        got = llm.structured_predict(Person, PromptTemplate(PERSON[0]["content"]))
    finally:
        llm.close() if hasattr(llm, "close") else None
    assert isinstance(got, Person) and got.name
    sent = target.requests(s)  # what the model server received, where the target records it
    if sent:
        assert sent[-1].get("response_format", {}).get("type") == "json_schema", sent[-1]


_TOOLSTRICT = Scenario("tool-loop", "", "sjtu:peer-toolstrict", "litellm", upstream="toolstrict")
_JSONCHAT = Scenario("structured", "", "llamacpp:smollm2-chat", "llama:chat")

ADAPTER_CHECKS: list[AdapterCheck] = [
    AdapterCheck("tool-loop-langchain", "a LangChain tool loop's history is accepted",
                 _TOOLSTRICT, _tool_loop_langchain),
    AdapterCheck("tool-loop-llamaindex", "a LlamaIndex tool loop's history is accepted",
                 _TOOLSTRICT, _tool_loop_llamaindex),
    AdapterCheck("json-schema-langchain", "with_structured_output(method='json_schema')",
                 _JSONCHAT, _structured_langchain),
    AdapterCheck("json-schema-llamaindex", "structured_predict on a json_schema model without "
                 "tools uses response_format json_schema", _JSONCHAT, _structured_llamaindex),
]  # fmt: skip


def adapter_params(target: str) -> list[Any]:
    out = []
    for c in ADAPTER_CHECKS:
        reason = c.xfail.get(target) or c.xfail.get("*")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def run_adapter(c: AdapterCheck, target: Target) -> None:
    require_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.run(c.scenario, target)
