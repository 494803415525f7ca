"""Helpers for the LangChain adapter tests: models built against the offline simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campusllm.sim import SIM_KEY


@pytest.fixture
def make_chat(sim: Any) -> Callable[..., Any]:
    """Build a ChatCampusLLM pointed at the simulator (no retries unless asked)."""
    from langchain_campusllm import ChatCampusLLM

    def make(model: str = "sjtu:deepseek-reasoner", **kw: Any) -> ChatCampusLLM:
        kw.setdefault("max_retries", 0)
        kw.setdefault("api_key", SIM_KEY)
        return ChatCampusLLM(model=model, base_url=sim.url(model.split(":")[0]), **kw)

    return make
