"""campusllm: campus and enterprise OpenAI-compatible LLM gateways, done right.

The framework-free core: provider registry, wire layer, one limiter/retry layer, typed
errors and an offline simulator. Framework adapters live in ``langchain_campusllm`` and
``llama_index_campusllm``.

Example:
    >>> import campusllm
    >>> campusllm.resolve("sjtu:glm").model.id
    'glm-5.1'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Names are resolved lazily so `import campusllm` stays cheap (it is imported by both adapters).
_LAZY = {
    "resolve": "campusllm.registry",
    "get_registry": "campusllm.registry",
    "register_provider": "campusllm.registry",
    "register_model": "campusllm.registry",
    "ResolvedModel": "campusllm.registry",
    "ModelSpec": "campusllm.registry",
    "ProviderSpec": "campusllm.registry",
    "RateLimits": "campusllm.registry",
    "get_api_key": "campusllm.auth",
    "connect": "campusllm.connection",
    "Connection": "campusllm.connection",
    "CampusClient": "campusllm.client",
    "ChatCaller": "campusllm.chat",
    "Simulator": "campusllm.sim",
    "RetryPolicy": "campusllm.transport",
}

# LangChain helpers, imported on first use only: `import campusllm` must not import LangChain
# (without the langchain extra, using them raises an ImportError naming the extra). They stay
# out of __all__ so that `from campusllm import *` works on a core-only install.
_LAZY_LANGCHAIN = {
    "init_chat_model": "langchain_campusllm.factory",
    "init_embeddings": "langchain_campusllm.factory",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .auth import get_api_key as get_api_key
    from .chat import ChatCaller as ChatCaller
    from .client import CampusClient as CampusClient
    from .connection import Connection as Connection
    from .connection import connect as connect
    from .registry import (
        ModelSpec as ModelSpec,
    )
    from .registry import (
        ProviderSpec as ProviderSpec,
    )
    from .registry import (
        RateLimits as RateLimits,
    )
    from .registry import (
        ResolvedModel as ResolvedModel,
    )
    from .registry import (
        get_registry as get_registry,
    )
    from .registry import (
        register_model as register_model,
    )
    from .registry import (
        register_provider as register_provider,
    )
    from .registry import (
        resolve as resolve,
    )
    from .sim import Simulator as Simulator
    from .transport import RetryPolicy as RetryPolicy


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name) or _LAZY_LANGCHAIN.get(name)
    if mod is None:
        raise AttributeError(f"module 'campusllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
