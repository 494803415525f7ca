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
from ..extras import install_line
from ..i18n import is_chinese, tr
from ..registry import Registry, ResolvedModel, get_registry
from ..sim import Simulator
from .style import bold, dim

__all__ = ["run_demo"]

Connect = Callable[[str], dict[str, Any]]
"""Connection keywords for a provider's classes (the simulator's URL and key, or none)."""


def _say(title: str) -> None:
    print()
    print(bold(f"── {title}"))


_EXTRAS = {"langchain_campusllm": "langchain", "llama_index_campusllm": "llamaindex"}


def _installed(package: str, told: set[str]) -> bool:
    """Whether an adapter can be imported; if not, one line (once per tour) says how to
    install its extra: a core-only install has the adapter's package but not its framework."""
    try:
        importlib.import_module(package)
    except ImportError as e:
        if package not in told:
            told.add(package)
            print(_not_installed(package, e))
        return False
    return True


def _not_installed(package: str, exc: ImportError) -> str:
    line = install_line(_EXTRAS[package])
    if exc.name is None:  # not a missing module: the adapter itself failed to import
        reason = " ".join(str(exc).split())
        return tr(
            f"({package} could not be imported ({reason}): this part of the tour is skipped.)",
            f"(无法导入 {package}({reason}):跳过这部分演示。)",
        )
    if exc.name == package:
        what = tr(f"{package} is not installed", f"未安装 {package}")
    else:
        what = tr(
            f"{package} needs {exc.name}, which is not installed",
            f"{package} 需要的 {exc.name} 没有安装",
        )
    return tr(
        f"({what}: this part of the tour is skipped. To run it: {line})",
        f"({what}:跳过这部分演示。要运行它:{line})",
    )


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
                return {"base_url": sim.url(p), "api_key": sim.api_key}

            env = " / ".join(provider.key_env)
            print(
                tr(
                    f"No key found ({env}): running against the built-in offline simulator.",
                    f"未找到密钥({env}):使用内置的离线模拟器运行。",
                )
            )
            print(
                tr(
                    "Set the key to run the same tour on the real gateway.",
                    "设置密钥后,同样的演示会连接真实网关。",
                )
            )
        else:

            def conn(p: str) -> dict[str, Any]:
                return {}

            print(
                tr(
                    f"Using the real gateway {resolved.base_url} (key found).",
                    f"已找到密钥,使用真实网关 {resolved.base_url}。",
                )
            )

        _registry_step(resolved)
        told: set[str] = set()
        if _installed("langchain_campusllm", told):
            _langchain_steps(model, resolved, conn)
        if _installed("llama_index_campusllm", told):
            _llama_index_step(model, resolved.provider.name, conn)
        if _installed("langchain_campusllm", told):
            _rag_step(reg, provider.name if key is not None else None, conn)
    print()
    print(
        tr(
            "Done. Next: `campusllm models`, `campusllm doctor`, and the notebooks/ folder.",
            "完成。接下来可以试试 `campusllm models`、`campusllm doctor` 和 notebooks/ 目录。",
        )
    )
    return 0


def _registry_step(resolved: ResolvedModel) -> None:
    m, provider = resolved.model, resolved.provider
    _say(tr(f"1. Registry: {resolved.key}", f"1. 注册表:{resolved.key}"))
    details = (
        f"tools={m.tools}, vision={m.vision}, reasoning shape={m.reasoning.shape}, "
        f"pass-back={m.reasoning.passback}"
    )
    print(
        tr(
            f"context window {m.context_window or '-'}, max output {m.max_output or '-'}, "
            f"{details}",
            f"上下文窗口 {m.context_window or '-'},最大输出 {m.max_output or '-'},{details}",
        )
    )
    lim = provider.limits
    print(
        tr(
            f"{provider.name} limits: rpm={lim.rpm} tpm={lim.tpm}; reach: {provider.reachability}",
            f"{provider.name} 限额:rpm={lim.rpm} tpm={lim.tpm};网络:{provider.reachability}",
        )
    )


