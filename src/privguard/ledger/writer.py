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
"""

from __future__ import annotations

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

from privguard.ledger.base import Ledger, ReceiptDraft, ledger_kind, open_ledger
from privguard.ledger.spool import Spool
from privguard.ledger.sqlite import parse_sqlite_url

__all__ = ["LedgerWriter", "default_spool_path"]

_log = logging.getLogger("privguard.ledger")

#: Seconds between replay attempts while the database is unreachable.
DEFAULT_RETRY_INTERVAL = 5.0
#: Most receipts stored in one transaction.
DEFAULT_BATCH_SIZE = 256


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


def _shutdown(q: queue.SimpleQueue[_QueueItem], thread: threading.Thread, timeout: float) -> None:
    """Stop a writer thread (used by ``close`` and at interpreter exit)."""
    if thread.is_alive():
        q.put(_STOP)
        thread.join(timeout)


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
        self.retry_interval = retry_interval
        self.batch_size = max(1, batch_size)
        self._opener = opener
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_QueueItem] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._finalizer: weakref.finalize[..., LedgerWriter] | None = None
        self._closed = False
        # writer-thread state (touched only by the thread)
        self._ledger: Ledger | None = None
        self._spooled = False
        self._held: list[ReceiptDraft] = []
        self._next_retry = 0.0

    # -- caller side --------------------------------------------------------------

    def submit(self, draft: ReceiptDraft) -> None:
        """Queue ``draft`` for storage. Never blocks on I/O, never raises."""
        try:
            if self._put(draft):
                return
            _log.warning("privguard ledger writer is closed; spooling receipt %s", draft.id)
            self.spool.append((draft,))
        except Exception:  # never let the ledger break a request
            _log.exception("privguard ledger: could not queue receipt %s", draft.id)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is stored or spooled.

        Also retries the spool once, so after an outage ``flush`` is the way
        to say "the database is back". Returns ``False`` on timeout.
        """
        done = threading.Event()
        if not self._put(_Flush(done)):
            return True  # closed: close() already stored or spooled everything
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Store or spool what is queued, stop the thread and close the ledger."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            finalizer, thread = self._finalizer, self._thread
            if thread is not None and self._pid == os.getpid():
                self._queue.put(_STOP)  # behind everything queued before the close
        if finalizer is not None:
            finalizer.detach()
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout)
            if thread.is_alive():
                _log.warning("privguard ledger writer did not stop within %.1fs", timeout)

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, item: _QueueItem) -> bool:
        """Queue ``item`` for the writer thread (started if need be); ``False`` once closed."""
        with self._lock:
            if self._closed:
                return False
            pid = os.getpid()
            if self._pid != pid:  # forked: the parent's thread and queue are not ours
                self._pid = pid
                self._queue = queue.SimpleQueue()
                self._ledger = None
                self._thread = None
                self._finalizer = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="privguard-ledger-writer", daemon=True
                )
                self._thread.start()
                self._finalizer = weakref.finalize(self, _shutdown, self._queue, self._thread, 10.0)
            self._queue.put(item)
            return True

    # -- writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        try:
            self._spooled = self.spool.pending()
        except OSError:
            self._spooled = True  # cannot tell: try a replay first
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
                return
            except Exception as exc:
                self._failed(exc)
        self._spool(batch)

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
