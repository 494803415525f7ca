"""LangChain integration for campus and enterprise OpenAI-compatible LLM gateways.

Example:
    >>> from langchain_campusllm import ChatCampusLLM
    >>> llm = ChatCampusLLM(model="sjtu:deepseek-chat")  # doctest: +SKIP
    >>> llm.invoke("你好").content  # doctest: +SKIP
"""

from __future__ import annotations

from langchain_campusllm.chat_models import ChatCampusLLM
from langchain_campusllm.embeddings import CampusLLMEmbeddings
from langchain_campusllm.rerank import CampusLLMRerank

__all__ = ["ChatCampusLLM", "CampusLLMEmbeddings", "CampusLLMRerank"]
