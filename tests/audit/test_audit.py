"""``privguard audit`` and ``privguard cookies`` against a leaking and a clean shop.

The shops (``tests/audit/apps.py``) are served over WSGI and ASGI in-process
(``module:app``), by a live uvicorn on 127.0.0.1, and to headless Chromium.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from privguard.cli import main
from tests.needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
APPS = "tests.audit.apps"


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # module:app targets import from the current directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def findings(out: str) -> set[tuple[str, str, str]]:
    data = json.loads(out)
    return {(f["kind"], f["name"], f["region"]) for f in data["findings"]}


LEAKS = {
    ("before-consent", "_ga", "DE"),
    ("before-consent", "_fbp", "DE"),
    ("undeclared", "mystery_tracker", "DE"),
    ("gpc-ignored", "_fbp", "US-CA+gpc"),
    ("undeclared", "mystery_tracker", "US-CA+gpc"),
    ("before-consent", "_fbp", "BR"),
    ("undeclared", "mystery_tracker", "BR"),
}


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_leaky_app_in_process(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    code, out, _ = run(capsys, "audit", f"{APPS}:leaky_{kind}", "--json")
    assert code == 1
    assert findings(out) == LEAKS
    data = json.loads(out)
    assert [r["label"] for r in data["regions"]] == ["DE", "US-CA+gpc", "BR"]
    de = data["regions"][0]
    assert [p["path"] for p in de["pages"]] == ["/", "/products", "/about", "/products/1"]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_clean_app_in_process(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    code, out, err = run(capsys, "audit", f"{APPS}:clean_{kind}")
    assert code == 0, out + err
    assert "categories: the app's catalog" in out
    assert "DE: regime gdpr" in out and "US-CA+gpc: regime us-optout" in out
    assert "OK: no cookie was set before consent" in out
    assert "warning" not in err  # the country header reached the app in every region


def test_table_names_each_finding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "audit", f"{APPS}:leaky_wsgi", "--region", "DE")
    assert code == 1
    assert "_ga (performance) set before consent for DE on /" in out
    assert "mystery_tracker (undeclared) is not declared" in out
    assert "FAIL: 3 findings" in out
    assert "\r" not in err  # no progress bar without a TTY


def test_gpc_flag_and_region_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "audit", f"{APPS}:leaky_asgi", "--region", "BR,FR", "--gpc", "--json"
    )
    assert code == 1
    got = findings(out)
    assert ("gpc-ignored", "_fbp", "BR+gpc") in got
    assert ("before-consent", "_ga", "FR+gpc") in got


def test_unknown_country_is_judged_strictly(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", f"{APPS}:leaky_wsgi", "--region", "XX", "--json")
    assert code == 1
    assert json.loads(out)["regions"][0]["regime"] == "gdpr"
    assert ("before-consent", "_ga", "XX") in findings(out)
    code, _, err = run(capsys, "audit", f"{APPS}:clean_wsgi", "--region", "XX")
    assert code == 0, err
    assert "warning" not in err


def test_limits(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "audit", f"{APPS}:leaky_wsgi", "--region", "DE", "--max-pages", "2", "--json"
    )
    assert [p["path"] for p in json.loads(out)["regions"][0]["pages"]] == ["/", "/products"]
    _, out, _ = run(
        capsys, "audit", f"{APPS}:leaky_wsgi", "--region", "DE", "--max-depth", "0", "--json"
    )
    assert [p["path"] for p in json.loads(out)["regions"][0]["pages"]] == ["/"]


def test_junit_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "audit.xml"
    code, _, _ = run(capsys, "audit", f"{APPS}:leaky_wsgi", "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == "12" and root.get("failures") == "7"
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert len(cases) == 12  # 3 regions x 4 pages
    failure = cases[("privguard.audit.DE", "/")].find("failure")
    assert failure is not None and failure.get("message") == "cookies: _ga"
    assert "_ga (performance) set before consent for DE on /" in (failure.text or "")
    assert cases[("privguard.audit.DE", "/products/1")].find("failure") is None


def test_cookies_inventory_after_accepting_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cookies", f"{APPS}:clean_wsgi")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"# Cookies set by {APPS}:clean_wsgi"
    # each cookie with the catalog's declaration (the banner's data) and what was seen
    ga = (
        "| `_ga` | performance | Google Analytics (Google) | Distinguishes visitors with a "
        "unique identifier | 2 years | 2 years | (host) | / | - | server | / |"
    )
    assert ga in lines
    fbp = "| `_fbp` | marketing | Meta (Facebook Pixel) | Identifies your browser to show"
    assert any(line.startswith(fbp) and "| 90 days | 90 days |" in line for line in lines)
    consent = (
        "| `privguard_consent` | necessary | This shop | Stores your privacy choice | 180 days"
    )
    assert any(line.startswith(consent) for line in lines)
    assert "| session | (host) | / | HttpOnly, SameSite=Lax |" in out
    assert "Blocked by privguard as undeclared" in out and "`mystery_tracker`" in out

    code, out, _ = run(capsys, "cookies", f"{APPS}:clean_asgi", "--json")
    assert code == 0
    cookies = {c["name"]: c for c in json.loads(out)["cookies"]}
    assert set(cookies) == {"privguard_consent", "session", "_ga", "_fbp"}
    assert cookies["session"]["flags"] == ["HttpOnly", "SameSite=Lax"]
    assert cookies["_fbp"]["category"] == "marketing"
    assert json.loads(out)["blocked_undeclared"] == ["mystery_tracker"]
    assert cookies["_ga"]["declared"] == {
        "provider": "Google Analytics (Google)",
        "purpose": "Distinguishes visitors with a unique identifier",
        "lifetime": "2 years",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "no_such_module_xyz:app"], "cannot import 'no_such_module_xyz'"),
        (["audit", f"{APPS}:nothing"], "has no attribute 'nothing'"),
        (["audit", f"{APPS}:json_wsgi"], "is not HTML"),
        (["audit", f"{APPS}:loop_wsgi"], "redirect loop: / -> /a -> /"),
        (["audit", f"{APPS}:leaky_wsgi", "--region", "Germany"], "is not like 'DE'"),
        (["audit", "ftp://example.test/"], "only http and https"),
        (["audit", "not-a-target"], "is not a URL or module:attribute"),
        (["audit", f"{APPS}:clean_wsgi", "--max-depth", "-1"], "--max-depth must be 0 or more"),
        (["cookies", f"{APPS}:json_wsgi"], "is not HTML"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("privguard: error: ")
    assert message in err


def test_slow_start_page_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "audit", f"{APPS}:slow_wsgi", "--timeout", "0.3")
    assert code == 2
    assert "GET /: no answer within 0.3 s" in err


def test_app_errors_are_page_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", f"{APPS}:broken_wsgi", "--region", "BR", "--json")
    assert code == 0  # BR allows _ga until refused; a broken page is an error, not a finding
    pages = {p["path"]: p for p in json.loads(out)["regions"][0]["pages"]}
    assert "the app raised RuntimeError: boom" in pages["/products"]["error"]


def test_missing_chromium_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIVGUARD_CHROMIUM", str(tmp_path / "no-chromium"))
    code, out, err = run(capsys, "audit", f"{APPS}:clean_wsgi", "--browser")
    assert code == 2 and out == ""
    assert "--browser needs Chromium at" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "audit", f"{APPS}:leaky_wsgi", "--max-pages", "0")
    assert code == 2
    assert "--max-pages must be positive" in err


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct ports that were free a moment ago (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_unreachable_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "audit", f"http://127.0.0.1:{free_ports()[0]}/", "--timeout", "2")
    assert code == 2
    assert "Connection refused" in err


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    """uvicorn serving the leaky shop on / and the clean one on another port."""
    procs = []
    urls = []
    try:
        for app, port in zip(("clean_asgi", "leaky_asgi"), free_ports(2), strict=True):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        f"{APPS}:{app}",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            port = int(url.rsplit(":", 1)[1])
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"uvicorn exited instead of serving {url}")
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"uvicorn did not start on {url}")
                    time.sleep(0.05)
        yield " ".join(urls)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def test_live_uvicorn_server(capsys: pytest.CaptureFixture[str], live: str) -> None:
    clean, leaky = live.split()
    code, out, err = run(capsys, "audit", clean + "/")
    assert code == 0, out + err
    assert "categories: built-in catalog" in out
    assert "warning" not in err
    code, out, _ = run(capsys, "audit", leaky + "/", "--json")
    assert code == 1
    assert findings(out) == LEAKS
    code, out, _ = run(capsys, "audit", clean, "--settings", f"{APPS}:SETTINGS", "--json")
    assert code == 0
    assert json.loads(out)["catalog"] == "the app's"


def test_region_not_conveyed_is_a_finding(capsys: pytest.CaptureFixture[str], live: str) -> None:
    clean, _ = live.split()
    code, out, _ = run(capsys, "audit", clean, "--region", "BR", "--country-header", "X-Geo")
    assert code == 1
    assert "region not simulated -- the app saw country None, not 'BR'" in out
    assert "Fix: " in out and "FAIL: 1 finding" in out


def test_installed_command(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "privguard"
    report = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            str(exe),
            "audit",
            f"{APPS}:leaky_asgi",
            "--region",
            "US-CA+gpc",
            "--json",
            "--junit",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1, proc.stderr
    assert ("gpc-ignored", "_fbp", "US-CA+gpc") in findings(proc.stdout)
    assert report.exists()


def _chromium_ready() -> str | None:
    from privguard.audit.browser import chromium_path

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not os.path.exists(chromium_path()):
        return f"Chromium is missing at {chromium_path()}"
    return None


@pytest.fixture
def chromium() -> None:
    missing = _chromium_ready()
    if missing is not None:
        unavailable("the browser audit", missing)


def test_browser_sees_cookies_set_by_scripts(
    capsys: pytest.CaptureFixture[str], chromium: None
) -> None:
    # the server sets nothing but the home page's inline script writes _fbp
    code, out, _ = run(capsys, "audit", f"{APPS}:scripted_wsgi", "--region", "BR,DE", "--json")
    assert code == 0  # an HTTP crawl cannot see it
    code, out, err = run(
        capsys, "audit", f"{APPS}:scripted_wsgi", "--browser", "--region", "BR,DE", "--json"
    )
    assert code == 1, err
    data = json.loads(out)
    assert {(f["kind"], f["name"], f["region"], f["source"]) for f in data["findings"]} == {
        ("before-consent", "_fbp", "BR", "script"),
        ("before-consent", "_fbp", "DE", "script"),
    }


def test_browser_audit_of_the_same_shop_with_auto_blocking_is_clean(
    capsys: pytest.CaptureFixture[str], chromium: None
) -> None:
    code, out, err = run(
        capsys, "audit", f"{APPS}:guarded_wsgi", "--browser", "--region", "BR,DE", "--json"
    )
    assert code == 0, out + err


def _tracker_findings(out: str) -> set[tuple[str, str, str]]:
    return {
        (f["kind"], f["host"], f["region"])
        for f in json.loads(out)["findings"]
        if f["kind"].startswith("tracker")
    }


def test_browser_audit_reports_tracker_requests_before_consent(
    capsys: pytest.CaptureFixture[str], chromium: None
) -> None:
    """Off-site requests are answered by the auditor (--offline): nothing leaves."""
    args = ["--browser", "--offline", "--region", "DE,US-CA+gpc", "--json", "--max-pages", "1"]
    code, out, err = run(capsys, "audit", f"{APPS}:tracked_unblocked_wsgi", *args)
    assert code == 1, err
    found = _tracker_findings(out)
    for host in ("www.googletagmanager.com", "connect.facebook.net", "www.youtube.com"):
        assert ("tracker-before-consent", host, "DE") in found, found
    assert ("tracker-gpc", "connect.facebook.net", "US-CA+gpc") in found
    # Google Analytics is on by default in the US: its request is no finding there
    pages = {r["label"]: r["pages"][0] for r in json.loads(out)["regions"]}
    us = pages["US-CA+gpc"]["tracker_requests"]
    assert any(r["tracker"] == "Google Analytics" for r in us)
    assert not any(
        f["tracker"] == "Google Analytics" and f["region"] == "US-CA+gpc"
        for f in json.loads(out)["findings"]
        if "tracker" in f
    )
    # the same page behind privguard's auto-blocking: no tracker is called, no cookie set
    code, out, err = run(capsys, "audit", f"{APPS}:tracked_wsgi", *args)
    assert code == 0, out + err
    pages = {r["label"]: r["pages"][0] for r in json.loads(out)["regions"]}
    assert pages["DE"]["tracker_requests"] == []
    # the text report names the requests and their verdicts
    code, out, err = run(capsys, "audit", f"{APPS}:tracked_unblocked_wsgi", *args[:-3])
    assert "tracker host" in out and "tracker-before-consent" in out


def test_browser_audit_accepts_google_tags_under_advanced_consent_mode(
    capsys: pytest.CaptureFixture[str], chromium: None
) -> None:
    args = ["--browser", "--offline", "--region", "DE", "--json", "--max-pages", "1"]
    code, out, err = run(capsys, "audit", f"{APPS}:tracked_advanced_wsgi", *args)
    assert code == 0, out + err
    requests = json.loads(out)["regions"][0]["pages"][0]["tracker_requests"]
    assert {r["tracker"] for r in requests} >= {"Google Analytics", "Google Tag Manager"}
    assert not any(r["host"] == "connect.facebook.net" for r in requests)


def test_browser_on_a_clean_live_server(
    capsys: pytest.CaptureFixture[str], chromium: None, live: str
) -> None:
    clean, _ = live.split()
    code, out, err = run(capsys, "audit", clean, "--browser", "--region", "DE", "--max-pages", "3")
    assert code == 0, out + err
    assert "session  necessary  server" in out


@pytest.mark.parametrize("app", ["starlette_app", "flask_app"])
def test_framework_apps_use_their_settings(capsys: pytest.CaptureFixture[str], app: str) -> None:
    from privguard.audit import find_settings, open_target

    target = open_target(f"{APPS}:{app}")
    try:
        settings = find_settings(target.app)
        assert settings is not None and settings.country_header == "cf-ipcountry"
    finally:
        target.close()
    code, out, err = run(capsys, "audit", f"{APPS}:{app}", "--region", "DE,US-CA+gpc")
    assert code == 0, out + err
    assert "categories: the app's catalog" in out


def test_progress_bar_only_on_a_tty(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    code = main(["audit", f"{APPS}:clean_wsgi", "--region", "DE"])
    assert code == 0
    shown = tty.getvalue()
    assert "\rDE" in shown and "4/50" in shown and "/products/1" in shown, shown
    assert "[" not in capsys.readouterr().out.split("\n", 1)[0]


def test_browser_inventory_after_accepting_all(
    capsys: pytest.CaptureFixture[str], chromium: None
) -> None:
    code, out, err = run(
        capsys, "cookies", f"{APPS}:scripted_wsgi", "--browser", "--json", "--max-pages", "1"
    )
    assert code == 0, err
    cookies = {c["name"]: c for c in json.loads(out)["cookies"]}
    assert cookies["_fbp"]["source"] == "script"
    assert cookies["_fbp"]["category"] == "marketing"
    assert cookies["_fbp"]["declared"]["provider"] == "Meta (Facebook Pixel)"
    assert cookies["privguard_consent"]["source"] == "server"
    assert cookies["privguard_consent"]["flags"] == ["SameSite=Lax"]


def test_asgi_lifespan_state_reaches_requests() -> None:
    from privguard.audit.transport import ASGITransport

    events = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = scope["state"]["db"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with ASGITransport(app) as transport:
        assert transport.request("GET", "/", []).body == b"ready"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_app_factory_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", f"{APPS}:make_leaky()", "--json")
    assert code == 1 and findings(out) == LEAKS
    code, _, err = run(capsys, "audit", f"{APPS}:failing_factory()")
    assert code == 2 and "failing_factory() failed" in err and "database" in err
    code, _, err = run(capsys, "audit", f"{APPS}:LEAKS_NOT_HERE()")
    assert code == 2
