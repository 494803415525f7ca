"""The provider registry: packaged catalog, resolution, overrides, runtime registration, drift."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from campusllm.errors import ConfigError, ModelNotFoundError
from campusllm.registry import (
    ModelSpec,
    ProviderSpec,
    Registry,
    get_registry,
    markdown_table,
    reset_registry,
)
from campusllm.tokens import estimate_tokens

ENV_VARS = [
    "CAMPUSLLM_PROVIDER",
    "CAMPUSLLM_BASE_URL",
    "SJTU_BASE_URL",
    "ECNU_BASE_URL",
    "MAAS_BASE_URL",
    "ONEAPI_BASE_URL",
    "XDG_CONFIG_HOME",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(tmp_path / "absent.toml"))
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def reg() -> Registry:
    return Registry()


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- packaged catalog

K = 1024
# Every model of the seeds with the context window they document (None: not documented).
SEED_MODELS = [
    ("sjtu", "deepseek-chat", 32 * K),
    ("sjtu", "deepseek-reasoner", 32 * K),
    ("sjtu", "minimax", 192 * K),
    ("sjtu", "minimax-m2.7", 192 * K),
    ("sjtu", "glm", 128 * K),
    ("sjtu", "glm-5.1", 128 * K),
    ("sjtu", "qwen", 256 * K),
    ("sjtu", "qwen3.5-27b", 256 * K),
    ("sjtu", "deepseek-v3.2", 32 * K),
    ("ecnu", "ecnu-plus", None),
    ("ecnu", "ecnu-reasoner", None),
    ("ecnu", "ecnu-embedding-small", None),
    ("maas", "DeepSeek-R1-Distill-Qwen-32B", None),
    ("maas", "QwQ-32B", None),
    ("maas", "ChatGLM4-9B", None),
    ("maas", "Qwen2-72B", None),
    ("maas", "MiniCPM-V", None),
    ("oneapi", "qwq-32b", 64 * K),
    ("oneapi", "qwq-32b-128k", 128 * K),
    ("oneapi", "qwen72b-int8", 16 * K),
    ("oneapi", "qwen72b-awq", 16 * K),
    ("oneapi", "qwen32b-awq(试用)", 32 * K),
    ("oneapi", "qwen25-vl-7b", 32 * K),
    ("oneapi", "qwen3-32b", 32 * K),
    ("oneapi", "qwen3-30b-a3b", 32 * K),
    ("oneapi", "qwen3-embedding-8b", 32 * K),
]


def test_packaged_providers_in_order(reg: Registry) -> None:
    assert [p.name for p in reg.providers()] == ["sjtu", "ecnu", "maas", "oneapi", "custom"]


@pytest.mark.parametrize(("provider", "name", "context"), SEED_MODELS)
def test_every_seed_model_is_catalogued_with_its_context(
    reg: Registry, provider: str, name: str, context: int | None
) -> None:
    spec = reg.provider(provider).find_model(name)
    assert spec is not None, f"{provider}:{name} missing"
    if context is None:  # not documented: unknown, or our assumption marked as one
        assert spec.context_window is None or "context_window" in spec.assumed
    else:
        assert spec.context_window == context and "context_window" not in spec.assumed


def test_sjtu_documented_facts(reg: Registry) -> None:
    p = reg.provider("sjtu")
    assert p.base_url == "https://models.sjtu.edu.cn/api/v1"
    assert (p.limits.rpm, p.limits.tpm, p.limits.weekly_tokens) == (10, 100_000, 1_000_000_000)
    assert p.reachability == "campus" and "VPN" in p.network_hint
    assert p.key_env[0] == "SJTU_API_KEY"
    assert "/api/v1/messages" in p.note  # the Anthropic-format endpoint
    chat = p.find_model("deepseek-chat")
    reasoner = p.find_model("deepseek-reasoner")
    assert chat is not None and reasoner is not None and chat is not reasoner
    assert chat.requires_user_message and reasoner.requires_user_message
    assert not chat.reasoning.default_on and chat.reasoning.thinking_model == "deepseek-reasoner"
    assert (
        reasoner.reasoning.default_on and reasoner.reasoning.non_thinking_model == "deepseek-chat"
    )
    assert reasoner.reasoning.shape == reasoner.reasoning.passback == "reasoning_content"
    minimax = p.find_model("minimax")
    assert minimax is not None and minimax.reasoning.passback == "think_tags"
    qwen = p.find_model("qwen")
    assert qwen is not None and qwen.vision


def test_other_providers_documented_facts(reg: Registry) -> None:
    ecnu = reg.provider("ecnu")
    assert ecnu.base_url == "https://chat.ecnu.edu.cn/open/api/v1" and ecnu.key_env == [
        "ECNU_API_KEY"
    ]
    assert "2025-03-20" in ecnu.note
    plus, reasoner = ecnu.find_model("ecnu-plus"), ecnu.find_model("ecnu-reasoner")
    assert plus is not None and plus.tools
    assert reasoner is not None and reasoner.reasoning.shape == "reasoning_content"

    maas = reg.provider("maas")
    assert maas.base_url is None and maas.base_url_env == "MAAS_BASE_URL"
    assert maas.key_env == ["MAAS_API_KEY"] and "/v1/completions" in maas.note
    glm4 = maas.find_model("chatglm4-9b")
    assert glm4 is not None and glm4.request_defaults["stop_token_ids"] == [151329, 151336, 151338]
    for name in ("DeepSeek-R1-Distill-Qwen-32B", "QwQ-32B"):
        spec = maas.find_model(name)
        assert spec is not None and spec.reasoning.shape == "think_tags"
        assert spec.reasoning.opens_in_template
    cpm = maas.find_model("MiniCPM-V")
    assert cpm is not None and cpm.vision and cpm.request_defaults["stop_token_ids"] == [292542]

    one = reg.provider("oneapi")
    assert one.auth == "raw" and one.key_env == ["ONEAPI_API_KEY"]
    assert one.base_url == "https://oneapi.sangfor.com/v1" and one.reachability == "intranet"
    q3 = one.find_model("qwen3-32b")
    assert q3 is not None and q3.tools and q3.reasoning.tools_only_without_thinking
    assert q3.reasoning.toggle == "enable_thinking" and q3.reasoning.shape == "reasoning_content"
    emb = one.find_model("qwen3-embedding-8b")
    assert emb is not None and emb.kind == "embedding" and emb.dimensions == 4096
    assert emb.query_instruction == "Instruct: {task}\nQuery:{text}"
    rr = [m for m in one.models if m.kind == "rerank"]
    assert rr and rr[0].rerank_shape == "jina"
    vl = one.find_model("qwen25-vl-7b")
    assert vl is not None and vl.vision and "Qwen2.5-VL-32B-Instruct" in vl.note


def test_catalog_is_self_consistent(reg: Registry) -> None:
    for p in reg.providers():
        assert p.base_url or p.base_url_env, p.name
        for m in p.models:
            if m.replacement:
                target = p.find_model(m.replacement)
                assert target is not None and target.status == "active", m.id
            r = m.reasoning
            for switch in (r.thinking_model, r.non_thinking_model):
                if switch:
                    assert p.find_model(switch) is not None, (m.id, switch)
            if r.opens_in_template:
                assert r.shape == "think_tags", m.id
            if m.kind == "rerank":
                assert m.rerank_shape is not None, m.id


def test_deprecated_oneapi_models_point_to_qwen3(reg: Registry) -> None:
    one = reg.provider("oneapi")
    for name in ("qwen72b-int8", "qwen72b-awq", "qwen32b-awq(试用)", "qwen3-30b-a3b"):
        spec = one.find_model(name)
        assert spec is not None and spec.status == "deprecated" and spec.replacement == "qwen3-32b"


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("name", ["deepseek-chat", "deepseek-v3.2"])
def test_alias_and_id_resolve_to_one_entry_and_send_the_asked_name(
    reg: Registry, name: str
) -> None:
    r = reg.resolve(f"sjtu:{name}")
    assert r.key == "sjtu:deepseek-v3.2" and r.known
    assert r.wire_model == name
    assert r.base_url == "https://models.sjtu.edu.cn/api/v1"


def test_resolve_forms_agree(reg: Registry) -> None:
    a = reg.resolve("sjtu:glm")
    b = reg.resolve(provider="sjtu", model="glm")
    c = reg.resolve("glm", provider="SJTU")
    assert a.key == b.key == c.key == "sjtu:glm-5.1"
    assert a.wire_model == "glm"


def test_case_insensitive_name_is_sent_in_gateway_spelling(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", "http://10.0.0.7:30080/v1")
    assert reg.resolve("sjtu:DeepSeek-Chat").wire_model == "deepseek-chat"
    assert reg.resolve("maas:qwq-32b").wire_model == "QwQ-32B"


def test_local_alias_is_sent_as_the_full_id(reg: Registry) -> None:
    with pytest.warns(UserWarning, match="qwen3-32b"):
        r = reg.resolve("oneapi:qwen32b-awq")
    assert r.wire_model == "qwen32b-awq(试用)"


def test_model_only_uses_env_provider_or_unique_catalog(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert reg.resolve("deepseek-reasoner").provider.name == "sjtu"
    with pytest.raises(ModelNotFoundError, match="maas:qwq-32b.*oneapi:qwq-32b"):
        reg.resolve("qwq-32b")  # QwQ-32B on maas matches case-insensitively
    monkeypatch.setenv("CAMPUSLLM_PROVIDER", "oneapi")
    assert reg.resolve("qwq-32b").key == "oneapi:qwq-32b"


def test_model_only_unknown_everywhere_says_how_to_name_it(reg: Registry) -> None:
    with pytest.raises(ModelNotFoundError) as ei:
        reg.resolve("no-such-model")
    assert "CAMPUSLLM_PROVIDER" in str(ei.value) and "provider:model" in str(ei.value)


def test_unknown_provider_lists_known_ones(reg: Registry) -> None:
    with pytest.raises(ModelNotFoundError) as ei:
        reg.resolve("nowhere:foo")
    for name in ("sjtu", "ecnu", "maas", "oneapi", "custom"):
        assert name in str(ei.value)


def test_unknown_model_on_known_provider_warns_with_close_match(reg: Registry) -> None:
    with pytest.warns(UserWarning, match="deepseek-reasoner") as rec:
        r = reg.resolve("sjtu:deepseek-reasoer")
    assert "not in the sjtu catalog" in str(rec[0].message)
    assert not r.known and r.wire_model == "deepseek-reasoer" and r.model.id == "deepseek-reasoer"
    assert rec[0].filename == __file__  # points at the caller, not at campusllm


def test_custom_accepts_any_model_silently(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUSLLM_BASE_URL", "http://127.0.0.1:8000/v1/")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = reg.resolve("custom:qwen3:32b")
        emb = reg.resolve("custom:bge-m3-embedding")
    assert r.wire_model == "qwen3:32b" and not r.known and r.model.tools
    assert r.base_url == "http://127.0.0.1:8000/v1"
    assert emb.model.kind == "embedding"


def test_deprecated_warning_names_replacement(reg: Registry) -> None:
    with pytest.warns(UserWarning, match=r"deprecated.*oneapi:qwen3-32b"):
        r = reg.resolve("oneapi:qwen72b-awq")
    assert r.known and r.model.status == "deprecated"


def test_active_model_does_not_warn(reg: Registry) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.resolve("oneapi:qwen3-32b")


def test_conflicting_provider_arguments_are_rejected(reg: Registry) -> None:
    with pytest.raises(ConfigError):
        reg.resolve("sjtu:glm", provider="ecnu")
    with pytest.raises(ConfigError):
        reg.resolve("sjtu:glm", model="glm")
    with pytest.raises(ConfigError, match="No model"):
        reg.resolve("sjtu:")


# --------------------------------------------------------------------------- base URLs


def test_base_url_precedence(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEAPI_BASE_URL", "https://oneapi.example.org/v1")
    assert reg.resolve("oneapi:qwen3-32b").base_url == "https://oneapi.example.org/v1"
    explicit = reg.resolve("oneapi:qwen3-32b", base_url="http://127.0.0.1:9/v1")
    assert explicit.base_url == "http://127.0.0.1:9/v1"


def test_missing_base_url_names_env_var(reg: Registry) -> None:
    for spec, env in (("maas:QwQ-32B", "MAAS_BASE_URL"), ("custom:x", "CAMPUSLLM_BASE_URL")):
        with pytest.raises(ConfigError) as ei:
            reg.resolve(spec)
        assert env in str(ei.value)


def test_base_url_normalisation(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", "http://10.0.0.7:30080")
    assert reg.resolve("maas:QwQ-32B").base_url == "http://10.0.0.7:30080/v1"
    pasted = "https://models.sjtu.edu.cn/api/v1/chat/completions"
    assert reg.resolve("sjtu:glm", base_url=pasted).base_url == "https://models.sjtu.edu.cn/api/v1"
    with pytest.raises(ConfigError, match="not an http"):
        reg.resolve("sjtu:glm", base_url="models.sjtu.edu.cn/api/v1")


# --------------------------------------------------------------------------- overrides


def test_override_file_deep_merges(reg: Registry, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
default_provider = "oneapi"

[providers.sjtu.limits]
rpm = 20

[[providers.sjtu.models]]
id = "glm"                       # an alias: overrides glm-5.1
context_window = 200000

[[providers.sjtu.models]]
id = "kimi-k2"
context_window = 131072
tools = true

[providers.oneapi.models."qwen3-32b".reasoning]
default_on = false

[providers.lab]
base_url = "http://10.0.0.5:8000/v1"
[[providers.lab.models]]
id = "llama-3-70b"
""",
    )
    reg.load_overrides(path)
    sjtu = reg.provider("sjtu")
    assert sjtu.limits.rpm == 20 and sjtu.limits.tpm == 100_000  # untouched fields survive
    glm = sjtu.find_model("glm-5.1")
    assert glm is not None and glm.context_window == 200000 and glm.aliases == ["glm"]
    assert reg.resolve("sjtu:kimi-k2").model.tools
    q3 = reg.resolve("oneapi:qwen3-32b").model
    assert not q3.reasoning.default_on and q3.reasoning.toggle == "enable_thinking"
    lab = reg.resolve("lab:llama-3-70b")
    assert lab.known and lab.base_url == "http://10.0.0.5:8000/v1"
    assert lab.provider.key_env == ["LAB_API_KEY"]
    assert reg.resolve("qwq-32b").provider.name == "oneapi"  # default_provider
    assert str(path) in reg.sources


