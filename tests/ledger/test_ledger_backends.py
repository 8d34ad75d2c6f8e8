"""The Ledger contract, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from privguard.errors import ConfigError, LedgerError
from privguard.ledger import GENESIS_HASH, ReceiptDraft, hash_receipt, open_ledger
from privguard.ledger.base import COLUMNS, format_ts

Draft = Callable[..., ReceiptDraft]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_append_builds_a_chain(ledger_url: str, draft: Draft) -> None:
    ledger = open_ledger(ledger_url)
    try:
        receipts = [ledger.append(draft(i)) for i in range(3)]
        assert [r.seq for r in receipts] == [1, 2, 3]
        assert receipts[0].prev_hash == GENESIS_HASH
        assert receipts[1].prev_hash == receipts[0].hash
        assert receipts[2].prev_hash == receipts[1].hash
        for r in receipts:
            assert r.hash == hash_receipt(r.seq, r.draft, r.prev_hash)
        stored = list(ledger.iter_receipts())
        assert stored == receipts
        result = ledger.verify()
        assert result.ok and result.checked == 3, result
    finally:
        ledger.close()


def test_append_is_idempotent_per_receipt_id(ledger_url: str, draft: Draft) -> None:
    ledger = open_ledger(ledger_url)
    try:
        first = ledger.append(draft(1))
        again = ledger.append(first.draft)
        assert again == first
        batch = ledger.append_many([draft(2, id="x"), draft(3, id="x"), first.draft])
        assert [r.seq for r in batch] == [2, 2, 1]
        assert len(list(ledger.iter_receipts())) == 2
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_receipts_round_trip_every_field(ledger_url: str, draft: Draft) -> None:
    variants = [
        draft(1, country=None, ip=None, ua_family=None, gpc=True, dnt=False),
        draft(2, ip="2001:db8:1234::", age_status="minor", method="age", granted=("necessary",),
              denied=("functionality", "marketing", "performance")),
        draft(3, regime="us-optout", method="gpc", country="US", policy_version="2026-03"),
        draft(4, ts=datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC), ua_family="Mobile Safari"),
    ]  # fmt: skip
    with open_ledger(ledger_url) as ledger:
        stored = ledger.append_many(variants)
        assert [r.draft for r in ledger.iter_receipts()] == variants == [r.draft for r in stored]
        assert ledger.verify().ok


def test_iter_receipts_filters(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        receipts = ledger.append_many([draft(i) for i in range(10)])  # one minute apart
        since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)
        window = list(ledger.iter_receipts(since=since, until=until))
        assert [r.seq for r in window] == [4, 5, 6]
        assert [r.id for r in ledger.iter_receipts(receipt_id=receipts[7].id)] == [receipts[7].id]
        assert list(ledger.iter_receipts(receipt_id="nope")) == []


def test_reopening_keeps_the_chain(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append(draft(1))
    with open_ledger(ledger_url) as ledger:
        second = ledger.append(draft(2))
        assert second.seq == 2
        assert ledger.verify().ok


def test_open_without_create_refuses_a_missing_ledger(ledger_url: str) -> None:
    with pytest.raises(LedgerError):
        open_ledger(ledger_url, create=False)


def test_closed_ledger_raises_ledger_error(ledger_url: str, draft: Draft) -> None:
    ledger = open_ledger(ledger_url)
    ledger.close()
    with pytest.raises(LedgerError):
        ledger.append(draft(1))


# -- tampering -------------------------------------------------------------------------


def _tampered(column: str, old: Any, kind: str) -> Any:
    if column == "seq":
        return old + 1000
    if column == "ts":
        if kind == "sqlite":
            return format_ts(datetime.fromisoformat(old) + timedelta(seconds=1))
        return old + timedelta(microseconds=1)
    if column in ("gpc", "dnt"):
        return (1 - old) if kind == "sqlite" else not old
    return {
        "id": "forged-id",
        "policy_version": "0",
        "granted": '["functionality","marketing","necessary","performance"]',
        "denied": "[]",
        "method": "form",
        "regime": "notice",
        "country": "US",
        "ip": "198.51.100.0",
        "ua_family": "Firefox",
        "age_status": "adult",
        "prev_hash": "f" * 64,
        "hash": "e" * 64,
    }[column]


@pytest.mark.parametrize("column", COLUMNS)
def test_tampering_with_any_column_is_detected(
    ledger_url: str, raw_db: Any, draft: Draft, column: str
) -> None:
    with open_ledger(ledger_url) as ledger:
        receipts = ledger.append_many([draft(i) for i in range(5)])
        assert ledger.verify().ok
        target = receipts[2]
        (old,) = raw_db.execute(f"SELECT {column} FROM privguard_receipts WHERE seq = ?", (3,))[0]
        new = _tampered(column, old, raw_db.kind)
        assert new != old
        raw_db.execute(f"UPDATE privguard_receipts SET {column} = ? WHERE seq = ?", (new, 3))
        result = ledger.verify()
        assert not result.ok
        assert result.reason
        if column == "seq":  # the renumbered receipt leaves a gap where it was
            assert result.first_bad_seq == 4
        else:
            assert (result.first_bad_seq, result.checked) == (3, 2)
            assert result.first_bad_id in (target.id, "forged-id")


def test_tamper_table_covers_every_stored_column(raw_db: Any, ledger_url: str) -> None:
    open_ledger(ledger_url).close()
    assert tuple(raw_db.columns()) == COLUMNS


@pytest.mark.parametrize("seq", [1, 3, 5], ids=["first", "middle", "last"])
def test_deleting_a_receipt_is_detected(
    ledger_url: str, raw_db: Any, draft: Draft, seq: int
) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many([draft(i) for i in range(5)])
        raw_db.execute("DELETE FROM privguard_receipts WHERE seq = ?", (seq,))
        result = ledger.verify()
        assert not result.ok
        assert result.first_bad_seq == (seq + 1 if seq < 5 else None)


def test_rewriting_a_whole_receipt_consistently_still_breaks_the_next_link(
    ledger_url: str, raw_db: Any, draft: Draft
) -> None:
    """Recomputing the tampered row's own hash is not enough: the next prev_hash differs."""
    with open_ledger(ledger_url) as ledger:
        receipts = ledger.append_many([draft(i) for i in range(4)])
        forged = receipts[1].draft
        forged = ReceiptDraft(**{**_fields(forged), "granted": ("marketing", "necessary"),
                                 "denied": ("functionality", "performance")})  # fmt: skip
        new_hash = hash_receipt(2, forged, receipts[1].prev_hash)
        raw_db.execute(
            "UPDATE privguard_receipts SET granted = ?, denied = ?, hash = ? WHERE seq = 2",
            ('["marketing","necessary"]', '["functionality","performance"]', new_hash),
        )
        result = ledger.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)


