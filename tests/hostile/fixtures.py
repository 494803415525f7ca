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
    # first import of LangChain or LlamaIndex (the packages load their classes on first use,
    # so each class is looked up here).
    import openai  # noqa: F401

    import langchain_campusllm
    import llama_index_campusllm

    for package in (langchain_campusllm, llama_index_campusllm):
        for name in package.__all__:
            getattr(package, name)

    with HostileServer() as server:
        yield server
