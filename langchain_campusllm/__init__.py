"""LangChain integration for campus and enterprise OpenAI-compatible LLM gateways.

Needs the ``langchain`` extra: ``pip install "campusllm[langchain]"``.

Example:
    >>> from langchain_campusllm import ChatCampusLLM
    >>> llm = ChatCampusLLM(model="sjtu:deepseek-chat")  # doctest: +SKIP
    >>> llm.invoke("你好").content  # doctest: +SKIP
"""

from __future__ import annotations

# Checked first so that a core-only install names the extra to add, not a bare module.
try:
    import langchain_core  # noqa: F401
    import langchain_openai  # noqa: F401
    import openai  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name not in {"langchain_core", "langchain_openai", "openai"}:
        raise
    raise ImportError(
        f"langchain_campusllm needs {exc.name!r}, which is not installed. Install the "
        'LangChain extra: pip install "campusllm[langchain]" (uv: uv add "campusllm[langchain]")',
        name=exc.name,
    ) from exc

from langchain_campusllm.chat_models import ChatCampusLLM
from langchain_campusllm.embeddings import CampusLLMEmbeddings
from langchain_campusllm.factory import init_chat_model, init_embeddings
from langchain_campusllm.rerank import CampusLLMRerank

__all__ = [
    "ChatCampusLLM",
    "CampusLLMEmbeddings",
    "CampusLLMRerank",
    "init_chat_model",
    "init_embeddings",
]
