"""The conformance scenarios against the real LiteLLM proxy and llama.cpp servers.

The same list runs against the simulator in the default suite (tests/test_conformance_sim.py).
A strict xfail here marks a defect of ours shown by the real software; its reason says what.
"""

from __future__ import annotations

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
from conformance_scenarios import Scenario

pytestmark = [pytest.mark.peers, pytest.mark.timeout(300)]


@pytest.mark.parametrize(("scenario", "via"), params("wire", "peer"))
def test_wire(scenario: Scenario, via: str, peer_target: Target) -> None:
    run_wire(scenario, peer_target)


@pytest.mark.parametrize(("scenario", "via"), params("client", "peer", vias=True))
def test_client(scenario: Scenario, via: str, peer_target: Target) -> None:
    run_client(scenario, via, peer_target)


@pytest.mark.parametrize("check", adapter_params("peer"))
def test_adapter(check: AdapterCheck, peer_target: Target) -> None:
    run_adapter(check, peer_target)
