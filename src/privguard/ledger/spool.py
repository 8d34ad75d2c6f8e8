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
* At shutdown, when the spool is busy (another thread or worker is replaying
  it into a slow database), :meth:`Spool.append_now` does not wait: it writes
  a side file ``<spool>.<pid>-<n>.part`` (complete or absent: written under a
  temporary name, ``fsync``-ed, renamed). A replay stores side files after
  the spool and removes each one it stored.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
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
        self._parts = itertools.count()

    def _side_files(self) -> list[Path]:
        assert self.path is not None
        folder = self.path.parent
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        prefix = self.path.name + "."
        return sorted(
            (folder / n for n in names if n.startswith(prefix) and n.endswith(".part")),
            key=lambda p: (p.stat().st_mtime, p.name),
        )

    def append_now(self, drafts: Sequence[ReceiptDraft], wait: float = 0.5) -> None:
        """Like :meth:`append`, but never waits long for the spool's lock (shutdown).

        Waits at most ``wait`` seconds; when a replay holds the spool, the
        drafts go to a side file that the next replay picks up.
        """
        if not drafts:
            return
        if self.path is None:
            if self._lock.acquire(timeout=wait):
                try:
                    self._memory.extend(draft_to_json(d) for d in drafts)
                finally:
                    self._lock.release()
            return
        deadline = time.monotonic() + wait
        if self._lock.acquire(timeout=wait):
            try:
                fd = self._try_flock(deadline)
                if fd is not None:
                    try:
                        self._write(fd, drafts)
                    finally:
                        os.close(fd)
                    return
            finally:
                self._lock.release()
        self._write_side_file(drafts)

    def _try_flock(self, deadline: float) -> int | None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if fcntl is None:
            return fd
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.02)

    def _write_side_file(self, drafts: Sequence[ReceiptDraft]) -> None:
        assert self.path is not None
        name = f"{self.path.name}.{os.getpid()}-{time.time_ns()}-{next(self._parts)}"
        tmp = self.path.parent / (name + ".tmp")
        data = "".join(draft_to_json(d) + "\n" for d in drafts).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path.parent / (name + ".part"))

    @staticmethod
    def _write(fd: int, drafts: Sequence[ReceiptDraft]) -> None:
        lines = "".join(draft_to_json(d) + "\n" for d in drafts)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            lines = "\n" + lines  # never glue a line onto a torn one
        data = lines.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)

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
                self._write(fd, drafts)

    def absorb(self, raw: str) -> int:
        """Append the drafts of ``raw`` (JSON lines of another file); returns how many.

        A line that cannot be parsed goes to ``<spool>.rejected``, as in a replay.
        """
        drafts, rejected = _parse(raw)
        unique = list({d.id: d for d in drafts}.values())  # first place of each id
        self.append(unique)
        if rejected and self.path is not None:
            self._reject(rejected)
        return len(unique)

    def pending(self) -> bool:
        """Whether anything waits in the spool."""
        with self._lock:
            if self.path is None:
                return bool(self._memory)
            try:
                if self.path.stat().st_size > 0:
                    return True
            except (FileNotFoundError, NotADirectoryError):
                pass
            return bool(self._side_files())

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
            if not self.path.exists() and not self._side_files():
                return 0
            with self._locked_file() as fd:
                raw = _read_all(fd)
                drafts, rejected = _parse(raw)
                self._store_all(drafts, store, batch)
                if rejected:
                    self._reject(rejected)
                os.ftruncate(fd, 0)
                os.fsync(fd)
                count = len(drafts)
                for side in self._side_files():  # under the spool's lock: one replayer
                    try:
                        text = side.read_bytes().decode("utf-8", errors="replace")
                    except FileNotFoundError:
                        continue
                    drafts, rejected = _parse(text)
                    self._store_all(drafts, store, batch)
                    if rejected:
                        self._reject(rejected)
                    side.unlink(missing_ok=True)
                    count += len(drafts)
            return count

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
