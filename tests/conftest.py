"""Shared pytest configuration: the offline simulator fixtures (`sim`, `fresh_sim`) and the
hostile gateway (`hostile`, see tests/hostile/)."""

pytest_plugins = ["campusllm.testing", "hostile.fixtures"]
