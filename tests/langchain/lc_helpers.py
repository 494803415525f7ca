"""Shared helpers of the LangChain adapter tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def find_model(pred: Callable[[Any], bool], kind: str = "chat") -> str:
    """``"provider:id"`` of the first catalogued model matching ``pred`` (skip if none)."""
    from campusllm.registry import get_registry

    for provider, spec in get_registry().models(kind=kind):
        if provider.name != "custom" and spec.status != "deprecated" and pred(spec):
            return f"{provider.name}:{spec.id}"
    pytest.skip(f"no catalogued {kind} model matches this test's needs")


def last_chat_request(sim: Any) -> dict[str, Any]:
    reqs = [r for r in sim.requests if r["path"].endswith("/chat/completions")]
    assert reqs, "no chat request reached the simulator"
    return reqs[-1]["json"]
