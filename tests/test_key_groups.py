"""Keys per model group and documented key validity, against the simulator.

The enterprise OneAPI manual hands out one key for its Qwen2.5/QwQ/VL models and another for
its Qwen3 models; SJTU documents its default keys as valid until 2026-09-30. A user sets one
env var per group (or ``[keys.oneapi]`` entries) and every object picks the key of its model;
``campusllm doctor`` checks each key and says when the documented validity ends, never
printing a key. Dates are injected: nothing here depends on the real date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from campusllm.auth import find_api_key, key_env_names, key_slots, key_validity, key_validity_hint
from campusllm.chat import ChatCaller
from campusllm.cli import main
from campusllm.connection import connect
from campusllm.errors import AuthenticationError, ConfigError
from campusllm.registry import ProviderSpec, RateLimits, get_registry, reset_registry
from campusllm.sim import Simulator

DEFAULT_KEY = "sk-sim-default-key"
QWEN3_KEY = "sk-sim-qwen3-key"
QWEN25_KEY = "sk-sim-qwen25-key"
REJECTED = "sk-sim-bad"  # the simulator answers 401 to this key
PROMPT = [{"role": "user", "content": "hi"}]
KEY_VARS = (
    "ONEAPI_API_KEY",
    "ONEAPI_API_KEY_QWEN25",
    "ONEAPI_API_KEY_QWEN3",
    "SJTU_API_KEY",
    "CAMPUSLLM_API_KEY",
    "CAMPUSLLM_API_KEY_ANY_PROVIDER",
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No key in the environment; a private config file (absent until written)."""
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(path))
    reset_registry()
    yield path
    reset_registry()


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    reset_registry()


def _oneapi() -> ProviderSpec:
    return get_registry().provider("oneapi")


# ----------------------------------------------------------------------------- env vars


def test_each_model_group_gets_the_key_of_its_documented_env_var(
    config: Path, monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN3", REJECTED)
    url = sim.url("oneapi")
    # the Qwen3 key is the one sent for qwen3-32b: the gateway rejects it...
    with pytest.raises(AuthenticationError) as ei:
        ChatCaller("oneapi:qwen3-32b", base_url=url).invoke(PROMPT)
    assert "ONEAPI_API_KEY_QWEN3" in str(ei.value)
    assert REJECTED not in str(ei.value) and DEFAULT_KEY not in str(ei.value)
    # ...while a model of the other group, whose own key is not set, uses the default key
    assert ChatCaller("oneapi:qwq-32b", base_url=url).invoke(PROMPT).content
    # and the embedding model, in no group, too
    conn = connect("oneapi:qwen3-embedding-8b", base_url=url)
    assert conn.api_key.get_secret_value() == DEFAULT_KEY
    conn.close()


def test_a_model_in_a_group_without_any_key_names_both_variables(config: Path) -> None:
    with pytest.raises(AuthenticationError) as ei:
        connect("oneapi:qwen3-32b", base_url="http://127.0.0.1:9/v1")
    message = str(ei.value)
    assert "ONEAPI_API_KEY_QWEN3" in message and "ONEAPI_API_KEY" in message
    assert "'qwen3'" in message
    assert key_env_names(_oneapi(), "qwen3-32b") == ["ONEAPI_API_KEY_QWEN3", "ONEAPI_API_KEY"]


@pytest.mark.filterwarnings("ignore:.*is deprecated")
def test_the_limiter_is_per_key_so_two_groups_have_two_budgets(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN3", QWEN3_KEY)
    limits = RateLimits(rpm=10)
    url = "http://127.0.0.1:9/v1"
    qwen3 = connect("oneapi:qwen3-32b", base_url=url, rate_limits=limits)
    qwen3_30b = connect("oneapi:qwen3-30b-a3b", base_url=url, rate_limits=limits)
    qwq = connect("oneapi:qwq-32b", base_url=url, rate_limits=limits)
    embed = connect("oneapi:qwen3-embedding-8b", base_url=url, rate_limits=limits)
    assert qwen3.limiter is qwen3_30b.limiter  # one group, one key, one budget
    assert qwq.limiter is embed.limiter  # both on the default key
    assert qwen3.limiter is not qwq.limiter
    for c in (qwen3, qwen3_30b, qwq, embed):
        c.close()


# ----------------------------------------------------------------------------- config file


def test_config_keys_by_exact_name_group_and_pattern(config: Path) -> None:
    _write(
        config,
        """
[keys.oneapi]
default = "sk-cfg-default"
"qwen3-*" = "sk-cfg-qwen3-pattern"
"qwen3-30b-a3b" = "sk-cfg-exact"
qwen25 = "sk-cfg-group"
""",
    )
    oneapi = _oneapi()

    def source(model: str) -> str:
        return find_api_key(oneapi, model=model).source

    assert source("qwen3-32b").endswith('([keys.oneapi] "qwen3-*")')
    assert source("qwen3-30b-a3b").endswith('([keys.oneapi] "qwen3-30b-a3b")')  # exact wins
    assert source("qwq-32b").endswith('([keys.oneapi] "qwen25")')  # the declared group
    assert source("qwen3-embedding-8b").endswith('([keys.oneapi] "qwen3-*")')  # pattern
    assert source("some-other-model").endswith("([keys] oneapi)")
    assert str(config) in source("qwen3-32b")
    found = find_api_key(oneapi, model="qwq-32b")
    assert found.key.get_secret_value() == "sk-cfg-group" and found.group == "qwen25"


def test_env_group_var_wins_over_a_config_pattern_and_old_keys_table_still_works(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config, '[keys]\noneapi = "sk-cfg-flat"\n\n[keys.sjtu]\n"glm*" = "sk-cfg-glm"\n')
    oneapi = _oneapi()
    assert find_api_key(oneapi, model="qwen3-32b").source.endswith("([keys] oneapi)")
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN3", QWEN3_KEY)
    assert find_api_key(oneapi, model="qwen3-32b").source == "$ONEAPI_API_KEY_QWEN3"
    sjtu = get_registry().provider("sjtu")
    assert find_api_key(sjtu, model="glm-5.1").key.get_secret_value() == "sk-cfg-glm"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[keys]\noneapi = 5\n", "keys.oneapi"),
        ('[keys.oneapi]\n"qwen3-*" = 5\n', "keys.oneapi.qwen3-*"),
        ("api_key_any_provider = 1\n", "api_key_any_provider"),
    ],
)
def test_a_malformed_keys_table_is_a_config_error_naming_the_entry(
    config: Path, text: str, named: str
) -> None:
    _write(config, text)
    with pytest.raises(ConfigError) as ei:
        get_registry()
    assert str(config) in str(ei.value) and named in str(ei.value)


