"""The shared consent ledger: PostgreSQL through psycopg 3 and a connection pool.

Decides how receipts live in PostgreSQL, for shops that run on several nodes:

* One chain for every process and node: each append locks the single chain-head
  row (``SELECT … FOR UPDATE`` on ``privguard_ledger_head``), reads the head,
  inserts the receipts and advances the head in the same transaction.
* Schema version in ``privguard_schema``; the schema is created under a
  transaction-level advisory lock so that workers starting together do not race.
* Every failure to reach or use the server becomes
  :class:`~privguard.errors.LedgerError`, which makes the writer spool.
* Pooled connections are checked before use, so a restarted server costs one
  reconnect, not a failed append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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
    Receipt,
    ReceiptDraft,
    VerifyResult,
    check_cutoff,
    make_receipt,
    receipt_from_row,
    receipt_to_row,
    redact,
    verify_chain,
)

__all__ = ["SCHEMA_VERSION", "PostgresLedger", "check_postgres_url"]

#: Version stored in ``privguard_schema``.
SCHEMA_VERSION = 1
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
        purged BIGINT NOT NULL
    )
    """,
)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM privguard_receipts"
_INSERT = (
    f"INSERT INTO privguard_receipts ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in COLUMNS)})"
)
_HEAD = "SELECT seq, hash, anchor_seq, anchor_hash, purged FROM privguard_ledger_head WHERE id = 1"


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
    """

    def __init__(
        self, url: str, *, create: bool = True, timeout: float = 5.0, max_size: int = 4
    ) -> None:
        params = check_postgres_url(url)
        self.url = url
        self.timeout = timeout
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = max(1, round(timeout))
        # One direct connection first: an unreachable server fails at once with
        # libpq's own message, and the schema is ready before the pool starts.
        try:
            with psycopg.connect(url, **kwargs) as conn:
                self._ensure_schema(conn, create)
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
    def _ensure_schema(conn: psycopg.Connection[Any], create: bool) -> None:
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass('privguard_schema')").fetchone()
            if exists is None or exists[0] is None:
                if not create:
                    raise LedgerError("this database holds no privguard ledger")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS privguard_schema (version INTEGER)")
            row = conn.execute("SELECT max(version) FROM privguard_schema").fetchone()
            version = row[0] if row and row[0] is not None else 0
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO privguard_ledger_head VALUES (1, 0, %s, 0, %s, 0)",
                    (GENESIS_HASH, GENESIS_HASH),
                )
                conn.execute("INSERT INTO privguard_schema VALUES (%s)", (SCHEMA_VERSION,))
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger schema version {version} is newer than this privguard ({SCHEMA_VERSION})"
            )

    @staticmethod
    def _head(conn: psycopg.Connection[Any], *, lock: bool = False) -> ChainHead:
        row = conn.execute(_HEAD + (" FOR UPDATE" if lock else "")).fetchone()
        if row is None:
            raise LedgerError("ledger chain head is missing")
        return ChainHead(*row)

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
                receipt = make_receipt(seq, draft, prev)
                new_rows.append(receipt_to_row(receipt, ts_as_text=False, bool_as_int=False))
                prev = receipt.hash
                known[draft.id] = receipt
                out.append(receipt)
            if new_rows:
                with conn.cursor() as cur:
                    cur.executemany(_INSERT, new_rows)
                conn.execute(
                    "UPDATE privguard_ledger_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev)
                )
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

    def verify(self) -> VerifyResult:
        """Check the whole chain in one repeatable-read snapshot."""
        with self._transaction(snapshot=True) as conn:
            head = self._head(conn)
            with conn.cursor(name="privguard_receipts_verify") as cur:
                cur.itersize = 2000
                cur.execute(f"{_SELECT} ORDER BY seq")
                return verify_chain(cur, head)

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
            deleted = conn.execute(
                "DELETE FROM privguard_receipts WHERE seq <= %s", (boundary,)
            ).rowcount
            conn.execute(
                "UPDATE privguard_ledger_head SET anchor_seq = %s, anchor_hash = %s, "
                "purged = purged + %s WHERE id = 1",
                (boundary, found[0], deleted),
            )
            return int(deleted)

    def close(self) -> None:
        """Close the pool and every connection in it."""
        self._pool.close()

    def __repr__(self) -> str:
        return "PostgresLedger(<url hidden>)"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
