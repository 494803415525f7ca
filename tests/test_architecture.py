"""The layering the code relies on: checked on every run, not just described.

The rules live in ``.importlinter`` (run them alone with ``uv run lint-imports``): the CLI
above the two adapters, the adapters above the core, the core layered with no cycles, and the
core free of any framework (it reaches the openai SDK only through ``Connection.openai``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("campusllm", "langchain_campusllm", "llama_index_campusllm")


def test_import_contracts_are_kept() -> None:
    # In a process of its own: import-linter reconfigures logging, which would silence the
    # loggers other tests inspect.
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        f"sys.exit(lint_imports(config_filename={str(ROOT / '.importlinter')!r},"
        " no_cache=True, no_logo=True))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout and "Contracts: 5 kept" in proc.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child)
                    work.append((child, iter(sorted(imported))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_through_others() -> None:
    # Stricter than the sibling contract: a cycle between a package and its own module
    # (or through a function-level import) counts too.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def _fresh(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_the_core_imports_no_framework_at_run_time() -> None:
    loaded = _fresh(
        "import sys\n"
        "import campusllm.chat, campusllm.cli, campusllm.client, campusllm.connection\n"
        "import campusllm.refresh, campusllm.testing\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'openai', 'langchain_core', 'langchain_openai', 'llama_index'}))"
    )
    assert loaded == "[]"


def test_a_chat_model_is_built_on_the_sdk_http_library_alone() -> None:
    # httpx's own import pulls in its command line (click, rich, pygments) when those are
    # installed: a chat model talking through an SDK on httpx2 must not pay for it.
    out = _fresh(
        "import sys\n"
        "from campusllm.openai_sdk import sdk_http_library\n"
        "from langchain_campusllm import ChatCampusLLM\n"
        "llm = ChatCampusLLM(model='sjtu:deepseek-chat', api_key='sk-example',\n"
        "                    base_url='http://127.0.0.1:9/v1')\n"
        "print(sdk_http_library().__name__, 'httpx' in sys.modules,"
        " len(llm.connection._clients))"
    )
    lib, httpx_loaded, pools = out.split()
    if lib == "httpx":
        pytest.skip("the installed openai SDK runs on httpx itself")
    assert httpx_loaded == "False" and pools == "1"


def test_embeddings_and_rerankers_do_not_load_the_openai_sdk() -> None:
    # Only chat goes through the SDK (and LlamaIndex's LLM imports it on its first chat).
    loaded = _fresh(
        "import sys\n"
        "from langchain_campusllm import CampusLLMEmbeddings, CampusLLMRerank\n"
        "from llama_index_campusllm import CampusLLM, CampusLLMEmbedding, CampusLLMRerank\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'langchain_openai'}))"
    )
    assert loaded == "[]"
