"""How users install and import campusllm: extras, missing-extra errors, entry points.

The installed-wheel checks (pip, fresh venvs, PyPI) are in test_wheel.py (marker ``slow``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from campusllm.errors import ConfigError
from campusllm.sim import SIM_KEY

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("langchain", "langchain_core", "langchain_openai", "llama_index", "openai")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (a clean ``sys.modules``) from the repo root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# A fresh interpreter in which the named top-level modules cannot be imported, as on an
# install without the extra that brings them.
_BLOCK = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Missing())
"""


def _import_errors(blocked: set[str], statements: list[str]) -> dict[str, str]:
    """The ImportError each statement raises with ``blocked`` missing ("" where none).

    One interpreter for all statements; our packages are unloaded between them so that each
    statement imports them afresh.
    """
    code = _BLOCK.format(blocked=sorted(blocked)) + textwrap.dedent(f"""
        import json
        OURS = ("campusllm", "langchain_campusllm", "llama_index_campusllm")
        LEAVES = {{"llms.campusllm", "embeddings.campusllm", "postprocessor.campusllm_rerank"}}
        out = {{}}
        for statement in {statements!r}:
            for name in list(sys.modules):
                kind_leaf = name.split(".", 1)[-1]
                if name.split(".")[0] in OURS or kind_leaf in LEAVES:
                    del sys.modules[name]
            try:
                exec(statement, {{}})
            except ImportError as e:
                out[statement] = type(e).__name__ + ": " + str(e)
            else:
                out[statement] = ""
        print(json.dumps(out))
        """)
    r = _run(code)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


# ------------------------------------------------------------------------------ extras


