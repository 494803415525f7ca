"""``campusllm demo``: a short tour, against the offline simulator when no key is set.

Example:
    $ campusllm demo                 # simulator unless SJTU_API_KEY is set
    $ campusllm demo -m ecnu:ecnu-reasoner
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import Any

__all__ = ["run_demo"]


def _say(title: str) -> None:
    from .main import bold

    print()
    print(bold(f"── {title}"))


def run_demo(model: str | None = None, *, offline: bool = False) -> int:
    """Run the tour; returns an exit code."""
    from ..auth import get_api_key
    from ..errors import AuthenticationError
    from ..registry import get_registry

    model = model or os.environ.get("CAMPUSLLM_MODEL") or "sjtu:deepseek-reasoner"
    reg = get_registry()
    resolved = reg.resolve(model)
    provider = resolved.provider
    with ExitStack() as stack:
        key: Any = None
        if not offline:
            try:
                key = get_api_key(provider)
            except AuthenticationError:
                key = None
        if key is None:
            from ..sim import SIM_KEY, Simulator

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

        m = resolved.model
        _say(f"1. Registry: {resolved.key}")
        print(
            f"context window {m.context_window}, max output {m.max_output}, tools={m.tools}, "
            f"vision={m.vision}, reasoning shape={m.reasoning.shape}, "
            f"pass-back={m.reasoning.passback}"
        )
        lim = provider.limits
        print(
            f"{provider.name} limits: rpm={lim.rpm} tpm={lim.tpm}; reach: {provider.reachability}"
        )

        from langchain_campusllm import ChatCampusLLM

        llm = ChatCampusLLM(model=model, **conn(provider.name))
        _say("2. LangChain streaming: reasoning (dimmed) apart from the answer")
        from .main import dim

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

        if m.tools:
            _say("3. Tool loop with reasoning pass-back")
            from langchain_core.messages import HumanMessage, ToolMessage
            from langchain_core.tools import tool

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
                    history.append(
                        ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
                    )
            print(f"answer: {history[-1].content}")

        from llama_index_campusllm import CampusLLM

        _say("4. LlamaIndex: real metadata from the registry")
        li = CampusLLM(model=model, **conn(provider.name))
        md = li.metadata
        print(
            f"context_window={md.context_window} num_output={md.num_output} "
            f"function_calling={md.is_function_calling_model}"
        )

        emb_model = next(
            (
                f"{p.name}:{e.id}"
                for p, e in reg.models(kind="embedding")
                if key is None or p.name == provider.name
            ),
            None,
        )
        rr_model = next(
            (
                f"{p.name}:{e.id}"
                for p, e in reg.models(kind="rerank")
                if key is None or p.name == provider.name
            ),
            None,
        )
        if emb_model and rr_model:
            _say(f"5. RAG: {emb_model} embeddings + {rr_model} rerank")
            from langchain_core.documents import Document
            from langchain_core.vectorstores import InMemoryVectorStore

            from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank

            ep = emb_model.split(":", 1)[0]
            store = InMemoryVectorStore(CampusLLMEmbeddings(model=emb_model, **conn(ep)))
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
    print()
    print("Done. Next: `campusllm models`, `campusllm doctor`, and the notebooks/ folder.")
    return 0