def test_single_provider_file_shape_is_accepted(reg: Registry, tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "ecnu"\n[limits]\nrpm = 5\n')
    reg.load_overrides(path)
    assert reg.provider("ecnu").limits.rpm == 5
    assert reg.provider("ecnu").find_model("ecnu-plus") is not None


def test_get_registry_reads_config_env_and_is_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, "[providers.sjtu.limits]\nrpm = 3\n")
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(path))
    reset_registry()
    first = get_registry()
    assert first.provider("sjtu").limits.rpm == 3
    assert get_registry() is first
    reset_registry()
    monkeypatch.delenv("CAMPUSLLM_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "campusllm").mkdir(parents=True)
    write(tmp_path / "xdg" / "campusllm", "[providers.sjtu.limits]\nrpm = 4\n")
    assert get_registry().provider("sjtu").limits.rpm == 4


def test_missing_config_file_is_fine() -> None:
    assert get_registry().provider("sjtu").limits.rpm == 10


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[providers.sjtu.limits]\nrpm = 'many'\n", "providers.sjtu.limits.rpm"),
        ("[[providers.sjtu.models]]\nid = 'glm'\ncontext = 5\n", 'providers.sjtu.models."glm-5.1"'),
        ("[providers.sjtu.models.qwen]\nkind = 'image'\n", "kind"),
        ("[providers.sjtu]\nauth = 'basic'\n", "providers.sjtu.auth"),
        ("[provider.sjtu]\nauth = 'raw'\n", "provider"),
        ("default_provider = 'nowhere'\n", "default_provider"),
        ("[[providers.sjtu.models]]\ncontext_window = 5\n", "id"),
    ],
)
def test_bad_override_names_file_and_field(
    reg: Registry, tmp_path: Path, text: str, field: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        reg.load_overrides(path)
    msg = str(ei.value)
    assert str(path) in msg and field in msg
    assert reg.provider("sjtu").limits.rpm == 10 and reg.provider("sjtu").auth == "bearer"


def test_invalid_toml_names_file_and_line(reg: Registry, tmp_path: Path) -> None:
    path = write(tmp_path, "[providers.sjtu\nrpm = 1\n")
    with pytest.raises(ConfigError) as ei:
        reg.load_overrides(path)
    assert str(path) in str(ei.value) and "line 1" in str(ei.value)


def test_bad_config_file_fails_get_registry_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(write(tmp_path, "rpm = 1\n")))
    with pytest.raises(ConfigError, match="rpm"):
        get_registry()


