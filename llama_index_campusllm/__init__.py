"""LlamaIndex integration for campus and enterprise OpenAI-compatible LLM gateways.

Needs the ``llamaindex`` extra: ``pip install "campusllm[llamaindex]"``. The classes are also
importable from LlamaIndex's usual places: ``llama_index.llms.campusllm``,
``llama_index.embeddings.campusllm`` and ``llama_index.postprocessor.campusllm_rerank``. They
are imported on first use: ``from llama_index_campusllm import CampusLLMEmbedding`` does not load
the openai SDK, which only the LLM needs.

Example:
    >>> from llama_index_campusllm import CampusLLM, CampusLLMEmbedding, CampusLLMRerank
    >>> llm = CampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
    >>> llm.metadata.context_window  # from the campusllm registry  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from campusllm.extras import require_extra
from campusllm.warn import treat_as_internal

# Checked up front (nothing is imported) so that a core-only install names the extra to add,
# not a bare module deep inside a traceback.
require_extra("llama_index_campusllm", "llamaindex", ("llama_index.core", "openai"))

if TYPE_CHECKING:
    from .embeddings import CampusLLMEmbedding as CampusLLMEmbedding
    from .llms import CampusLLM as CampusLLM
    from .postprocessor import CampusLLMRerank as CampusLLMRerank

__all__ = ["CampusLLM", "CampusLLMEmbedding", "CampusLLMRerank"]

_MODULES = {
    "CampusLLM": ".llms",
    "CampusLLMEmbedding": ".embeddings",
    "CampusLLMRerank": ".postprocessor",
}

# Warnings about a call (deprecated model, capability fallback) point at the user's line,
# not at this package or the framework it runs inside.
treat_as_internal("llama_index_campusllm", "llama_index.core")


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
