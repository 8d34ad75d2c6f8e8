"""The local spool: where receipts wait, durably, while the ledger database is down.

Decides how a receipt survives an outage:

* The spool is an append-only JSON-lines file (one :class:`ReceiptDraft` per
  line, mode 0600). Each append is written in one ``write`` and ``fsync``-ed
  before it returns, so a receipt is on disk before the writer moves on.
* Appends and replays take an exclusive ``flock`` on the file, so several
  processes may share one spool without losing lines.
* :meth:`Spool.replay` stores the lines in file order and empties the file only
  after every line was stored. A replay cut short is simply repeated: the
  ledger skips receipt ids it already holds, so nothing is stored twice.
* A line that cannot be parsed (a write torn by a crash) is moved to
  ``<spool>.rejected`` and logged, never silently dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from privguard.ledger.base import ReceiptDraft, draft_from_json, draft_to_json

try:  # POSIX; elsewhere one process per spool is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool"]

_log = logging.getLogger("privguard.ledger")


class Spool:
    """Drafts waiting for the database, in order.

    :param path: the spool file; ``None`` keeps the spool in memory (for
        ``sqlite:///:memory:`` ledgers, which cannot outlive the process anyway).
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: list[str] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[int]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # also releases the flock

    def append(self, drafts: Sequence[ReceiptDraft]) -> None:
        """Add ``drafts`` at the end of the spool, durably (``OSError`` if the disk refuses)."""
        if not drafts:
            return
        lines = "".join(draft_to_json(d) + "\n" for d in drafts)
        with self._lock:
            if self.path is None:
                self._memory.extend(lines.splitlines())
                return
            with self._locked_file() as fd:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    lines = "\n" + lines  # never glue a line onto a torn one
                data = lines.encode("utf-8")
                while data:
                    written = os.write(fd, data)
                    data = data[written:]
                os.fsync(fd)

    def pending(self) -> bool:
        """Whether anything waits in the spool."""
        with self._lock:
            if self.path is None:
                return bool(self._memory)
            try:
                return self.path.stat().st_size > 0
            except (FileNotFoundError, NotADirectoryError):
                return False

    def replay(self, store: Callable[[Sequence[ReceiptDraft]], object], batch: int = 500) -> int:
        """Hand every spooled draft to ``store`` in order, then empty the spool.

        ``store`` raising leaves the spool as it was (and the exception
        propagates); lines already stored are skipped by the ledger next time.
        Returns how many drafts were handed over.
        """
        with self._lock:
            if self.path is None:
                drafts = [draft_from_json(line) for line in self._memory]
                self._store_all(drafts, store, batch)
                self._memory.clear()
                return len(drafts)
            if not self.path.exists():
                return 0
            with self._locked_file() as fd:
                raw = _read_all(fd)
                drafts, rejected = _parse(raw)
                self._store_all(drafts, store, batch)
                if rejected:
                    self._reject(rejected)
                os.ftruncate(fd, 0)
                os.fsync(fd)
            return len(drafts)

    @staticmethod
    def _store_all(
        drafts: list[ReceiptDraft], store: Callable[[Sequence[ReceiptDraft]], object], batch: int
    ) -> None:
        for start in range(0, len(drafts), batch):
            store(drafts[start : start + batch])

    def _reject(self, lines: list[str]) -> None:
        assert self.path is not None
        target = self.path.with_name(self.path.name + ".rejected")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        _log.error("privguard ledger spool: %d unreadable line(s) moved to %s", len(lines), target)

    def __repr__(self) -> str:
        return f"Spool({str(self.path) if self.path else ':memory:'!r})"


def _read_all(fd: int) -> str:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _parse(raw: str) -> tuple[list[ReceiptDraft], list[str]]:
    drafts: list[ReceiptDraft] = []
    rejected: list[str] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            drafts.append(draft_from_json(line))
        except (ValueError, TypeError, KeyError):
            rejected.append(line)
    return drafts, rejected
