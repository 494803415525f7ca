"""campusllm's LlamaIndex LLM under LlamaIndex's usual import path.

The same class as ``llama_index_campusllm.CampusLLM``; needs
``pip install "campusllm[llamaindex]"``.

Example:
    >>> from llama_index.llms.campusllm import CampusLLM
    >>> llm = CampusLLM(model="sjtu:deepseek-reasoner")  # doctest: +SKIP
    >>> print(llm.complete("9.11 和 9.9 哪个大?"))  # doctest: +SKIP
"""

from __future__ import annotations

from llama_index_campusllm import CampusLLM

__all__ = ["CampusLLM"]
