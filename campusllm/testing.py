"""Pytest plugin: a running offline simulator as a fixture.

Enable it with ``pytest_plugins = ["campusllm.testing"]`` in a ``conftest.py``. ``sim`` is one
session-wide :class:`~campusllm.sim.Simulator` (1 s rate-limit window) whose requests, stats,
faults, scripts and limits are reset after every test; ``fresh_sim`` is a private one per test.

Example:
    >>> def test_models(sim):  # doctest: +SKIP
    ...     import httpx
    ...     r = httpx.get(sim.url("sjtu") + "/models",
    ...                   headers={"Authorization": f"Bearer {sim.api_key}"})
    ...     assert r.status_code == 200
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest

from .auth import key_env_names
from .registry import resolve
from .sim import Simulator

__all__ = ["sim", "fresh_sim", "live_model"]

_session_sim: list[Simulator] = []
_session_dirs: list[str] = []
_test_number = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    # The registry's real quotas (SJTU: 10 RPM per key, 60 s window) would make a test
    # session against the simulator crawl; tests that exercise the limiter pass limits.
    os.environ.setdefault("CAMPUSLLM_CLIENT_LIMITS", "off")
    # The shared `local` limiter state goes to a directory of this test session, never the
    # user's cache, so test keys neither see nor leave budgets there (subprocesses inherit it).
    if not os.environ.get("CAMPUSLLM_LIMITER"):
        state = tempfile.mkdtemp(prefix="campusllm-limiter-")
        os.environ["CAMPUSLLM_LIMITER"] = "local:" + os.path.join(state, "limiter.sqlite3")
        _session_dirs.append(state)


def pytest_unconfigure(config: pytest.Config) -> None:
    for d in _session_dirs:
        shutil.rmtree(d, ignore_errors=True)
    _session_dirs.clear()


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    """A simulator shared by the whole session (state is reset after each test)."""
    s = Simulator(window_s=1.0).start()
    _session_sim.append(s)
    try:
        yield s
    finally:
        _session_sim.remove(s)
        s.stop()


@pytest.fixture
def fresh_sim() -> Iterator[Simulator]:
    """A simulator of its own for one test."""
    with Simulator(window_s=1.0) as s:
        yield s


@pytest.fixture(autouse=True)
def _campusllm_limiter_state() -> Iterator[None]:
    # Limiters share one budget per (provider, key) across objects and processes; tests reuse
    # keys, so each test gets a state file of its own and nothing carried over.
    if _session_dirs:
        name = f"limiter-{next(_test_number)}.sqlite3"
        os.environ["CAMPUSLLM_LIMITER"] = "local:" + os.path.join(_session_dirs[0], name)
    yield
    limiter = sys.modules.get("campusllm.limiter")
    if limiter is not None:
        limiter.reset()


@pytest.fixture(autouse=True)
def _campusllm_sim_reset() -> Iterator[None]:
    # The session simulator is shared: one test's faults, scripts or limits must not leak.
    yield
    for s in _session_sim:
        s.reset()


_LIVE_DEFAULTS = {
    "chat": "sjtu:deepseek-reasoner",
    "embedding": "oneapi:qwen3-embedding-8b",
    "rerank": "",
}


def live_model(kind: str) -> str:
    """``"provider:model"`` for a live test of ``kind``, or skip the test.

    Live tests run only with ``CAMPUSLLM_LIVE=1`` and a key for the model's provider;
    ``CAMPUSLLM_LIVE_<KIND>_MODEL`` picks the model (e.g. ``CAMPUSLLM_LIVE_CHAT_MODEL``).
    """
    if os.environ.get("CAMPUSLLM_LIVE") != "1":
        pytest.skip("live tests need CAMPUSLLM_LIVE=1")
    spec = os.environ.get(f"CAMPUSLLM_LIVE_{kind.upper()}_MODEL") or _LIVE_DEFAULTS.get(kind, "")
    if not spec:
        pytest.skip(f"set CAMPUSLLM_LIVE_{kind.upper()}_MODEL to run this live test")
    resolved = resolve(spec)
    provider = resolved.provider
    if not any(os.environ.get(v) for v in key_env_names(provider, resolved.model)):
        pytest.skip(f"no key for {provider.name}: set {provider.key_env[0]}")
    return spec