def test_core_declares_no_framework_dependency() -> None:
    project = _pyproject()["project"]
    core = {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    # httpx and pydantic alone: anyio is httpx's own dependency (named because the core
    # imports it), tomli the standard library's tomllib before Python 3.11.
    assert {"httpx", "pydantic"} <= core <= {"httpx", "pydantic", "anyio", "tomli"}
    leaked = {d for d in core if d.startswith(("langchain", "llama-index", "openai"))}
    assert not leaked, f"framework packages in the core install: {leaked}"
    extras = project["optional-dependencies"]
    assert {"langchain", "llamaindex", "all"} <= set(extras)
    everything = extras["all"][0].replace(" ", "")
    assert everything.startswith("campusllm[") and {"langchain", "llamaindex"} <= set(
        everything[len("campusllm[") : -1].split(",")
    )


def test_dev_group_installs_every_extra_for_uv_run() -> None:
    """``uv run pytest`` / ``uv run campusllm demo`` on a fresh clone need both frameworks."""
    assert "campusllm[all]" in _pyproject()["dependency-groups"]["dev"]


def test_import_campusllm_loads_no_framework() -> None:
    r = _run(f"""
        import sys, json
        import campusllm
        campusllm.resolve("sjtu:glm")
        import campusllm.cli
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & {set(FRAMEWORKS)!r})))
        """)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


LANGCHAIN_IMPORTS = [
    "import langchain_campusllm",
    "from langchain_campusllm import ChatCampusLLM",
    "from langchain_campusllm.embeddings import CampusLLMEmbeddings",
    "import campusllm; campusllm.init_chat_model",
    "import campusllm; campusllm.init_embeddings",
]
LLAMAINDEX_IMPORTS = [
    "import llama_index_campusllm",
    "from llama_index_campusllm.llms import CampusLLM",
    "from llama_index.llms.campusllm import CampusLLM",
    "from llama_index.embeddings.campusllm import CampusLLMEmbedding",
    "from llama_index.postprocessor.campusllm_rerank import CampusLLMRerank",
]


@pytest.mark.parametrize("missing", ["langchain_core", "langchain_openai", "openai"])
def test_langchain_adapter_without_its_extra_names_the_extra(missing: str) -> None:
    for statement, error in _import_errors({missing}, LANGCHAIN_IMPORTS).items():
        assert error.startswith("ImportError: "), f"{statement!r} with {missing} missing: {error}"
        assert 'pip install "campusllm[langchain]"' in error
        assert repr(missing) in error  # which module is missing


@pytest.mark.parametrize("missing", ["llama_index.core", "openai"])
def test_llamaindex_adapter_without_its_extra_names_the_extra(missing: str) -> None:
    for statement, error in _import_errors({missing}, LLAMAINDEX_IMPORTS).items():
        assert error.startswith("ImportError: "), f"{statement!r} with {missing} missing: {error}"
        assert 'pip install "campusllm[llamaindex]"' in error
        assert repr(missing) in error


def test_core_works_with_both_frameworks_missing() -> None:
    code = _BLOCK.format(blocked=sorted(FRAMEWORKS)) + textwrap.dedent("""
        import campusllm
        from campusllm.cli import main
        print(campusllm.resolve("sjtu:glm").model.id)
        raise SystemExit(main(["providers"]))
        """)
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("glm-5.1") and "models.sjtu.edu.cn" in r.stdout


# ------------------------------------------------------------------------------ llama_index.*


def test_llama_index_namespace_modules_reexport_our_classes() -> None:
    import llama_index_campusllm as ours
    from llama_index.embeddings.campusllm import CampusLLMEmbedding
    from llama_index.llms.campusllm import CampusLLM
    from llama_index.postprocessor.campusllm_rerank import CampusLLMRerank

    assert CampusLLM is ours.CampusLLM
    assert CampusLLMEmbedding is ours.CampusLLMEmbedding
    assert CampusLLMRerank is ours.CampusLLMRerank


def test_llama_index_namespace_is_shared_not_shadowed() -> None:
    # An __init__.py in llama_index/ or llama_index/<kind>/ would hide llama-index-core and
    # every llama-index-<kind>-* package installed next to us.
    for d in [
        "llama_index",
        "llama_index/llms",
        "llama_index/embeddings",
        "llama_index/postprocessor",
    ]:
        assert (ROOT / d).is_dir() and not (ROOT / d / "__init__.py").exists(), d
    leaves = sorted(p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("llama_index/**/*.py"))
    assert leaves == [
        "llama_index/embeddings/campusllm",
        "llama_index/llms/campusllm",
        "llama_index/postprocessor/campusllm_rerank",
    ]
    import llama_index.core

    import llama_index.llms
    import llama_index.llms.campusllm

    # llama-index-core's own package, found beside our directories
    assert not Path(str(llama_index.core.__file__)).is_relative_to(ROOT / "llama_index")
    assert getattr(llama_index.llms, "__file__", None) is None  # a namespace package


def test_llama_index_entry_point_answers_through_the_simulator(sim: Any) -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index.llms.campusllm import CampusLLM

    llm = CampusLLM(model="sjtu:deepseek-reasoner", api_key=SIM_KEY, base_url=sim.url("sjtu"))
    resp = llm.chat([ChatMessage(role="user", content="Which is larger, 9.11 or 9.9?")])
    assert resp.message.content and "<think>" not in resp.message.content
    assert llm.metadata.context_window > 0


# ------------------------------------------------------------------------------ init_* helpers


def test_init_chat_model_builds_a_chat_model_for_provider_model() -> None:
    import campusllm
    from langchain_campusllm import ChatCampusLLM, init_chat_model

    llm = init_chat_model("sjtu:deepseek-reasoner", api_key="sk-test", temperature=0.3)
    assert isinstance(llm, ChatCampusLLM)
    assert (llm.provider, llm.model_name, llm.temperature) == ("sjtu", "deepseek-reasoner", 0.3)
    by_provider = init_chat_model("glm", model_provider="sjtu", api_key="sk-test", thinking=False)
    assert (by_provider.provider, by_provider.resolved.model.id) == ("sjtu", "glm-5.1")
    assert by_provider.thinking is False
    assert campusllm.init_chat_model is init_chat_model


def test_init_chat_model_refuses_contradicting_providers() -> None:
    from langchain_campusllm import init_chat_model

    with pytest.raises(ConfigError, match="disagree"):
        init_chat_model("glm", model_provider="sjtu", provider="ecnu", api_key="sk-test")


def test_init_embeddings_builds_embeddings_for_provider_model() -> None:
    import campusllm
    from langchain_campusllm import CampusLLMEmbeddings, init_embeddings

    emb = init_embeddings("qwen3-embedding-8b", provider="oneapi", api_key="sk-test")
    assert isinstance(emb, CampusLLMEmbeddings)
    assert (emb.provider, emb.model) == ("oneapi", "qwen3-embedding-8b")
    assert campusllm.init_embeddings is init_embeddings


def test_init_chat_model_drives_create_agent_on_the_simulator(sim: Any) -> None:
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.tools import tool

    from campusllm import init_chat_model

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"Sunny, 22 C in {city}"

    llm = init_chat_model("sjtu:deepseek-reasoner", api_key=SIM_KEY, base_url=sim.url("sjtu"))
    agent = agents.create_agent(llm, tools=[get_weather])
    result = agent.invoke({"messages": [{"role": "user", "content": "Weather in Shanghai?"}]})
    assert "Sunny, 22 C in Shanghai" in result["messages"][-1].text


def test_init_embeddings_embeds_on_the_simulator(sim: Any) -> None:
    from campusllm import init_embeddings

    emb = init_embeddings("oneapi:qwen3-embedding-8b", api_key=SIM_KEY, base_url=sim.url("oneapi"))
    vectors = emb.embed_documents(["交大", "华师大"])
    assert len(vectors) == 2 and len(vectors[0]) > 0 and vectors[0] != vectors[1]


def test_langchains_own_helpers_cannot_reach_campus_providers() -> None:
    """What the README says about LangChain's init_chat_model / create_agent strings."""
    chat_models = pytest.importorskip("langchain.chat_models")
    with pytest.raises(ValueError, match="infer model provider"):
        chat_models.init_chat_model("sjtu:deepseek-reasoner")
    with pytest.raises(ValueError, match="Unsupported"):
        chat_models.init_chat_model("deepseek-reasoner", model_provider="sjtu")
    agents = pytest.importorskip("langchain.agents")
    with pytest.raises(ValueError, match="infer model provider"):
        agents.create_agent("sjtu:deepseek-reasoner", tools=[])
