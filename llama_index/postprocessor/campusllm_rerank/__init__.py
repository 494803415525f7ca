"""campusllm's LlamaIndex reranker under LlamaIndex's usual import path.

The same class as ``llama_index_campusllm.CampusLLMRerank``; needs
``pip install "campusllm[llamaindex]"``.

Example:
    >>> from llama_index.postprocessor.campusllm_rerank import CampusLLMRerank
    >>> rerank = CampusLLMRerank(model="oneapi:qwen3-reranker-8b", top_n=3)  # doctest: +SKIP
    >>> engine = index.as_query_engine(node_postprocessors=[rerank])  # doctest: +SKIP
"""

from __future__ import annotations

from llama_index_campusllm import CampusLLMRerank

__all__ = ["CampusLLMRerank"]
