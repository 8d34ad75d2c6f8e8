"""Typos in option names fail at start-up with "did you mean", wherever options come from:
keywords, PRIVGUARD_* environment variables, Flask config keys, Django's PRIVGUARD dict.
Also the start-up checks of the ledger path and of ``languages``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask

import privguard
from privguard import ConfigError, Settings
from privguard.flask import PrivGuard
from privguard.runtime import Runtime

SECRET = "n" * 40


def test_mistyped_keyword_says_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean 'unknown_cookies'") as info:
        Settings(secret_key=SECRET, unknow_cookies="allow")
    assert info.value.option == "unknow_cookies"
    with pytest.raises(ConfigError, match="did you mean 'trusted_proxies'"):
        privguard.protect(Flask(__name__), secret_key=SECRET, trusted_proxy=1)


def test_far_off_keyword_lists_the_valid_options() -> None:
    with pytest.raises(ConfigError, match="valid options: .*secret_key"):
        Settings(secret_key=SECRET, zzz=1)


def test_mistyped_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVGUARD_SECRET_KEY", SECRET)
    monkeypatch.setenv("PRIVGUARD_UNKNOW_COOKIES", "allow")
    with pytest.raises(ConfigError, match="PRIVGUARD_UNKNOW_COOKIES.*did you mean"):
        Settings.from_env()


def test_mistyped_flask_config_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, PRIVGUARD_LEDGER=None, PRIVGUARD_UNKNOW_COOKIES="allow")
    with pytest.raises(
        ConfigError, match="Flask config key; did you mean PRIVGUARD_UNKNOWN_COOKIES"
    ):
        PrivGuard(app)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, PRIVGUARD_LEDGER=None, PRIVGUARD_ENABLED=True)
    PrivGuard(app)  # the switch is not an option, and not a typo


def test_unwritable_sqlite_ledger_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'ledger'.*/nonexistent/dir.*does not exist"):
        Runtime(Settings(secret_key=SECRET, ledger="sqlite:////nonexistent/dir/l.db"))
    assert not os.path.exists("/nonexistent")
    with pytest.raises(ConfigError, match="ledger"):
        privguard.protect(Flask(__name__), secret_key=SECRET, ledger="sqlite:////nonexistent/l.db")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="does not exist"):
        Runtime(Settings(secret_key=SECRET, ledger=f"sqlite:///{a_file}/l.db"))
    Runtime(Settings(secret_key=SECRET, ledger=f"sqlite:///{tmp_path}/ok.db")).close()


def test_a_language_without_translation_is_reported_under_languages() -> None:
    with pytest.raises(ConfigError, match="no built-in translation") as info:
        Runtime(Settings(secret_key=SECRET, ledger=None, languages=["en", "xx"]))
    assert info.value.option == "languages"
    with pytest.raises(ConfigError) as partial:  # a partial translation: the texts are wrong
        Runtime(Settings(secret_key=SECRET, ledger=None, languages=["xx"], texts={"xx": {}}))
    assert partial.value.option == "texts"
