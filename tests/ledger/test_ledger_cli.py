"""``privguard ledger …``: exit codes 0/1/2, in-process and as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from privguard.cli import main
from privguard.ledger import ReceiptDraft, open_ledger
from privguard.ledger.cli import parse_age

Draft = Callable[..., ReceiptDraft]
PRIVGUARD = Path(sys.executable).with_name("privguard")


@pytest.fixture
def filled(ledger_url: str, draft: Draft) -> list[Any]:
    """Five receipts, one per month from January 2026."""
    with open_ledger(ledger_url) as ledger:
        return ledger.append_many(
            [draft(i, ts=datetime(2026, 1 + i, 15, tzinfo=UTC)) for i in range(5)]
        )


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_ok(ledger_url: str, filled: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys)
    assert code == 0
    assert "5 receipt(s) verified" in out
    assert f"head: seq 5 hash {filled[-1].hash}" in out


def test_verify_reports_receipts_cut_off_the_end(
    ledger_url: str, raw_db: Any, filled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    raw_db.execute("DELETE FROM privguard_receipts WHERE seq = 5")
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys)
    assert code == 1
    assert "after the last receipt" in out and "seq 4" in out


def test_export_of_a_malformed_ledger_exits_1(
    ledger_url: str, raw_db: Any, filled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    raw_db.execute("UPDATE privguard_receipts SET denied = 'x' WHERE seq = 3")
    code, _, err = run(["ledger", "export", "--ledger", ledger_url], capsys)
    assert code == 1
    assert f"seq 3 (id {filled[2].id})" in err


def test_verify_names_the_first_bad_receipt(
    ledger_url: str, raw_db: Any, filled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    raw_db.execute("UPDATE privguard_receipts SET regime = 'notice' WHERE seq = 2")
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys)
    assert code == 1
    assert f"seq 2 (id {filled[1].id})" in out


def test_ledger_url_from_environment(
    ledger_url: str, filled: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("PRIVGUARD_LEDGER", ledger_url)
    assert run(["ledger", "verify"], capsys)[0] == 0


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["ledger", "verify"], id="no-url"),
        pytest.param(["ledger", "verify", "--ledger", "mysql://x/y"], id="bad-scheme"),
        pytest.param(["ledger", "verify", "--ledger", "sqlite:///{tmp}/missing.db"], id="missing"),
        pytest.param(["ledger", "export", "--ledger", "sqlite:///{tmp}/missing.db"], id="export"),
        pytest.param(["ledger", "stats", "--ledger", "sqlite:///x.db?timeout=x"], id="bad-param"),
        pytest.param(["ledger", "verify", "--ledger", "postgresql://127.0.0.1:1/x"], id="pg-down"),
        pytest.param(["ledger", "purge", "--older-than", "12 parsecs"], id="bad-age"),
        pytest.param(["ledger", "export", "--since", "yesterday"], id="bad-date"),
        pytest.param(["ledger"], id="no-action"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("PRIVGUARD_LEDGER", raising=False)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    if "--ledger" in argv or argv == ["ledger", "verify"]:
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("privguard ledger: error:")
    assert not (tmp_path / "missing.db").exists()  # reading never creates a ledger


def test_export_jsonl(ledger_url: str, filled: list[Any], capsys: Any) -> None:
    code, out, _ = run(["ledger", "export", "--ledger", ledger_url], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in filled]
    assert rows[0]["granted"] == ["necessary", "performance"]
    assert rows[0]["ts"] == "2026-01-15T00:00:00.000000+00:00"
    assert rows[0]["hash"] == filled[0].hash and rows[1]["prev_hash"] == filled[0].hash


def test_export_csv_to_file_with_window(
    ledger_url: str, filled: list[Any], tmp_path: Path, capsys: Any
) -> None:
    target = tmp_path / "out.csv"
    argv = ["ledger", "export", "--ledger", ledger_url, "--format", "csv", "--output", str(target)]
    code, out, _ = run([*argv, "--since", "2026-02-01", "--until", "2026-04-15"], capsys)
    assert (code, out) == (0, "")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["id"] for r in rows] == [r.id for r in filled[1:4]]  # until is inclusive of the day
    assert rows[0]["granted"] == "necessary performance"
    assert rows[0]["gpc"] == "false" and rows[0]["dnt"] == "true"


def test_export_one_receipt_for_an_access_request(
    ledger_url: str, filled: list[Any], capsys: Any
) -> None:
    code, out, _ = run(["ledger", "export", "--ledger", ledger_url, "--id", filled[2].id], capsys)
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == [filled[2].id]
    code, out, err = run(["ledger", "export", "--ledger", ledger_url, "--id", "unknown"], capsys)
    assert (code, out) == (1, "")
    assert "no receipt" in err


def test_purge_default_keeps_twelve_months(ledger_url: str, draft: Draft, capsys: Any) -> None:
    now = datetime.now(UTC)
    with open_ledger(ledger_url) as ledger:
        ledger.append_many(
            [
                draft(1, ts=now - timedelta(days=800)),
                draft(2, ts=now - timedelta(days=380)),
                draft(3, ts=now - timedelta(days=300)),
                draft(4, ts=now - timedelta(days=1)),
            ]
        )
    code, out, _ = run(["ledger", "purge", "--ledger", ledger_url], capsys)
    assert code == 0 and "purged 2 receipt(s)" in out
    assert run(["ledger", "verify", "--ledger", ledger_url], capsys)[0] == 0
    code, out, _ = run(["ledger", "purge", "--older-than", "2d", "--ledger", ledger_url], capsys)
    assert code == 0 and "purged 1 receipt(s)" in out
    assert run(["ledger", "verify", "--ledger", ledger_url], capsys)[0] == 0


def test_stats_table_and_json(ledger_url: str, filled: list[Any], capsys: Any) -> None:
    code, out, _ = run(["ledger", "stats", "--ledger", ledger_url], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "month",
        "regime",
        "category",
        "granted",
        "denied",
        "granted",
        "%",
    ]
    assert "2026-03  gdpr    marketing" in out
    code, out, _ = run(
        ["ledger", "stats", "--json", "--ledger", ledger_url, "--since", "2026-05-01"], capsys
    )
    rows = json.loads(out)
    assert {r["month"] for r in rows} == {"2026-05"}
    assert {"month", "regime", "category", "granted", "denied"} == set(rows[0])


def test_stats_on_an_empty_ledger(ledger_url: str, capsys: Any) -> None:
    open_ledger(ledger_url).close()
    code, out, _ = run(["ledger", "stats", "--ledger", ledger_url], capsys)
    assert code == 0 and "(no receipts)" in out


@pytest.mark.parametrize(
    ("text", "days"),
    [
        pytest.param("365d", 365, id="days"),
        pytest.param("52w", 364, id="weeks"),
        pytest.param("12m", 365, id="months"),
        pytest.param("1y", 365, id="year"),
        pytest.param("1m", 31, id="one-month-from-march"),
    ],
)
def test_parse_age(text: str, days: int) -> None:
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert parse_age(text, now) == timedelta(days=days)


def test_parse_age_clamps_to_month_end() -> None:
    assert parse_age("1m", datetime(2026, 3, 31, tzinfo=UTC)) == timedelta(days=31)  # → Feb 28


@pytest.mark.parametrize("text", ["", "12", "m", "12minutes", "-1d", "1.5y"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_age(text, datetime(2026, 1, 1, tzinfo=UTC))


def _subprocess(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "PRIVGUARD_LEDGER"}
    full_env.update(env or {})
    return subprocess.run(
        [str(PRIVGUARD), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
    )


def test_console_script_exit_codes(ledger_url: str, raw_db: Any, filled: list[Any]) -> None:
    ok = _subprocess(["ledger", "verify", "--ledger", ledger_url])
    assert ok.returncode == 0, ok.stderr
    missing = _subprocess(["ledger", "verify"])
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1
    raw_db.execute("UPDATE privguard_receipts SET ip = '203.0.112.0' WHERE seq = 4")
    broken = _subprocess(["ledger", "verify"], env={"PRIVGUARD_LEDGER": ledger_url})
    assert broken.returncode == 1
    assert filled[3].id in broken.stdout
