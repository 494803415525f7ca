"""``init_chat_model`` / ``init_embeddings`` for campusllm's ``"provider:model"`` names.

LangChain's own ``langchain.chat_models.init_chat_model`` and ``create_agent("provider:model")``
only know LangChain's built-in providers: ``"sjtu:deepseek-reasoner"`` is refused there, and a
bare ``"deepseek-reasoner"`` is sent to DeepSeek's public API instead of your gateway. These
helpers take the same shape of call and build campusllm's classes; pass the result on, e.g.
``create_agent(init_chat_model("sjtu:deepseek-reasoner"), tools=[...])``.

Example:
    >>> from langchain_campusllm import init_chat_model
    >>> llm = init_chat_model("sjtu:deepseek-reasoner", api_key="sk-demo", temperature=0.6)
    >>> llm.provider, llm.model_name, llm.temperature
    ('sjtu', 'deepseek-reasoner', 0.6)
"""

from __future__ import annotations

from typing import Any

from campusllm.errors import ConfigError
from langchain_campusllm.chat_models import ChatCampusLLM
from langchain_campusllm.embeddings import CampusLLMEmbeddings

__all__ = ["init_chat_model", "init_embeddings"]


def _provider_kwargs(model_provider: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``model_provider`` (LangChain's name for it) as campusllm's ``provider=``."""
    if model_provider is None:
        return kwargs
    if kwargs.get("provider") not in (None, model_provider):
        raise ConfigError(
            f"model_provider={model_provider!r} and provider={kwargs['provider']!r} disagree.",
            hint="Pass one of them, or write the model as 'provider:model'.",
        )
    return {**kwargs, "provider": model_provider}


def init_chat_model(
    model: str, *, model_provider: str | None = None, **kwargs: Any
) -> ChatCampusLLM:
    """A :class:`ChatCampusLLM` for ``"provider:model"`` (or ``model`` + ``model_provider``).

    ``model_provider`` is a campusllm provider (``sjtu``, ``ecnu``, ``maas``, ``oneapi``,
    ``custom`` or one from your config file), not a LangChain integration name. Every other
    keyword goes to :class:`ChatCampusLLM` (``api_key``, ``base_url``, ``thinking``,
    ``temperature``, ``rate_limits``...). Also reachable as ``campusllm.init_chat_model``.

    Example:
        >>> from langchain_campusllm import init_chat_model
        >>> init_chat_model("glm", model_provider="sjtu", api_key="sk-demo").resolved.model.id
        'glm-5.1'
        >>> from langchain.agents import create_agent  # doctest: +SKIP
        >>> llm = init_chat_model("sjtu:deepseek-reasoner")  # doctest: +SKIP
        >>> agent = create_agent(llm, tools=[])  # doctest: +SKIP
    """
    return ChatCampusLLM(model=model, **_provider_kwargs(model_provider, kwargs))


def init_embeddings(
    model: str, *, provider: str | None = None, **kwargs: Any
) -> CampusLLMEmbeddings:
    """A :class:`CampusLLMEmbeddings` for ``"provider:model"`` (or ``model`` + ``provider``).

    Mirrors ``langchain.embeddings.init_embeddings(model, provider=...)``, which does not know
    campus gateways. Other keywords go to :class:`CampusLLMEmbeddings`. Also reachable as
    ``campusllm.init_embeddings``.

    Example:
        >>> from langchain_campusllm import init_embeddings
        >>> emb = init_embeddings("oneapi:qwen3-embedding-8b", api_key="sk-demo")
        >>> emb.provider, emb.resolved.model.id, emb.resolved.model.dimensions
        ('oneapi', 'qwen3-embedding-8b', 4096)
    """
    if provider is not None:
        kwargs["provider"] = provider
    return CampusLLMEmbeddings(model=model, **kwargs)
