"""LedgerWriter and the spool: nothing lost, nothing duplicated, order kept, through outages."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privguard.errors import ConfigError, LedgerError
from privguard.ledger import Ledger, LedgerWriter, ReceiptDraft, open_ledger
from privguard.ledger.base import draft_from_json, draft_to_json
from privguard.ledger.postgres import PostgresLedger
from privguard.ledger.spool import Spool
from privguard.ledger.writer import default_spool_path

Draft = Callable[..., ReceiptDraft]


def stored_ids(url: str) -> list[str]:
    with open_ledger(url) as ledger:
        assert ledger.verify().ok
        return [r.id for r in ledger.iter_receipts()]


def test_writer_stores_in_submission_order(ledger_url: str, tmp_path: Path, draft: Draft) -> None:
    drafts = [draft(i) for i in range(300)]
    with LedgerWriter(ledger_url, tmp_path / "spool.jsonl") as writer:
        for d in drafts:
            writer.submit(d)
        assert writer.flush(10)
    assert stored_ids(ledger_url) == [d.id for d in drafts]
    assert not (tmp_path / "spool.jsonl").exists() or not (tmp_path / "spool.jsonl").stat().st_size


def test_submit_does_not_wait_for_the_database(tmp_path: Path, draft: Draft) -> None:
    release = threading.Event()

    class SlowLedger:
        def __init__(self, url: str) -> None:
            self.inner = open_ledger(url)

        def append_many(self, drafts: Sequence[ReceiptDraft]) -> Any:
            release.wait(10)
            return self.inner.append_many(drafts)

        def close(self) -> None:
            self.inner.close()

    url = f"sqlite:///{tmp_path / 'l.db'}"
    writer = LedgerWriter(url, tmp_path / "s.jsonl", opener=SlowLedger)  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        for i in range(50):
            writer.submit(draft(i))
        assert time.perf_counter() - started < 0.5
        assert not writer.flush(0.05)  # still blocked in the database
        release.set()
        assert writer.flush(10)
    finally:
        writer.close()
    assert len(stored_ids(url)) == 50


def test_sqlite_locked_database_spools_then_replays(tmp_path: Path, draft: Draft) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}?timeout=0.1"
    spool = tmp_path / "spool.jsonl"
    first, during, after = [draft(i) for i in range(3)], [draft(i) for i in range(3, 8)], [draft(9)]
    with LedgerWriter(url, spool, retry_interval=60) as writer:
        for d in first:
            writer.submit(d)
        assert writer.flush()
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
            for d in during:
                writer.submit(d)
            assert writer.flush()
            lines = spool.read_text().splitlines()
            assert [json.loads(line)["id"] for line in lines] == [d.id for d in during]
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        for d in after:
            writer.submit(d)
        assert writer.flush()
        assert spool.stat().st_size == 0
    assert stored_ids(url) == [d.id for d in first + during + after]


def test_sqlite_path_that_appears_later(tmp_path: Path, draft: Draft) -> None:
    missing = tmp_path / "not-yet"
    url = f"sqlite:///{missing / 'ledger.db'}"
    drafts = [draft(i) for i in range(4)]
    with LedgerWriter(url, tmp_path / "spool.jsonl", retry_interval=60) as writer:
        for d in drafts[:2]:
            writer.submit(d)
        assert writer.flush()
        assert writer.spool.pending()
        missing.mkdir()
        for d in drafts[2:]:
            writer.submit(d)
        assert writer.flush()
        assert not writer.spool.pending()
    assert stored_ids(url) == [d.id for d in drafts]


def test_postgres_outage_loses_nothing(
    pg_cluster: Any, pg_url: str, tmp_path: Path, draft: Draft
) -> None:
    def opener(url: str) -> Ledger:
        return PostgresLedger(url, timeout=1.0)

    spool = tmp_path / "spool.jsonl"
    batches = [[draft(i) for i in range(k * 5, k * 5 + 5)] for k in range(3)]
    writer = LedgerWriter(pg_url, spool, retry_interval=60, opener=opener)
    try:
        for d in batches[0]:
            writer.submit(d)
        assert writer.flush(10)
        pg_cluster.stop()
        try:
            for d in batches[1]:
                writer.submit(d)
            assert writer.flush(20)
            assert writer.spool.pending()
        finally:
            pg_cluster.restart()
        for d in batches[2]:
            writer.submit(d)
        assert writer.flush(20)
        assert not writer.spool.pending()
    finally:
        writer.close()
    assert stored_ids(pg_url) == [d.id for batch in batches for d in batch]


def test_replay_skips_receipts_already_stored(
    ledger_url: str, tmp_path: Path, draft: Draft
) -> None:
    """A crash after the commit but before the spool was emptied must not duplicate."""
    drafts = [draft(i) for i in range(6)]
    with open_ledger(ledger_url) as ledger:
        ledger.append_many(drafts[:3])
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(drafts)  # the first three are already in the database
    with LedgerWriter(ledger_url, spool.path) as writer:
        assert writer.flush()
    assert stored_ids(ledger_url) == [d.id for d in drafts]
    assert not spool.pending()


def test_spool_survives_a_restart_of_the_writer(tmp_path: Path, draft: Draft) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([draft(1), draft(2)])  # left behind by a process that died during an outage
    with LedgerWriter(url, spool.path) as writer:
        writer.submit(draft(3))
        assert writer.flush()
    assert [i[:6] for i in stored_ids(url)] == ["r00001", "r00002", "r00003"]


def test_torn_spool_line_is_set_aside_not_lost_or_fatal(tmp_path: Path, draft: Draft) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append([draft(1)])
    with path.open("a") as handle:
        handle.write('{"id": "torn", "ts": "2026-')  # a crash in the middle of a write
    spool.append([draft(2)])  # starts on a fresh line
    got: list[str] = []
    assert spool.replay(lambda batch: got.extend(d.id for d in batch)) == 2
    assert [i[:6] for i in got] == ["r00001", "r00002"]
    rejected = path.with_name("spool.jsonl.rejected").read_text()
    assert rejected.startswith('{"id": "torn"')
    assert not spool.pending()


def test_failed_replay_keeps_the_spool(tmp_path: Path, draft: Draft) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([draft(1), draft(2)])

    def broken(batch: Sequence[ReceiptDraft]) -> None:
        raise LedgerError("still down")

    with pytest.raises(LedgerError):
        spool.replay(broken)
    assert len((tmp_path / "spool.jsonl").read_text().splitlines()) == 2


def test_spool_file_is_private(tmp_path: Path, draft: Draft) -> None:
    Spool(tmp_path / "s.jsonl").append([draft(1)])
    assert (tmp_path / "s.jsonl").stat().st_mode & 0o077 == 0


def test_memory_spool(draft: Draft) -> None:
    spool = Spool(None)
    spool.append([draft(1)])
    assert spool.pending()
    got: list[ReceiptDraft] = []
    spool.replay(got.extend)
    assert len(got) == 1 and not spool.pending()


def test_periodic_retry_without_new_receipts(tmp_path: Path, draft: Draft) -> None:
    missing = tmp_path / "later"
    url = f"sqlite:///{missing / 'ledger.db'}"
    with LedgerWriter(url, tmp_path / "s.jsonl", retry_interval=0.1) as writer:
        writer.submit(draft(1))
        assert writer.flush()
        missing.mkdir()
        deadline = time.monotonic() + 10
        while writer.spool.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not writer.spool.pending()
    assert len(stored_ids(url)) == 1


def test_submit_after_close_spools_and_never_raises(tmp_path: Path, draft: Draft) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, tmp_path / "s.jsonl")
    writer.close()
    writer.close()  # idempotent
    writer.submit(draft(1))
    assert writer.flush()
    assert writer.spool.pending()


def test_submit_never_raises_even_when_spooling_fails(tmp_path: Path, draft: Draft) -> None:
    (tmp_path / "file").write_text("")
    url = f"sqlite:///{tmp_path / 'file' / 'ledger.db'}"  # a path under a regular file
    writer = LedgerWriter(url, tmp_path / "file" / "spool.jsonl", retry_interval=60)
    try:
        writer.submit(draft(1))
        assert writer.flush()
    finally:
        writer.close(timeout=2)
    writer.submit(draft(2))  # closed and unspoolable: logged, not raised


def test_writer_checks_the_url_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LedgerWriter("mysql://nope", tmp_path / "s.jsonl")


def test_writer_opens_lazily(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, tmp_path / "s.jsonl")
    writer.close()
    assert not (tmp_path / "ledger.db").exists()


def test_writer_survives_a_bug_in_the_ledger(tmp_path: Path, draft: Draft) -> None:
    class Broken:
        def __init__(self, url: str) -> None:
            pass

        def append_many(self, drafts: Sequence[ReceiptDraft]) -> Any:
            raise RuntimeError("bug")

        def close(self) -> None:
            pass

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with LedgerWriter(url, tmp_path / "s.jsonl", opener=Broken) as writer:  # type: ignore[arg-type]
        writer.submit(draft(1))
        assert writer.flush()
        assert writer.spool.pending()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("sqlite:///data/l.db", Path("data/l.db-spool.jsonl"), id="sqlite"),
        pytest.param("sqlite:///:memory:", None, id="memory"),
    ],
)
def test_default_spool_path(url: str, expected: Path | None) -> None:
    assert default_spool_path(url) == expected


def test_default_spool_path_for_postgres_depends_on_url() -> None:
    a = default_spool_path("postgresql://a/db")
    b = default_spool_path("postgresql://b/db")
    assert a != b and a is not None and a.suffix == ".jsonl"


_names = st.lists(st.sampled_from(["necessary", "functionality", "performance", "marketing"]))


@settings(max_examples=60, deadline=None)
@given(
    granted=_names,
    country=st.none() | st.sampled_from(["DE", "US", "BR"]),
    ua=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1,
                            max_size=20).filter(lambda s: "(" not in s and "/" not in s),
    gpc=st.booleans(),
    micro=st.integers(0, 999_999),
)  # fmt: skip
def test_spool_lines_round_trip(
    granted: list[str], country: str | None, ua: str | None, gpc: bool, micro: int
) -> None:
    d = ReceiptDraft(
        id="abc",
        ts=datetime(2026, 1, 1, 0, 0, 0, micro, tzinfo=UTC),
        policy_version="1",
        granted=tuple(granted),
        denied=(),
        method="json",
        regime="gdpr",
        country=country,
        gpc=gpc,
        dnt=False,
        ip=None,
        ua_family=ua,
    )
    line = draft_to_json(d)
    assert "\n" not in line
    assert draft_from_json(line) == d


def test_close_racing_submitters_loses_nothing(tmp_path: Path, draft: Draft) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spool = tmp_path / "spool.jsonl"
    writer = LedgerWriter(url, spool)
    drafts = [[draft(n * 1000 + i) for i in range(100)] for n in range(8)]
    go = threading.Event()

    def submit_all(mine: list[ReceiptDraft]) -> None:
        go.wait(5)
        for d in mine:
            writer.submit(d)

    threads = [threading.Thread(target=submit_all, args=(mine,)) for mine in drafts]
    for t in threads:
        t.start()
    go.set()
    time.sleep(0.005)
    writer.close()
    for t in threads:
        t.join()
    stored = stored_ids(url) if (tmp_path / "ledger.db").exists() else []
    spooled = (
        [json.loads(line)["id"] for line in spool.read_text().splitlines()]
        if spool.exists()
        else []
    )
    expected = {d.id for mine in drafts for d in mine}
    assert len(stored) + len(spooled) == len(expected)
    assert set(stored) | set(spooled) == expected
