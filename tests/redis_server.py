"""A real ``redis-server`` on 127.0.0.1 for the distributed limiter tests.

Started once per test session on a free port, with its data in a temporary directory and no
persistence; stopped at the end. Where no ``redis-server`` binary exists (``.ci/run`` installs
Debian's package), the tests that need it are skipped with the reason printed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

__all__ = ["redis_url", "start_redis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``redis-server`` on a free loopback port; returns the process and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(
            "redis-server is not installed (Debian: apt-get install -y redis-server; "
            ".ci/run installs it)"
        )
    for _ in range(5):  # a free port can be taken between probing and binding: try again
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return proc, f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait(5)
    raise RuntimeError(f"redis-server did not start on 127.0.0.1 (last port {port})")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real redis-server started for this session (skips, saying why, if impossible)."""
    workdir = tempfile.mkdtemp(prefix="campusllm-redis-")
    try:
        proc, url = start_redis(workdir)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"\nredis tests skipped: {exc}")
        pytest.skip(f"no real Redis server: {exc}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