# --------------------------------------------------------------------------- registration


def test_register_provider_and_model_at_runtime(reg: Registry) -> None:
    reg.register_provider({"name": "Dept", "base_url": "http://10.1.2.3/v1", "auth": "raw"})
    reg.register_model("dept", {"id": "qwen3-8b", "aliases": ["q8"], "tools": True})
    r = reg.resolve("dept:q8")
    assert r.key == "dept:qwen3-8b" and r.provider.auth == "raw"
    assert r.provider.key_env == ["DEPT_API_KEY"]
    reg.register_model("dept", ModelSpec(id="QWEN3-8B", context_window=8192))  # replaces by id
    models = reg.provider("dept").models
    assert [m.id for m in models] == ["QWEN3-8B"] and models[0].context_window == 8192
    reg.register_provider(ProviderSpec(name="dept", key_env=["X_KEY"], base_url="http://h/v1"))
    assert reg.provider("dept").models == [] and reg.provider("dept").key_env == ["X_KEY"]


def test_register_rejects_clashing_or_bad_specs(reg: Registry) -> None:
    with pytest.raises(ConfigError, match="glm"):
        reg.register_model("sjtu", {"id": "glm-6", "aliases": ["glm"]})
    with pytest.raises(ConfigError, match="context_window"):
        reg.register_model("sjtu", {"id": "x", "context_window": -1})
    with pytest.raises(ConfigError, match="name"):
        reg.register_provider({"name": "a:b", "base_url": "http://h/v1"})
    assert reg.provider("sjtu").find_model("glm-6") is None


