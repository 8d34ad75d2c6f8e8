"""A keyed ledger against a database writer without the key, on SQLite and PostgreSQL.

The writer here is plain SQL on the ledger's database (``raw_db``): it can
delete rows, rewrite the head, recompute SHA-256 hashes, but it does not hold
the key. ``privguard ledger verify`` must name each attempt; what only an
outside checkpoint catches (a rollback to a head the writer saw earlier) is
shown too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from privguard.cli import main
from privguard.ledger import (
    Checkpoint,
    ReceiptDraft,
    derive_ledger_keys,
    hash_receipt,
    open_ledger,
)
from privguard.ledger.base import canonical_json

Draft = Callable[..., ReceiptDraft]
SECRET = "ledger-key-test-" + "k" * 40
KEYS = derive_ledger_keys([SECRET])
HEAD = "seq, hash, anchor_seq, anchor_hash, purged, keyed_from, key_id, mac"


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, key: str
) -> tuple[int, str, str]:
    monkeypatch.delenv("PRIVGUARD_LEDGER_KEY", raising=False)
    monkeypatch.delenv("PRIVGUARD_SECRET_KEY", raising=False)
    if key:
        monkeypatch.setenv("PRIVGUARD_LEDGER_KEY", key)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keyed(ledger_url: str, draft: Draft) -> list[Any]:
    with open_ledger(ledger_url, keys=KEYS) as ledger:
        return ledger.append_many([draft(i) for i in range(6)])


def test_a_keyed_ledger_verifies_with_its_key(
    ledger_url: str, keyed: list[Any], capsys: Any, monkeypatch: Any
) -> None:
    with open_ledger(ledger_url, create=False, keys=KEYS) as ledger:
        result = ledger.verify()
        assert result.ok and result.checked == 6 and result.keyed_from == 1
        assert ledger.head().key_id == KEYS[0].id
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys, monkeypatch, SECRET)
    assert code == 0, out
    assert f"keyed with key id {KEYS[0].id} from seq 1" in out


def test_without_or_with_a_wrong_key_verify_exits_2(
    ledger_url: str, keyed: list[Any], capsys: Any, monkeypatch: Any
) -> None:
    for key in ("", "another-key-" + "z" * 40):
        code, out, err = run(["ledger", "verify", "--ledger", ledger_url], capsys, monkeypatch, key)
        assert code == 2, (out, err)
        assert "the ledger is keyed" in err


def test_cutting_off_the_newest_receipts_and_rewriting_the_head_is_detected(
    ledger_url: str, raw_db: Any, keyed: list[Any], capsys: Any, monkeypatch: Any
) -> None:
    raw_db.execute("DELETE FROM privguard_receipts WHERE seq > 4")
    raw_db.execute("UPDATE privguard_ledger_head SET seq = 4, hash = ?", (keyed[3].hash,))
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys, monkeypatch, SECRET)
    assert code == 1
    assert "the chain head's signature does not match" in out


@pytest.mark.parametrize("column", ["granted", "regime", "ts"])
def test_a_receipt_rewritten_with_recomputed_hashes_is_detected(
    ledger_url: str, raw_db: Any, keyed: list[Any], column: str, capsys: Any, monkeypatch: Any
) -> None:
    """The writer changes seq 3 and recomputes every SHA-256 after it, and the head."""
    changes: dict[str, Any] = {
        "granted": {"granted": ("marketing", "necessary"), "denied": ("functionality",)},
        "regime": {"regime": "notice"},
        "ts": {"ts": keyed[2].ts.replace(year=2025)},
    }[column]
    prev = keyed[1].hash
    for receipt in keyed[2:]:
        values = {n: getattr(receipt.draft, n) for n in receipt.draft.__slots__}
        if receipt.seq == 3:
            values.update(changes)
        new_hash = hash_receipt(receipt.seq, ReceiptDraft(**values), prev)  # unkeyed SHA-256
        stored = canonical_json(list(values["granted"])) if column == "granted" else None
        if receipt.seq == 3:
            sets = {
                "granted": ("granted = ?, denied = ?", (stored, '["functionality"]')),
                "regime": ("regime = ?", ("notice",)),
                "ts": ("ts = ?", (_ts(raw_db, values["ts"]),)),
            }[column]
            raw_db.execute(
                f"UPDATE privguard_receipts SET {sets[0]}, prev_hash = ?, hash = ? WHERE seq = 3",
                (*sets[1], prev, new_hash),
            )
        else:
            raw_db.execute(
                "UPDATE privguard_receipts SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev, new_hash, receipt.seq),
            )
        prev = new_hash
    raw_db.execute("UPDATE privguard_ledger_head SET hash = ?", (prev,))
    with open_ledger(ledger_url, create=False, keys=KEYS) as ledger:
        result = ledger.verify()
    assert not result.ok
    code, out, _ = run(["ledger", "verify", "--ledger", ledger_url], capsys, monkeypatch, SECRET)
    assert code == 1
    assert "signature" in out or "seq 3" in out


def _ts(raw_db: Any, ts: Any) -> Any:
    from privguard.ledger.base import format_ts

    return format_ts(ts) if raw_db.kind == "sqlite" else ts


def test_a_rollback_to_an_earlier_head_needs_a_checkpoint(
    ledger_url: str,
    raw_db: Any,
    draft: Draft,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A writer who kept an old signed head can restore it: only an outside anchor tells."""
    caplog.set_level(logging.INFO, logger="privguard.ledger")
    with open_ledger(ledger_url, keys=KEYS) as ledger:
        ledger.append_many([draft(i) for i in range(3)])
        (saved,) = raw_db.execute(f"SELECT {HEAD} FROM privguard_ledger_head")
        ledger._last_checkpoint = None  # type: ignore[attr-defined]  # log the next head now
        newest = ledger.append_many([draft(10), draft(11)])
    log = tmp_path / "app.log"
    log.write_text("\n".join(r.getMessage() for r in caplog.records) + "\n")
    assert f"privguard ledger checkpoint seq=5 hash={newest[-1].hash} mac=" in log.read_text()
    raw_db.execute("DELETE FROM privguard_receipts WHERE seq > 3")
    raw_db.execute(
        "UPDATE privguard_ledger_head SET seq = ?, hash = ?, anchor_seq = ?, anchor_hash = ?, "
        "purged = ?, keyed_from = ?, key_id = ?, mac = ?",
        tuple(saved),
    )
    argv = ["ledger", "verify", "--ledger", ledger_url]
    code, out, _ = run(argv, capsys, monkeypatch, SECRET)
    assert code == 0  # the restored head is genuinely signed: SECURITY.md says so
    code, out, _ = run([*argv, "--checkpoint", str(log)], capsys, monkeypatch, SECRET)
    assert code == 1
    assert "checkpoint names seq 5 but the chain ends at seq 3" in out
    code, out, _ = run(
        [*argv, "--expect-head", f"5:{newest[-1].hash}"], capsys, monkeypatch, SECRET
    )
    assert code == 1 and "cut off" in out
    code, out, _ = run([*argv, "--expect-head", newest[-1].hash], capsys, monkeypatch, SECRET)
    assert code == 1 and "is not in the chain" in out


