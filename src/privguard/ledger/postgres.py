"""The shared consent ledger: PostgreSQL through psycopg 3 and a connection pool.

Decides how receipts live in PostgreSQL, for shops that run on several nodes:

* One chain for every process and node: each append locks the single chain-head
  row (``SELECT … FOR UPDATE`` on ``privguard_ledger_head``), reads the head,
  inserts the receipts and advances the head in the same transaction.
* Schema version in ``privguard_schema``; the schema is created (and a version
  1 schema upgraded: the head learns its key fingerprint, ``keyed_from`` and
  signature) under a transaction-level advisory lock so that workers starting
  together do not race. The CLI (``create=False``) reads version 1 as it is.
* Every failure to reach or use the server becomes
  :class:`~privguard.errors.LedgerError`, which makes the writer spool.
* Pooled connections are checked before use, so a restarted server costs one
  reconnect, not a failed append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool

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
    head_columns,
    make_receipt,
    read_head,
    receipt_from_row,
    receipt_to_row,
    redact,
    seal_head,
    verify_chain,
)

__all__ = ["SCHEMA_VERSION", "PostgresLedger", "check_postgres_url"]

#: Version stored in ``privguard_schema``.
SCHEMA_VERSION = 2
_UPGRADE_1 = (
    "ALTER TABLE privguard_ledger_head ADD COLUMN keyed_from BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE privguard_ledger_head ADD COLUMN key_id TEXT",
    "ALTER TABLE privguard_ledger_head ADD COLUMN mac TEXT",
)
_SCHEMA_LOCK = 0x70726976  # "priv": advisory lock key for schema creation

_SCHEMA = (
    """
    CREATE TABLE privguard_receipts (
        seq BIGINT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts TIMESTAMPTZ NOT NULL,
        policy_version TEXT NOT NULL,
        granted TEXT NOT NULL,
        denied TEXT NOT NULL,
        method TEXT NOT NULL,
        regime TEXT NOT NULL,
        country TEXT,
        gpc BOOLEAN NOT NULL,
        dnt BOOLEAN NOT NULL,
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
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        anchor_seq BIGINT NOT NULL,
        anchor_hash TEXT NOT NULL,
        purged BIGINT NOT NULL,
        keyed_from BIGINT NOT NULL DEFAULT 0,
        key_id TEXT,
        mac TEXT
    )
    """,
)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM privguard_receipts"
_INSERT = (
    f"INSERT INTO privguard_receipts ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in COLUMNS)})"
)


def check_postgres_url(url: str) -> dict[str, Any]:
    """Parse a ``postgresql://`` URL; ``ConfigError(option="ledger")`` if libpq would refuse it."""
    try:
        return pg_conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        message = redact(_one_line(exc), url)
        raise ConfigError("ledger", f"invalid PostgreSQL URL: {message}") from None