def test_module_level_register_changes_the_singleton() -> None:
    from campusllm.registry import register_model, resolve

    register_model("ecnu", {"id": "ecnu-vision", "vision": True})
    assert resolve("ecnu:ecnu-vision").model.vision
    reset_registry()
    with pytest.warns(UserWarning):
        assert not resolve("ecnu:ecnu-vision").known


def test_empty_registry() -> None:
    empty = Registry([])
    assert empty.providers() == []
    with pytest.raises(ModelNotFoundError):
        empty.provider("sjtu")


# --------------------------------------------------------------------------- drift, docs


def test_drift_against_sjtu_model_list(reg: Registry) -> None:
    live = ["deepseek-v3.2", "deepseek-chat", "deepseek-reasoner", "minimax", "glm-5.1"]
    live += ["qwen", "kimi-k2", "kimi-k2"]
    d = reg.drift("sjtu", live)
    assert d.missing_in_catalog == ["kimi-k2"]  # aliases count as known, no duplicates
    assert d.missing_on_gateway == []
    d = reg.drift("sjtu", ["deepseek-chat", "deepseek-reasoner"])
    assert d.missing_on_gateway == ["minimax-m2.7", "glm-5.1", "qwen3.5-27b"]
    assert not d.in_sync
    everything = [n for m in reg.provider("sjtu").models for n in m.names()]
    assert reg.drift("sjtu", everything).in_sync


