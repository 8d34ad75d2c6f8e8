"""The context tells the app the request's host and the banner's language."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import privguard
from privguard.asgi import PrivacyMiddleware


async def _facts(request: Request) -> JSONResponse:
    ctx = privguard.get_context(request)
    assert ctx is not None
    return JSONResponse({"host": ctx.host, "language": ctx.language})


def _client() -> TestClient:
    app = Starlette(routes=[Route("/", _facts)])
    mw = PrivacyMiddleware(app, secret_key="context-language-test-secret-0123456789ab")
    return TestClient(mw, base_url="http://shop.example")


def test_language_is_negotiated_from_accept_language() -> None:
    with _client() as client:
        got = client.get("/", headers={"Accept-Language": "fr-CH, de;q=0.8"}).json()
    assert got == {"host": "shop.example", "language": "fr"}


def test_without_accept_language_the_first_configured_language() -> None:
    with _client() as client:
        got = client.get("/", headers={"Accept-Language": ""}).json()
    assert got["language"] == "en"
