"""LlamaIndex integration for campus and enterprise OpenAI-compatible LLM gateways.

Needs the ``llamaindex`` extra: ``pip install "campusllm[llamaindex]"``. The classes are also
importable from LlamaIndex's usual places: ``llama_index.llms.campusllm``,
``llama_index.embeddings.campusllm`` and ``llama_index.postprocessor.campusllm_rerank``.

Example:
    >>> from llama_index_campusllm import CampusLLM, CampusLLMEmbedding, CampusLLMRerank
    >>> llm = CampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
    >>> llm.metadata.context_window  # from the campusllm registry  # doctest: +SKIP
"""

from __future__ import annotations

# Checked first so that a core-only install names the extra to add, not a bare module.
try:
    import llama_index.core  # noqa: F401
    import openai  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name not in {"llama_index", "llama_index.core", "openai"}:
        raise
    raise ImportError(
        f"llama_index_campusllm needs {exc.name!r}, which is not installed. Install the "
        'LlamaIndex extra: pip install "campusllm[llamaindex]" '
        '(uv: uv add "campusllm[llamaindex]")',
        name=exc.name,
    ) from exc

from .embeddings import CampusLLMEmbedding
from .llms import CampusLLM
from .postprocessor import CampusLLMRerank

__all__ = ["CampusLLM", "CampusLLMEmbedding", "CampusLLMRerank"]
