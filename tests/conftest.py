"""Shared pytest configuration: the offline simulator fixtures (`sim`, `fresh_sim`) and the
hostile gateway (`hostile`, see tests/hostile/)."""

import pytest

pytest_plugins = ["campusllm.testing", "hostile.fixtures"]


@pytest.fixture(autouse=True)
def _english_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read English CLI output: pin it, whatever the developer's locale is.

    Subprocesses that drop ``CAMPUSLLM_*`` variables must set ``CAMPUSLLM_LANG=en`` again.
    """
    monkeypatch.setenv("CAMPUSLLM_LANG", "en")
