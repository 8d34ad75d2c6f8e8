"""Responses privguard did not change look unchanged; consent-dependent ones say so.

A Starlette shop on uvicorn and a Flask shop on wsgiref, both behind
privguard, serve the same routes. What the app sent as ``Vary`` and
``Cache-Control`` must come back exactly, unless privguard's own answer
depends on the visitor (a non-essential cookie, an expiry, the banner, a
document's Permissions-Policy, an app that read the consent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, make_response
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

import privguard
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from tests.e2e.live import RawResponse, raw_request, serve_asgi, serve_wsgi

KEY = "unchanged-key-" + "u" * 32
OPTIONS: dict[str, Any] = {
    "secret_key": KEY,
    "ledger": None,
    "rate_limit": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
}
BROWSER = [
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"),
    ("Accept", "text/html"),
    ("CF-IPCountry", "DE"),
]
FULL = "<html><head><title>t</title></head><body><p>shop</p></body></html>"
FRAGMENT = "<li>one</li><li>two</li>"
APP_VARY = "Accept-Encoding, Origin"
APP_CACHE = "public, max-age=60"
DATA = {"items": list(range(300))}  # > 500 bytes: GZip compresses it


def _flask() -> Flask:
    app = Flask(__name__)

    def html(body: str, status: int = 200, **headers: str) -> Any:
        resp = make_response(body, status)
        resp.headers["Content-Type"] = "text/html; charset=utf-8"
        resp.headers["Cache-Control"] = APP_CACHE
        for name, value in headers.items():
            resp.headers[name] = value
        return resp

    @app.get("/full")
    def full() -> Any:
        return html(FULL)

    @app.get("/fragment")
    def fragment() -> Any:
        return html(FRAGMENT)

    @app.get("/empty")
    def empty() -> Any:
        return html("")

    @app.get("/redirect")
    def redirect() -> Any:
        return html("<html><body>moved</body></html>", 302, Location="/full")

    @app.get("/api")
    def api() -> Any:
        resp = make_response(DATA)
        resp.headers["Vary"] = APP_VARY
        resp.headers["Cache-Control"] = APP_CACHE
        return resp

    @app.get("/api/tracked")
    def tracked() -> Any:
        resp = make_response(DATA)
        resp.headers["Vary"] = APP_VARY
        resp.headers["Cache-Control"] = APP_CACHE
        resp.set_cookie("_ga", "1")
        return resp

    @app.get("/api/session")
    def session() -> Any:
        resp = make_response(DATA)
        resp.headers["Vary"] = APP_VARY
        resp.headers["Cache-Control"] = APP_CACHE
        resp.set_cookie("sessionid", "s")
        return resp

    @app.get("/api/personal")
    def personal() -> Any:
        ctx = privguard.get_context(flask_request)
        resp = make_response({"ads": ctx is not None and ctx.allows("marketing")})
        resp.headers["Vary"] = APP_VARY
        resp.headers["Cache-Control"] = APP_CACHE
        return resp

    return app


def _html(body: str, status: int = 200, **headers: str) -> HTMLResponse:
    return HTMLResponse(body, status, headers={"Cache-Control": APP_CACHE, **headers})


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers={"Vary": APP_VARY, "Cache-Control": APP_CACHE})


async def s_full(request: Request) -> StarletteResponse:
    return _html(FULL)


async def s_fragment(request: Request) -> StarletteResponse:
    return _html(FRAGMENT)


async def s_empty(request: Request) -> StarletteResponse:
    return _html("")


async def s_redirect(request: Request) -> StarletteResponse:
    return _html("<html><body>moved</body></html>", 302, Location="/full")


async def s_api(request: Request) -> StarletteResponse:
    return _json(DATA)


async def s_tracked(request: Request) -> StarletteResponse:
    resp = _json(DATA)
    resp.set_cookie("_ga", "1")
    return resp


async def s_session(request: Request) -> StarletteResponse:
    resp = _json(DATA)
    resp.set_cookie("sessionid", "s")
    return resp


async def s_personal(request: Request) -> StarletteResponse:
    ctx = privguard.get_context(request)
    return _json({"ads": ctx is not None and ctx.allows("marketing")})


def _starlette() -> Starlette:
    return Starlette(
        routes=[
            Route("/full", s_full),
            Route("/fragment", s_fragment),
            Route("/empty", s_empty),
            Route("/redirect", s_redirect),
            Route("/api", s_api),
            Route("/api/tracked", s_tracked),
            Route("/api/session", s_session),
            Route("/api/personal", s_personal),
        ]
    )


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    wsgi_app = privguard.protect(_flask(), **OPTIONS)
    asgi_app = AsgiMiddleware(_starlette(), **OPTIONS)
    with serve_asgi(asgi_app) as uvicorn_port, serve_wsgi(wsgi_app.wsgi_app) as wsgiref_port:
        yield {"uvicorn": uvicorn_port, "wsgiref": wsgiref_port}


SERVERS = pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])


def get(ports: dict[str, int], server: str, path: str) -> RawResponse:
    resp = raw_request(ports[server], "GET", path, BROWSER)
    assert resp.status < 500, resp
    return resp


def vary_names(resp: RawResponse) -> list[str]:
    return [item.strip() for v in resp.get_all("vary") for item in v.split(",") if item.strip()]


# --- documents privguard did not change ----------------------------------------------------------


@SERVERS
@pytest.mark.parametrize("path", ["/fragment", "/empty", "/redirect"])
def test_html_left_alone_is_not_made_private(ports: dict[str, int], server: str, path: str):
    resp = get(ports, server, path)
    assert b"privguard-banner" not in resp.body
    assert resp.get_all("cache-control") == [APP_CACHE]
    assert "Accept-Language" not in vary_names(resp)
    assert "User-Agent" not in vary_names(resp)


@SERVERS
def test_redirect_gets_no_document_policy(ports: dict[str, int], server: str):
    resp = get(ports, server, "/redirect")
    assert resp.status == 302
    assert resp.get("permissions-policy") is None
    assert resp.get_all("vary") == []


@SERVERS
def test_a_fragment_is_still_a_document(ports: dict[str, int], server: str):
    """Permissions-Policy depends on consent, so the fragment varies on what decided it."""
    resp = get(ports, server, "/fragment")
    assert resp.body.decode() == FRAGMENT
    assert "browsing-topics=()" in (resp.get("permissions-policy") or "")
    assert vary_names(resp)[:1] == ["Cookie"]


@SERVERS
def test_a_page_with_the_banner_is_private_and_varies(ports: dict[str, int], server: str):
    resp = get(ports, server, "/full")
    assert b'id="privguard-banner"' in resp.body
    assert resp.get_all("cache-control") == ["private, max-age=60"]
    assert {"Cookie", "Accept-Language", "User-Agent"} <= set(vary_names(resp))


# --- non-HTML responses --------------------------------------------------------------------------


@SERVERS
def test_api_alike_for_everyone_keeps_vary_and_cache_control_exactly(
    ports: dict[str, int], server: str
):
    resp = get(ports, server, "/api")
    assert resp.get_all("vary") == [APP_VARY]
    assert resp.get_all("cache-control") == [APP_CACHE]
    assert resp.get("permissions-policy") is None


@SERVERS
def test_a_necessary_cookie_does_not_make_a_response_consent_dependent(
    ports: dict[str, int], server: str
):
    resp = get(ports, server, "/api/session")
    assert any(v.startswith("sessionid=") for v in resp.get_all("set-cookie"))
    assert resp.get_all("vary") == [APP_VARY]
    assert resp.get_all("cache-control") == [APP_CACHE]


@SERVERS
def test_a_non_essential_cookie_makes_it_vary_and_private(ports: dict[str, int], server: str):
    resp = get(ports, server, "/api/tracked")
    assert not [v for v in resp.get_all("set-cookie") if v.startswith("_ga=")]
    assert vary_names(resp) == [
        *("Accept-Encoding", "Origin", "Cookie", "CF-IPCountry", "Sec-GPC", "DNT")
    ]
    assert resp.get_all("cache-control") == ["private, max-age=60"]


@SERVERS
def test_an_app_that_read_the_consent_varies_on_it(ports: dict[str, int], server: str):
    resp = get(ports, server, "/api/personal")
    assert "Cookie" in vary_names(resp)
    assert resp.get_all("cache-control") == [APP_CACHE]  # nothing was changed by privguard


def test_starlette_gzip_behind_privguard_keeps_its_vary() -> None:
    """Starlette's GZipMiddleware adds ``Vary: Accept-Encoding``; privguard adds nothing."""
    from starlette.testclient import TestClient

    def shop() -> Starlette:
        return Starlette(routes=[Route("/", s_api)], middleware=[Middleware(GZipMiddleware)])

    headers = {"Accept-Encoding": "gzip", **dict(BROWSER)}
    with TestClient(shop()) as client:
        bare = client.get("/", headers=headers)
    with TestClient(AsgiMiddleware(shop(), **OPTIONS)) as client:
        resp = client.get("/", headers=headers)
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.headers.get_list("vary") == bare.headers.get_list("vary")
    assert resp.headers.get_list("cache-control") == [APP_CACHE]


