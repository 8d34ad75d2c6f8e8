"""ASGI lifespan: passed to the app untouched, errors included; no receipt waits on it.

Driven with raw lifespan messages, as a server sends them, and through real
uvicorn processes: an app that raises on the lifespan scope gets from the
server exactly what the bare app gets (``lifespan="auto"`` serves without
lifespan, ``"on"`` refuses to start), and without a lifespan shutdown -- the
app raised, or the server runs with ``lifespan="off"`` -- the choices made
right before SIGTERM are in the ledger after the restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from privguard.asgi import PrivacyMiddleware
from privguard.core.consent import CONSENT_SALT
from privguard.ledger import ReceiptDraft, derive_ledger_keys, open_ledger
from tests.appserver import AppServer, free_port
from tests.ledger.conftest import make_draft

KEY = "lifespan-test-key-" + "x" * 32


async def drive(app: Any, before_shutdown: Any = None) -> list[dict[str, Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    await inbox.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))
        if message["type"] == "lifespan.startup.complete":
            if before_shutdown is not None:
                before_shutdown()
            await inbox.put({"type": "lifespan.shutdown"})

    await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 30)
    return sent


def submit(mw: PrivacyMiddleware, draft: ReceiptDraft) -> None:
    mw.runtime.ledger.submit(draft)


def test_lifespan_flushes_the_ledger_before_shutdown_completes(tmp_path: Path) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete", "extra": "kept"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=url)
    drafts = [make_draft(n) for n in range(20)]
    sent = asyncio.run(drive(mw, lambda: [submit(mw, d) for d in drafts]))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
    assert sent[0]["extra"] == "kept"  # the app's own messages go out untouched
    with open_ledger(url) as ledger:  # stored before shutdown.complete went out
        assert [r.id for r in ledger.iter_receipts()] == [d.id for d in drafts]


def test_an_app_that_raises_on_lifespan_raises_to_the_server(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("only http here")

    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))  # pragma: no cover - nothing may answer for the app

    with pytest.raises(RuntimeError, match="only http here"):
        asyncio.run(mw({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert sent == []


def test_startup_replays_a_spool_left_by_a_previous_run(tmp_path: Path) -> None:
    from privguard.ledger.spool import Spool
    from privguard.ledger.writer import default_spool_path

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    drafts = [make_draft(n) for n in range(5)]
    spool_path = default_spool_path(url)
    assert spool_path is not None
    Spool(spool_path).append(drafts)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=url)
    # replayed from start-up on, without a new choice and without a flush
    deadline = time.monotonic() + 20
    ids: list[str] = []
    while len(ids) < len(drafts) and time.monotonic() < deadline:
        time.sleep(0.1)
        with open_ledger(url) as ledger:
            ids = [r.id for r in ledger.iter_receipts()]
    assert ids == [d.id for d in drafts]
    asyncio.run(drive(mw))


# -- real uvicorn ------------------------------------------------------------------------

SHOP = """
from privguard.asgi import PrivacyMiddleware

PAGE = b"<!doctype html><html><head><title>shop</title></head><body>shop</body></html>"


class StartupBroke(Exception):
    pass


async def bare(scope, receive, send):
    if scope["type"] != "http":
        raise StartupBroke("this app speaks http only")
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]}})
    await send({{"type": "http.response.body", "body": PAGE}})


app = PrivacyMiddleware(bare, secret_key={key!r}, ledger={ledger!r}, rate_limit=None,
                        trusted_proxies=1)
