"""LangChain integration for campus and enterprise OpenAI-compatible LLM gateways.

Example:
    >>> from langchain_campusllm import ChatCampusLLM
    >>> llm = ChatCampusLLM(model="sjtu:deepseek-chat")  # doctest: +SKIP
    >>> llm.invoke("你好").content  # doctest: +SKIP
"""

from __future__ import annotations

from campusllm.warn import treat_as_internal
from langchain_campusllm.chat_models import ChatCampusLLM
from langchain_campusllm.embeddings import CampusLLMEmbeddings
from langchain_campusllm.rerank import CampusLLMRerank

__all__ = ["ChatCampusLLM", "CampusLLMEmbeddings", "CampusLLMRerank"]

# Warnings about a call (deprecated model, capability fallback) point at the user's line,
# not at this package or the framework it runs inside.
treat_as_internal("langchain_campusllm", "langchain_core")