def test_a_key_group_declared_in_the_config_file_gets_its_own_env_var(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config, '[providers.oneapi.key_groups.vision]\nmodels = ["qwen25-vl-*"]\n')
    oneapi = get_registry().provider("oneapi")
    # the packaged groups come first: qwen25-vl-7b stays in qwen25
    assert oneapi.key_group(["qwen25-vl-7b"]) == "qwen25"
    assert oneapi.key_groups["vision"].key_env == ["ONEAPI_API_KEY_VISION"]
    monkeypatch.setenv("ONEAPI_API_KEY_VISION", "sk-vision-123")
    assert find_api_key(oneapi, model="qwen25-vl-72b").source == "$ONEAPI_API_KEY_VISION"


# ----------------------------------------------------------------------------- bad characters


@pytest.mark.parametrize(
    ("value", "position", "what"),
    [
        ("sk-abc\u200bdef0123", 7, "invisible"),
        ("  sk-abc\uff11def0123\n", 9, "full-width"),
        ('"sk-abc\ndef0123"', 8, "line break"),
        ("sk-abc密钥def0123", 7, "non-ASCII"),
    ],
)
def test_a_key_with_a_character_no_key_has_names_source_and_position_never_the_key(
    config: Path, monkeypatch: pytest.MonkeyPatch, value: str, position: int, what: str
) -> None:
    monkeypatch.setenv("SJTU_API_KEY", value)
    with pytest.raises(AuthenticationError) as ei:
        connect("sjtu:glm", base_url="http://127.0.0.1:9/v1")
    message = str(ei.value)
    assert "$SJTU_API_KEY" in message and f"position {position}" in message and what in message
    assert "sk-abc" not in message and "def0123" not in message
    assert ei.value.__cause__ is None and ei.value.__context__ is None


def test_a_bad_key_in_the_config_file_names_the_file_and_entry(config: Path) -> None:
    _write(config, '[keys.oneapi]\n"qwen3-*" = "sk-abc\u3000def0123"\n')
    with pytest.raises(AuthenticationError) as ei:
        find_api_key(_oneapi(), model="qwen3-32b")
    message = str(ei.value)
    assert str(config) in message and '"qwen3-*"' in message and "position 7" in message
    assert "IDEOGRAPHIC SPACE" in message and "def0123" not in message


