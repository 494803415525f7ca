"""Start and stop the real peer servers on loopback (stdlib only).

Each peer is a child process on a free 127.0.0.1 port, logging to a file, with a readiness URL
polled until it answers 200. :func:`litellm_config` is the proxy's configuration: models named
like the SJTU catalog, fixed keys via ``peer_auth``, a per-key and a router-level RPM limit,
and models routed to :mod:`upstream` for the failures ``mock_response`` cannot produce.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
LITELLM_STARTUP_S = 240.0  # ~40 s idle, over 2 min on 2 loaded cores
LLAMA_STARTUP_S = 120.0
LITELLM_TIMEOUT_S = 2.0  # LiteLLM's timeout for the "slow" upstream: it then answers 408

# Keys the custom auth module knows (tests/peers/litellm/peer_auth.py).
GOOD_KEY = "sk-peer-good"
LIMITED_KEY = "sk-peer-limited"
BAD_KEY = "sk-peer-wrong"
LIMITED_RPM = 2
ROUTER_RPM = 1

MOCK_ANSWER = "Hello from the mock."


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Peer:
    """One running peer process."""

    name: str
    cmd: list[str]
    port: int
    ready_path: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    startup_s: float = LLAMA_STARTUP_S
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Peer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "wb")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, **self.env}
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() ends its children too
        )
        fh.close()
        return self

    def wait_ready(self) -> None:
        """Poll the readiness URL; raise with the log's tail if the process dies or hangs."""
        assert self.proc is not None
        if self.ready_after_s is not None:
            return
        deadline = self.started_at + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=5) as r:
                    if r.status == 200:
                        self.ready_after_s = time.monotonic() - self.started_at
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"{self.name} did not become ready within {self.startup_s:.0f} s:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- LiteLLM


def _up(model: str, upstream: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"openai/{model}", "api_base": upstream, "api_key": "sk-upstream", **extra}


def _mock(**extra: Any) -> dict[str, Any]:
    return {"model": "openai/mock", "api_key": "sk-upstream", "mock_response": MOCK_ANSWER, **extra}


def litellm_config(upstream: str) -> dict[str, Any]:
    """The proxy's config.yaml (JSON is YAML): SJTU-like names, fixed keys, limits, faults."""
    models: list[tuple[str, dict[str, Any]]] = [
        # The SJTU catalog's chat models, as its gateway names them.
        ("deepseek-chat", _mock()),
        ("deepseek-v3.2", _mock()),
        ("deepseek-reasoner", _up("reasoner", upstream)),
        ("minimax-m2.7", _up("think", upstream)),
        ("glm-5.1", _up("reasoner", upstream)),
        ("qwen3.5-27b", _up("reasoning", upstream)),  # newer vLLM: a "reasoning" field
        # Behind these the model server misbehaves (see upstream.py).
        (
            "peer-slow",
            _up("slow", upstream, timeout=LITELLM_TIMEOUT_S, stream_timeout=LITELLM_TIMEOUT_S),
        ),
        ("peer-dies", _up("dies", upstream)),
        ("peer-context", _up("context", upstream)),
        ("peer-badcred", _up("badcred", upstream)),
        ("peer-toolstrict", _up("toolstrict", upstream)),
        # The router's own per-deployment limit (usage-based routing answers 429 itself).
        ("peer-router-rpm", _mock(rpm=ROUTER_RPM)),
    ]
    return {
        "model_list": [{"model_name": n, "litellm_params": p} for n, p in models],
        "router_settings": {
            "routing_strategy": "usage-based-routing-v2",
            "num_retries": 0,
            # A failing model server must keep answering the same way, test after test.
            "disable_cooldowns": True,
        },
        "litellm_settings": {
            "num_retries": 0,
            "request_timeout": 60,
            # Anthropic-format /v1/messages through chat/completions, as LiteLLM does for
            # hosted_vllm/ deployments; for openai/ ones it would call the model server's
            # /v1/responses instead, which upstream.py does not serve.
            "use_chat_completions_url_for_anthropic_messages": True,
        },
        "general_settings": {
            "custom_auth": "peer_auth.user_api_key_auth",
            "master_key": "sk-master-" + secrets.token_hex(16),
        },
    }


def litellm_peer(exe: Path, workdir: Path, upstream: str) -> Peer:
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "litellm" / "peer_auth.py", workdir / "peer_auth.py")
    (workdir / "config.yaml").write_text(json.dumps(litellm_config(upstream), indent=2))
    port = free_port()
    return Peer(
        name="litellm",
        cmd=[
            str(exe),
            "--config",
            "config.yaml",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        port=port,
        ready_path="/health/liveliness",
        log=workdir / "litellm.log",
        cwd=workdir,
        env={
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map at start
            "PEER_LIMITED_RPM": str(LIMITED_RPM),
            "LITELLM_LOG": "ERROR",
            "DISABLE_SCHEMA_UPDATE": "True",
            "NO_DOCS": "True",
        },
        startup_s=LITELLM_STARTUP_S,
    )


# ---------------------------------------------------------------- llama.cpp llama-server

# A QwQ/Qwen3-style template (ChatML) whose generation prompt opens <think>; with
# enable_thinking=false it closes the block at once, as Qwen3's template does. SmolLM2 never
# closes the block by itself: --reasoning-budget makes llama-server force </think> after 8
# tokens, so an answer follows.
THINK_TEMPLATE = HERE / "llama" / "think.jinja"

LLAMA_INSTANCES: dict[str, list[str]] = {
    "chat": ["--jinja"],
    "think-deepseek": [
        "--jinja",
        "--chat-template-file",
        str(THINK_TEMPLATE),
        "--reasoning",
        "on",
        "--reasoning-format",
        "deepseek",
        "--reasoning-budget",
        "8",
    ],
    "think-none": [
        "--jinja",
        "--chat-template-file",
        str(THINK_TEMPLATE),
        "--reasoning",
        "on",
        "--reasoning-format",
        "none",
        "--reasoning-budget",
        "8",
    ],
    "embed": ["--embeddings", "--pooling", "mean"],
    "rerank": ["--reranking"],
}


def llama_peer(exe: Path, gguf: Path, instance: str, workdir: Path) -> Peer:
    port = free_port()
    cmd = [
        str(exe),
        "-m",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        "1",
        "-tb",
        "1",
        "-c",
        "1024",
        "-np",
        "2",
        "--no-webui",
        "-a",
        f"smollm2-{instance}",
        *LLAMA_INSTANCES[instance],
    ]
    return Peer(
        name=f"llama-server[{instance}]",
        cmd=cmd,
        port=port,
        ready_path="/health",
        log=workdir / f"llama-{instance}.log",
        startup_s=LLAMA_STARTUP_S,
    )


# ---------------------------------------------------------------- llama-cpp-python (optional)


def llama_cpp_python_peer(python: Path, gguf: Path, workdir: Path) -> Peer:
    """llama-cpp-python's server with the chatml-function-calling format: real tool calls."""
    port = free_port()
    cmd = [
        str(python), "-m", "llama_cpp.server", "--model", str(gguf),
        "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2-tools",
    ]  # fmt: skip
    return Peer(
        name="llama-cpp-python",
        cmd=cmd,
        port=port,
        ready_path="/v1/models",
        log=workdir / "llama-cpp-python.log",
        startup_s=LLAMA_STARTUP_S,
    )