def _langchain_steps(model: str, resolved: ResolvedModel, conn: Connect) -> None:
    # The adapters are optional extras of the core: imported only when installed.
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from langchain_campusllm import ChatCampusLLM

    llm = ChatCampusLLM(model=model, **conn(resolved.provider.name))
    _say(
        tr(
            "2. LangChain streaming: reasoning (dimmed) apart from the answer",
            "2. LangChain 流式输出:思考过程(淡色)与回答分开",
        )
    )
    full: Any = None
    question = tr(
        "Which is larger, 9.11 or 9.9? Answer briefly.", "9.11 和 9.9 哪个大?请简短回答。"
    )
    thinking = False  # labelled and set apart, so it reads right without colours too
    for chunk in llm.stream(question):
        r = chunk.additional_kwargs.get("reasoning_content")
        if r:
            if not thinking:
                sys.stdout.write(dim(tr("[thinking] ", "[思考] ")))
                thinking = True
            sys.stdout.write(dim(r))
        if chunk.content:
            if thinking:
                sys.stdout.write("\n\n")
                thinking = False
            sys.stdout.write(str(chunk.content))
        sys.stdout.flush()
        full = chunk if full is None else full + chunk
    print()
    if full is not None and full.usage_metadata:
        print(dim(tr(f"usage: {full.usage_metadata}", f"用量: {full.usage_metadata}")))

    if not resolved.model.tools:
        return
    _say(tr("3. Tool loop with reasoning pass-back", "3. 工具调用循环(回传思考内容)"))

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return tr(f"Sunny, 22°C in {city}", f"{city}:晴,22°C")

    bound = llm.bind_tools([get_weather])
    ask = tr(
        "Use get_weather: what's the weather in Shanghai?",
        "上海,今天天气怎么样?请用 get_weather 查询。",
    )
    history: list[Any] = [HumanMessage(ask)]
    for _ in range(3):
        ai = bound.invoke(history)
        history.append(ai)
        if not ai.tool_calls:
            break
        for call in ai.tool_calls:
            print(tr("tool call: ", "工具调用: ") + f"{call['name']}({call['args']})")
            history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    print(tr("answer: ", "回答: ") + str(history[-1].content))


def _llama_index_step(model: str, provider: str, conn: Connect) -> None:
    from llama_index_campusllm import CampusLLM  # an optional extra

    _say(
        tr("4. LlamaIndex: real metadata from the registry", "4. LlamaIndex:来自注册表的真实元数据")
    )
    li = CampusLLM(model=model, **conn(provider))
    md = li.metadata
    print(
        f"context_window={md.context_window} num_output={md.num_output} "
        f"function_calling={md.is_function_calling_model}"
    )


def _rag_step(reg: Registry, only_provider: str | None, conn: Connect) -> None:
    def first(kind: str, provider: str | None) -> str | None:
        return next(
            (
                f"{p.name}:{m.id}"
                for p, m in reg.models(kind=kind)
                if provider is None or p.name == provider
            ),
            None,
        )

    # Embeddings and rerank from one gateway where one has both (one key, one network).
    rerankers = [p.name for p, _ in reg.models(kind="rerank")]
    both = next((p for p in rerankers if first("embedding", p)), None)
    pick = only_provider or both
    emb_model, rr_model = first("embedding", pick), first("rerank", pick)
    if not (emb_model and rr_model):
        return
    _say(
        tr(
            f"5. RAG: {emb_model} embeddings + {rr_model} rerank",
            f"5. RAG:{emb_model} 向量 + {rr_model} 重排序",
        )
    )
    # optional extras, imported only when installed
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank

    store = InMemoryVectorStore(
        CampusLLMEmbeddings(model=emb_model, **conn(emb_model.split(":", 1)[0]))
    )
    if is_chinese():
        docs = [
            "交大网关每个密钥每分钟允许 10 次请求。",
            "DeepSeek V3.2 的每个请求都必须包含 user 消息。",
            "外滩是上海市中心的滨江区域。",
            "Qwen3-Embedding 在查询前加一段指令前缀。",
        ]
        query = "交大网关每分钟允许多少次请求?"
    else:
        docs = [
            "SJTU's gateway allows 10 requests per minute per key.",
            "DeepSeek V3.2 needs a user message in every request.",
            "The Bund is a waterfront area in central Shanghai.",
            "Qwen3-Embedding uses an instruction prefix for queries.",
        ]
        query = "How many requests per minute does SJTU allow?"
    store.add_documents([Document(page_content=d) for d in docs])
    hits = store.similarity_search(query, k=4)
    rr = CampusLLMRerank(model=rr_model, top_n=2, **conn(rr_model.split(":", 1)[0]))
    for d in rr.compress_documents(hits, query):
        print(f"{d.metadata['relevance_score']:.3f}  {d.page_content}")
