"""Every code block of README.md is run: here in-process with the checkout, the rest by
``tests/test_wheel.py`` from the built wheel (see ``tests/readme.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from webtest import TestApp

from privguard.cli import main
from privguard.core.categories import Category
from privguard.runtime import Runtime
from privguard.testing import assert_banner_shown, assert_no_nonessential_cookies
from tests.readme import FROM_WHEEL, IN_PROCESS, README, block, blocks

SECRET = "readme-secret-0123456789abcdefghijklmnop"
HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html",
}
ROOT = README.parent


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRIVGUARD_SECRET_KEY", SECRET)
    monkeypatch.delenv("PRIVGUARD_LEDGER", raising=False)
    monkeypatch.chdir(tmp_path)  # ledgers the snippets open land here
    return tmp_path


def run_python(tag: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_" + tag.replace(": ", "_"), **names}
    b = block(tag)
    exec(compile(b.code, f"README.md:{b.line} ({tag})", "exec"), namespace)
    return namespace


def close(app: Any) -> None:
    from privguard.audit.target import find_middleware

    middleware = find_middleware(app)
    if middleware is not None:
        middleware.runtime.close()


# --- every block is run somewhere ---------------------------------------------------


def test_every_block_is_tagged_and_run_by_a_test() -> None:
    found = blocks()
    untagged = [b.line for b in found if b.tag is None]
    assert not untagged, f"README blocks without a '# tag' first line at lines {untagged}"
    tags = [b.tag for b in found]
    unrun = sorted({t for t in tags if t not in IN_PROCESS | FROM_WHEEL})
    assert not unrun, f"README blocks no test runs (add them to tests/readme.py): {unrun}"
    assert (IN_PROCESS | FROM_WHEEL) <= set(tags)  # no stale entries


def test_screenshots_are_absolute_links_to_files_of_the_repository() -> None:
    import re

    text = README.read_text("utf-8")
    links = re.findall(
        r"https://raw\.githubusercontent\.com/privguard/privguard/main/(\S+?)\)", text
    )
    assert links, "the README shows the banner"
    for link in links:
        assert (ROOT / link).is_file(), link
    assert "](docs/" not in text  # relative links break on the package index


# --- quick starts -------------------------------------------------------------------


def test_flask_quickstart_protects_the_app() -> None:
    app = run_python("quickstart: flask")["app"]
    try:
        response = TestApp(app).get("/", headers=HEADERS)
        assert "Welcome" in response.text
        assert_banner_shown(response)
        assert_no_nonessential_cookies(response)  # shop_currency: functionality, dropped
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    finally:
        close(app)


def test_fastapi_quickstart_protects_the_app() -> None:
    app = run_python("quickstart: fastapi")["app"]
    with TestClient(app) as client:
        response = client.get("/", headers=HEADERS)
    assert "Welcome (gdpr)" in response.text  # unknown country: the strictest regime
    assert_banner_shown(response)


def test_starlette_quickstart_protects_the_app() -> None:
    app = run_python("quickstart: starlette")["app"]
    with TestClient(app) as client:
        response = client.get("/", headers=HEADERS)
        state = client.get("/privguard/consent", headers=HEADERS).json()
    assert "Welcome" in response.text
    assert_banner_shown(response)
    assert state["regime"] == "gdpr" and state["needs_banner"] is True


def test_csp_example_sends_the_policy_and_the_nonce_on_privguard_markup() -> None:
    app = run_python("example: csp")["app"]
    with TestClient(app) as client:
        response = client.get("/", headers=HEADERS)
    policy = response.headers["content-security-policy"]
    assert "'strict-dynamic'" in policy
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert 'src="/privguard/banner.' in response.text
    assert response.text.count(f'nonce="{nonce}"') >= 3  # shop script, banner css and js


def test_endpoint_state_block_has_the_real_fields() -> None:
    documented = json.loads(block("endpoint: state").code)
    app = run_python("quickstart: flask")["app"]
    try:
        state = TestApp(app).get("/privguard/consent", headers=HEADERS).json
    finally:
        close(app)
    assert list(state) == list(documented)
    assert state["categories"].keys() == documented["categories"].keys()
    assert {**state, "country": "DE"} == documented  # the README's visitor is German


# --- examples -----------------------------------------------------------------------


def test_scripts_example() -> None:
    settings = run_python("example: scripts")["settings"]
    trackers = settings.trackers
    assert trackers.match("https://cdn.example-ads.com/t.js").category is Category.MARKETING
    assert trackers.match("https://eu.example-stats.net/s.js").category is Category.PERFORMANCE
    reviews = trackers.match("https://widgets.example.com/reviews/w.js")
    assert reviews.category is Category.FUNCTIONALITY
    assert trackers.match("https://widgets.example.com/other.js") is None
    assert trackers.match("https://player.vimeo.com/video/1").category is Category.FUNCTIONALITY
    assert trackers.match("https://www.clarity.ms/tag/x").category is Category.NECESSARY
    # the built-in catalog is still there under the shop's entries
    assert trackers.match("https://connect.facebook.net/x.js").category is Category.MARKETING


def test_cookies_example() -> None:
    settings = run_python("example: cookies")["settings"]
    assert settings.catalog.classify("shop_currency") is Category.FUNCTIONALITY
    assert settings.catalog.classify("remember_token") is Category.NECESSARY
    assert settings.catalog.classify("ab_test_3") is Category.PERFORMANCE
    assert settings.cookie_paths["ab_*"] == ("/", "/shop")


def test_context_example_outside_and_inside_a_request() -> None:
    record = run_python("example: context")["record_purchase"]
    sent: list[Any] = []
    record({}, "order-1", sent.append)  # no request context: nothing is sent
    assert sent == []
    from flask import Flask, request

    import privguard

    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        record(request, "order-2", sent.append)
        return "ok"

    privguard.protect(app, secret_key=SECRET, ledger=None)
    TestApp(app).get("/", headers=HEADERS, extra_environ={"REMOTE_ADDR": "203.0.113.9"})
    assert sent == []  # unknown country: gdpr, no performance without consent
    us = Flask(__name__)
    us.add_url_rule("/", view_func=index)
    privguard.protect(
        us, secret_key=SECRET, ledger=None, country_header="CF-IPCountry", trusted_proxies=1
    )
    TestApp(us).get(
        "/", headers={**HEADERS, "CF-IPCountry": "US", "X-Forwarded-For": "203.0.113.9"}
    )
    assert sent == [{"order": "order-2", "ip": "203.0.113.0"}]


# --- deploy ---------------------------------------------------------------------------

README_DB = "/var/lib/GeoIP/GeoLite2-City.mmdb"


@pytest.fixture
def city_db(tmp_path: Path) -> str:
    from tests.geodb import build_city_db

    path = build_city_db(tmp_path / "city.mmdb", {"81.2.69.0/24": ("GB", None)})
    return str(path)


def test_deploy_settings_build_and_open(city_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b = block("deploy: proxies")
    code = b.code.replace(README_DB, city_db)
    namespace: dict[str, Any] = {}
    exec(compile(code, f"README.md:{b.line}", "exec"), namespace)
    nginx = namespace["behind_nginx"]
    assert nginx.trusted_proxies.trusts("10.1.2.3") is not None
    runtime = Runtime(nginx.replace(ledger=None))
    assert runtime.lookups.geo is not None
    assert namespace["behind_lb"].trusted_proxies.trusts("10.9.9.9")
    assert namespace["behind_cloudflare"].country_header == "cf-ipcountry"


def test_geoip_check_command(city_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = block("geoip: check").commands()[0].replace(README_DB, city_db).split()
    assert argv[0] == "privguard"
    assert main(argv[1:]) == 0
    assert "GB" in capsys.readouterr().out


def test_production_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVGUARD_SECRET_KEY", "n" * 40 + "," + "o" * 40)
    monkeypatch.setenv("PRIVGUARD_COUNTRY_HEADER", "CF-IPCountry")
    monkeypatch.setenv("PRIVGUARD_TRUSTED_PROXIES", "173.245.48.0/20")
    settings = run_python("production: settings")["settings"]
    assert settings.secret_keys == (b"n" * 40, b"o" * 40)  # the first signs, both verify


# --- ledger ---------------------------------------------------------------------------


@pytest.fixture
def default_ledger(_env: Path) -> str:
    """A consent choice through the Flask quick start fills privguard-ledger.db."""
    app = run_python("quickstart: flask")["app"]
    client = TestApp(app)
    answer = client.post(
        "/privguard/consent",
        {"accept": "all"},
        headers={**HEADERS, "Origin": "http://localhost:80"},
    )
    assert answer.status_int == 303
    close(app)
    from privguard.ledger import open_ledger

    with open_ledger("sqlite:///privguard-ledger.db", create=False) as ledger:
        return next(iter(ledger.iter_receipts())).id


def run_commands(tag: str, capsys: pytest.CaptureFixture[str], **subs: str) -> list[int]:
    codes = []
    for line in block(tag).commands():
        for old, new in subs.items():
            line = line.replace(old, new)
        argv = line.split()
        assert argv[0] == "privguard", line
        codes.append(main(argv[1:]))
        capsys.readouterr()
    return codes


def test_ledger_commands(default_ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_commands("ledger: cli", capsys, RECEIPT_ID=default_ledger) == [0, 0, 0, 0, 0]


def test_production_cron_commands(default_ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_commands("production: cron", capsys) == [0, 0]


# --- the QA kit sample ------------------------------------------------------------------


def write_qa_files(where: Path) -> None:
    for name in ("myshop.py", "conftest.py", "test_privacy.py"):
        (where / name).write_text(block(f"file: {name}").body)


def qa_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PRIVGUARD_LEDGER")}
    env["PRIVGUARD_SECRET_KEY"] = SECRET
    return env


def test_qa_kit_sample_runs_as_written(_env: Path) -> None:
    write_qa_files(_env)
    (command,) = block("qa: pytest").commands()
    argv = [sys.executable, *command.split()[1:], "-p", "no:cacheprovider"]
    proc = subprocess.run(argv, cwd=_env, env=qa_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout, proc.stdout


def test_qa_kit_audit_commands(_env: Path) -> None:
    write_qa_files(_env)
    exe = Path(sys.executable).with_name("privguard")
    for line in block("qa: audit").commands():
        command, _, redirect = line.partition(">")
        argv = [str(exe), *[a.strip('"') for a in command.split()[1:]]]
        proc = subprocess.run(
            argv, cwd=_env, env=qa_env(), capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, line + "\n" + proc.stdout + proc.stderr
        if redirect:
            (_env / redirect.strip()).write_text(proc.stdout)
    assert "`_ga`" in (_env / "cookie-inventory.md").read_text()
    assert (_env / "audit.xml").exists()
