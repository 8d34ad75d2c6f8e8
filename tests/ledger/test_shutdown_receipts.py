"""No receipt is lost when a real server is stopped right after the choices.

A uvicorn server (a Starlette app with lifespan, and a bare ASGI app without
lifespan support) takes 300 choices while another connection holds the ledger
table locked -- the database is "slow" for as long as the test wants. SIGTERM
follows at once. For the Starlette app uvicorn's graceful shutdown runs
privguard's lifespan flush: what the locked database does not take within the
shutdown timeout is spooled. The bare app raises on the lifespan scope, so
uvicorn runs it without lifespan and nothing is flushed: its receipts survive
in the process's journal, which the next start moves into the spool.
The lock is released, the server starts again with two workers, and whichever
worker comes first replays the spool: exactly one receipt per choice, in one
chain that verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from privguard.core.consent import CONSENT_SALT
from privguard.ledger import derive_ledger_keys, open_ledger
from tests.appserver import AppServer

KEY = "shutdown-test-key-" + "s" * 40
CHOICES = 300

SHOP = """
from privguard.asgi import PrivacyMiddleware

KEY = {key!r}
LEDGER = {ledger!r}
KIND = {kind!r}
PAGE = b"<!doctype html><html><head><title>shop</title></head><body>shop</body></html>"


async def bare(scope, receive, send):
    assert scope["type"] == "http", "this app does not speak lifespan"
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]}})
    await send({{"type": "http.response.body", "body": PAGE}})


def starlette_app():
    import contextlib

    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield

    async def page(request):
        return HTMLResponse(PAGE)

    return Starlette(routes=[Route("/", page)], lifespan=lifespan)


inner = starlette_app() if KIND == "starlette" else bare
app = PrivacyMiddleware(inner, secret_key=KEY, ledger=LEDGER, rate_limit=None, trusted_proxies=1)
"""


def receipt_of(cookie: str) -> str:
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    serializer = URLSafeTimedSerializer(
        KEY, salt=CONSENT_SALT, serializer=json, signer_kwargs={"digest_method": hashlib.sha256}
    )
    return str(serializer.loads(value)["r"])


async def make_choices(base: str, count: int) -> list[str]:
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(n: int) -> str:
            resp = await client.post(
                "/privguard/consent",
                json={"accept": "all" if n % 2 else "none"},
                headers={"Origin": base, "X-Forwarded-For": f"198.51.100.{n % 250}"},
            )
            assert resp.status_code == 200, resp.text
            cookie = next(
                c for c in resp.headers.get_list("set-cookie") if c.startswith("privguard_")
            )
            return receipt_of(cookie)

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def stored_ids(url: str) -> list[str]:
    ledger = open_ledger(url, keys=derive_ledger_keys([KEY]))
    try:
        return [r.id for r in ledger.iter_receipts()]
    finally:
        ledger.close()


def wait_for(url: str, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = stored_ids(url)
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.25)


def run(tmp_path: Path, url: str, kind: str, lock: Callable[[], Callable[[], None]]) -> None:
    (tmp_path / "shop.py").write_text(SHOP.format(key=KEY, ledger=url, kind=kind))
    # the tables exist before the lock is taken
    open_ledger(url, keys=derive_ledger_keys([KEY])).close()
    first = AppServer(tmp_path, "shop:app", name="first").wait_ready()
    release = lock()
    try:
        started = time.monotonic()
        ids = asyncio.run(make_choices(first.base, CHOICES))
        first.terminate()  # right after the last answer
        code = first.wait(60)
        stopped = time.monotonic() - started
    finally:
        release()
        first.stop()
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done
    assert code in (0, -15), first.log()
    before = len(stored_ids(url))
    spooled = "were spooled" in first.log()
    second = AppServer(tmp_path, "shop:app", workers=2, name="second").wait_ready()
    try:
        stored = wait_for(url, CHOICES)
        time.sleep(1.0)  # a second replay (the other worker) would show up now
        stored = stored_ids(url)
    finally:
        second.stop()
    print(
        f"\n[{kind}] {CHOICES} choices, SIGTERM at once, stopped in {stopped:.1f}s; "
        f"in the ledger before restart: {before}; after restart: {len(stored)} "
        f"(spooled at shutdown: {spooled})"
    )
    assert len(stored) == len(set(stored)) == CHOICES
    assert set(stored) == set(ids)
    ledger = open_ledger(url, keys=derive_ledger_keys([KEY]))  # the app keyed its chain
    try:
        assert ledger.verify().ok
    finally:
        ledger.close()
    assert not list(tmp_path.glob("*spool*.part")), "a side file was left behind"


@pytest.mark.parametrize("kind", ["starlette", "bare"])
def test_postgres_locked_from_outside_sigterm_loses_no_receipt(
    tmp_path: Path, pg_url: str, kind: str
) -> None:
    import psycopg

    def lock() -> Callable[[], None]:
        conn = psycopg.connect(pg_url)
        conn.execute("LOCK TABLE privguard_receipts IN ACCESS EXCLUSIVE MODE")

        def release() -> None:
            conn.rollback()
            conn.close()

        return release

    run(tmp_path, pg_url, kind, lock)


def test_sqlite_locked_from_outside_sigterm_loses_no_receipt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}?timeout=2"

    def lock() -> Callable[[], None]:
        conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")

        def release() -> None:
            conn.execute("ROLLBACK")
            conn.close()

        return release

    run(tmp_path, url, "starlette", lock)
