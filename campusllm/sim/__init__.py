"""Offline simulator of the campus gateways, for tests, demos and benchmarks.

Example:
    >>> from campusllm.sim import SIM_KEY, Simulator
    >>> with Simulator() as sim:  # doctest: +SKIP
    ...     base_url = sim.url("sjtu")  # http://127.0.0.1:<port>/sjtu/api/v1
"""

from __future__ import annotations

from .server import FAULT_KINDS, SIM_KEY, Simulator, main

__all__ = ["FAULT_KINDS", "SIM_KEY", "Simulator", "main"]
