"""The audit and inventory crawls as a shop developer first meets them: a region the app
cannot see, undeclared cookies privguard blocked, the app's real ledger, ``| head`` and a
progress bar on a terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privguard.audit.target import find_middleware
from privguard.cli import main

ROOT = Path(__file__).resolve().parents[2]
APPS = "tests.audit.apps"
EXE = Path(sys.executable).parent / "privguard"

BLIND_APP = """
import privguard
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "<html><body>shop</body></html>"


# no country_header, no trusted_proxies: every visitor is "unknown" to this app
app = privguard.protect(app, secret_key="blind-shop-secret-0123456789abcdefgh", ledger=None)
"""

LEDGER_APP = """
import privguard
from flask import Flask, make_response

app = Flask(__name__)


@app.get("/")
def index():
    response = make_response("<html><body>shop</body></html>")
    response.set_cookie("_ga", "GA1.1.1")
    return response


privguard.protect(
    app,
    secret_key="ledger-shop-secret-0123456789abcdefgh",
    ledger="sqlite:///{ledger}",
    country_header="CF-IPCountry",
    trusted_proxies=["127.0.0.1"],
)
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_region_the_app_cannot_see_fails_with_the_fix(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    (in_tmp / "blind_shop.py").write_text(BLIND_APP)
    code, out, _ = run(capsys, "audit", "blind_shop:app", "--region", "US")
    assert code == 1, out
    assert "US: region not simulated -- the app saw country None, not 'US'" in out
    assert "country_header='CF-IPCountry'" in out and "trusted_proxies" in out
    code, out, _ = run(capsys, "audit", "blind_shop:app", "--region", "US", "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False and len(data["region_findings"]) == 1


FRESH_APP = """
from tests.audit.apps import SETTINGS, bare_wsgi, bare_asgi
from privguard.asgi import PrivacyMiddleware as ASGIPrivacy
from privguard.wsgi import PrivacyMiddleware as WSGIPrivacy

wsgi = WSGIPrivacy(bare_wsgi, SETTINGS)
asgi = ASGIPrivacy(bare_asgi, SETTINGS)
"""


def test_blocked_undeclared_cookies_are_reported(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    (in_tmp / "fresh_shop.py").write_text(FRESH_APP)  # its own runtimes: nothing reported yet
    code, out, _ = run(capsys, "audit", "fresh_shop:wsgi")
    assert code == 0  # blocked: nothing leaked, but the feature behind it is broken
    assert "none undeclared" not in out
    assert "blocked by privguard as undeclared: mystery_tracker" in out
    assert "Note: the app set undeclared cookies that privguard blocked: mystery_tracker" in out
    code, out, _ = run(capsys, "audit", "fresh_shop:asgi", "--json")
    assert json.loads(out)["blocked_undeclared"] == ["mystery_tracker"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cookies_crawl_leaves_the_apps_ledger_untouched(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    ledger = in_tmp / "shop-ledger.db"
    (in_tmp / "ledger_shop.py").write_text(LEDGER_APP.format(ledger=ledger))
    # one real visitor's choice first, so the ledger exists with a receipt
    import importlib

    from webtest import TestApp

    shop = importlib.import_module("ledger_shop")
    client = TestApp(shop.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    answer = client.post(
        "/privguard/consent",
        {"accept": "all"},
        headers={
            "Origin": "http://localhost:80",
            "CF-IPCountry": "DE",
            "User-Agent": "Firefox/128",
        },
        expect_errors=True,
    )
    assert answer.status_int == 303, answer
    find_middleware(shop.app).runtime.close()  # flush the receipt
    with sqlite3.connect(ledger) as conn:
        before_rows = conn.execute("SELECT count(*) FROM privguard_receipts").fetchone()[0]
    assert before_rows == 1
    before = _digest(ledger)
    files = sorted(p.name for p in in_tmp.iterdir())
    code, out, err = run(capsys, "cookies", "ledger_shop:app")
    assert code == 0, err
    assert "`privguard_consent`" in out and "`_ga`" in out
    code, _, err = run(capsys, "audit", "ledger_shop:app", "--region", "DE,US-CA")
    assert code == 0, err  # DE: _ga dropped; US-CA: _ga allowed until refused
    assert _digest(ledger) == before
    assert sorted(p.name for p in in_tmp.iterdir()) == files  # no spool either


def test_a_reader_that_left_ends_the_output_quietly() -> None:
    proc = subprocess.Popen(
        [str(EXE), "audit", f"{APPS}:leaky_wsgi", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has seen enough, before the audit writes
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 1


def test_json_into_head_ends_quietly() -> None:
    proc = subprocess.run(
        f"{EXE} audit {APPS}:leaky_wsgi --json | head -n 1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout == "{\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_progress_bar_on_a_terminal() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from privguard.cli import main
        sys.exit(main(["audit", "{APPS}:clean_wsgi", "--region", "DE,BR"]))
        """
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=30)
    os.close(leader)
    assert proc.returncode == 0, seen
    text = seen.decode("utf-8", "replace")
    assert "DE" in text and "BR" in text and "page" in text, text  # tqdm: "n/50 [..., page/s]"
    assert "\r" in text
    assert b"OK: no cookie was set before consent" in out