# --- an HTML file sent through http.response.pathsend --------------------------------------------


def test_html_file_sent_by_pathsend_keeps_its_headers(tmp_path: Path) -> None:
    """Starlette's FileResponse uses pathsend where the server offers it."""
    page = tmp_path / "page.html"
    page.write_text(FULL)

    async def file(request: Request) -> StarletteResponse:
        return FileResponse(page, headers={"Cache-Control": APP_CACHE})

    app = AsgiMiddleware(Starlette(routes=[Route("/page", file)]), **OPTIONS)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/page",
        "raw_path": b"/page",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"shop.test")]
        + [(n.lower().encode(), v.encode()) for n, v in BROWSER],
        "client": ("127.0.0.1", 5000),
        "server": ("shop.test", 80),
        "extensions": {"http.response.pathsend": {}},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    headers = [(n.decode(), v.decode()) for n, v in sent[0]["headers"]]
    assert ("content-length", str(len(FULL))) in headers
    assert [v for n, v in headers if n == "cache-control"] == [APP_CACHE]
    vary = ", ".join(v for n, v in headers if n == "vary")
    assert "Accept-Language" not in vary and "User-Agent" not in vary


def test_the_app_sees_its_redirect_body_untouched() -> None:
    """A 3xx is never injected into, whatever its Content-Type."""
    from starlette.testclient import TestClient

    async def moved(request: Request) -> StarletteResponse:
        resp = RedirectResponse("/full", 302)
        resp.headers["content-type"] = "text/html"
        return resp

    app = AsgiMiddleware(Starlette(routes=[Route("/", moved)]), **OPTIONS)
    with TestClient(app) as client:
        resp = client.get("/", headers=dict(BROWSER), follow_redirects=False)
    assert resp.status_code == 302 and resp.content == b""
    assert "cache-control" not in resp.headers
