"""``campusllm demo``: a short tour, against the offline simulator when no key is set.

The LangChain and LlamaIndex parts run when their adapter is installed and are skipped,
with a note, when it is not.

Example:
    $ campusllm demo                 # simulator unless SJTU_API_KEY is set
    $ campusllm demo -m ecnu:ecnu-reasoner
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from pydantic import SecretStr

from ..auth import get_api_key
from ..errors import AuthenticationError
from ..registry import Registry, ResolvedModel, get_registry
from ..sim import SIM_KEY, Simulator
from .style import bold, dim

__all__ = ["run_demo"]

Connect = Callable[[str], dict[str, Any]]
"""Connection keywords for a provider's classes (the simulator's URL and key, or none)."""


def _say(title: str) -> None:
    print()
    print(bold(f"── {title}"))


def _installed(package: str) -> bool:
    try:
        importlib.import_module(package)
    except ImportError:
        print(f"({package} is not installed: this part of the tour is skipped.)")
        return False
    return True


def run_demo(model: str | None = None, *, offline: bool = False) -> int:
    """Run the tour; returns an exit code."""
    model = model or os.environ.get("CAMPUSLLM_MODEL") or "sjtu:deepseek-reasoner"
    reg = get_registry()
    resolved = reg.resolve(model)
    provider = resolved.provider
    with ExitStack() as stack:
        key: SecretStr | None = None
        if not offline:
            try:
                key = get_api_key(provider)
            except AuthenticationError:
                key = None
        conn: Connect
        if key is None:
            sim = stack.enter_context(Simulator())

            def conn(p: str) -> dict[str, Any]:
                return {"base_url": sim.url(p), "api_key": SIM_KEY}

            env = " / ".join(provider.key_env)
            print(f"No key found ({env}): running against the built-in offline simulator.")
            print("Set the key to run the same tour on the real gateway.")
        else:

            def conn(p: str) -> dict[str, Any]:
                return {}

            print(f"Using the real gateway {resolved.base_url} (key found).")

        _registry_step(resolved)
        if _installed("langchain_campusllm"):
            _langchain_steps(model, resolved, conn)
        if _installed("llama_index_campusllm"):
            _llama_index_step(model, resolved.provider.name, conn)
        _rag_step(reg, provider.name if key is not None else None, conn)
    print()
    print("Done. Next: `campusllm models`, `campusllm doctor`, and the notebooks/ folder.")
    return 0


def _registry_step(resolved: ResolvedModel) -> None:
    m, provider = resolved.model, resolved.provider
    _say(f"1. Registry: {resolved.key}")
    print(
        f"context window {m.context_window}, max output {m.max_output}, tools={m.tools}, "
        f"vision={m.vision}, reasoning shape={m.reasoning.shape}, "
        f"pass-back={m.reasoning.passback}"
    )
    lim = provider.limits
    print(f"{provider.name} limits: rpm={lim.rpm} tpm={lim.tpm}; reach: {provider.reachability}")


def _langchain_steps(model: str, resolved: ResolvedModel, conn: Connect) -> None:
    # The adapters are optional extras of the core: imported only when installed.
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=model, **conn(resolved.provider.name))
    _say("2. LangChain streaming: reasoning (dimmed) apart from the answer")
    full: Any = None
    for chunk in llm.stream("Which is larger, 9.11 or 9.9? Answer briefly."):
        r = chunk.additional_kwargs.get("reasoning_content")
        if r:
            sys.stdout.write(dim(r))
        if chunk.content:
            sys.stdout.write(str(chunk.content))
        sys.stdout.flush()
        full = chunk if full is None else full + chunk
    print()
    if full is not None and full.usage_metadata:
        print(dim(f"usage: {full.usage_metadata}"))

    if not resolved.model.tools:
        return
    _say("3. Tool loop with reasoning pass-back")

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"Sunny, 22°C in {city}"

    bound = llm.bind_tools([get_weather])
    history: list[Any] = [HumanMessage("Use get_weather: what's the weather in Shanghai?")]
    for _ in range(3):
        ai = bound.invoke(history)
        history.append(ai)
        if not ai.tool_calls:
            break
        for call in ai.tool_calls:
            print(f"tool call: {call['name']}({call['args']})")
            history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    print(f"answer: {history[-1].content}")


def _llama_index_step(model: str, provider: str, conn: Connect) -> None:
    from llama_index_campusllm import CampusLLM  # an optional extra

    _say("4. LlamaIndex: real metadata from the registry")
    li = CampusLLM(model=model, **conn(provider))
    md = li.metadata
    print(
        f"context_window={md.context_window} num_output={md.num_output} "
        f"function_calling={md.is_function_calling_model}"
    )


def _rag_step(reg: Registry, only_provider: str | None, conn: Connect) -> None:
    def first(kind: str) -> str | None:
        return next(
            (
                f"{p.name}:{m.id}"
                for p, m in reg.models(kind=kind)
                if only_provider is None or p.name == only_provider
            ),
            None,
        )

    emb_model, rr_model = first("embedding"), first("rerank")
    if not (emb_model and rr_model):
        return
    _say(f"5. RAG: {emb_model} embeddings + {rr_model} rerank")
    if not _installed("langchain_campusllm"):
        return
    # optional extras, imported only when installed
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank

    store = InMemoryVectorStore(
        CampusLLMEmbeddings(model=emb_model, **conn(emb_model.split(":", 1)[0]))
    )
    docs = [
        "SJTU's gateway allows 10 requests per minute per key.",
        "DeepSeek V3.2 needs a user message in every request.",
        "The Bund is a waterfront area in central Shanghai.",
        "Qwen3-Embedding uses an instruction prefix for queries.",
    ]
    store.add_documents([Document(page_content=d) for d in docs])
    query = "How many requests per minute does SJTU allow?"
    hits = store.similarity_search(query, k=4)
    rr = CampusLLMRerank(model=rr_model, top_n=2, **conn(rr_model.split(":", 1)[0]))
    for d in rr.compress_documents(hits, query):
        print(f"{d.metadata['relevance_score']:.3f}  {d.page_content}")
