"""The ledger commands as documented: without ``--ledger`` they open the default
``privguard-ledger.db`` in the current folder, and say which ledger they opened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from privguard.cli import main
from privguard.flask import PrivGuard
from privguard.ledger import ReceiptDraft, open_ledger

Draft = Callable[..., ReceiptDraft]


@pytest.fixture
def default_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, draft: Draft) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRIVGUARD_LEDGER", raising=False)
    with open_ledger("sqlite:///privguard-ledger.db") as ledger:
        ledger.append_many([draft(i, ts=datetime(2026, 3, 1 + i, tzinfo=UTC)) for i in range(3)])
    return tmp_path / "privguard-ledger.db"


def test_stats_and_verify_use_the_default_file(
    default_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "stats"]) == 0
    out, err = capsys.readouterr()
    assert "2026-03" in out
    assert "privguard ledger: sqlite:///privguard-ledger.db (the default" in err
    assert main(["ledger", "verify"]) == 0
    out, _ = capsys.readouterr()
    assert "3 receipt(s) verified" in out


def test_the_ledger_opened_is_named(
    default_ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{default_ledger}"
    assert main(["ledger", "stats", "--ledger", url]) == 0
    assert f"privguard ledger: {url} (--ledger)" in capsys.readouterr().err
    monkeypatch.setenv("PRIVGUARD_LEDGER", url)
    assert main(["ledger", "stats"]) == 0
    assert f"privguard ledger: {url} (PRIVGUARD_LEDGER)" in capsys.readouterr().err


def test_no_default_file_says_how_to_choose_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRIVGUARD_LEDGER", raising=False)
    assert main(["ledger", "stats"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "privguard-ledger.db" in err and "--ledger URL" in err
    assert not (tmp_path / "privguard-ledger.db").exists()  # never created


def test_flask_command_with_ledger_none_uses_the_default(default_ledger: Path) -> None:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "s" * 40
    PrivGuard(app, ledger=None)
    result = app.test_cli_runner().invoke(args=["privguard", "ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "3 receipt(s) verified" in result.output
