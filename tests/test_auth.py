"""API key lookup: explicit, key groups, provider env vars, config [keys], the generic key.

Keys are never leaked, a key with a character no key has is refused naming the position, and
``CAMPUSLLM_API_KEY`` reaches a named gateway only when the user opts in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from campusllm.auth import get_api_key, key_env_names
from campusllm.errors import AuthenticationError, redact
from campusllm.registry import ProviderSpec, get_registry, reset_registry

KEY_VARS = [
    "SJTU_API_KEY",
    "ECNU_API_KEY",
    "MAAS_API_KEY",
    "ONEAPI_API_KEY",
    "ONEAPI_API_KEY_QWEN25",
    "ONEAPI_API_KEY_QWEN3",
    "CAMPUSLLM_API_KEY",
    "CAMPUSLLM_API_KEY_ANY_PROVIDER",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(tmp_path / "absent.toml"))
    reset_registry()
    yield
    reset_registry()


def sjtu() -> ProviderSpec:
    return get_registry().provider("sjtu")


def test_env_var_order_with_the_generic_key_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUSLLM_API_KEY", "sk-generic-0001")
    monkeypatch.setenv("CAMPUSLLM_API_KEY_ANY_PROVIDER", "1")
    assert get_api_key(sjtu()).get_secret_value() == "sk-generic-0001"
    monkeypatch.setenv("SJTU_API_KEY", "  sk-sjtu-0002\n")
    assert get_api_key(sjtu()).get_secret_value() == "sk-sjtu-0002"
    assert key_env_names(sjtu()) == ["SJTU_API_KEY", "CAMPUSLLM_API_KEY"]


def test_the_generic_key_goes_to_a_named_gateway_only_when_opted_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CAMPUSLLM_API_KEY", "sk-generic-0011")
    assert key_env_names(sjtu()) == ["SJTU_API_KEY"]
    with pytest.raises(AuthenticationError) as ei:
        get_api_key(sjtu())
    msg = str(ei.value)
    assert "SJTU_API_KEY" in msg and "CAMPUSLLM_API_KEY_ANY_PROVIDER=1" in msg
    assert "api_key_any_provider = true" in msg and "sk-generic-0011" not in msg
    # custom lists it as its own key: no opt-in needed there
    custom = get_registry().provider("custom")
    assert get_api_key(custom).get_secret_value() == "sk-generic-0011"
    # the config file's opt-in
    cfg = tmp_path / "config.toml"
    cfg.write_text("api_key_any_provider = true\n", encoding="utf-8")
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(cfg))
    reset_registry()
    assert get_api_key(sjtu()).get_secret_value() == "sk-generic-0011"
    # "0" is not an opt-in
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMPUSLLM_API_KEY_ANY_PROVIDER", "0")
    reset_registry()
    with pytest.raises(AuthenticationError):
        get_api_key(sjtu())


def test_explicit_key_wins_and_blank_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SJTU_API_KEY", "sk-from-env-0003")
    assert get_api_key(sjtu(), "sk-explicit-0004").get_secret_value() == "sk-explicit-0004"
    assert get_api_key(sjtu(), SecretStr("sk-secret-0005")).get_secret_value() == "sk-secret-0005"
    assert get_api_key(sjtu(), "  ").get_secret_value() == "sk-from-env-0003"


def test_pasted_bearer_prefix_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEAPI_API_KEY", "Bearer sk-oneapi-0006")
    provider = get_registry().provider("oneapi")
    assert get_api_key(provider).get_secret_value() == "sk-oneapi-0006"


def test_key_from_config_file_is_last_resort(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[keys]\nsjtu = "cfgkey0007xyz"\n', encoding="utf-8")
    monkeypatch.setenv("CAMPUSLLM_CONFIG", str(cfg))
    reset_registry()
    assert get_api_key(sjtu()).get_secret_value() == "cfgkey0007xyz"
    monkeypatch.setenv("CAMPUSLLM_API_KEY", "sk-generic-0008")
    monkeypatch.setenv("CAMPUSLLM_API_KEY_ANY_PROVIDER", "1")
    # the provider's own key in the config file beats the generic one
    assert get_api_key(sjtu()).get_secret_value() == "cfgkey0007xyz"
    monkeypatch.setenv("SJTU_API_KEY", "sk-sjtu-env-0012")
    assert get_api_key(sjtu()).get_secret_value() == "sk-sjtu-env-0012"
    assert "cfgkey0007xyz" not in repr(get_registry().config_key("sjtu"))
    assert redact("echo cfgkey0007xyz") == "echo ***"  # registered as a secret


def test_missing_key_names_env_vars_and_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "sk-ecnu-do-not-show-0009"
    monkeypatch.setenv("ECNU_API_KEY", other)
    get_api_key(get_registry().provider("ecnu"))
    with pytest.raises(AuthenticationError) as ei:
        get_api_key(sjtu())
    msg = str(ei.value)
    assert "Set SJTU_API_KEY," in msg
    assert other not in msg and other not in repr(ei.value)
    assert ei.value.provider == "sjtu"


def test_custom_provider_key_env_is_generic() -> None:
    custom = get_registry().provider("custom")
    assert key_env_names(custom) == ["CAMPUSLLM_API_KEY"]
    with pytest.raises(AuthenticationError, match="CAMPUSLLM_API_KEY"):
        get_api_key(custom)


def test_key_never_in_repr_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "plainsecret-no-known-shape-0010"
    monkeypatch.setenv("SJTU_API_KEY", secret)
    key = get_api_key(sjtu())
    assert secret not in repr(key) and secret not in str(key)
    assert secret not in redact(f"upstream said: bad key {secret}")
