"""CampusLLM structured output: response_format json_schema where the registry says it works."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

from campusllm.errors import CapabilityError

PROMPT = PromptTemplate("Describe the city {city}.")


class City(BaseModel):
    name: str
    population: int


def _no_tools_json_schema(find_model: Any) -> str:
    return str(find_model(lambda m: m.json_schema and not m.tools))


def test_a_model_without_tools_gets_response_format_json_schema(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    llm = make_llm(_no_tools_json_schema(find_model))
    assert llm.metadata.is_function_calling_model is False
    city = llm.structured_predict(City, PROMPT, city="Shanghai")
    assert isinstance(city, City)
    sent = requests_to("/chat/completions")[-1]
    assert "tools" not in sent
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"
    assert set(fmt["json_schema"]["schema"]["required"]) == {"name", "population"}


async def test_async_and_streamed_structured_output_use_the_same_path(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    llm = make_llm(_no_tools_json_schema(find_model))
    assert isinstance(await llm.astructured_predict(City, PROMPT, city="Shanghai"), City)
    parts = list(llm.stream_structured_predict(City, PROMPT, city="Shanghai"))
    assert parts and isinstance(parts[-1], City)
    aparts = [p async for p in await llm.astream_structured_predict(City, PROMPT, city="Beijing")]
    assert aparts and isinstance(aparts[-1], City)
    sent = requests_to("/chat/completions")
    assert len(sent) == 3 and all(b["response_format"]["type"] == "json_schema" for b in sent)
    assert all(b.get("stream") for b in sent[1:])


def test_as_structured_llm_uses_json_schema_too(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    sllm = make_llm(_no_tools_json_schema(find_model)).as_structured_llm(City)
    resp = sllm.chat([ChatMessage(role="user", content="Describe Shanghai.")])
    assert isinstance(resp.raw, City)
    assert requests_to("/chat/completions")[-1]["response_format"]["type"] == "json_schema"


def test_json_schema_on_request_for_a_model_with_tools(
    make_llm: Any, requests_to: Any, find_model: Any
) -> None:
    model = find_model(lambda m: m.json_schema and m.tools)
    city = make_llm(model, structured_output_method="json_schema").structured_predict(
        City, PROMPT, city="Shanghai"
    )
    assert isinstance(city, City)
    sent = requests_to("/chat/completions")[-1]
    assert sent["response_format"]["type"] == "json_schema" and "tools" not in sent
    # the default stays tool calling where the model has tools
    make_llm(model).structured_predict(City, PROMPT, city="Shanghai")
    sent = requests_to("/chat/completions")[-1]
    assert "response_format" not in sent and sent["tools"][0]["function"]["name"] == "City"


def test_the_capability_policy_decides_what_a_model_cannot_do(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    # function calling asked of a model without tools: json_schema instead, with a warning
    llm = make_llm(_no_tools_json_schema(find_model), structured_output_method="function_calling")
    with pytest.warns(UserWarning, match="json_schema"):
        assert isinstance(llm.structured_predict(City, PROMPT, city="Shanghai"), City)
    assert requests_to("/chat/completions")[-1]["response_format"]["type"] == "json_schema"
    # a model with neither: refused before anything is sent
    bare = find_model(lambda m: not m.json_schema and not m.tools)
    before = len(requests_to("/chat/completions"))
    with pytest.raises(CapabilityError):
        make_llm(bare, structured_output_method="json_schema").structured_predict(
            City, PROMPT, city="Shanghai"
        )
    assert len(requests_to("/chat/completions")) == before


def test_llama_index_program_modes_other_than_default_are_left_alone(
    make_llm: Any, find_model: Any, requests_to: Any
) -> None:
    llm = make_llm(_no_tools_json_schema(find_model), pydantic_program_mode=PydanticProgramMode.LLM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            llm.structured_predict(City, PROMPT, city="Shanghai")
        except ValueError:
            pass  # a free-text answer may not parse; what matters is what was sent
    assert "response_format" not in requests_to("/chat/completions")[-1]