def _fields(d: ReceiptDraft) -> dict[str, Any]:
    return {name: getattr(d, name) for name in d.__slots__}  # type: ignore[attr-defined]


# -- purge -------------------------------------------------------------------------------


def test_purge_keeps_the_rest_verifiable(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        days = [0, 10, 20, 400, 410]
        now = T0 + timedelta(days=420)
        receipts = ledger.append_many(
            [draft(i, ts=T0 + timedelta(days=d)) for i, d in enumerate(days)]
        )
        deleted = ledger.purge(timedelta(days=365), now)
        assert deleted == 3
        kept = list(ledger.iter_receipts())
        assert [r.seq for r in kept] == [4, 5]
        head = ledger.head()
        assert (head.anchor_seq, head.anchor_hash, head.purged) == (3, receipts[2].hash, 3)
        result = ledger.verify()
        assert result.ok and result.checked == 2, result
        assert ledger.purge(timedelta(days=365), now) == 0  # nothing more to do
        later = ledger.append(draft(9, ts=now))
        assert later.seq == 6 and later.prev_hash == receipts[4].hash
        assert ledger.verify().ok


def test_purge_everything_then_continue(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        receipts = ledger.append_many([draft(i) for i in range(3)])
        assert ledger.purge(timedelta(0), T0 + timedelta(days=1)) == 3
        assert ledger.verify().ok
        assert list(ledger.iter_receipts()) == []
        nxt = ledger.append(draft(5, ts=T0 + timedelta(days=1)))
        assert (nxt.seq, nxt.prev_hash) == (4, receipts[-1].hash)
        assert ledger.verify().ok


def test_purge_only_removes_a_prefix(ledger_url: str, draft: Draft) -> None:
    """A receipt replayed late (old ts after a newer one) waits until the prefix reaches it."""
    with open_ledger(ledger_url) as ledger:
        ts_days = [0, 400, 1, 2]
        ledger.append_many([draft(i, ts=T0 + timedelta(days=d)) for i, d in enumerate(ts_days)])
        assert ledger.purge(timedelta(days=100), T0 + timedelta(days=410)) == 1
        assert [r.seq for r in ledger.iter_receipts()] == [2, 3, 4]
        assert ledger.verify().ok


def test_purge_after_tampering_is_still_detected(
    ledger_url: str, raw_db: Any, draft: Draft
) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many([draft(i, ts=T0 + timedelta(days=i * 100)) for i in range(6)])
        ledger.purge(timedelta(days=250), T0 + timedelta(days=500))
        raw_db.execute("UPDATE privguard_receipts SET country = 'FR' WHERE seq = 5")
        result = ledger.verify()
        assert (result.ok, result.first_bad_seq) == (False, 5)


def test_purge_refuses_negative_age(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger, pytest.raises(ValueError):
        ledger.purge(timedelta(days=-1), T0)


# -- privacy of stored rows --------------------------------------------------------------

_FULL_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}(?:[1-9]\d{0,2})\b")
_DATE = re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b")


def test_rows_hold_no_full_ip_no_birth_date_no_user_agent(
    ledger_url: str, raw_db: Any, draft: Draft
) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many(
            [
                draft(1, ip="203.0.113.0", ua_family="Chrome"),
                draft(2, ip="2001:db8:abcd::", ua_family="Firefox", age_status="adult"),
                draft(3, ip="198.51.0.0", method="age", age_status="minor"),
            ]
        )
    rows = raw_db.execute("SELECT * FROM privguard_receipts")
    names = raw_db.columns()
    assert len(rows) == 3
    for row in rows:
        for name, value in zip(names, row, strict=True):
            text = str(value)
            assert not _FULL_IPV4.search(text), (name, text)
            assert "Mozilla" not in text and "(" not in text, (name, text)
            if name != "ts":
                assert not _DATE.search(text), (name, text)
    assert {str(row[names.index("age_status")]) for row in rows} == {"unknown", "adult", "minor"}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"ip": "203.0.113.7"}, id="full-ipv4"),
        pytest.param({"ip": "2001:db8::1"}, id="full-ipv6"),
        pytest.param({"ip": "not-an-ip"}, id="garbage-ip"),
        pytest.param({"birth_date": "2000-01-01"}, id="birth-date"),
    ],
)
def test_drafts_refuse_personal_data(draft: Draft, overrides: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        draft(1, **overrides)


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_threads_keep_one_chain(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    ledger.append(draft(n * 100 + i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        result = ledger.verify()
        assert result.ok and result.checked == 100, result


PROCS, PER_PROC = 4, 50


def append_from_process(url: str, proc: int, start: Any) -> None:
    """Runs in a spawned process: wait for the others, then append PER_PROC receipts."""
    from privguard.ledger import ReceiptDraft, open_ledger

    ledger = open_ledger(url)
    try:
        start.wait(30)
        for i in range(PER_PROC):
            ledger.append(
                ReceiptDraft(
                    id=f"p{proc}-{i:03d}",
                    ts=datetime.now(UTC),
                    policy_version="1",
                    granted=("necessary",),
                    denied=("marketing",),
                    method="json",
                    regime="gdpr",
                    country="DE",
                    gpc=False,
                    dnt=False,
                    ip="192.0.2.0",
                    ua_family="Chrome",
                )
            )
    finally:
        ledger.close()


def test_concurrent_processes_keep_one_chain(ledger_url: str) -> None:
    open_ledger(ledger_url).close()  # create the schema once, as a deployment would
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=append_from_process, args=(ledger_url, n, start)) for n in range(PROCS)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with open_ledger(ledger_url) as ledger:
        result = ledger.verify()
        assert result.ok and result.checked == PROCS * PER_PROC, result
        receipts = list(ledger.iter_receipts())
    assert [r.seq for r in receipts] == list(range(1, PROCS * PER_PROC + 1))
    for n in range(PROCS):  # each process's receipts keep their own order
        mine = [r.id for r in receipts if r.id.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i:03d}" for i in range(PER_PROC)]
    owners = [r.id.split("-")[0] for r in receipts]
    assert len({*owners}) == PROCS


# -- stats and URLs ----------------------------------------------------------------------


def test_stats_counts_choices_per_month_regime_category(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many(
            [
                draft(1, ts=datetime(2026, 1, 5, tzinfo=UTC)),
                draft(2, ts=datetime(2026, 1, 6, tzinfo=UTC), granted=("marketing", "necessary"),
                      denied=("functionality", "performance")),
                draft(3, ts=datetime(2026, 2, 1, tzinfo=UTC), regime="us-optout"),
            ]
        )  # fmt: skip
        rows = {(r.month, r.regime, r.category): (r.granted, r.denied) for r in ledger.stats()}
        assert rows[("2026-01", "gdpr", "necessary")] == (2, 0)
        assert rows[("2026-01", "gdpr", "marketing")] == (1, 1)
        assert rows[("2026-01", "gdpr", "performance")] == (1, 1)
        assert rows[("2026-02", "us-optout", "functionality")] == (0, 1)
        jan = ledger.stats(until=datetime(2026, 2, 1, tzinfo=UTC))
        assert {r.month for r in jan} == {"2026-01"}


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://localhost/db", id="unknown-scheme"),
        pytest.param("sqlite://host/x.db", id="sqlite-host"),
        pytest.param("sqlite:///", id="sqlite-no-path"),
        pytest.param("sqlite:///x.db?timeout=abc", id="sqlite-bad-timeout"),
        pytest.param("sqlite:///x.db?mode=ro", id="sqlite-unknown-param"),
        pytest.param("postgresql://host/db?nosuchoption=1", id="postgres-bad-param"),
        pytest.param("", id="empty"),
        pytest.param("ledger.db", id="bare-path"),
    ],
)
def test_bad_urls_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_ledger(url)
    assert info.value.option == "ledger"


def test_memory_ledger_is_shared_across_threads(draft: Draft) -> None:
    with open_ledger("sqlite:///:memory:") as ledger:
        ledger.append(draft(1))
        thread = threading.Thread(target=lambda: ledger.append(draft(2)))
        thread.start()
        thread.join()
        assert ledger.verify().checked == 2


def test_sqlite_refuses_a_newer_schema(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "new.db"
    open_ledger(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerError, match="schema version 99"):
        open_ledger(f"sqlite:///{path}")


def test_relative_sqlite_url(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, draft: Draft) -> None:
    monkeypatch.chdir(tmp_path)
    with open_ledger("sqlite:///sub.db") as ledger:
        ledger.append(draft(1))
    assert (tmp_path / "sub.db").is_file()


def test_a_half_read_iterator_does_not_block_writes(ledger_url: str, draft: Draft) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many([draft(i) for i in range(3)])
        receipts = ledger.iter_receipts()
        first = next(receipts)
        later = ledger.append(draft(9))
        assert (first.seq, later.seq) == (1, 4)
        receipts.close()
        assert ledger.verify().ok


def test_reading_a_malformed_row_raises_ledger_error(
    ledger_url: str, raw_db: Any, draft: Draft
) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.append_many([draft(i) for i in range(3)])
        raw_db.execute("UPDATE privguard_receipts SET granted = 'necessary' WHERE seq = 2")
        with pytest.raises(LedgerError, match="granted"):
            list(ledger.iter_receipts())
        result = ledger.verify()
        assert (result.ok, result.first_bad_seq) == (False, 2)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("gpc", 7, id="bool-not-0-1"),
        pytest.param("ts", "2026-03-01T12:02:00Z", id="ts-same-instant-other-spelling"),
        pytest.param("granted", '["performance", "necessary"]', id="categories-unsorted"),
        pytest.param("hash", "A" * 64, id="hash-upper-case"),
    ],
)
def test_sqlite_non_canonical_values_count_as_tampering(
    tmp_path: Any, draft: Draft, column: str, value: Any
) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(url) as ledger:
        ledger.append_many([draft(i) for i in range(3)])
        conn = sqlite3.connect(tmp_path / "l.db")
        with conn:
            conn.execute(f"UPDATE privguard_receipts SET {column} = ? WHERE seq = 3", (value,))
        conn.close()
        result = ledger.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)
        assert column in result.reason or "hash" in result.reason


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("Chrome Mobile WebView", "Chrome Mobile WebView", id="family"),
        pytest.param("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0", "Other", id="raw-ua"),
        pytest.param("x" * 65, "Other", id="too-long"),
        pytest.param("Chrome\n", "Other", id="control-char"),
        pytest.param(" ", "Other", id="blank"),
        pytest.param(None, None, id="none"),
    ],
)
def test_raw_user_agents_are_stored_as_other(draft: Draft, given: Any, stored: Any) -> None:
    """Never the raw string, and never a lost receipt because of it."""
    assert draft(1, ua_family=given).ua_family == stored


