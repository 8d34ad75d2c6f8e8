"""Fault injection: the world breaks while privguard serves.

1. The GeoIP ``.mmdb`` is replaced, corrupted, removed and restored under a
   running app: no 500s, visitors get the strictest regime while it is
   unusable, and the new data is picked up (the reader looks at the file at
   most once a second). A copy over the file in place, caught mid-copy, must
   not kill the process (the reader maps a private snapshot).
2. The SQLite ledger is locked by another connection holding ``BEGIN
   EXCLUSIVE`` while consent posts arrive: answers stay 200/303 and fast,
   receipts are spooled, then replayed once the lock is gone -- each exactly
   once, and the chain verifies.
3. A process writing receipts is killed with SIGKILL mid-write: after a
   restart and a flush the chain verifies and no receipt id appears twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, make_response
from itsdangerous import URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from werkzeug.test import Client

import privguard
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.core.consent import CONSENT_SALT
from privguard.ledger import LedgerWriter, derive_ledger_keys, open_ledger

KEY = "fault-injection-key-" + "q" * 40
VISITOR_IP = "203.0.113.7"
PAGE_COOKIES = ("sessionid", "lang", "_ga", "_fbp")


def _geodb() -> ModuleType:
    """``tests/geodb.py`` loaded by path (``tests`` need not be a package)."""
    name = "privguard_tests_geodb"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "geodb.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- the apps, called directly ---------------------------------------------------------------


async def _index(request: Any) -> HTMLResponse:
    resp = HTMLResponse("<html><body>shop</body></html>")
    for name in PAGE_COOKIES:
        resp.set_cookie(name, "v")
    return resp


class AsgiShop:
    kind = "asgi"
    origin = "http://testserver"

    def __init__(self, **options: Any) -> None:
        options.setdefault("secret_key", KEY)
        options.setdefault("rate_limit", None)
        self.middleware = AsgiMiddleware(Starlette(routes=[Route("/", _index)]), **options)

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        raw = [(b"host", b"testserver"), (b"user-agent", b"Mozilla/5.0 Firefox/128.0")]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": (VISITOR_IP, 40000),
            "server": ("testserver", 80),
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.middleware(scope, receive, send))
        start = sent[0]
        hdrs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start["headers"]]
        return start["status"], hdrs, b"".join(m.get("body", b"") for m in sent[1:])


class WsgiShop:
    kind = "wsgi"
    origin = "http://localhost"  # werkzeug's test client's host

    def __init__(self, **options: Any) -> None:
        options.setdefault("secret_key", KEY)
        options.setdefault("rate_limit", None)
        app = Flask(__name__)

        @app.get("/")
        def index() -> Any:
            resp = make_response("<html><body>shop</body></html>")
            for name in PAGE_COOKIES:
                resp.set_cookie(name, "v")
            return resp

        privguard.protect(app, **options)
        self.middleware = app.wsgi_app
        self.client = Client(app, use_cookies=False)

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        resp = self.client.open(
            path,
            method=method,
            headers=headers or {},
            data=body,
            environ_base={"REMOTE_ADDR": VISITOR_IP, "HTTP_USER_AGENT": "Mozilla/5.0"},
        )
        return resp.status_code, list(resp.headers.items()), resp.get_data()


SHOPS: dict[str, Callable[..., Any]] = {"asgi": AsgiShop, "wsgi": WsgiShop}


def _live_cookies(headers: list[tuple[str, str]]) -> set[str]:
    return {
        v.split("=", 1)[0] for n, v in headers if n.lower() == "set-cookie" and "Max-Age=0" not in v
    }


# --- 1. GeoIP database replaced, corrupted, removed, restored ---------------------------------


def _wait_for(shop: Any, want: Callable[[dict[str, Any]], bool], seconds: float = 6.0) -> dict:
    """Poll the state endpoint (never a 5xx) until ``want`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        status, _, body = shop.call("GET", "/privguard/consent")
        assert status == 200
        data = json.loads(body)
        page_status, page_headers, _ = shop.call("GET", "/")
        assert page_status == 200
        if data["regime"] == "gdpr" and data["choice_made"] is False:
            assert _live_cookies(page_headers) == {"sessionid"}
        if want(data):
            return data
        assert time.monotonic() < deadline, f"still {data}"
        time.sleep(0.1)


@pytest.mark.parametrize("kind", sorted(SHOPS))
def test_geoip_database_replaced_corrupted_removed_and_restored(kind: str, tmp_path: Path):
    geodb = _geodb()
    db = tmp_path / "GeoLite2-Country.mmdb"
    geodb.build_country_db(db, {"203.0.113.0/24": "US"})
    shop = SHOPS[kind](geoip_db=str(db), ledger=None)
    data = _wait_for(shop, lambda d: d["country"] == "US", 0)
    assert data["regime"] == "us-optout" and data["required_age"] == 13

    # replaced atomically (as geoipupdate does): the new data is picked up
    staged = tmp_path / "staged.mmdb"
    geodb.build_country_db(staged, {"203.0.113.0/24": "DE"})
    os.replace(staged, db)
    data = _wait_for(shop, lambda d: d["country"] == "DE")
    assert data["regime"] == "gdpr"

    # a torn copy (garbage where the database was): the strictest regime, no 500
    db.write_bytes(b"\x00not an mmdb" * 50)
    data = _wait_for(shop, lambda d: d["country"] is None)
    assert data["regime"] == "gdpr" and data["required_age"] == 16

    # restored, then removed: the strictest regime and the highest age while it is gone
    geodb.build_country_db(staged, {"203.0.113.0/24": "BR"})
    os.replace(staged, db)
    _wait_for(shop, lambda d: d["country"] == "BR" and d["regime"] == "notice")
    db.unlink()
    data = _wait_for(shop, lambda d: d["country"] is None)
    assert data["regime"] == "gdpr" and data["required_age"] == 16
    # and back again
    geodb.build_country_db(staged, {"203.0.113.0/24": "US"})
    os.replace(staged, db)
    _wait_for(shop, lambda d: d["country"] == "US")


IN_PLACE_COPY = textwrap.dedent(
    """
    import asyncio, importlib.util, shutil, sys

    spec = importlib.util.spec_from_file_location("geodb", sys.argv[1])
    geodb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(geodb)
    from privguard.asgi import PrivacyMiddleware

    db, new = sys.argv[2], sys.argv[3]
    networks = {f"10.{a}.{b}.0/24": "US" for a in range(40) for b in range(256)}
    geodb.build_country_db(db, networks)
    geodb.build_country_db(new, {k: "DE" for k in networks})

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = PrivacyMiddleware(app, secret_key="k" * 40, ledger=None, geoip_db=db)

    def get(ip):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                 "client": (ip, 1), "scheme": "http", "query_string": b""}
        asyncio.run(mw(scope, receive, send))
        return sent[0]["status"]

    assert get("10.1.2.3") == 200
    with open(db, "r+b") as f:  # `cp new.mmdb GeoLite2-Country.mmdb`, caught mid-copy
        f.truncate(0)
        for ip in ("10.30.2.3", "10.31.7.3", "10.39.250.1"):
            assert get(ip) == 200
        with open(new, "rb") as src:
            shutil.copyfileobj(src, f)
    print("survived")
    """
)


def test_geoip_database_overwritten_in_place_does_not_kill_the_process(tmp_path: Path):
    script = tmp_path / "in_place.py"
    script.write_text(IN_PLACE_COPY)
    geodb_path = Path(__file__).resolve().parent.parent / "geodb.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(geodb_path),
            str(tmp_path / "c.mmdb"),
            str(tmp_path / "n.mmdb"),
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode()[-500:]}"
    assert proc.stdout.strip() == b"survived"


# --- 2. the ledger locked by another connection ---------------------------------------------------


def _receipt_id(headers: list[tuple[str, str]]) -> str:
    serializer = URLSafeTimedSerializer(
        KEY, salt=CONSENT_SALT, serializer=json, signer_kwargs={"digest_method": hashlib.sha256}
    )
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith("privguard_consent="):
            return serializer.loads(value.split(";", 1)[0].split("=", 1)[1])["r"]
    raise AssertionError("no consent cookie in the answer")


def _choose(shop: Any, n: int) -> str:
    """One consent post (JSON or form by turn); returns the receipt id from the cookie."""
    origin = {"Origin": shop.origin}
    started = time.monotonic()
    if n % 2:
        body = json.dumps({"accept": "all" if n % 3 else "none"}).encode()
        status, headers, _ = shop.call(
            "POST", "/privguard/consent", {**origin, "Content-Type": "application/json"}, body
        )
        assert status == 200
    else:
        status, headers, _ = shop.call(
            "POST",
            "/privguard/consent",
            {**origin, "Content-Type": "application/x-www-form-urlencoded"},
            b"category=performance&next=/cart",
        )
        assert status == 303
    assert time.monotonic() - started < 2.0, "a locked ledger must not hold up the answer"
    return _receipt_id(headers)


@pytest.mark.parametrize("kind", sorted(SHOPS))
def test_locked_ledger_spools_then_replays_each_receipt_once(kind: str, tmp_path: Path):
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}?timeout=0.2"
    shop = SHOPS[kind](ledger=url)
    writer = shop.middleware.runtime.ledger
    ids = [_choose(shop, 0)]
    assert writer.flush(10)  # the file and its schema exist now

    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        ids += [_choose(shop, n) for n in range(1, 31)]
        assert writer.flush(10)
        spool = Path(f"{path}-spool.jsonl")
        spooled = [json.loads(line)["id"] for line in spool.read_text().splitlines() if line]
        assert spooled == ids[1:], "every receipt made during the lock waits in the spool"
        ids += [_choose(shop, n) for n in range(31, 36)]  # queued behind the spool
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert writer.flush(10)  # the database is back: the spool is replayed
    shop.middleware.runtime.close()

    assert not spool.exists() or spool.read_text() == ""
    ledger = open_ledger(f"sqlite:///{path}", keys=derive_ledger_keys([KEY]))
    try:
        receipts = list(ledger.iter_receipts())
        result = ledger.verify()
    finally:
        ledger.close()
    assert result.ok, result
    assert [r.id for r in receipts] == ids  # each once, in the order the choices were made
    assert [r.seq for r in receipts] == list(range(1, len(ids) + 1))


# --- 3. a writer process killed mid-write ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from privguard.ledger import LedgerWriter, ReceiptDraft

    url, prefix = sys.argv[1], sys.argv[2]
    writer = LedgerWriter(url, batch_size=7)
    n = 0
    while True:
        writer.submit(ReceiptDraft(
            id=f"{prefix}-{n:06d}", ts=dt.datetime.now(dt.UTC), policy_version="1",
            granted=("necessary", "performance"), denied=("functionality", "marketing"),
            method="banner", regime="gdpr", country="DE", gpc=False, dnt=False,
            ip="203.0.113.0", ua_family="Firefox", age_status="unknown",
        ))
        n += 1
        if n % 50 == 0:
            time.sleep(0.001)
    """
)


def _count(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT count(*) FROM privguard_receipts").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_writer_killed_mid_write_leaves_a_verifiable_chain(tmp_path: Path):
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    script = tmp_path / "writer_child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for round_no in range(3):
        before = _count(path)
        child = subprocess.Popen(
            [sys.executable, str(script), url, f"round{round_no}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            while _count(path) < before + 200 + 150 * round_no:
                assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the child wrote too little"
                time.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            if child.stderr is not None:
                child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        kills += 1

        # restart: a new writer replays whatever the dead one spooled
        with LedgerWriter(url) as writer:
            assert writer.flush(10)
        ledger = open_ledger(url)
        try:
            result = ledger.verify()
            ids = [r.id for r in ledger.iter_receipts()]
        finally:
            ledger.close()
        assert result.ok, (round_no, result)
        assert len(ids) == len(set(ids)), "a receipt id appears twice"
        # what one round stored is a gap-free prefix of what that child submitted
        for prefix in {i.split("-", 1)[0] for i in ids}:
            numbers = sorted(int(i.split("-", 1)[1]) for i in ids if i.startswith(prefix + "-"))
            assert numbers == list(range(len(numbers))), prefix
    assert kills == 3
