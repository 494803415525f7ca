"""campusllm's LlamaIndex embedding model under LlamaIndex's usual import path.

The same class as ``llama_index_campusllm.CampusLLMEmbedding``; needs
``pip install "campusllm[llamaindex]"``.

Example:
    >>> from llama_index.embeddings.campusllm import CampusLLMEmbedding
    >>> embed = CampusLLMEmbedding(model="oneapi:qwen3-embedding-8b")  # doctest: +SKIP
    >>> len(embed.get_text_embedding("交大"))  # doctest: +SKIP
    4096
"""

from __future__ import annotations

from llama_index_campusllm import CampusLLMEmbedding

__all__ = ["CampusLLMEmbedding"]