def test_profile_dict_uses_langchain_profile_keys(reg: Registry) -> None:
    from langchain_core.language_models import ModelProfile

    from langchain_campusllm.profile import model_profile

    allowed = set(ModelProfile.__annotations__)
    for _, m in reg.models():
        prof = model_profile(m)
        assert set(prof) <= allowed
        assert prof["tool_calling"] is m.tools and prof["image_inputs"] is m.vision
        assert prof.get("max_input_tokens") == (m.context_window or m.max_input_tokens)
    q = model_profile(reg.resolve("sjtu:qwen").model)
    assert q["image_inputs"] and q["reasoning_output"] and q["max_input_tokens"] == 262144


def test_markdown_table_lists_every_model(reg: Registry) -> None:
    table = markdown_table()
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Provider | Model |")
    for p, m in reg.models():
        row = next(x for x in lines if f"| `{p.name}` | `{m.id}` |" in x)
        assert m.kind in row
        if m.replacement:
            assert m.replacement in row
    assert "| `custom` | *any* |" in table
    embed_only = markdown_table(kind="embedding")
    assert "qwen3-embedding-8b" in embed_only and "deepseek" not in embed_only


# --------------------------------------------------------------------------- tokens


def test_estimate_tokens_cjk_and_ascii() -> None:
    assert estimate_tokens("上海交通大学") == 6
    assert estimate_tokens("a" * 400) == 100
    assert estimate_tokens("x") == 1 and estimate_tokens("") == 1
    assert estimate_tokens("你好，world!") == 3 + 2  # full-width comma counts as CJK
    assert estimate_tokens("こんにちは 안녕하세요") == 10 + 1
    long_text = "请介绍上海交通大学" * 1000 + "hello " * 1000
    assert estimate_tokens(long_text) == 9000 + 1500


