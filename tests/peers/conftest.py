"""The real-peer tier: a LiteLLM proxy and llama.cpp servers on loopback.

Run it with ``uv run pytest -m peers`` (the default run leaves it out). Once the tests are
collected, the peers the selected tests need are installed into the user cache (see
``provision.py``; the first run builds llama-server, later runs find it) and started, all at
once, each on a free 127.0.0.1 port; the fixtures wait for them to answer and the session stops
them at the end. A peer that cannot be installed here skips its tests with the reason, printed
again in the summary with how many peer tests ran.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import provision
import pytest
import servers
from upstream import Upstream

# Which fixtures need which peer (only what the selected tests use gets installed and started).
_NEEDS = {
    "peer_target": ("litellm", "llama-server"),
    "llama_cpp_python_peer": ("llama-cpp-python",),
    "litellm_peer": ("litellm",),
    "llama_chat_peer": ("llama-server",),
}


class _Tier:
    def __init__(self) -> None:
        self.active = False
        self.unavailable: dict[str, str] = {}
        self.install_s: dict[str, float] = {}
        self.peers: dict[str, servers.Peer] = {}
        self.upstream: Upstream | None = None
        self.workdir = Path()

    def start(self, needed: set[str], say: Any) -> None:
        self.active = True
        self.workdir = Path(tempfile.mkdtemp(prefix="campusllm-peers-"))
        paths: dict[str, Path] = {}
        for name in ("litellm", "llama-server", "llama-cpp-python"):
            if name not in needed:
                continue
            if name == "llama-cpp-python" and provision.cached_llama_cpp_python() is None:
                # Never built during a test run: about 14 min on 2 idle cores.
                self.unavailable[name] = (
                    "llama-cpp-python[server] is not built; build it once with "
                    "`python tests/peers/provision.py llama-cpp-python` (about 14 min)"
                )
                continue
            started = time.monotonic()
            try:
                if name in ("llama-server", "llama-cpp-python"):
                    paths["model"] = provision.provision_smollm2()
                paths[name] = provision.PEERS[name]()
            except Exception as e:  # noqa: BLE001 - any install failure is the skip reason
                self.unavailable[name] = f"{name} cannot be installed here: {e}"
                say(f"peers: {self.unavailable[name]}")
                continue
            self.install_s[name] = time.monotonic() - started
            say(f"peers: {name} ready in the cache ({self.install_s[name]:.0f} s)")
        if "litellm" in paths:
            self.upstream = Upstream().__enter__()
            p = servers.litellm_peer(paths["litellm"], self.workdir / "litellm", self.upstream.url)
            self.peers["litellm"] = p.start()
        if "llama-server" in paths:
            for inst in servers.LLAMA_INSTANCES:
                p = servers.llama_peer(paths["llama-server"], paths["model"], inst, self.workdir)
                self.peers[f"llama:{inst}"] = p.start()
        if "llama-cpp-python" in paths:
            p = servers.llama_cpp_python_peer(
                paths["llama-cpp-python"], paths["model"], self.workdir
            )
            self.peers["llama-cpp-python"] = p.start()
        say(
            f"peers: started {', '.join(self.peers) or 'nothing'}; logs in {self.workdir} "
            "(kept when a test fails, or with CAMPUSLLM_PEERS_KEEP=1)"
        )

    def get(self, name: str) -> servers.Peer:
        """The running peer, ready; skips the test with the reason when it is not available."""
        family = "llama-server" if name.startswith("llama:") else name
        if family in self.unavailable:
            pytest.skip(self.unavailable[family])
        peer = self.peers.get(name)
        if peer is None:
            pytest.skip(f"{name} was not started (not needed by the selected tests)")
        try:
            peer.wait_ready()
        except RuntimeError as e:
            # Installed but does not run here: a failure of the tier, not a skip.
            pytest.fail(str(e), pytrace=False)
        return peer

    def stop(self) -> None:
        for peer in self.peers.values():
            with contextlib.suppress(Exception):
                peer.stop()
        if self.upstream is not None:
            self.upstream.__exit__(None, None, None)
            self.upstream = None


TIER = _Tier()
atexit.register(TIER.stop)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly:
        return
    needed: set[str] = set()
    for item in session.items:
        if item.get_closest_marker("peers") is None:
            continue
        for fixture in getattr(item, "fixturenames", ()):
            needed.update(_NEEDS.get(fixture, ()))
    if not needed:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(msg: str) -> None:
        if reporter is not None:
            reporter.write_line(msg)

    provision.LOG = lambda msg: say(f"peers: {msg}")
    say(f"peers: cache {provision.cache_root()}")
    TIER.start(needed, say)


def pytest_sessionfinish(session: pytest.Session) -> None:
    TIER.stop()
    # The peers' logs (config, server output) are kept only when something failed.
    if TIER.active and not session.testsfailed and not os.environ.get("CAMPUSLLM_PEERS_KEEP"):
        shutil.rmtree(TIER.workdir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIER.active:
        return
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "xfailed", "xpassed", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        n = sum(1 for r in reports if "tests/peers/" in getattr(r, "nodeid", "") and
                (r.when == "call" or outcome in ("skipped", "error")))  # fmt: skip
        counts[outcome] = n
    ran = sum(counts[k] for k in ("passed", "failed", "xfailed", "xpassed"))
    detail = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    terminalreporter.write_sep("=", "peer tier")
    terminalreporter.write_line(f"peer tests ran: {ran} ({detail or 'none'})")
    for name, secs in TIER.install_s.items():
        terminalreporter.write_line(f"  {name}: found/installed in {secs:.0f} s")
    for name, peer in TIER.peers.items():
        if peer.ready_after_s is not None:
            terminalreporter.write_line(
                f"  {name}: answered {peer.ready_after_s:.0f} s after start"
            )
    for name, why in TIER.unavailable.items():
        terminalreporter.write_line(f"  {name} SKIPPED: {why}")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def llama_cpp_python_peer() -> servers.Peer:
    return TIER.get("llama-cpp-python")


@pytest.fixture
def litellm_peer() -> tuple[servers.Peer, Upstream]:
    """The LiteLLM proxy and its model server, whose record of requests starts empty."""
    peer = TIER.get("litellm")
    assert TIER.upstream is not None
    TIER.upstream.reset()
    return peer, TIER.upstream


@pytest.fixture(scope="session")
def llama_chat_peer() -> servers.Peer:
    """llama-server with SmolLM2's own chat template (it serves /v1/completions too)."""
    return TIER.get("llama:chat")


@pytest.fixture
def peer_target() -> Iterator[Any]:
    """The conformance Target for the real peers (each scenario's peer is looked up lazily)."""
    from conformance_checks import Target
    from conformance_scenarios import Scenario, conformance_registry

    def base_url(s: Scenario) -> str:
        if s.peer == "upstream":
            TIER.get("litellm")  # the bare model server lives with the LiteLLM peer
            assert TIER.upstream is not None
            return TIER.upstream.url
        return TIER.get(s.peer).url + "/v1"

    def attempts(s: Scenario) -> int | None:
        if s.upstream is None or TIER.upstream is None:
            return None
        return TIER.upstream.hits[s.upstream]

    def requests(s: Scenario) -> list[dict[str, Any]]:
        if s.upstream is None or TIER.upstream is None:
            return []
        return [body for model, body in TIER.upstream.bodies if model == s.upstream]

    keys = {"good": servers.GOOD_KEY, "bad": servers.BAD_KEY, "limited": servers.LIMITED_KEY}
    with conformance_registry():
        yield Target("peer", base_url, keys, attempts=attempts, requests=requests)
