"""The language switch: Chinese when asked for or when the locale is Chinese, English otherwise."""

from __future__ import annotations

import pytest

from campusllm import i18n
from campusllm.i18n import is_chinese, language, tr

_VARS = ("CAMPUSLLM_LANG", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(i18n, "_system_locale", lambda: "")
    return monkeypatch


@pytest.mark.parametrize("value", ["zh", "zh_CN", "zh-CN", "zh_CN.UTF-8", "ZH", " zh_TW "])
def test_campusllm_lang_zh_in_any_spelling_gives_chinese(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("CAMPUSLLM_LANG", value)
    assert language() == "zh"
    assert tr("model", "模型") == "模型"


@pytest.mark.parametrize("var", ["LC_ALL", "LC_MESSAGES", "LANG"])
def test_a_chinese_locale_gives_chinese_when_campusllm_lang_is_unset(
    clean_env: pytest.MonkeyPatch, var: str
) -> None:
    clean_env.setenv(var, "zh_CN.UTF-8")
    assert is_chinese()
    assert tr("model", "模型") == "模型"


def test_campusllm_lang_en_forces_english_over_a_chinese_locale(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("LANG", "zh_CN.UTF-8")
    clean_env.setenv("LC_ALL", "zh_CN.UTF-8")
    clean_env.setenv("CAMPUSLLM_LANG", "en")
    assert language() == "en"
    assert tr("model", "模型") == "model"


def test_locale_variables_follow_posix_precedence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LANG", "zh_CN.UTF-8")
    clean_env.setenv("LC_ALL", "en_US.UTF-8")  # LC_ALL overrides LANG ...
    assert language() == "en"
    clean_env.delenv("LC_ALL")
    clean_env.setenv("LC_MESSAGES", "C")  # ... and so does LC_MESSAGES
    assert language() == "en"
    clean_env.delenv("LC_MESSAGES")
    assert language() == "zh"


def test_english_when_nothing_says_otherwise(clean_env: pytest.MonkeyPatch) -> None:
    assert language() == "en"
    clean_env.setenv("LANG", "")  # set but empty counts as unset
    assert tr("model", "模型") == "model"


def test_decided_on_every_call_as_the_environment_changes(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # A notebook switches language between cells: no cached answer may survive.
    assert tr("hello", "你好") == "hello"
    clean_env.setenv("CAMPUSLLM_LANG", "zh")
    assert tr("hello", "你好") == "你好"
    clean_env.setenv("CAMPUSLLM_LANG", "en")
    assert tr("hello", "你好") == "hello"


def test_windows_system_locale_is_the_last_resort(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(i18n, "_system_locale", lambda: "Chinese (Simplified)_China")
    assert language() == "zh"
    clean_env.setenv("LANG", "en_US.UTF-8")  # any variable that is set wins over it
    assert language() == "en"


def test_explicit_lang_argument_ignores_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CAMPUSLLM_LANG", "zh")
    assert tr("model", "模型", lang="en") == "model"
    assert language({"LANG": "en_US.UTF-8"}) == "en"  # a mapping given is all that is read
