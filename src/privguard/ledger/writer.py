"""The writer the middleware holds: receipts leave the request at once and are never lost.

Decides when and where a receipt is written:

* :meth:`LedgerWriter.submit` only puts the draft on an in-memory queue; a
  background thread (started on first use, and again after a fork) stores
  queued drafts in batches, one transaction per batch.
* When the ledger cannot be reached (:class:`~privguard.errors.LedgerError`,
  or any other failure), the batch goes to the :class:`~.spool.Spool` file.
  From then on new receipts are spooled behind it, so the order holds, until
  a replay succeeds: on the next flush, on the next submit once
  ``retry_interval`` has passed since the last failed attempt, or periodically
  while idle. A failed ledger is closed and reopened for the next attempt.
* A receipt the spool cannot take either (disk full) stays in memory and is
  retried; each such failure is logged.
* Shutdown never loses a receipt: :meth:`LedgerWriter.close` waits up to its
  timeout for the thread to store what is queued; whatever is still queued or
  in flight then (a slow or locked database) is spooled by the caller, and the
  next start replays it (:meth:`LedgerWriter.start`). A receipt both stored
  and spooled is stored once: the ledger skips ids it already holds. Writers
  still open are closed the same way at interpreter exit (``atexit``) and by
  :func:`close_all` (the servers' worker-exit hooks, :mod:`privguard.gunicorn`).
* A process can also end with no hook at all (uvicorn re-raises the SIGTERM it
  handled, so an app without a lifespan shutdown is never told): every
  submitted receipt is first written to this process's
  :class:`~.journal.Journal`, which is emptied once the queue is stored or
  spooled; :meth:`LedgerWriter.recover` moves the journals of ended processes
  into the spool at the next start.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from privguard.ledger.base import Ledger, ReceiptDraft
from privguard.ledger.factory import ledger_kind, open_ledger
from privguard.ledger.journal import Journal
from privguard.ledger.spool import Spool
from privguard.ledger.sqlite import parse_sqlite_url

__all__ = ["LedgerWriter", "default_spool_path", "close_all", "SHUTDOWN_TIMEOUT"]

_log = logging.getLogger("privguard.ledger")

#: Seconds between replay attempts while the database is unreachable.
DEFAULT_RETRY_INTERVAL = 5.0
#: Most receipts stored in one transaction.
DEFAULT_BATCH_SIZE = 256
#: Seconds a shutdown waits for the database before spooling what is left.
SHUTDOWN_TIMEOUT = 5.0
#: Under sustained load the queue is never empty, so the journal is never emptied:
#: past this size it is rewritten with the drafts still waiting (``Journal.compact``).
JOURNAL_COMPACT_BYTES = 1 << 20

#: Every writer of this process that is open (for :func:`close_all`).
_OPEN: weakref.WeakSet[LedgerWriter] = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


def close_all(timeout: float = SHUTDOWN_TIMEOUT) -> int:
    """Close every open writer of this process (stored, else spooled); returns how many.

    For shutdown hooks that cannot reach the middleware: gunicorn's
    ``worker_exit`` (see :mod:`privguard.gunicorn`), mod_wsgi, a custom server.
    """
    with _OPEN_LOCK:
        writers = list(_OPEN)
    for writer in writers:
        writer.close(timeout)
    return len(writers)


@atexit.register
def _close_at_exit() -> None:
    close_all()


@dataclass(frozen=True, slots=True)
class _Flush:
    done: threading.Event


_STOP = object()
_QueueItem = ReceiptDraft | _Flush | object


def default_spool_path(ledger_url: str) -> Path | None:
    """Where a writer spools when no ``spool_path`` is given.

    Beside the SQLite file (``<db>-spool.jsonl``); in memory for ``:memory:``;
    for PostgreSQL ``privguard-ledger-spool-<url digest>.jsonl`` in the working
    directory, so writers for different databases never share a spool.
    """
    if ledger_kind(ledger_url) == "sqlite":
        path, _ = parse_sqlite_url(ledger_url)
        return None if path == ":memory:" else Path(path + "-spool.jsonl")
    digest = hashlib.sha256(ledger_url.encode("utf-8")).hexdigest()[:12]
    return Path(f"privguard-ledger-spool-{digest}.jsonl")


class LedgerWriter:
    """Stores receipts from a background thread; spools and replays on outages.

    :param ledger_url: the ledger to write to (see :func:`open_ledger`); its
        syntax is checked now (``ConfigError``), the database is opened later,
        in the writer thread.
    :param spool_path: the spool file; ``None`` picks :func:`default_spool_path`.
    :param retry_interval: seconds between replay attempts during an outage.
    :param batch_size: most receipts per transaction.
    :param opener: how to open the ledger (tests inject failures here).
    """

    def __init__(
        self,
        ledger_url: str,
        spool_path: str | os.PathLike[str] | None = None,
        *,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        opener: Callable[[str], Ledger] = open_ledger,
    ) -> None:
        ledger_kind(ledger_url)
        self.ledger_url = ledger_url
        self.spool = Spool(spool_path if spool_path is not None else default_spool_path(ledger_url))
        self.journal = Journal(self.spool)
        self.retry_interval = retry_interval
        self.batch_size = max(1, batch_size)
        self._opener = opener
        self._lock = threading.Lock()
        # held around "journal + queue" (submit) and "queue empty -> clear journal" (thread)
        self._journal_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_QueueItem] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        # writer-thread state (touched only by the thread)
        self._ledger: Ledger | None = None
        self._spooled = False
        self._held: list[ReceiptDraft] = []
        self._next_retry = 0.0
        # drafts the thread has taken off the queue and not yet stored or spooled
        self._inflight: list[ReceiptDraft] = []
        self._inflight_lock = threading.Lock()
        with _OPEN_LOCK:
            _OPEN.add(self)

    # -- caller side --------------------------------------------------------------

    def submit(self, draft: ReceiptDraft) -> None:
        """Journal and queue ``draft`` for storage. Never waits on the database, never raises.

        The journal line (one ``write``, no ``fsync``) is what keeps the
        receipt when the process ends before the writer stored it.
        """
        try:
            with self._journal_lock:
                if not self._closed:
                    self._record(draft)
                queued = self._put(draft)
            if queued:
                return
            _log.warning("privguard ledger writer is closed; spooling receipt %s", draft.id)
            self.spool.append((draft,))
        except Exception:  # never let the ledger break a request
            _log.exception("privguard ledger: could not queue receipt %s", draft.id)

    def _record(self, draft: ReceiptDraft) -> None:
        try:
            self.journal.record(draft)
        except OSError:  # the queue still takes it; only a crash could lose it now
            _log.exception("privguard ledger: could not journal receipt %s", draft.id)

    def recover(self) -> int:
        """Move receipts of ended processes from their journals into the spool (start-up)."""
        try:
            return self.journal.recover()
        except Exception:
            _log.exception("privguard ledger: could not recover journals")
            return 0

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is stored or spooled.

        Also retries the spool once, so after an outage ``flush`` is the way
        to say "the database is back". Returns ``False`` on timeout.
        """
        done = threading.Event()
        if not self._put(_Flush(done)):
            return True  # closed: close() already stored or spooled everything
        return done.wait(timeout)

    def start(self) -> None:
        """Start the writer thread now; it replays a pending spool at once.

        Called at start-up when the spool holds receipts from a previous run,
        so they reach the database without waiting for the next choice.
        """
        with self._lock:
            if not self._closed:
                self._ensure_thread()

    def close(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Store what is queued, waiting at most ``timeout`` seconds; spool the rest.

        Then the thread stops and the ledger closes. What the database did
        not take in time (it is slow, locked or down) is appended to the
        spool here, so it survives the process; the next start replays it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            ours = thread is not None and self._pid == os.getpid()
            if ours:
                self._queue.put(_STOP)  # behind everything queued before the close
        with _OPEN_LOCK:
            _OPEN.discard(self)
        if thread is None or not ours:
            self.journal.remove()  # nothing of this process is in it (the pid is checked)
            return
        thread.join(timeout)
        if not thread.is_alive() or self._spool_stranded(timeout):
            self.journal.remove()  # everything is stored or spooled

    def _spool_stranded(self, timeout: float) -> bool:
        """Spool what the thread has not stored yet (queued, in flight, held)."""
        stranded: list[ReceiptDraft] = []
        with self._inflight_lock:
            stranded.extend(self._inflight)
        stranded.extend(self._held)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, ReceiptDraft):
                stranded.append(item)
            elif isinstance(item, _Flush):
                item.done.set()
        if not stranded:
            return True
        unique = list({d.id: d for d in stranded}.values())  # first place of each id
        try:
            self.spool.append_now(unique)
        except Exception:
            _log.exception(
                "privguard ledger: %d receipt(s) not stored within %.1fs could not be spooled",
                len(unique),
                timeout,
            )
            return False
        _log.warning(
            "privguard ledger: %d receipt(s) not stored within %.1fs of shutdown were spooled "
            "to %s; the next start replays them",
            len(unique),
            timeout,
            self.spool,
        )
        return True

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, item: _QueueItem) -> bool:
        """Queue ``item`` for the writer thread (started if need be); ``False`` once closed."""
        with self._lock:
            if self._closed:
                return False
            self._ensure_thread()
            self._queue.put(item)
            return True

    def _ensure_thread(self) -> None:
        """Start the writer thread if it is not running (caller holds ``_lock``)."""
        pid = os.getpid()
        if self._pid != pid:  # forked: the parent's thread and queue are not ours
            self._pid = pid
            self._queue = queue.SimpleQueue()
            self._ledger = None
            self._thread = None
            self._inflight = []
            self._inflight_lock = threading.Lock()
            self._held = []
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="privguard-ledger-writer", daemon=True
            )
            self._thread.start()

    # -- writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        try:
            self._spooled = self.spool.pending()
        except OSError:
            self._spooled = True  # cannot tell: try a replay first
        if self._spooled:
            self._replay()  # receipts of a previous run (or another worker) go first
        try:
            while True:
                waiting = self._spooled or self._held
                try:
                    first = q.get(timeout=self.retry_interval) if waiting else q.get()
                except queue.Empty:
                    first = None
                batch, flushes, stop = (
                    self._drain(q, first) if first is not None else ([], [], False)
                )
                try:
                    self._store(batch, retry=first is None or bool(flushes) or stop)
                except Exception:  # a bug must not kill the thread and strand the queue
                    _log.exception("privguard ledger writer: unexpected error")
                    self._held = batch + self._held
                if not self._held:  # all taken so far is stored or spooled
                    with self._journal_lock:
                        if q.empty():
                            self._clear_journal()
                        elif self.journal.size() > JOURNAL_COMPACT_BYTES:
                            self._compact_journal(q)
                for flush in flushes:
                    flush.done.set()
                if stop:
                    return
        finally:
            ledger, self._ledger = self._ledger, None
            if ledger is not None:
                try:
                    ledger.close()
                except Exception:
                    _log.exception("privguard ledger: error while closing")

    def _compact_journal(self, q: queue.SimpleQueue[_QueueItem]) -> None:
        """The journal := the drafts still queued (caller holds ``_journal_lock``).

        Everything taken from the queue before is stored or spooled, and no submit
        can record or queue meanwhile; the queue is emptied and refilled in order.
        """
        items: list[_QueueItem] = []
        while True:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        try:
            self.journal.compact([i for i in items if isinstance(i, ReceiptDraft)])
        except OSError:
            _log.exception("privguard ledger: could not compact the journal")
        finally:
            for item in items:
                q.put(item)

    def _clear_journal(self) -> None:
        try:
            self.journal.clear()
        except OSError:
            _log.exception("privguard ledger: could not empty the journal")

    def _drain(
        self, q: queue.SimpleQueue[_QueueItem], first: _QueueItem
    ) -> tuple[list[ReceiptDraft], list[_Flush], bool]:
        batch: list[ReceiptDraft] = []
        flushes: list[_Flush] = []
        stop = False
        item: _QueueItem | None = first
        while item is not None:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Flush):
                flushes.append(item)
            elif isinstance(item, ReceiptDraft):
                batch.append(item)
            if stop or len(batch) >= self.batch_size * 4:
                break
            try:
                item = q.get_nowait()
            except queue.Empty:
                item = None
        return batch, flushes, stop

    def _store(self, batch: list[ReceiptDraft], *, retry: bool) -> None:
        """Store ``batch`` (after the spool and held receipts), or spool it."""
        if self._held:
            batch, self._held = self._held + batch, []
        self._track(batch)
        try:
            if self._spooled and (retry or time.monotonic() >= self._next_retry):
                self._replay()
            if not batch:
                return
            if not self._spooled:
                try:
                    ledger = self._open()
                    while batch:  # on failure, ``batch`` is what is not stored yet
                        ledger.append_many(batch[: self.batch_size])
                        batch = batch[self.batch_size :]
                        self._track(batch)
                    return
                except Exception as exc:
                    self._failed(exc)
            self._spool(batch)
        finally:
            self._track(self._held)

    def _track(self, batch: list[ReceiptDraft]) -> None:
        """Note what the thread holds and has not stored or spooled yet."""
        with self._inflight_lock:
            self._inflight = list(batch)

    def _open(self) -> Ledger:
        if self._ledger is None:
            self._ledger = self._opener(self.ledger_url)
        return self._ledger

    def _replay(self) -> None:
        try:
            ledger = self._open()
            count = self.spool.replay(ledger.append_many, self.batch_size)
        except Exception as exc:
            self._failed(exc)
            return
        self._spooled = False
        if count:
            _log.info("privguard ledger: replayed %d spooled receipt(s)", count)

    def _failed(self, exc: BaseException) -> None:
        if not self._spooled:
            _log.warning("privguard ledger unavailable, spooling receipts: %s", exc)
        self._spooled = True
        self._next_retry = time.monotonic() + self.retry_interval
        # Start afresh next time: a new pool connects at once instead of
        # waiting out the old pool's reconnect back-off.
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            try:
                ledger.close()
            except Exception:
                _log.debug("privguard ledger: error closing a failed ledger", exc_info=True)

    def _spool(self, batch: list[ReceiptDraft]) -> None:
        try:
            self.spool.append(batch)
        except Exception:
            _log.exception(
                "privguard ledger: cannot spool %d receipt(s); holding them in memory", len(batch)
            )
            self._held = batch + self._held
            self._next_retry = time.monotonic() + self.retry_interval

    def __repr__(self) -> str:
        kind = ledger_kind(self.ledger_url)
        return f"LedgerWriter(<{kind} ledger>, spool={self.spool!r})"
