"""Catalog figures a provider does not publish are marked as assumptions, everywhere they show.

ECNU's developer documentation ("通用对话", "通用文本向量") publishes models, the embedding
model's 1,024 dimensions and an 8,192-character input limit, but no context window, batch size
or rate limit: what the catalog chooses for those must say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campusllm.cli import main
from campusllm.client import CampusClient
from campusllm.errors import ConfigError
from campusllm.registry import ModelSpec, ProviderSpec, Registry, resolve
from campusllm.registry.docs import ASSUMED_MARK, ASSUMED_NOTE, markdown_table
from campusllm.sim import SIM_KEY


def test_ecnu_embedding_model_is_catalogued_as_documented() -> None:
    spec = Registry().provider("ecnu").find_model("ecnu-embedding-small")
    assert spec is not None and spec.kind == "embedding"
    assert spec.dimensions == 1024 and "dimensions" not in spec.assumed  # documented
    assert spec.query_instruction is None  # none documented: queries embedded as they are
    assert spec.max_input_tokens == 8192 and "max_input_tokens" in spec.assumed  # characters


def test_every_ecnu_figure_without_a_source_is_marked() -> None:
    ecnu = Registry().provider("ecnu")
    assert {"embedding_batch", "embedding_batch_tokens"} <= set(ecnu.assumed)
    assert ecnu.limits.rpm is None and ecnu.limits.tpm is None  # none published, none invented
    for m in ecnu.models:
        if m.context_window is not None:
            assert "context_window" in m.assumed, m.id
        assert m.max_output is None or "max_output" in m.assumed, m.id


@pytest.mark.parametrize("bad", ["context_windw", "limits.rpm", "assumed"])
def test_assumed_must_name_a_real_field(bad: str) -> None:
    with pytest.raises(ConfigError, match="assumed"):
        Registry().register_model("ecnu", {"id": "x", "assumed": [bad]})


def test_provider_assumed_may_name_a_limit() -> None:
    p = ProviderSpec(name="lab", limits={"rpm": 30}, assumed=["limits.rpm"])
    assert p.assumed == ["limits.rpm"]
    with pytest.raises(ValueError, match="limits.rpn"):
        ProviderSpec(name="lab", assumed=["limits.rpn"])


def test_markdown_table_marks_assumed_figures_and_explains_the_mark() -> None:
    lab = ProviderSpec(
        name="lab",
        models=[
            ModelSpec(id="guess", context_window=32768, assumed=["context_window"]),
            ModelSpec(id="known", context_window=65536),
            ModelSpec(id="emb", kind="embedding", dimensions=768, assumed=["dimensions"]),
        ],
    )
    lines = markdown_table([lab]).splitlines()
    guess, known, emb = lines[2:5]
    assert f"| 32K{ASSUMED_MARK} |" in guess and ASSUMED_MARK not in known
    assert f"768 dims{ASSUMED_MARK}" in emb
    assert lines[-1] == ASSUMED_NOTE
    plain = markdown_table([ProviderSpec(name="lab", models=[ModelSpec(id="known")])])
    assert ASSUMED_MARK not in plain  # no mark, no footnote


def test_a_figure_the_user_configures_is_no_longer_an_assumption(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[providers.ecnu.models]]\nid = "ecnu-plus"\ncontext_window = 131072\n'
        "[providers.ecnu]\nembedding_batch = 8\n",
        encoding="utf-8",
    )
    reg = Registry()
    reg.load_overrides(path)
    plus = reg.provider("ecnu").find_model("ecnu-plus")
    assert plus is not None and plus.context_window == 131072
    assert "context_window" not in plus.assumed and "parallel_tools" in plus.assumed
    assert reg.provider("ecnu").assumed == ["embedding_batch_tokens"]
    row = next(r for r in reg.markdown_table().splitlines() if "`ecnu-plus`" in r)
    assert "| 128K |" in row


def test_models_command_marks_assumed_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "ecnu"]) == 0
    out = capsys.readouterr().out
    plus = next(ln for ln in out.splitlines() if ln.startswith("ecnu:ecnu-plus "))
    assert " 32K* " in plus
    assert out.rstrip().endswith("* assumed: the provider does not publish this figure")
    assert main(["models", "sjtu"]) == 0
    assert "*" not in capsys.readouterr().out  # documented figures carry no mark


def test_ecnu_embeddings_against_the_simulator_in_small_batches(sim: Any) -> None:
    resolved = resolve("ecnu:ecnu-embedding-small", base_url=sim.url("ecnu"))
    texts = [f"第 {i} 段:华东师范大学的开放平台提供文本向量接口。" * 4 for i in range(40)]
    with CampusClient(resolved, SIM_KEY) as client:
        batches = client.embedding_batches(texts)
        vectors = client.embed(texts)
    assert len(batches) > 1 and all(b - a <= 32 for a, b in batches)
    assert len(vectors) == 40 and {len(v) for v in vectors} == {1024}
