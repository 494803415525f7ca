"""CampusLLMCompletion, the LangChain text-completion LLM, against the simulator.

langchain-tests has no standard suite for ``BaseLLM``; these tests cover what its chat-model
suites check (construction, env keys, secrets, serialisation, invoke/stream/batch and async,
stop, usage, callbacks, errors) for a completion model.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseLLM
from langchain_core.load import dumpd, dumps, load
from langchain_core.outputs import GenerationChunk

from campusllm.errors import CapabilityError, ConfigError, RateLimitError, StreamInterruptedError
from campusllm.sim import SIM_KEY
from langchain_campusllm import CampusLLMCompletion

R1 = "maas:DeepSeek-R1-Distill-Qwen-32B"
PLAIN = "maas:Qwen2-72B"
OPENED = "<｜User｜>Which is larger, 9.11 or 9.9?<｜Assistant｜><think>\n"


def _llm(sim: Any, model: str = PLAIN, **kw: Any) -> CampusLLMCompletion:
    kw.setdefault("max_retries", 0)
    kw.setdefault("api_key", SIM_KEY)
    return CampusLLMCompletion(model=model, base_url=sim.url(model.split(":")[0]), **kw)


def _sent(sim: Any) -> list[dict[str, Any]]:
    return [r["json"] for r in sim.requests if r["path"].endswith("/completions")]


# --------------------------------------------------------------------------- construction


def test_it_is_a_langchain_llm_resolved_from_the_registry(sim: Any) -> None:
    llm = _llm(sim, "maas:qwen2-72b")  # names match case-insensitively
    assert isinstance(llm, BaseLLM)
    assert llm.model_name == "Qwen2-72B" and llm.provider == "maas"
    assert llm.resolved.key == "maas:Qwen2-72B"
    assert llm._llm_type == "campusllm-completion"
    params = llm._get_ls_params()
    assert params["ls_provider"] == "campusllm" and params["ls_model_name"] == "Qwen2-72B"
    assert params["ls_model_type"] == "llm"


def test_the_key_comes_from_the_providers_env_var(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_API_KEY", SIM_KEY)
    llm = CampusLLMCompletion(model=PLAIN, base_url=sim.url("maas"))
    assert llm.api_key is not None and llm.api_key.get_secret_value() == SIM_KEY
    assert llm.invoke("Once upon a time")


def test_a_model_is_required_and_chat_only_models_are_refused(sim: Any) -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        CampusLLMCompletion(api_key=SIM_KEY)
    with pytest.raises(CapabilityError, match="chat only"):
        CampusLLMCompletion(model="sjtu:deepseek-chat", api_key=SIM_KEY, base_url=sim.url("sjtu"))


def test_secrets_never_in_repr_str_or_dumps(sim: Any) -> None:
    secret = "sk-sim-very-secret-value-42"
    llm = _llm(sim, api_key=secret)
    for text in (repr(llm), str(llm), dumps(llm), json.dumps(dumpd(llm)), str(llm.model_dump())):
        assert secret not in text
    assert dumpd(llm)["kwargs"]["api_key"]["type"] == "secret"


def test_dumps_load_round_trip_reads_key_from_env(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = _llm(sim, R1, temperature=0.2, stop=["THE END"])
    monkeypatch.setenv("MAAS_API_KEY", SIM_KEY)
    again = load(
        dumpd(llm),
        allowed_objects=[CampusLLMCompletion],
        valid_namespaces=["langchain_campusllm"],
        secrets_from_env=True,
    )
    assert isinstance(again, CampusLLMCompletion)
    assert again.model_dump() == llm.model_dump()
    assert again.invoke("Once upon a time")


# --------------------------------------------------------------------------- calls


def test_invoke_stream_batch_and_async_twins_agree(sim: Any) -> None:
    llm = _llm(sim)
    text = llm.invoke("Once upon a time")
    assert "Once upon a time" in text
    assert "".join(llm.stream("Once upon a time")) == text
    assert llm.batch(["Once upon a time", "Long ago"]) == [text, llm.invoke("Long ago")]

    async def run() -> tuple[str, str, list[str]]:
        a = await llm.ainvoke("Once upon a time")
        s = "".join([c async for c in llm.astream("Once upon a time")])
        b = await llm.abatch(["Once upon a time", "Long ago"])
        await llm.aclose()
        return a, s, b

    a, s, b = asyncio.run(run())
    assert a == s == text and b[0] == text


def test_a_batch_sends_one_request_per_prompt(sim: Any) -> None:
    prompts = [f"Story number {i}" for i in range(5)]
    out = _llm(sim).batch(prompts)
    assert [p in o for p, o in zip(prompts, out, strict=True)] == [True] * 5
    assert sorted(b["prompt"] for b in _sent(sim)) == sorted(prompts)


def test_stop_per_call_replaces_the_fields_stop(sim: Any) -> None:
    llm = _llm(sim, stop=["time"])
    assert "time" not in llm.invoke("Once upon a time")
    assert _sent(sim)[-1]["stop"] == ["time"]
    text = llm.invoke("Once upon a time", stop=["upon"])
    assert "upon" not in text and _sent(sim)[-1]["stop"] == ["upon"]


def test_request_defaults_fields_and_model_kwargs_reach_the_wire(sim: Any) -> None:
    llm = _llm(sim, "maas:ChatGLM4-9B", temperature=0.3, max_tokens=50, model_kwargs={"seed": 7})
    llm.invoke("Once upon a time", top_p=0.5)
    body = _sent(sim)[-1]
    assert body["stop_token_ids"] == [151329, 151336, 151338]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["top_p"]) == (
        0.3,
        50,
        7,
        0.5,
    )
    assert body["model"] == "ChatGLM4-9B" and "messages" not in body


def test_reasoning_is_split_into_generation_info(sim: Any) -> None:
    result = _llm(sim, R1).generate([OPENED])
    gen = result.generations[0][0]
    assert gen.text.startswith("Simulated completion") and "think>" not in gen.text
    assert gen.generation_info is not None
    assert gen.generation_info["reasoning_content"].startswith("Simulated reasoning")
    assert gen.generation_info["finish_reason"] == "stop"
    assert result.llm_output is not None
    usage = result.llm_output["token_usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_streamed_chunks_carry_the_reasoning_and_end_with_finish_and_usage(sim: Any) -> None:
    llm = _llm(sim, R1)
    chunks: list[GenerationChunk] = list(llm._stream(OPENED))
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert merged.generation_info is not None
    whole = llm.generate([OPENED]).generations[0][0]
    assert merged.text == whole.text
    assert merged.generation_info["reasoning_content"] == whole.generation_info["reasoning_content"]  # type: ignore[index]
    assert merged.generation_info["finish_reason"] == "stop"
    assert merged.generation_info["token_usage"]["completion_tokens"] > 0


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.reasoning: list[str] = []

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.tokens.append(token)
        chunk = kwargs.get("chunk")
        if chunk is not None and chunk.generation_info:
            self.reasoning.append(chunk.generation_info.get("reasoning_content", ""))


def test_streaming_true_reports_every_token_to_callbacks(sim: Any) -> None:
    handler = _Tokens()
    llm = _llm(sim, R1, streaming=True)
    text = llm.invoke(OPENED, config={"callbacks": [handler]})
    assert len(handler.tokens) > 3 and "".join(handler.tokens) == text
    assert "".join(handler.reasoning).startswith("Simulated reasoning")


def test_logprobs_asked_for_come_back_in_generation_info(sim: Any) -> None:
    llm = _llm(sim, model_kwargs={"logprobs": 1})
    result = llm.generate(["Once upon a time"])
    assert _sent(sim)[-1]["logprobs"] == 1
    # the simulator sends logprobs: null, as vLLM does when it cannot compute them
    assert "logprobs" not in (result.generations[0][0].generation_info or {})


# --------------------------------------------------------------------------- errors


def test_errors_are_campusllm_types_and_rate_limits_are_retried(sim: Any) -> None:
    sim.inject("status", status=429, path_contains="/completions")
    assert _llm(sim, max_retries=2).invoke("Once upon a time")
    sim.inject("status", status=429, times=3, path_contains="/completions")
    with pytest.raises(RateLimitError):
        _llm(sim, max_retries=1).invoke("Once upon a time")


def test_a_broken_stream_keeps_the_partial_text(sim: Any) -> None:
    sim.script("Qwen2-72B", [{"content": "A long tale of many chunks. " * 4, "chunks": 12}])
    sim.inject("reset_mid_stream", after_chunks=6, path_contains="/completions")
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for piece in _llm(sim).stream("Once upon a time"):
            got.append(piece)
    assert info.value.partial_content == "".join(got) != ""


def test_a_thinking_switch_is_refused_before_any_request(sim: Any) -> None:
    with pytest.raises(CapabilityError, match="without a chat template"):
        _llm(sim, R1).invoke(OPENED, thinking=False)
    with pytest.raises(CapabilityError, match="without a chat template"):
        _llm(sim, R1, thinking=True)  # as a constructor argument too: never dropped unseen
    assert _sent(sim) == []