@pytest.mark.parametrize("method", ["banner", "form", "json", "age", "gpc", "dnt"])
def test_every_method_is_accepted(draft: Draft, method: str) -> None:
    assert draft(1, method=method).method == method


def test_unknown_method_is_refused(draft: Draft) -> None:
    with pytest.raises(ValueError, match="method"):
        draft(1, method="scroll")


def test_open_without_create_refuses_a_database_without_a_ledger(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE shop (x)")
    conn.close()
    with pytest.raises(LedgerError, match="no privguard ledger"):
        open_ledger(f"sqlite:///{path}", create=False)
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert tables == {"shop"}


SECRET = "Zq8-very-secret-pw"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresq://shop:{SECRET}@db.internal/privguard", id="bad-scheme"),
        pytest.param(f"postgresql://shop:{SECRET}@db.internal/x?bogus=1", id="bad-param"),
        pytest.param(f"postgresql://shop@db.internal/x?password={SECRET}&bogus=1", id="query-pw"),
        pytest.param(f"host=db password={SECRET}", id="key-value"),
        pytest.param(f"sqlite://shop:{SECRET}@host/x.db", id="sqlite-netloc"),
    ],
)
def test_passwords_never_reach_error_messages(url: str) -> None:
    from privguard.ledger import LedgerWriter

    for build in (open_ledger, LedgerWriter):
        with pytest.raises(ConfigError) as info:
            build(url)
        assert SECRET not in str(info.value)
        assert info.value.option == "ledger"


def test_password_never_reaches_an_unreachable_error() -> None:
    with pytest.raises(LedgerError) as info:
        open_ledger(f"postgresql://shop:{SECRET}@127.0.0.1:1/x?connect_timeout=2")
    assert SECRET not in str(info.value)
