"""The journal: a receipt is in a local file before the answer that made it goes out.

Decides how a receipt survives the end of its process when no shutdown hook
runs. uvicorn, after its graceful shutdown, re-raises the SIGTERM it caught,
so the process ends by the signal: interpreter-exit hooks never run, and an
app without a lifespan shutdown (the app raised on the lifespan scope, or the
server runs with ``lifespan="off"``) is never told. What the writer thread had
not stored by then would be gone.

* :meth:`Journal.record` appends the draft as one JSON line to this
  writer's journal, ``<spool>.journal-<pid>-<random>``, in one ``write`` (no
  ``fsync``: the file outlives the process, SIGKILL included, though not a
  power cut). The process holds an exclusive ``flock`` on it while it lives.
* :meth:`Journal.clear` empties it once everything recorded is stored or
  spooled; :meth:`Journal.remove` deletes it at a clean close.
* :meth:`Journal.compact` bounds it under sustained load, when the writer never
  finds its queue empty: the drafts still waiting are written to a new journal,
  and only then is the old one deleted (a crash in between leaves both, and a
  receipt in both is stored once).
* :meth:`Journal.recover` (at start-up) moves the lines of every journal whose
  process is gone -- its ``flock`` is free -- into the spool, which the writer
  then replays (a torn line goes to ``<spool>.rejected``, as in a replay).
  Receipts both stored and recovered are stored once: the ledger skips ids
  it already holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from privguard.ledger.base import ReceiptDraft, draft_to_json
from privguard.ledger.spool import Spool

try:  # POSIX; elsewhere a journal is only recovered by the process that wrote it
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal"]

_log = logging.getLogger("privguard.ledger")


class Journal:
    """Drafts of this writer not yet stored or spooled, in ``<spool>.journal-<pid>-<random>``.

    The name is new for every writer and process (two writers of one ledger in
    one process, or a container's PID 1 after a restart, never share a file);
    which journals belong to ended processes is told by their free ``flock``.

    :param spool: the writer's spool; the journal lives beside it and is
        recovered into it. A spool in memory means no journal.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._path: Path | None = None
        self._dirty = False

    def _new_path(self, pid: int) -> Path:
        assert self.spool.path is not None
        name = f"{self.spool.path.name}.journal-{pid}-{secrets.token_hex(6)}"
        return self.spool.path.with_name(name)

    @property
    def path(self) -> Path | None:
        """This writer's journal file in this process, once it was opened."""
        return self._path if self._pid == os.getpid() else None

    def record(self, draft: ReceiptDraft) -> None:
        """Append ``draft`` (``OSError`` when the disk refuses it)."""
        if self.spool.path is None:
            return
        data = _lines([draft])
        with self._lock:
            _write_all(self._open(), data)
            self._dirty = True

    def clear(self) -> None:
        """Everything recorded is stored or spooled: empty the journal."""
        with self._lock:
            if self._dirty and self._fd is not None and self._pid == os.getpid():
                os.ftruncate(self._fd, 0)
                self._dirty = False

    def size(self) -> int:
        """Bytes in this process's journal now (0 when none is open)."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return 0
            return os.fstat(self._fd).st_size

    def compact(self, drafts: list[ReceiptDraft]) -> None:
        """Replace the journal by one holding just ``drafts`` (the ones not yet stored).

        The caller guarantees that every other draft recorded so far is stored or
        spooled, and that none is recorded meanwhile. The new file is written and
        locked before the old one is deleted, so a crash loses nothing.
        """
        if self.spool.path is None:
            return
        data = _lines(drafts)
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return
            old_fd, old_path = self._fd, self._path
            self._fd = None
            try:
                _write_all(self._open(), data)
                self._dirty = bool(drafts)
            except BaseException:
                if self._fd is None:  # the new file could not be opened: keep the old one
                    self._fd, self._path = old_fd, old_path
                    raise
                os.close(old_fd)  # partly written new file: keep both, both are recovered
                raise
            try:
                if old_path is not None:
                    old_path.unlink(missing_ok=True)
            finally:
                os.close(old_fd)

    def remove(self) -> None:
        """A clean close: delete this process's journal."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return
            fd, self._fd = self._fd, None
            try:
                if self._path is not None:
                    self._path.unlink(missing_ok=True)
            finally:
                os.close(fd)  # also releases the flock

    def _open(self) -> int:
        """This process's journal, opened and locked (caller holds ``_lock``)."""
        pid = os.getpid()
        if self._fd is not None and self._pid == pid:
            return self._fd
        if self._fd is not None:  # forked: the parent keeps its own journal and lock
            os.close(self._fd)
            self._fd = None
        assert self.spool.path is not None
        self.spool.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            path = self._new_path(pid)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_at(fd, path):
                break
            os.close(fd)  # another process recovered and removed it meanwhile: open anew
        self._fd, self._pid, self._path, self._dirty = fd, pid, path, False
        return fd

    def recover(self) -> int:
        """Move the journals of processes that are gone into the spool; returns how many drafts."""
        path = self.spool.path
        if path is None:
            return 0
        prefix = path.name + ".journal-"
        try:
            names = sorted(n for n in os.listdir(path.parent) if n.startswith(prefix))
        except OSError:
            return 0
        moved = 0
        for name in names:
            journal = path.parent / name
            if journal == self.path:
                continue  # our own, open
            try:
                fd = os.open(journal, os.O_RDWR)
            except OSError:
                continue  # recovered by another process meanwhile
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # its process is alive
                if not _is_at(fd, journal):
                    continue  # recovered and removed meanwhile
                moved += self._move_to_spool(fd, journal)
                journal.unlink(missing_ok=True)
            except OSError:
                _log.exception("privguard ledger: could not recover the journal %s", journal)
            finally:
                os.close(fd)
        return moved

    def _move_to_spool(self, fd: int, journal: Path) -> int:
        """Append the journal's drafts to the spool, then empty it (its flock is held)."""
        size = os.fstat(fd).st_size
        raw = os.pread(fd, size, 0).decode("utf-8", errors="replace") if size else ""
        moved = self.spool.absorb(raw) if raw else 0
        if moved:
            _log.warning(
                "privguard ledger: %d receipt(s) of a process that ended before storing them "
                "were recovered from %s into the spool",
                moved,
                journal,
            )
        os.ftruncate(fd, 0)
        return moved


def _lines(drafts: list[ReceiptDraft]) -> bytes:
    """``drafts`` as journal lines (one JSON object each)."""
    return "".join(draft_to_json(d) + "\n" for d in drafts).encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _is_at(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = path.stat()
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