"""


def write_shop(tmp_path: Path, ledger: str) -> None:
    (tmp_path / "shop.py").write_text(SHOP.format(key=KEY, ledger=ledger))


def run_uvicorn_briefly(tmp_path: Path, target: str, lifespan: str) -> tuple[int | None, str]:
    """Start uvicorn on ``target``; its exit code within 15 s (``None``: still serving) and log."""
    args = [sys.executable, "-m", "uvicorn", target, "--port", str(free_port())]
    proc = subprocess.Popen(
        [*args, "--lifespan", lifespan, "--log-level", "info"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PYTHONPATH": ":".join([str(tmp_path), *sys.path]), "PATH": "/usr/bin:/bin"},
    )
    try:
        code: int | None = proc.wait(15)
    except subprocess.TimeoutExpired:
        code = None
        proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return code, out


@pytest.mark.parametrize("lifespan", ["on", "auto"])
def test_uvicorn_treats_a_raising_app_as_it_treats_the_bare_app(
    tmp_path: Path, lifespan: str
) -> None:
    write_shop(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    bare_code, bare_log = run_uvicorn_briefly(tmp_path, "shop:bare", lifespan)
    code, log = run_uvicorn_briefly(tmp_path, "shop:app", lifespan)
    assert code == bare_code, log
    if lifespan == "on":  # start-up fails, with the app's own exception in the log
        assert code not in (None, 0)
        assert "Application startup failed. Exiting." in log
        assert "StartupBroke: this app speaks http only" in log
    else:  # uvicorn serves without lifespan, as it does for the bare app
        assert code is None
        assert "ASGI 'lifespan' protocol appears unsupported." in log
        assert "Application startup complete." in log
    assert ("StartupBroke" in log) == ("StartupBroke" in bare_log)


def receipt_of(cookie: str) -> str:
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    serializer = URLSafeTimedSerializer(
        KEY, salt=CONSENT_SALT, serializer=json, signer_kwargs={"digest_method": hashlib.sha256}
    )
    return str(serializer.loads(value)["r"])


def make_choices(base: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(count):
            resp = client.post(
                "/privguard/consent",
                json={"accept": "all" if n % 2 else "none"},
                headers={"Origin": base, "X-Forwarded-For": f"198.51.100.{n % 250}"},
            )
            assert resp.status_code == 200, resp.text
            cookie = next(
                c for c in resp.headers.get_list("set-cookie") if c.startswith("privguard_")
            )
            ids.append(receipt_of(cookie))
    return ids


def stored_ids(url: str) -> list[str]:
    ledger = open_ledger(url, keys=derive_ledger_keys([KEY]))
    try:
        return [r.id for r in ledger.iter_receipts()]
    finally:
        ledger.close()


@pytest.mark.parametrize("locked", [False, True], ids=["healthy-db", "locked-db"])
@pytest.mark.parametrize("lifespan", ["off", "auto"])
def test_choices_right_before_sigterm_without_lifespan_reach_the_ledger(
    tmp_path: Path, lifespan: str, locked: bool
) -> None:
    """No lifespan shutdown comes (``off``, or the app raised under ``auto``); SIGTERM at once.

    uvicorn re-raises the SIGTERM it handled once its graceful shutdown is
    done, so the process ends by the signal and interpreter-exit hooks do not
    run: the receipts must already be safe when the answers go out.
    """
    choices_then_signal(tmp_path, lifespan, locked, signal.SIGTERM)


def test_choices_right_before_sigkill_reach_the_ledger(tmp_path: Path) -> None:
    """The OOM killer's way: no graceful shutdown, no hook of any kind."""
    choices_then_signal(tmp_path, "off", True, signal.SIGKILL)


def choices_then_signal(tmp_path: Path, lifespan: str, locked: bool, sig: int) -> None:
    """40 choices through a real uvicorn, ``sig`` right after the last answer, a restart."""
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}?timeout=1"
    write_shop(tmp_path, url)
    open_ledger(url, keys=derive_ledger_keys([KEY])).close()  # tables exist before a lock
    first = AppServer(tmp_path, "shop:app", name="first", extra=("--lifespan", lifespan))
    first.wait_ready()
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        if locked:  # the database takes nothing until the server is gone
            lock.execute("BEGIN EXCLUSIVE")
        ids = make_choices(first.base, 40)
        first.proc.send_signal(sig)  # right after the last answer
        code = first.wait(60)
    finally:
        if locked:
            lock.execute("ROLLBACK")
        lock.close()
        first.stop()
    assert code in (0, -signal.SIGTERM, -sig), first.log()
    second = AppServer(tmp_path, "shop:app", name="second", extra=("--lifespan", lifespan))
    second.wait_ready()
    try:
        deadline = time.monotonic() + 30
        stored = stored_ids(url)
        while len(stored) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
            stored = stored_ids(url)
    finally:
        second.stop()
    assert sorted(stored) == sorted(ids), f"{len(stored)} of {len(ids)} stored\n{first.log()}"
    ledger = open_ledger(url, keys=derive_ledger_keys([KEY]))
    try:
        assert ledger.verify().ok
    finally:
        ledger.close()
