"""Fixtures for the ledger tests: every back-end test runs on SQLite and on a real PostgreSQL.

``pg_cluster`` starts one throwaway cluster per session (``tests/pg.py``); each
PostgreSQL test gets its own schema. Under ``CI`` a cluster that will not
start fails the run; elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from privguard.ledger import ReceiptDraft
from tests.needs import unavailable

BASE_TS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def load_pg_module() -> ModuleType:
    """``tests/pg.py`` (the cluster helper), loaded by path: ``tests`` is not a package."""
    name = "privguard_tests_pg"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "pg.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A running throwaway PostgreSQL cluster (session-wide)."""
    pg = load_pg_module()
    try:
        cluster = pg.PgCluster().start()
    except Exception as exc:  # binaries missing, no user, port taken, ...
        unavailable("PostgreSQL for the ledger tests", f"it could not be started: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _pg_schema_url(cluster: Any) -> Iterator[str]:
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{cluster.url}?options={quote(f'-csearch_path={schema}')}"
    if cluster.running:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger URL on each back-end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def pg_url(pg_cluster: Any) -> Iterator[str]:
    """A fresh PostgreSQL ledger URL (for PostgreSQL-only tests)."""
    yield from _pg_schema_url(pg_cluster)


def make_draft(n: int = 0, **overrides: Any) -> ReceiptDraft:
    """A valid draft; ``n`` varies the id and the time."""
    values: dict[str, Any] = {
        "id": f"r{n:05d}-{secrets.token_urlsafe(6)}",
        "ts": BASE_TS + timedelta(minutes=n),
        "policy_version": "1",
        "granted": ("necessary", "performance"),
        "denied": ("functionality", "marketing"),
        "method": "banner",
        "regime": "gdpr",
        "country": "DE",
        "gpc": False,
        "dnt": True,
        "ip": "203.0.113.0",
        "ua_family": "Chrome",
        "age_status": "unknown",
    }
    values.update(overrides)
    return ReceiptDraft(**values)


@pytest.fixture
def draft() -> Callable[..., ReceiptDraft]:
    """The :func:`make_draft` factory."""
    return make_draft


class RawDB:
    """Direct SQL on a ledger's database, bypassing privguard (to tamper, to inspect)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "sqlite" if url.startswith("sqlite:") else "postgresql"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                with conn:
                    rows = conn.execute(sql, params).fetchall()
            finally:
                conn.close()
            return rows
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def columns(self) -> list[str]:
        if self.kind == "sqlite":
            return [row[1] for row in self.execute("PRAGMA table_info(privguard_receipts)")]
        return [
            row[0]
            for row in self.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'privguard_receipts' AND table_schema = current_schema() "
                "ORDER BY ordinal_position"
            )
        ]


@pytest.fixture
def raw_db(ledger_url: str) -> RawDB:
    """Raw SQL access to ``ledger_url``'s database."""
    return RawDB(ledger_url)
