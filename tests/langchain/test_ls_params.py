"""LangSmith traces tell gateways and models apart (``ls_provider`` / ``ls_model_name``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage


class _Metadata(BaseCallbackHandler):
    """Keeps the run metadata a tracer such as LangSmith receives at chat-model start."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.seen.append(dict(metadata or {}))


def test_traces_name_the_gateway_and_the_catalog_model_id(make_chat: Callable[..., Any]) -> None:
    sjtu = make_chat("sjtu:glm")  # an alias: the trace carries the model's catalog id
    oneapi = make_chat("oneapi:qwen3-32b")
    handler = _Metadata()
    sjtu.invoke("hello", config={"callbacks": [handler]})
    oneapi.invoke("hello", config={"callbacks": [handler]})
    got = [(m["ls_provider"], m["ls_model_name"]) for m in handler.seen]
    assert got == [("campusllm-sjtu", "glm-5.1"), ("campusllm-oneapi", "qwen3-32b")]
    assert handler.seen[0]["ls_model_type"] == "chat"


def test_a_per_call_model_is_reported_as_sent(make_chat: Callable[..., Any]) -> None:
    params = make_chat("sjtu:glm")._get_ls_params(model="glm-5.1-preview")
    assert params["ls_provider"] == "campusllm-sjtu"
    assert params["ls_model_name"] == "glm-5.1-preview"
