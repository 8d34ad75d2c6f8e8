"""The cookies the supported frameworks set themselves are in the built-in catalog, with
a category and a source, and pass for a first-time EEA visitor where they are necessary."""

from __future__ import annotations

from typing import Any

from flask import Flask, session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import privguard
from privguard import Settings
from privguard.asgi import PrivacyMiddleware
from privguard.core.categories import Category
from privguard.settings import builtin_cookie_sources

SECRET = "f" * 40
# no country source: an unknown visitor gets the strictest regime (gdpr)
EEA = {"User-Agent": "Mozilla/5.0 Firefox/128.0", "Accept": "text/html"}
OPTIONS: dict[str, Any] = {"secret_key": SECRET, "ledger": None}

EXPECTED = {
    "sessionid": Category.NECESSARY,
    "csrftoken": Category.NECESSARY,
    "messages": Category.NECESSARY,
    "django_language": Category.FUNCTIONALITY,
    "session": Category.NECESSARY,
    "remember_token": Category.FUNCTIONALITY,
}


def test_framework_cookies_have_a_category_and_a_source() -> None:
    catalog = Settings(secret_key=SECRET, ledger=None).catalog
    sources = builtin_cookie_sources()
    for name, category in EXPECTED.items():
        assert catalog.classify(name) is category, name
        assert len(sources[name]) > 10, name
    assert catalog.classify("__wzd3f2a") is Category.NECESSARY  # werkzeug debugger PIN
    assert "Django" in sources["messages"] and "Flask-Login" in sources["remember_token"]


def test_a_shop_declares_its_own_cookie_over_the_catalog() -> None:
    settings = Settings(secret_key=SECRET, ledger=None, cookies={"shop_currency": "functionality"})
    assert settings.catalog.classify("shop_currency") is Category.FUNCTIONALITY
    relaxed = Settings(secret_key=SECRET, ledger=None, cookies={"remember_token": "necessary"})
    assert relaxed.catalog.classify("remember_token") is Category.NECESSARY


def test_flask_session_passes_for_a_first_time_eea_visitor() -> None:
    app = Flask(__name__)
    app.secret_key = SECRET

    @app.get("/")
    def index() -> str:
        session["cart"] = [1]
        return "<html><body>cart</body></html>"

    privguard.protect(app, **OPTIONS)
    response = app.test_client().get("/", headers=EEA)
    assert b"privguard-banner" in response.data  # the strictest regime: asked first
    assert any(v.startswith("session=") for v in response.headers.getlist("Set-Cookie"))


def test_starlette_session_passes_for_a_first_time_eea_visitor() -> None:
    async def index(request: Request) -> HTMLResponse:
        request.session["cart"] = [1]
        return HTMLResponse("<html><body>cart</body></html>")

    app = Starlette(
        routes=[Route("/", index)],
        middleware=[
            Middleware(PrivacyMiddleware, **OPTIONS),
            Middleware(SessionMiddleware, secret_key=SECRET),
        ],
    )
    with TestClient(app) as client:
        response = client.get("/", headers=EEA)
    assert "privguard-banner" in response.text
    assert "session" in response.cookies
