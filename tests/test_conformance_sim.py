"""The conformance scenarios against the offline simulator (the default suite).

The same list runs against the real LiteLLM proxy and llama.cpp servers in the peer tier
(``tests/peers``). Here a strict xfail whose reason starts "the simulator differs" records where
the simulator does not yet behave like the real software.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conformance_checks import (
    AdapterCheck,
    Target,
    adapter_params,
    params,
    run_adapter,
    run_client,
    run_wire,
)
from conformance_scenarios import SCENARIOS, Scenario, conformance_registry

from campusllm.sim import SIM_KEY


@pytest.fixture
def sim_target(sim: Any) -> Iterator[Target]:
    def prepare(s: Scenario) -> None:
        # The llamacpp provider describes llama-server; SJTU answers as LiteLLM by default.
        sim.set_gateway("llamacpp", "llama.cpp")
        for method, kwargs in s.sim_setup:
            getattr(sim, method)(**kwargs)

    def attempts(s: Scenario) -> int:
        return sum(1 for r in sim.requests if r["path"].endswith("/chat/completions"))

    def base_url(s: Scenario) -> str:
        return str(sim.url(s.model.split(":", 1)[0]))

    def requests(s: Scenario) -> list[dict[str, Any]]:
        return [r["json"] for r in sim.requests if r["path"].endswith("/chat/completions")]

    keys = {"good": SIM_KEY, "bad": "sk-sim-bad", "limited": SIM_KEY}
    with conformance_registry():
        yield Target("sim", base_url, keys, prepare, attempts, requests)


@pytest.mark.parametrize(("scenario", "via"), params("wire", "sim"))
def test_wire(scenario: Scenario, via: str, sim_target: Target) -> None:
    run_wire(scenario, sim_target)


@pytest.mark.parametrize(("scenario", "via"), params("client", "sim", vias=True))
def test_client(scenario: Scenario, via: str, sim_target: Target) -> None:
    run_client(scenario, via, sim_target)


def test_every_scenario_says_what_it_checks() -> None:
    for s in SCENARIOS:
        assert (
            s.what
            and s.model.count(":") == 1
            and s.peer.split(":")[0] in ("litellm", "llama", "upstream")
        )
        for key in s.xfail:
            target, check = key.split(":")
            assert target in ("sim", "peer", "*") and check in ("wire", *s.client.vias), key


@pytest.mark.parametrize("check", adapter_params("sim"))
def test_adapter(check: AdapterCheck, sim_target: Target) -> None:
    run_adapter(check, sim_target)
