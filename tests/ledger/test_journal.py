"""The journal keeps what a process had not stored when it ended; live journals are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from privguard.ledger import LedgerWriter, open_ledger
from privguard.ledger import writer as writer_module
from privguard.ledger.base import draft_to_json
from privguard.ledger.journal import Journal
from privguard.ledger.spool import Spool
from tests.ledger.conftest import make_draft


def ids_in(spool: Spool) -> list[str]:
    got: list[str] = []
    spool.replay(lambda drafts: got.extend(d.id for d in drafts))
    return got


def test_a_journal_of_an_ended_process_is_moved_into_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ledger.db-spool.jsonl")
    drafts = [make_draft(n) for n in range(3)]
    lines = [draft_to_json(d) for d in drafts]
    script = textwrap.dedent(
        f"""
        import os
        from privguard.ledger.journal import Journal
        from privguard.ledger.spool import Spool
        from privguard.ledger.base import draft_from_json
        journal = Journal(Spool({str(spool.path)!r}))
        for line in {lines!r}:
            journal.record(draft_from_json(line))
        os._exit(0)  # no clean close, as after a signal
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ})
    assert len(list(tmp_path.glob("*.journal-*"))) == 1
    assert Journal(spool).recover() == 3
    assert not list(tmp_path.glob("*.journal-*"))
    assert ids_in(spool) == [d.id for d in drafts]


def test_a_live_process_keeps_its_journal(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ledger.db-spool.jsonl")
    script = textwrap.dedent(
        f"""
        import sys
        from privguard.ledger.journal import Journal
        from privguard.ledger.spool import Spool
        from tests.ledger.conftest import make_draft
        journal = Journal(Spool({str(spool.path)!r}))
        journal.record(make_draft(1))
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        assert Journal(spool).recover() == 0  # its flock is held: the process is alive
        assert len(list(tmp_path.glob("*.journal-*"))) == 1
        assert not spool.pending()
    finally:
        proc.communicate(b"\n", timeout=30)


def test_the_writer_empties_its_journal_once_stored_and_removes_it_at_close(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url)
    drafts = [make_draft(n) for n in range(10)]
    for draft in drafts:
        writer.submit(draft)
    journal_path = writer.journal.path
    assert journal_path is not None
    assert writer.flush(10)
    assert journal_path.stat().st_size == 0  # stored: nothing left to recover
    writer.close()
    assert not journal_path.exists()
    with open_ledger(url) as ledger:
        assert [r.id for r in ledger.iter_receipts()] == [d.id for d in drafts]


def test_two_writers_of_one_ledger_in_one_process_keep_their_own_journals(
    tmp_path: Path,
) -> None:
    """Two apps behind privguard sharing a ledger: neither waits on the other's lock."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = LedgerWriter(url), LedgerWriter(url)
    try:
        first.submit(make_draft(1))
        second.submit(make_draft(2))  # would wait forever on the first's flock if shared
        assert first.journal.path is not None and second.journal.path is not None
        assert first.journal.path != second.journal.path
        assert first.recover() == 0  # the other one is alive (its flock is held)
    finally:
        first.close()
        second.close()
    assert not list(tmp_path.glob("*.journal-*"))
    with open_ledger(url) as ledger:
        assert len(list(ledger.iter_receipts())) == 2


def test_a_stale_journal_with_our_pid_is_recovered(tmp_path: Path) -> None:
    """A container's PID 1 after a restart finds its predecessor's journal under its pid."""
    spool = Spool(tmp_path / "ledger.db-spool.jsonl")
    old = make_draft(1)
    stale = tmp_path / f"ledger.db-spool.jsonl.journal-{os.getpid()}-0123456789ab"
    stale.write_text(draft_to_json(old) + "\n")
    assert Journal(spool).recover() == 1
    assert ids_in(spool) == [old.id]


def test_a_torn_journal_line_is_set_aside_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ledger.db-spool.jsonl")
    kept = make_draft(1)
    journal = tmp_path / "ledger.db-spool.jsonl.journal-999999999"
    journal.write_text(draft_to_json(kept) + '\n{"id": "torn-by-a-cra')
    assert Journal(spool).recover() == 1
    assert ids_in(spool) == [kept.id]
    rejected = tmp_path / "ledger.db-spool.jsonl.rejected"
    assert rejected.read_text() == '{"id": "torn-by-a-cra\n'


def _journal_ids(path: Path) -> list[str]:
    from privguard.ledger.base import draft_from_json

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [draft_from_json(line).id for line in text.splitlines() if line]


def test_under_sustained_load_the_journal_holds_only_what_is_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue never empties (a slow database), so the journal is compacted, not emptied.

    Every draft not yet stored stays in some journal file of this process, and once
    a stored batch leaves the journal over the limit, the file holds exactly the
    drafts still queued.
    """
    monkeypatch.setattr(writer_module, "JOURNAL_COMPACT_BYTES", 2_000)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    gate = threading.Semaphore(0)  # one batch stored per release
    at_gate = threading.Event()

    def gated(ledger_url: str) -> Any:
        ledger = open_ledger(ledger_url)
        append_many = ledger.append_many

        def slow(drafts: Any) -> Any:
            at_gate.set()
            gate.acquire()
            return append_many(drafts)

        ledger.append_many = slow  # type: ignore[method-assign]
        return ledger

    writer = LedgerWriter(url, batch_size=10, opener=gated)
    drafts = [make_draft(n) for n in range(60)]
    try:
        writer.submit(drafts[0])  # the thread takes it alone and waits at the gate
        assert at_gate.wait(10)
        deadline = time.monotonic() + 10
        for draft in drafts[1:]:
            writer.submit(draft)
        path = writer.journal.path
        assert path is not None and len(_journal_ids(path)) == 60
        gate.release()  # stores drafts[0]; 59 wait, the journal is over the limit
        waiting = [d.id for d in drafts[1:]]
        while _journal_ids(path) != waiting and time.monotonic() < deadline:
            time.sleep(0.01)
            path = writer.journal.path or path
        assert _journal_ids(path) == waiting
        assert len(list(tmp_path.glob("*.journal-*"))) == 1  # the old file is gone
        for _ in range(10):
            gate.release()
        assert writer.flush(10)
        path = writer.journal.path
        assert path is not None and path.stat().st_size == 0
    finally:
        for _ in range(20):
            gate.release()
        writer.close()
    with open_ledger(url) as ledger:
        assert [r.id for r in ledger.iter_receipts()] == [d.id for d in drafts]


def test_a_compacted_journal_of_an_ended_process_is_recovered(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ledger.db-spool.jsonl")
    script = textwrap.dedent(
        f"""
        import os
        from privguard.ledger.journal import Journal
        from privguard.ledger.spool import Spool
        from tests.ledger.conftest import make_draft
        journal = Journal(Spool({str(spool.path)!r}))
        drafts = [make_draft(n) for n in range(5)]
        for draft in drafts:
            journal.record(draft)
        old = journal.path
        journal.compact(drafts[3:])  # the first three were stored meanwhile
        assert not old.exists() and journal.path.exists()
        os._exit(0)  # no clean close, as after a signal
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ})
    assert len(list(tmp_path.glob("*.journal-*"))) == 1
    assert Journal(spool).recover() == 2
    assert [i.split("-", 1)[0] for i in ids_in(spool)] == ["r00003", "r00004"]
