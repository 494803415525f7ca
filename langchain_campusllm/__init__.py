"""LangChain integration for campus and enterprise OpenAI-compatible LLM gateways.

Needs the ``langchain`` extra: ``pip install "campusllm[langchain]"``. The classes are imported
on first use: ``from langchain_campusllm import CampusLLMEmbeddings`` does not load
langchain-openai and the openai SDK, which only the chat model needs.

Example:
    >>> from langchain_campusllm import ChatCampusLLM
    >>> llm = ChatCampusLLM(model="sjtu:deepseek-chat")  # doctest: +SKIP
    >>> llm.invoke("你好").content  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from campusllm.extras import require_extra
from campusllm.warn import treat_as_internal

# Checked up front (nothing is imported) so that a core-only install names the extra to add,
# not a bare module deep inside a traceback.
require_extra("langchain_campusllm", "langchain", ("langchain_core", "langchain_openai", "openai"))

if TYPE_CHECKING:
    from .chat_models import ChatCampusLLM as ChatCampusLLM
    from .embeddings import CampusLLMEmbeddings as CampusLLMEmbeddings
    from .factory import init_chat_model as init_chat_model
    from .factory import init_embeddings as init_embeddings
    from .llms import CampusLLMCompletion as CampusLLMCompletion
    from .rerank import CampusLLMRerank as CampusLLMRerank

__all__ = [
    "ChatCampusLLM",
    "CampusLLMCompletion",
    "CampusLLMEmbeddings",
    "CampusLLMRerank",
    "init_chat_model",
    "init_embeddings",
]

_MODULES = {
    "ChatCampusLLM": ".chat_models",
    "CampusLLMCompletion": ".llms",
    "CampusLLMEmbeddings": ".embeddings",
    "CampusLLMRerank": ".rerank",
    "init_chat_model": ".factory",
    "init_embeddings": ".factory",
}

# Warnings about a call (deprecated model, capability fallback) point at the user's line,
# not at this package or the framework it runs inside.
treat_as_internal("langchain_campusllm", "langchain_core")


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