def test_a_forged_checkpoint_line_is_refused(
    ledger_url: str, keyed: list[Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    forged = tmp_path / "forged.log"
    fake = hashlib.sha256(b"x").hexdigest()
    forged.write_text(f"privguard ledger checkpoint seq=9 hash={fake} mac={fake}\n")
    argv = ["ledger", "verify", "--ledger", ledger_url, "--checkpoint", str(forged)]
    code, out, _ = run(argv, capsys, monkeypatch, SECRET)
    assert code == 1 and "not signed by the ledger's key" in out


def test_checkpoints_that_still_hold_pass(ledger_url: str, keyed: list[Any]) -> None:
    with open_ledger(ledger_url, create=False, keys=KEYS) as ledger:
        result = ledger.verify([Checkpoint(3, keyed[2].hash), Checkpoint(None, keyed[5].hash)])
        assert result.ok and result.checkpoints == 2
        result = ledger.verify([Checkpoint(3, keyed[3].hash)])
        assert not result.ok and result.first_bad_seq == 3


def _downgrade_to_v1(raw_db: Any) -> None:
    """The schema privguard wrote before keying (version 1)."""
    for column in ("keyed_from", "key_id", "mac"):
        raw_db.execute(f"ALTER TABLE privguard_ledger_head DROP COLUMN {column}")
    if raw_db.kind == "sqlite":
        raw_db.execute("PRAGMA user_version = 1")
    else:
        raw_db.execute("UPDATE privguard_schema SET version = 1")


def test_an_unkeyed_version_1_ledger_still_verifies_and_is_keyed_by_the_app(
    ledger_url: str, raw_db: Any, draft: Draft, capsys: Any, monkeypatch: Any
) -> None:
    with open_ledger(ledger_url) as ledger:  # no keys: the old, unkeyed chain
        old = ledger.append_many([draft(i) for i in range(3)])
    _downgrade_to_v1(raw_db)
    argv = ["ledger", "verify", "--ledger", ledger_url]
    code, out, err = run(argv, capsys, monkeypatch, "")
    assert code == 0 and "not keyed" in out, err  # read as it is, never changed by the CLI
    code, out, _ = run(argv, capsys, monkeypatch, SECRET)
    assert code == 1 and "the ledger is not keyed" in out
    with open_ledger(ledger_url, keys=KEYS) as ledger:  # the app: upgraded and keyed
        ledger.append_many([draft(10), draft(11)])
        result = ledger.verify()
        assert result.ok and result.keyed_from == 4 and result.checked == 5
    code, out, _ = run(argv, capsys, monkeypatch, SECRET)
    assert code == 0 and "from seq 4 (seq 1-3 before: plain SHA-256)" in out
    # the unkeyed prefix is covered by the first keyed receipt's prev_hash
    forged = ReceiptDraft(**{**{n: getattr(old[2].draft, n) for n in old[2].draft.__slots__},
                             "regime": "notice"})  # fmt: skip
    raw_db.execute(
        "UPDATE privguard_receipts SET regime = 'notice', hash = ? WHERE seq = 3",
        (hash_receipt(3, forged, old[1].hash),),
    )
    code, out, _ = run(argv, capsys, monkeypatch, SECRET)
    assert code == 1 and "seq 4" in out


def test_purge_keeps_a_keyed_ledger_verifiable(ledger_url: str, keyed: list[Any]) -> None:
    from datetime import timedelta

    with open_ledger(ledger_url, create=False, keys=KEYS) as ledger:
        deleted = ledger.purge(timedelta(0), keyed[2].ts + timedelta(seconds=1))
        assert deleted == 3
        assert ledger.verify([Checkpoint(3, keyed[2].hash)]).ok


def test_the_app_keys_its_ledger_with_ledger_key_and_logs_checkpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: Any, monkeypatch: Any
) -> None:
    """Through a real Flask app: ``ledger_key`` keys the chain, the log carries a checkpoint."""
    from flask import Flask
    from webtest import TestApp

    import privguard

    caplog.set_level(logging.INFO, logger="privguard.ledger")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger_key = "separate-ledger-key-" + "L" * 40
    app = Flask(__name__)
    app.get("/")(lambda: "<html><body>x</body></html>")
    privguard.protect(app, secret_key=SECRET, ledger_key=ledger_key, ledger=url, rate_limit=None)
    client = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    client.post("/privguard/consent", {"accept": "all"}, headers={"Origin": "http://localhost"})
    runtime = app.wsgi_app.runtime  # type: ignore[attr-defined]
    assert runtime.ledger.flush(10)
    runtime.close()
    log = tmp_path / "app.log"
    log.write_text("\n".join(r.getMessage() for r in caplog.records) + "\n")
    assert "privguard ledger checkpoint seq=1 " in log.read_text()
    argv = ["ledger", "verify", "--ledger", url, "--checkpoint", str(log)]
    code, out, _ = run(argv, capsys, monkeypatch, ledger_key)
    assert code == 0 and "checkpoints: 1 of 1 held" in out, out
    code, _, err = run(argv, capsys, monkeypatch, SECRET)  # the cookie key is not the ledger's
    assert code == 2 and "none of the given keys matches" in err


def test_ledger_key_is_checked_and_masked() -> None:
    from privguard import ConfigError, Settings

    with pytest.raises(ConfigError) as caught:
        Settings(secret_key=SECRET, ledger_key="short")
    assert caught.value.option == "ledger_key"
    settings = Settings(secret_key=SECRET, ledger_key="a-ledger-key-" + "m" * 40)
    assert "mmmm" not in repr(settings)
    assert Settings(secret_key=SECRET).ledger_keys == settings.secret_keys