# ----------------------------------------------------------------------------- doctor


def test_doctor_checks_each_key_group_with_its_own_key(
    config: Path, monkeypatch: pytest.MonkeyPatch, sim: Simulator, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN3", REJECTED)
    _write(config, '[keys.oneapi]\n"qwen32b-*" = "sk-sim-pattern-key"\n')
    rc = main(["doctor", "oneapi", "--base-url", sim.url("oneapi")])
    out = capsys.readouterr().out
    assert rc == 1, out  # the Qwen3 key is rejected
    assert "default: ok (from $ONEAPI_API_KEY)" in out
    assert "qwen25" in out and "not set ($ONEAPI_API_KEY_QWEN25)" in out
    assert "qwen3 (qwen3-32b, qwen3-30b-a3b): ok (from $ONEAPI_API_KEY_QWEN3)" in out
    assert "qwen32b-*: ok (from" in out
    assert "auth ok (default key)" in out
    assert "AuthenticationError (qwen3 key)" in out and "ONEAPI_API_KEY_QWEN3" in out
    assert "auth     ok (qwen32b-* key)" in out
    for key in (DEFAULT_KEY, REJECTED, "sk-sim-pattern-key"):
        assert key not in out


def test_doctor_reports_a_key_with_a_bad_character_without_a_request(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN3", "sk-abc\u200bdef0123")
    rc = main(["doctor", "oneapi", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "qwen3" in out and "position 7" in out and "def0123" not in out


# ----------------------------------------------------------------------------- validity


def test_sjtu_key_validity_is_data_and_counts_from_the_injected_date(config: Path) -> None:
    sjtu = get_registry().provider("sjtu")
    assert sjtu.key_valid_until == date(2026, 9, 30)
    before = key_validity(sjtu, today=date(2026, 9, 1))
    assert before is not None and before.days_left == 29 and not before.ended
    last_day = key_validity(sjtu, today=date(2026, 9, 30))
    assert (
        last_day is not None
        and not last_day.ended
        and key_validity_hint(sjtu, last_day.today) == ""
    )
    after = key_validity_hint(sjtu, today=date(2026, 11, 30))
    assert "2026-09-30" in after and "61 days ago" in after and "交我办" in after
    assert key_validity(get_registry().provider("oneapi")) is None


def test_doctor_shows_days_left_before_and_renewal_after_the_documented_end(
    config: Path, monkeypatch: pytest.MonkeyPatch, sim: Simulator, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SJTU_API_KEY", "sk-sim-sjtu")
    url = sim.url("sjtu")
    assert main(["doctor", "sjtu", "--base-url", url, "--today", "2026-09-20"]) == 0
    out = capsys.readouterr().out
    assert "valid until 2026-09-30 (10 days left)" in out
    assert main(["doctor", "sjtu", "--base-url", url, "--today", "2026-11-30"]) == 0
    out = capsys.readouterr().out
    assert "were documented as valid until 2026-09-30, 61 days ago" in out
    assert "交我办" in out and "致远一号" in out
    # said before the request is made: the validity line comes before the auth check
    assert out.index("validity") < out.index("auth ok")


@pytest.mark.parametrize(("valid_until", "says"), [("2020-01-01", True), ("2999-12-31", False)])
def test_a_401_after_the_documented_validity_says_where_to_renew(
    config: Path, sim: Simulator, valid_until: str, says: bool
) -> None:
    # A validity far in the past or the future: the outcome does not depend on today's date.
    _write(config, f"[providers.sjtu]\nkey_valid_until = {valid_until}\n")
    with pytest.raises(AuthenticationError) as ei:
        ChatCaller("sjtu:glm", base_url=sim.url("sjtu"), api_key=REJECTED).invoke(PROMPT)
    message = str(ei.value)
    assert ("documented as valid until 2020-01-01" in message) is says
    assert ("交我办" in message) is says
    assert REJECTED not in message


def test_key_slots_never_hold_a_key_in_their_text(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY_QWEN25", QWEN25_KEY)
    slots = key_slots(_oneapi())
    assert [s.name for s in slots] == ["default", "qwen25", "qwen3"]
    assert slots[1].found is not None and slots[1].found.source == "$ONEAPI_API_KEY_QWEN25"
    assert QWEN25_KEY not in repr(slots)
