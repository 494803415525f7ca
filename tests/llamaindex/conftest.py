"""Helpers for the LlamaIndex adapter tests: models built against the offline simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from campusllm.sim import SIM_KEY

REASONER = "sjtu:deepseek-reasoner"


def _find(pred: Callable[[Any], bool], kind: str = "chat") -> str:
    from campusllm.registry import get_registry

    for provider, spec in get_registry().models(kind=kind):
        if provider.name != "custom" and spec.status != "deprecated" and pred(spec):
            return f"{provider.name}:{spec.id}"
    pytest.skip(f"no catalogued {kind} model matches this test's needs")


@pytest.fixture
def find_model() -> Callable[..., str]:
    """``"provider:id"`` of the first catalogued model matching a predicate (skip if none)."""
    return _find


def _url(sim: Any, model: str) -> str:
    return str(sim.url(model.split(":")[0]))


@pytest.fixture
async def _opened() -> AsyncIterator[list[Any]]:
    """Adapters built by a test, closed in the test's own event loop afterwards.

    Closing them there (not at garbage collection) is what keeps pooled async connections
    from outliving their loop as "unclosed transport" ResourceWarnings.
    """
    opened: list[Any] = []
    yield opened
    for obj in opened:
        await obj.aclose()


@pytest.fixture
def make_llm(sim: Any, _opened: list[Any]) -> Callable[..., Any]:
    """Build a CampusLLM pointed at the simulator (no retries unless asked)."""
    from llama_index_campusllm import CampusLLM

    def make(model: str = REASONER, **kw: Any) -> CampusLLM:
        kw.setdefault("max_retries", 0)
        kw.setdefault("api_key", SIM_KEY)
        _opened.append(CampusLLM(model=model, base_url=_url(sim, model), **kw))
        return _opened[-1]

    return make


@pytest.fixture
def make_embed(sim: Any, _opened: list[Any]) -> Callable[..., Any]:
    """Build a CampusLLMEmbedding pointed at the simulator."""
    from llama_index_campusllm import CampusLLMEmbedding

    def make(model: str, **kw: Any) -> CampusLLMEmbedding:
        kw.setdefault("max_retries", 0)
        kw.setdefault("api_key", SIM_KEY)
        _opened.append(CampusLLMEmbedding(model=model, base_url=_url(sim, model), **kw))
        return _opened[-1]

    return make


@pytest.fixture
def make_rerank(sim: Any, _opened: list[Any]) -> Callable[..., Any]:
    """Build a CampusLLMRerank pointed at the simulator."""
    from llama_index_campusllm import CampusLLMRerank

    def make(model: str, **kw: Any) -> CampusLLMRerank:
        kw.setdefault("max_retries", 0)
        kw.setdefault("api_key", SIM_KEY)
        _opened.append(CampusLLMRerank(model=model, base_url=_url(sim, model), **kw))
        return _opened[-1]

    return make


@pytest.fixture
def requests_to(sim: Any) -> Callable[[str], list[dict[str, Any]]]:
    """JSON bodies of the simulator requests whose path ends with ``suffix``."""

    def get(suffix: str) -> list[dict[str, Any]]:
        return [r["json"] for r in sim.requests if r["path"].endswith(suffix)]

    return get
