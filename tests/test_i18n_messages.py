"""Errors and ``campusllm doctor`` in Chinese: what a user on a Chinese locale reads most.

The suite pins English (tests/conftest.py); these tests switch to Chinese and check that the
messages and hints of the common failures (no key, unreachable, 401, 429, timeouts) are
Chinese, while the error classes and their attributes stay what programs catch and read.
"""

from __future__ import annotations

import pytest

from campusllm.chat import ChatCaller
from campusllm.cli import main
from campusllm.connection import connect
from campusllm.errors import AuthenticationError, RateLimitError, TimeoutError, UnreachableError
from campusllm.registry import resolve
from campusllm.sim import SIM_KEY, Simulator
from campusllm.transport.errors import (
    connect_error,
    error_for_status,
    format_wait,
    timeout_error,
)
from campusllm.transport.hints import model_hint, network_hint
from campusllm.transport.retry import RetryNote

PROMPT = [{"role": "user", "content": "hi"}]
LOOPBACK = "http://127.0.0.1:9/v1"


@pytest.fixture
def zh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUSLLM_LANG", "zh")


def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SJTU_API_KEY", "CAMPUSLLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAMPUSLLM_CONFIG", "/nonexistent/campusllm.toml")


def test_a_missing_key_is_explained_in_chinese(zh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_keys(monkeypatch)
    with pytest.raises(AuthenticationError) as info:
        connect("sjtu:deepseek-chat", base_url=LOOPBACK)
    err = info.value
    assert "没有找到 API 密钥" in err.message and err.provider == "sjtu"
    assert err.hint is not None and "请设置 SJTU_API_KEY" in err.hint


def test_a_chinese_locale_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPUSLLM_LANG")
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    _no_keys(monkeypatch)
    with pytest.raises(AuthenticationError, match="没有找到 API 密钥"):
        connect("sjtu:deepseek-chat", base_url=LOOPBACK)


def test_network_hints_in_chinese_keep_the_vpn_advice_for_the_campus_gateway_only(
    zh: None,
) -> None:
    campus = network_hint(resolve("sjtu:deepseek-chat"))
    assert "仅限校园网访问" in campus and "VPN" in campus
    local = network_hint(resolve("sjtu:deepseek-chat", base_url=LOOPBACK))
    assert "本机地址" in local and "VPN" not in local
    err = connect_error(resolve("sjtu:deepseek-chat", base_url=LOOPBACK), "ConnectError")
    assert isinstance(err, UnreachableError) and err.message.startswith("无法连接到")


def test_model_hint_in_chinese_names_the_close_ids(zh: None) -> None:
    with pytest.warns(UserWarning, match="not in the sjtu catalog"):
        unknown = resolve("sjtu:deepseek-chatt", base_url=LOOPBACK)
    hint = model_hint(unknown)
    assert hint.startswith("是不是 'deepseek-chat'") and "请检查模型名" in hint
    assert "campusllm models sjtu --live" in hint


def test_401_429_and_timeouts_in_chinese_keep_their_types_and_attributes(zh: None) -> None:
    r = resolve("sjtu:deepseek-chat", base_url=LOOPBACK)
    denied = error_for_status(401, r, message="invalid key")
    assert isinstance(denied, AuthenticationError) and denied.status_code == 401
    assert "拒绝了 API 密钥" in denied.message and "SJTU_API_KEY" in (denied.hint or "")

    note = RetryNote(attempts=1, reason="wait_too_long", retry_after=3600)
    limited = error_for_status(429, r, retry_after=3600, note=note)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 3600
    assert "429 请求过多" in limited.message and "3600 秒(1 小时)" in limited.message

    slow = error_for_status(408, r, message="litellm.Timeout")
    assert isinstance(slow, TimeoutError) and "网关等待其模型服务超时" in slow.message

    late = timeout_error(r, "一次尝试的总时限 600 秒已到", deadline_s=600)
    assert "没有在时限内完成" in late.message and "read_timeout=" in (late.hint or "")
    assert format_wait(90) == "90 秒(1 分钟)"


def test_a_rejected_key_from_a_real_call_reads_chinese(zh: None, sim: Simulator) -> None:
    with ChatCaller("sjtu:glm", base_url=sim.url("sjtu"), api_key="sk-sim-bad") as caller:
        with pytest.raises(AuthenticationError) as info:
            caller.invoke(PROMPT)
    err = info.value
    assert err.status_code == 401 and "拒绝了 API 密钥" in str(err)
    assert "sk-sim-bad" not in str(err)


def test_doctor_speaks_chinese(
    zh: None, sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("SJTU_API_KEY", SIM_KEY)
    assert main(["doctor", "sjtu", "--base-url", sim.url("sjtu")]) == 0
    out = capsys.readouterr().out
    assert "密钥" in out and "正常(来自 $SJTU_API_KEY)" in out and "鉴权正常" in out
    assert "auth ok" not in out and SIM_KEY not in out


def test_doctor_says_in_chinese_that_no_key_is_configured(
    zh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_keys(monkeypatch)
    for var in ("ECNU_API_KEY", "MAAS_API_KEY", "ONEAPI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor"]) == 1
    assert "没有为任何提供方配置 API 密钥" in capsys.readouterr().out


def test_english_stays_the_default_of_the_suite() -> None:
    r = resolve("sjtu:deepseek-chat", base_url=LOOPBACK)
    assert "rejected the API key" in error_for_status(401, r).message