class PostgresLedger(ChainLedger):
    """A :class:`~privguard.ledger.base.Ledger` in PostgreSQL.

    :param url: a libpq URL, ``postgresql://user@host:5432/db`` (options such as
        ``?options=-csearch_path%3Dshop`` pick the schema).
    :param create: create the tables when missing; ``False`` refuses a database
        without a ledger (the CLI reads, it never creates).
    :param timeout: seconds to wait for a pooled connection before an operation
        fails with :class:`LedgerError` (and the writer spools).
    :param max_size: most connections this ledger keeps open.
    :param keys: the chain keys; with ``create`` an unkeyed ledger is keyed
        with the first from its next receipt.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        timeout: float = 5.0,
        max_size: int = 4,
        keys: Sequence[LedgerKey] = (),
    ) -> None:
        params = check_postgres_url(url)
        self.url = url
        self._keys = tuple(keys)
        self._schema = SCHEMA_VERSION
        self.timeout = timeout
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = max(1, round(timeout))
        # One direct connection first: an unreachable server fails at once with
        # libpq's own message, and the schema is ready before the pool starts.
        try:
            with psycopg.connect(url, **kwargs) as conn:
                self._schema = self._ensure_schema(conn, create)
                if create and self._keys:
                    with conn.transaction():
                        keyed = self._keyed_head(self._head(conn, lock=True))
                        if keyed is not None:
                            self._write_head(conn, keyed)
        except psycopg.Error as exc:
            message = redact(_one_line(exc), url)
            raise LedgerError(f"PostgreSQL ledger unavailable: {message}") from exc
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs=kwargs,
            check=ConnectionPool.check_connection,
            name="privguard-ledger",
        )
        self._pool.open(wait=False)

    @contextlib.contextmanager
    def _transaction(self, *, snapshot: bool = False) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                if snapshot:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield conn
        except psycopg.Error as exc:
            message = redact(_one_line(exc), self.url)
            raise LedgerError(f"PostgreSQL ledger failed: {message}") from exc

    @staticmethod
    def _ensure_schema(conn: psycopg.Connection[Any], create: bool) -> int:
        """Create or upgrade the schema; the version now in use."""
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass('privguard_schema')").fetchone()
            if exists is None or exists[0] is None:
                if not create:
                    raise LedgerError("this database holds no privguard ledger")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS privguard_schema (version INTEGER)")
            row = conn.execute("SELECT max(version) FROM privguard_schema").fetchone()
            version = row[0] if row and row[0] is not None else 0
            if version == 1 and create:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                row = conn.execute("SELECT max(version) FROM privguard_schema").fetchone()
                if row and row[0] == 1:
                    for statement in _UPGRADE_1:
                        conn.execute(statement)
                    conn.execute("INSERT INTO privguard_schema VALUES (%s)", (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO privguard_ledger_head "
                    "(id, seq, hash, anchor_seq, anchor_hash, purged) VALUES (1, 0, %s, 0, %s, 0)",
                    (GENESIS_HASH, GENESIS_HASH),
                )
                conn.execute("INSERT INTO privguard_schema VALUES (%s)", (SCHEMA_VERSION,))
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger schema version {version} is newer than this privguard ({SCHEMA_VERSION})"
            )
        return max(1, min(version, SCHEMA_VERSION)) if version else SCHEMA_VERSION

    def _head(self, conn: psycopg.Connection[Any], *, lock: bool = False) -> ChainHead:
        columns = head_columns(self._schema)
        sql = f"SELECT {', '.join(columns)} FROM privguard_ledger_head WHERE id = 1"
        return read_head(conn.execute(sql + (" FOR UPDATE" if lock else "")).fetchone())

    def _write_head(self, conn: psycopg.Connection[Any], head: ChainHead) -> None:
        columns = head_columns(self._schema)
        conn.execute(
            f"UPDATE privguard_ledger_head SET {', '.join(f'{c} = %s' for c in columns)} "
            "WHERE id = 1",
            tuple(getattr(head, c) for c in columns),
        )

    def head(self) -> ChainHead:
        """The current chain head and purge anchor."""
        with self._transaction() as conn:
            return self._head(conn)

    def append_many(self, drafts: Sequence[ReceiptDraft]) -> list[Receipt]:
        """Store ``drafts`` in order in one transaction holding the chain-head row lock."""
        if not drafts:
            return []
        out: list[Receipt] = []
        with self._transaction() as conn:
            head = self._head(conn, lock=True)
            key = self._key_for(head, writing=True)
            rows = conn.execute(
                f"{_SELECT} WHERE id = ANY(%s)", (list({d.id for d in drafts}),)
            ).fetchall()
            known = {r.id: r for r in map(receipt_from_row, rows)}
            seq, prev = head.seq, head.hash
            new_rows: list[tuple[Any, ...]] = []
            for draft in drafts:
                if draft.id in known:
                    out.append(known[draft.id])
                    continue
                seq += 1
                receipt = make_receipt(seq, draft, prev, key)
                new_rows.append(receipt_to_row(receipt, ts_as_text=False, bool_as_int=False))
                prev = receipt.hash
                known[draft.id] = receipt
                out.append(receipt)
            new_head = head
            if new_rows:
                with conn.cursor() as cur:
                    cur.executemany(_INSERT, new_rows)
                new_head = self._advanced(head, seq, prev, key)
                self._write_head(conn, new_head)
        if new_head is not head:
            self._log_checkpoint(new_head, key)
        return out

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
            clauses.append("ts >= %s")
            params.append(since)
        if until is not None:
            clauses.append("ts < %s")
            params.append(until)
        if receipt_id is not None:
            clauses.append("id = %s")
            params.append(receipt_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._transaction(snapshot=True) as conn:
            with conn.cursor(name="privguard_receipts_iter") as cur:
                cur.itersize = 2000
                cur.execute(f"{_SELECT}{where} ORDER BY seq", params)
                for row in cur:
                    yield receipt_from_row(row)

    def verify(self, expect: Sequence[Checkpoint] = ()) -> VerifyResult:
        """Check the whole chain, its signed head and ``expect`` in one snapshot."""
        with self._transaction(snapshot=True) as conn:
            head = self._head(conn)
            with conn.cursor(name="privguard_receipts_verify") as cur:
                cur.itersize = 2000
                cur.execute(f"{_SELECT} ORDER BY seq")
                return verify_chain(cur, head, self._keys, expect)

    def purge(self, older_than: timedelta, now: datetime) -> int:
        """Delete the leading receipts older than ``now - older_than``; anchor the rest."""
        cutoff = check_cutoff(older_than, now)
        with self._transaction() as conn:
            head = self._head(conn, lock=True)
            row = conn.execute(
                "SELECT min(seq) FROM privguard_receipts WHERE ts >= %s", (cutoff,)
            ).fetchone()
            first_kept = row[0] if row else None
            boundary = head.seq if first_kept is None else first_kept - 1
            if boundary <= head.anchor_seq:
                return 0
            found = conn.execute(
                "SELECT hash FROM privguard_receipts WHERE seq = %s", (boundary,)
            ).fetchone()
            if found is None:
                raise LedgerError(f"receipt seq {boundary} is missing; run `ledger verify`")
            key = self._key_for(head, writing=True)
            deleted = conn.execute(
                "DELETE FROM privguard_receipts WHERE seq <= %s", (boundary,)
            ).rowcount
            new_head = replace(
                head, anchor_seq=boundary, anchor_hash=found[0], purged=head.purged + deleted
            )
            self._write_head(conn, seal_head(new_head, key) if key is not None else new_head)
            return int(deleted)

    def close(self) -> None:
        """Close the pool and every connection in it."""
        self._pool.close()

    def __repr__(self) -> str:
        return "PostgresLedger(<url hidden>)"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
