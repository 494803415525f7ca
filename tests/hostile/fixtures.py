"""Pytest fixture ``hostile``: one :class:`~hostile.server.HostileServer` for the session.

Registered in ``tests/conftest.py``; every test mounts its own routes on it, so tests never
see each other's requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import HostileServer

__all__ = ["hostile"]


@pytest.fixture(scope="session")
def hostile() -> Iterator[HostileServer]:
    """The session's hostile gateway (started on 127.0.0.1, two ports)."""
    # Import the adapters before any test is timed: deadline checks measure the call, not the
    # first import of LangChain or LlamaIndex.
    import openai  # noqa: F401

    import langchain_campusllm  # noqa: F401
    import llama_index_campusllm  # noqa: F401

    with HostileServer() as server:
        yield server
