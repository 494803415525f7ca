"""LlamaIndex integration for campus and enterprise OpenAI-compatible LLM gateways.

Example:
    >>> from llama_index_campusllm import CampusLLM, CampusLLMEmbedding, CampusLLMRerank
    >>> llm = CampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
    >>> llm.metadata.context_window  # from the campusllm registry  # doctest: +SKIP
"""

from __future__ import annotations

from campusllm.warn import treat_as_internal

from .embeddings import CampusLLMEmbedding
from .llms import CampusLLM
from .postprocessor import CampusLLMRerank

__all__ = ["CampusLLM", "CampusLLMEmbedding", "CampusLLMRerank"]

# Warnings about a call (deprecated model, capability fallback) point at the user's line,
# not at this package or the framework it runs inside.
treat_as_internal("llama_index_campusllm", "llama_index.core")