def test_ascii_text_is_estimated_as_the_general_rule_says() -> None:
    # ASCII text skips the CJK scan; it must count what the scan counts for the same length
    # of non-CJK text ("é" is non-ASCII, so that variant takes the scanning path).
    for text in ("hello", "Say hello to the campus.", "x" * 4001, '{"a": [1, 2]}\n'):
        assert estimate_tokens(text) == (len(text) + 3) // 4
        assert estimate_tokens(text[:-1] + "é") == estimate_tokens(text)


def test_live_models_merge_into_the_catalog_and_report_drift(fresh_sim) -> None:
    import warnings

    from campusllm.registry import Registry, get_registry, refresh_from_gateway

    before = get_registry().provider("ecnu")
    gateway = Registry()  # what the gateway serves: one new model, one catalogued model gone
    gateway.register_model("ecnu", {"id": "ecnu-brand-new", "tools": True})
    retired = get_registry().provider("ecnu").models[-1].id
    prov = gateway.provider("ecnu")
    gateway.register_provider(
        {**prov.model_dump(), "models": [m.model_dump() for m in prov.models if m.id != retired]}
    )
    fresh_sim._registry = gateway
    try:
        drift = refresh_from_gateway("ecnu", api_key="sk-sim-local", base_url=fresh_sim.url("ecnu"))
        assert drift.missing_in_catalog == ["ecnu-brand-new"]
        assert drift.missing_on_gateway == [retired]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # merged: no "unknown model" warning any more
            r = get_registry().resolve("ecnu:ecnu-brand-new", base_url=fresh_sim.url("ecnu"))
        assert r.known and "/models" in r.model.note
        assert get_registry().drift("ecnu", ["ecnu-brand-new"]).missing_in_catalog == []
    finally:
        get_registry().register_provider(before)  # the sim and other tests share this registry
