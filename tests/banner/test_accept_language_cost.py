"""Accept-Language: read only as far as a browser writes it, and only when needed.

A spy around werkzeug's parser (the real one still answers) shows what
privguard hands it, through Starlette's and Flask's own test clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import privguard
import privguard.banner.languages as languages
import privguard.banner.render as render
from privguard.asgi import PrivacyMiddleware

OPTIONS: dict[str, Any] = {"secret_key": "al-key-" + "a" * 40, "ledger": None, "rate_limit": None}
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0", "Accept": "text/html"}
#: 8 KB: French first, then thousands of made-up tags
HUGE = "fr-CH,fr;q=0.9," + ",".join(f"x{i}-YY;q=0.{i % 10}" for i in range(900))
HUGE = HUGE[:8192]


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every Accept-Language value the banner parses."""
    seen: list[str] = []
    real = languages.parse_accept_header

    def spy(value: str, cls: Any = None) -> Any:
        seen.append(value)
        return real(value, cls)

    monkeypatch.setattr(languages, "parse_accept_header", spy)
    yield seen


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body><p>shop</p></body></html>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


def starlette_client() -> TestClient:
    app = Starlette(routes=[Route("/", page), Route("/api", api)])
    return TestClient(PrivacyMiddleware(app, **OPTIONS))


def flask_client() -> Any:
    app = Flask(__name__)
    app.add_url_rule("/", "page", lambda: "<html><body><p>shop</p></body></html>")
    app.add_url_rule("/api", "api", lambda: {"ok": True})
    privguard.protect(app, **OPTIONS)
    return app.test_client()


CLIENTS = pytest.mark.parametrize("make", [starlette_client, flask_client], ids=["asgi", "wsgi"])


@CLIENTS
def test_an_8kb_accept_language_is_cut_before_parsing(make: Any, parsed: list[str]):
    client = make()
    resp = client.get("/", headers={**BROWSER, "Accept-Language": HUGE})
    body = resp.content if hasattr(resp, "content") else resp.data
    assert b'lang="fr"' in body
    assert parsed and all(len(value) <= 128 for value in parsed)
    assert all(value.count(",") < 8 for value in parsed)


@CLIENTS
def test_no_negotiation_without_a_banner(make: Any, parsed: list[str]):
    client = make()
    for _ in range(3):
        resp = client.get("/api", headers={**BROWSER, "Accept-Language": HUGE})
        assert resp.status_code == 200
    assert parsed == []


def test_a_normal_value_is_read_whole() -> None:
    banner = render.BannerRenderer(privguard.Settings(**OPTIONS))
    assert banner.negotiate("de-DE,de;q=0.9,en;q=0.8") == "de"
    assert banner.negotiate("xx," * 3000 + "de") == "en"  # past 8 entries: not read
    assert banner.negotiate("es;q=0.2," + "y" * 9000) == "es"
