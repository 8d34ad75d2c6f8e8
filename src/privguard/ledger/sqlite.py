"""The embedded consent ledger: one SQLite file, WAL, one connection per thread.

Decides how receipts live in SQLite:

* URL form ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
  ``sqlite:///:memory:``; optional ``?timeout=SECONDS`` (how long a writer
  waits for the file lock before the append fails with
  :class:`~privguard.errors.LedgerError` and the receipt is spooled; default 5).
* Schema version in ``PRAGMA user_version``; a newer file is refused. Version
  2 adds the chain key's fingerprint, ``keyed_from`` and the head signature
  to ``privguard_ledger_head``; a version 1 file is upgraded when the app
  opens it (``create=True``) and read as it is by the CLI.
* Appends are serialised across threads *and* processes with
  ``BEGIN IMMEDIATE``: the chain head is read and advanced inside the write
  lock, so concurrent writers keep one chain. ``synchronous=FULL``: a receipt
  is proof, it must survive a power cut once ``append`` has returned.
* ``:memory:`` ledgers (tests, demos) share one connection behind a lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from privguard.errors import ConfigError, LedgerError
from privguard.ledger.base import (
    COLUMNS,
    GENESIS_HASH,
    ChainHead,
    ChainLedger,
    Checkpoint,
    LedgerKey,
    Receipt,
    ReceiptDraft,
    VerifyResult,
    check_cutoff,
    format_ts,
    head_columns,
    make_receipt,
    read_head,
    receipt_from_row,
    receipt_to_row,
    redact_url,
    seal_head,
    verify_chain,
)

__all__ = ["SCHEMA_VERSION", "SQLiteLedger", "parse_sqlite_url"]

#: Version written to ``PRAGMA user_version``.
SCHEMA_VERSION = 2
#: version 1 -> 2: the head learns its key and signature
_UPGRADE_1 = (
    "ALTER TABLE privguard_ledger_head ADD COLUMN keyed_from INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE privguard_ledger_head ADD COLUMN key_id TEXT",
    "ALTER TABLE privguard_ledger_head ADD COLUMN mac TEXT",
)
_DEFAULT_TIMEOUT = 5.0

_SCHEMA = (
    """
    CREATE TABLE privguard_receipts (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        granted TEXT NOT NULL,
        denied TEXT NOT NULL,
        method TEXT NOT NULL,
        regime TEXT NOT NULL,
        country TEXT,
        gpc INTEGER NOT NULL,
        dnt INTEGER NOT NULL,
        ip TEXT,
        ua_family TEXT,
        age_status TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    "CREATE INDEX privguard_receipts_ts ON privguard_receipts (ts)",
    """
    CREATE TABLE privguard_ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        anchor_seq INTEGER NOT NULL,
        anchor_hash TEXT NOT NULL,
        purged INTEGER NOT NULL,
        keyed_from INTEGER NOT NULL DEFAULT 0,
        key_id TEXT,
        mac TEXT
    )
    """,
    "INSERT INTO privguard_ledger_head (id, seq, hash, anchor_seq, anchor_hash, purged) "
    "VALUES (1, 0, ?, 0, ?, 0)",
)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM privguard_receipts"
_INSERT = (
    f"INSERT INTO privguard_receipts ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)


def parse_sqlite_url(url: str) -> tuple[str, float]:
    """``(path, timeout)`` from a ``sqlite:///…`` URL; ``ConfigError(option="ledger")`` if bad."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise ConfigError("ledger", f"{redact_url(url)!r} is not a sqlite:///path URL")
    path = parts.path[1:]
    if not path:
        raise ConfigError("ledger", f"{redact_url(url)!r} names no database file")
    timeout = _DEFAULT_TIMEOUT
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key != "timeout":
            raise ConfigError("ledger", f"unknown sqlite URL parameter {key!r} (valid: timeout)")
        try:
            timeout = float(values[-1])
        except ValueError:
            raise ConfigError("ledger", f"timeout {values[-1]!r} is not a number") from None
        if not 0 <= timeout <= 600:
            raise ConfigError("ledger", "timeout must be between 0 and 600 seconds")
    return path, timeout


class _ThreadConnection:
    """One thread's connection; closed with the ledger, or when its thread ends."""

    __slots__ = ("conn", "__weakref__")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __del__(self) -> None:  # the thread-local slot is dropped when the thread exits
        self.close()


class SQLiteLedger(ChainLedger):
    """A :class:`~privguard.ledger.base.Ledger` in one SQLite file.

    :param url: ``sqlite:///path.db`` (see the module docstring).
    :param create: create the file and schema when missing; with ``False`` a
        missing file raises :class:`LedgerError` (the CLI reads, it never creates,
        upgrades or keys).
    :param keys: the chain keys; with ``create`` an unkeyed ledger is keyed
        with the first from its next receipt.
    """

    def __init__(self, url: str, *, create: bool = True, keys: Sequence[LedgerKey] = ()) -> None:
        self.url = url
        self._keys = tuple(keys)
        self._schema = SCHEMA_VERSION
        self.path, self.timeout = parse_sqlite_url(url)
        self._memory = self.path == ":memory:"
        self._lock = threading.RLock()  # guards the bookkeeping (and the memory connection)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []  # the :memory: one
        self._holders: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._closed = False
        if not self._memory and not create and not Path(self.path).is_file():
            raise LedgerError(f"no ledger database at {self.path}")
        try:
            with self._connection() as conn:
                self._ensure_schema(conn, create)
            if create and self._keys:
                with self._transaction("BEGIN IMMEDIATE") as conn:
                    keyed = self._keyed_head(self._head(conn))
                    if keyed is not None:
                        self._write_head(conn, keyed)
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self._memory:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        if self._memory:
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (the shared one, locked, for ``:memory:``)."""
        with self._lock:
            if self._closed:
                raise LedgerError("ledger is closed")
            if self._memory:
                conn = self._connections[0] if self._connections else self._connect()
            else:
                holder: _ThreadConnection | None = getattr(self._local, "holder", None)
                if holder is None:
                    holder = self._local.holder = _ThreadConnection(self._connect())
                    self._holders.add(holder)
                conn = holder.conn
        if self._memory:
            with self._lock:
                yield conn
        else:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            try:
                conn.execute(begin)
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path} is unavailable: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise LedgerError(f"ledger {self.path} failed: {exc}") from exc
                raise

    def _ensure_schema(self, conn: sqlite3.Connection, create: bool) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            if version == 0 and not create:
                raise LedgerError(f"{self.path} holds no privguard ledger")
            if version == 1 and not create:
                self._schema = 1  # read as it is; the app upgrades it
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    for statement in _SCHEMA:
                        params = (GENESIS_HASH, GENESIS_HASH) if "?" in statement else ()
                        conn.execute(statement, params)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                elif version == 1:
                    for statement in _UPGRADE_1:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot prepare ledger {self.path}: {exc}") from exc
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema version {version}; "
                f"this privguard understands up to {SCHEMA_VERSION}"
            )

    # -- chain -------------------------------------------------------------------------

    def _head(self, conn: sqlite3.Connection) -> ChainHead:
        columns = head_columns(self._schema)
        return read_head(
            conn.execute(f"SELECT {', '.join(columns)} FROM privguard_ledger_head").fetchone()
        )

    def _write_head(self, conn: sqlite3.Connection, head: ChainHead) -> None:
        columns = head_columns(self._schema)
        conn.execute(
            f"UPDATE privguard_ledger_head SET {', '.join(f'{c} = ?' for c in columns)} "
            "WHERE id = 1",
            tuple(getattr(head, c) for c in columns),
        )

    def head(self) -> ChainHead:
        """The current chain head and purge anchor."""
        with self._transaction("BEGIN") as conn:
            return self._head(conn)

    def append_many(self, drafts: Sequence[ReceiptDraft]) -> list[Receipt]:
        """Store ``drafts`` in order in one ``BEGIN IMMEDIATE`` transaction."""
        if not drafts:
            return []
        out: list[Receipt] = []
        with self._transaction("BEGIN IMMEDIATE") as conn:
            head = self._head(conn)
            key = self._key_for(head, writing=True)
            seq, prev = head.seq, head.hash
            batch: dict[str, Receipt] = {}
            for draft in drafts:
                known = batch.get(draft.id) or self._by_id(conn, draft.id)
                if known is not None:
                    out.append(known)
                    continue
                seq += 1
                receipt = make_receipt(seq, draft, prev, key)
                conn.execute(_INSERT, receipt_to_row(receipt, ts_as_text=True, bool_as_int=True))
                prev = receipt.hash
                batch[draft.id] = receipt
                out.append(receipt)
            new_head = head
            if batch:
                new_head = self._advanced(head, seq, prev, key)
                self._write_head(conn, new_head)
        if batch:
            self._log_checkpoint(new_head, key)
        return out

    @staticmethod
    def _by_id(conn: sqlite3.Connection, receipt_id: str) -> Receipt | None:
        row = conn.execute(f"{_SELECT} WHERE id = ?", (receipt_id,)).fetchone()
        return receipt_from_row(row) if row is not None else None

    def iter_receipts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        receipt_id: str | None = None,
    ) -> Iterator[Receipt]:
        """Receipts in chain order with ``since <= ts < until`` (and the given id)."""
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("ts >= ?")
            params.append(format_ts(since))
        if until is not None:
            clauses.append("ts < ?")
            params.append(format_ts(until))
        if receipt_id is not None:
            clauses.append("id = ?")
            params.append(receipt_id)
        sql = f"{_SELECT}{' WHERE ' + ' AND '.join(clauses) if clauses else ''} ORDER BY seq"
        if self._memory:  # never hold the shared connection's lock between yields
            with self._transaction("BEGIN") as conn:
                rows = conn.execute(sql, params).fetchall()
            yield from map(receipt_from_row, rows)
            return
        # A private connection: a half-read iterator never blocks this thread's writes.
        with self._lock:
            if self._closed:
                raise LedgerError("ledger is closed")
        conn = self._connect()
        try:
            cursor = conn.execute(sql, params)
            try:
                for row in cursor:
                    yield receipt_from_row(row)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path} failed: {exc}") from exc
        finally:
            conn.close()

    def verify(self, expect: Sequence[Checkpoint] = ()) -> VerifyResult:
        """Check the whole chain, its signed head and ``expect`` in one read snapshot."""
        with self._transaction("BEGIN") as conn:
            head = self._head(conn)
            cursor = conn.execute(f"{_SELECT} ORDER BY seq")
            try:
                return verify_chain(cursor, head, self._keys, expect)
            finally:
                cursor.close()

    def purge(self, older_than: timedelta, now: datetime) -> int:
        """Delete the leading receipts older than ``now - older_than``; anchor the rest."""
        cutoff = check_cutoff(older_than, now)
        with self._transaction("BEGIN IMMEDIATE") as conn:
            head = self._head(conn)
            (first_kept,) = conn.execute(
                "SELECT min(seq) FROM privguard_receipts WHERE ts >= ?", (format_ts(cutoff),)
            ).fetchone()
            boundary = head.seq if first_kept is None else first_kept - 1
            if boundary <= head.anchor_seq:
                return 0
            found = conn.execute(
                "SELECT hash FROM privguard_receipts WHERE seq = ?", (boundary,)
            ).fetchone()
            if found is None:
                raise LedgerError(f"receipt seq {boundary} is missing; run `ledger verify`")
            anchor_hash = found[0]
            key = self._key_for(head, writing=True)
            deleted = conn.execute(
                "DELETE FROM privguard_receipts WHERE seq <= ?", (boundary,)
            ).rowcount
            new_head = replace(
                head, anchor_seq=boundary, anchor_hash=anchor_hash, purged=head.purged + deleted
            )
            self._write_head(conn, seal_head(new_head, key) if key is not None else new_head)
            return int(deleted)

    def close(self) -> None:
        """Close every connection this ledger opened, in any thread."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
            holders = list(self._holders)
            self._holders.clear()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        for holder in holders:
            holder.close()

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.url!r})"


def check_writable(url: str) -> None:
    """``ConfigError(option="ledger")`` unless the SQLite ledger at ``url`` can be written.

    Checked at start-up, so a typo in the path fails the deploy instead of the
    first consent (whose receipt would then wait in a spool in a made-up folder).
    """
    path, _ = parse_sqlite_url(url)
    if path == ":memory:" or path.startswith("file:"):
        return
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ConfigError("ledger", f"the folder {folder!r} of the SQLite ledger does not exist")
    if os.path.exists(target):
        if not os.access(target, os.R_OK | os.W_OK):
            raise ConfigError("ledger", f"the SQLite ledger {target!r} is not writable")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError("ledger", f"cannot create the SQLite ledger in {folder!r}: not writable")
