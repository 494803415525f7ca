"""langchain-tests standard suites: unit tests offline, integration tests against the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
)
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from campusllm.sim import SIM_KEY
from langchain_campusllm import CampusLLMEmbeddings, ChatCampusLLM

CHAT_MODEL = "sjtu:deepseek-chat"
OFFLINE_URL = "http://127.0.0.1:9/sjtu/api/v1"  # never contacted by the unit suites


def _spec(key: str) -> Any:
    from campusllm.registry import resolve

    return resolve(key).model


def _embedding_model() -> str:
    from campusllm.registry import get_registry

    for provider, spec in get_registry().models(kind="embedding"):
        if provider.name != "custom" and spec.status != "deprecated":
            return f"{provider.name}:{spec.id}"
    raise RuntimeError("the catalog has no embedding model")


class TestChatCampusLLMUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatCampusLLM]:
        return ChatCampusLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": CHAT_MODEL, "base_url": OFFLINE_URL, "api_key": "sk-unit-test-key"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        from campusllm.registry import get_registry

        env = get_registry().provider("sjtu").key_env[0]
        return (
            {env: "sk-sim-from-env"},
            {"model": CHAT_MODEL, "base_url": OFFLINE_URL},
            {"openai_api_key": "sk-sim-from-env", "model_name": "deepseek-chat"},
        )

    @pytest.mark.xfail(
        reason="load(allowed_objects='all') only admits classes in langchain_core.load.mapping; "
        "the round trip with allowed_objects=[ChatCampusLLM] is tested in test_chat.py"
    )
    def test_serdes(self, model: BaseChatModel, snapshot: Any) -> None:
        super().test_serdes(model, snapshot)


class TestChatCampusLLMIntegration(ChatModelIntegrationTests):
    _url: str = ""

    @pytest.fixture(autouse=True)
    def _point_at_sim(self, sim: Any) -> None:
        type(self)._url = sim.url("sjtu")

    @property
    def chat_model_class(self) -> type[ChatCampusLLM]:
        return ChatCampusLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": CHAT_MODEL, "base_url": self._url, "api_key": SIM_KEY, "max_retries": 0}

    @property
    def has_tool_calling(self) -> bool:
        return bool(_spec(CHAT_MODEL).tools)

    @property
    def has_tool_choice(self) -> bool:
        return bool(_spec(CHAT_MODEL).tools)

    @property
    def supports_json_mode(self) -> bool:
        return bool(_spec(CHAT_MODEL).json_mode)

    @property
    def supports_image_inputs(self) -> bool:
        return bool(_spec(CHAT_MODEL).vision)

    @property
    def model_override_value(self) -> str | None:
        from campusllm.registry import get_registry

        for spec in get_registry().provider("sjtu").models:
            if spec.kind == "chat" and spec.id != _spec(CHAT_MODEL).id:
                return spec.id
        return None

    @pytest.mark.xfail(
        reason="timing benchmark of a real gateway; meaningless on the simulator", run=False
    )
    def test_stream_time(self, *args: Any) -> None:
        super().test_stream_time(*args)


class TestCampusLLMEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[CampusLLMEmbeddings]:
        return CampusLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": _embedding_model(), "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-t"}


class TestCampusLLMEmbeddingsIntegration(EmbeddingsIntegrationTests):
    _model: str = ""
    _url: str = ""

    @pytest.fixture(autouse=True)
    def _point_at_sim(self, sim: Any) -> None:
        type(self)._model = _embedding_model()
        type(self)._url = sim.url(self._model.split(":")[0])

    @property
    def embeddings_class(self) -> type[CampusLLMEmbeddings]:
        return CampusLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self._model, "base_url": self._url, "api_key": SIM_KEY}
