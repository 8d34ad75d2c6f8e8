"""The ledger across processes and at shutdown.

Separate processes (``spawn``, not threads) append to one PostgreSQL ledger and
to one SQLite file (WAL, busy timeout): one chain that verifies, every receipt
once. A spool left by a run whose database was down is replayed exactly once by
whichever of several starting workers comes first. A shutdown that cannot
reach the database in time spools what is queued or in flight, without waiting
for a spool another process holds.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from privguard.ledger import Ledger, LedgerWriter, ReceiptDraft, open_ledger
from privguard.ledger import writer as writer_module
from privguard.ledger.spool import Spool
from privguard.ledger.writer import close_all
from tests.ledger.conftest import make_draft

Draft = Callable[..., ReceiptDraft]
PROCESSES = 4
PER_PROCESS = 150


def _append_from_a_process(url: str, worker: int, start: multiprocessing.Event) -> None:
    start.wait(30)
    with LedgerWriter(url, spool_path=f"/nonexistent-{worker}/spool", batch_size=7) as writer:
        for n in range(PER_PROCESS):
            writer.submit(make_draft(worker * 1000 + n))
            if n % 20 == 0:
                writer.flush(30)  # many small transactions, interleaved with the others
        assert writer.flush(60)


def _run_processes(target: Callable[..., None], args: Sequence[tuple[object, ...]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*a, start)) for a in args]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_separate_processes_keep_one_chain(ledger_url: str) -> None:
    open_ledger(ledger_url).close()
    _run_processes(_append_from_a_process, [(ledger_url, w) for w in range(PROCESSES)])
    with open_ledger(ledger_url) as ledger:
        receipts = list(ledger.iter_receipts())
        result = ledger.verify()
    assert result.ok, result
    assert len(receipts) == len({r.id for r in receipts}) == PROCESSES * PER_PROCESS
    assert [r.seq for r in receipts] == list(range(1, len(receipts) + 1))
    # each process's receipts keep their own order inside the one chain
    for worker in range(PROCESSES):
        mine = [int(r.id[1:6]) for r in receipts if int(r.id[1:6]) // 1000 == worker]
        assert mine == sorted(mine) and len(mine) == PER_PROCESS


def _replay_on_start(url: str, spool: str, start: multiprocessing.Event) -> None:
    start.wait(30)
    writer = LedgerWriter(url, spool_path=spool)
    writer.start()  # what every worker does at start-up
    assert writer.flush(60)
    writer.close()


def test_spool_is_replayed_exactly_once_by_whichever_worker_comes_first(
    ledger_url: str, tmp_path: Path
) -> None:
    spool_path = tmp_path / "spool.jsonl"
    drafts = [make_draft(n) for n in range(400)]
    spool = Spool(spool_path)
    spool.append(drafts[:300])
    spool._write_side_file(drafts[300:])  # a shutdown that found the spool busy
    _run_processes(_replay_on_start, [(ledger_url, str(spool_path))] * PROCESSES)
    with open_ledger(ledger_url) as ledger:
        ids = [r.id for r in ledger.iter_receipts()]
        assert ledger.verify().ok
    assert ids == [d.id for d in drafts]
    assert not spool.pending()


class _Stuck:
    """A ledger whose database never answers (a table locked by someone else)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def open(self, url: str) -> Ledger:
        stuck = self

        class Ledgerish:
            def append_many(self, drafts: Sequence[ReceiptDraft]) -> list[object]:
                stuck.entered.set()
                stuck.release.wait(30)
                raise RuntimeError("gave up")

            def close(self) -> None:
                pass

        return Ledgerish()  # type: ignore[return-value]


def test_close_spools_what_a_stuck_database_did_not_take(tmp_path: Path, draft: Draft) -> None:
    stuck = _Stuck()
    spool_path = tmp_path / "spool.jsonl"
    writer = LedgerWriter("sqlite:///unused.db", spool_path, opener=stuck.open)
    drafts = [draft(n) for n in range(50)]
    writer.submit(drafts[0])
    assert stuck.entered.wait(10)  # the first one is in flight, the rest queue up
    for d in drafts[1:]:
        writer.submit(d)
    started = time.monotonic()
    writer.close(0.5)
    assert time.monotonic() - started < 3
    stuck.release.set()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as ledger:
        Spool(spool_path).replay(ledger.append_many)
        assert sorted(r.id for r in ledger.iter_receipts()) == sorted(d.id for d in drafts)


def test_shutdown_does_not_wait_for_a_spool_another_process_replays(
    tmp_path: Path, draft: Draft
) -> None:
    spool_path = tmp_path / "spool.jsonl"
    other = Spool(spool_path)
    held = threading.Event()
    done = threading.Event()

    def replaying() -> None:
        with other._locked_file():  # the flock another worker's replay holds
            held.set()
            done.wait(30)

    thread = threading.Thread(target=replaying)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        Spool(spool_path).append_now([draft(1), draft(2)], wait=0.2)
        assert time.monotonic() - started < 2
        assert len(list(tmp_path.glob("spool.jsonl.*.part"))) == 1
    finally:
        done.set()
        thread.join()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as ledger:
        assert Spool(spool_path).replay(ledger.append_many) == 2
        assert Spool(spool_path).replay(ledger.append_many) == 0
        assert len(list(ledger.iter_receipts())) == 2
    assert not list(tmp_path.glob("spool.jsonl.*"))


def test_close_all_is_what_the_gunicorn_hooks_call(tmp_path: Path, draft: Draft) -> None:
    from privguard import gunicorn

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, tmp_path / "spool.jsonl")
    writer.submit(draft(1))
    gunicorn.worker_exit(None, None)
    with open_ledger(url) as ledger:
        assert len(list(ledger.iter_receipts())) == 1
    assert writer not in writer_module._OPEN  # a closed writer leaves the registry
    assert close_all() >= 0


@pytest.mark.parametrize("hook", ["worker_int", "worker_abort"])
def test_other_gunicorn_hooks_flush_too(tmp_path: Path, draft: Draft, hook: str) -> None:
    from privguard import gunicorn

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, tmp_path / "spool.jsonl")
    writer.submit(draft(1))
    getattr(gunicorn, hook)(None)
    with open_ledger(url) as ledger:
        assert len(list(ledger.iter_receipts())) == 1
