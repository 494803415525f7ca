"""Shared pytest configuration: the offline simulator fixtures (`sim`, `fresh_sim`)."""

pytest_plugins = ["campusllm.testing"]
