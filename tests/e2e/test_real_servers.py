"""privguard behind real servers, fed the bytes browsers and attackers send.

A Flask shop on wsgiref and on werkzeug's development server (WSGI) and a
Starlette shop on uvicorn (ASGI), both behind privguard, driven by a raw
HTTP/1.1 client (``tests/e2e/live.py``) so ``Host``, paths and cookie names can
carry any bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, make_response
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import privguard
import privguard.wsgi
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from tests.e2e.live import WSGI_SERVERS, raw_request, serve_asgi, serve_wsgi

KEY = "real-server-key-" + "r" * 32
OPTIONS: dict[str, Any] = {
    "secret_key": KEY,
    "ledger": None,
    "rate_limit": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
    "age_gate_paths": ["/checkout*"],
}
PAGE = "<html><head><title>shop</title></head><body><p>shop</p></body></html>"
BROWSER = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"), ("Accept", "text/html")]
DE = [("CF-IPCountry", "DE"), *BROWSER]


def flask_shop() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> Any:
        resp = make_response(PAGE)
        resp.set_cookie("_ga", "1")
        return resp

    @app.get("/checkout")
    def checkout() -> Any:
        return make_response(PAGE)

    @app.post("/privguard/feedback")
    def feedback() -> Any:
        return {"got": flask_request.get_data().decode()}

    @app.post("/privguard/banner.css")
    def shadow_asset() -> Any:
        return {"got": flask_request.get_data().decode()}

    return app


async def _index(request: Request) -> Response:
    resp = HTMLResponse(PAGE)
    resp.set_cookie("_ga", "1")
    return resp


async def _checkout(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def _echo_body(request: Request) -> Response:
    return JSONResponse({"got": (await request.body()).decode()})


def starlette_shop() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _index),
            Route("/checkout", _checkout),
            Route("/privguard/feedback", _echo_body, methods=["POST"]),
            Route("/privguard/banner.css", _echo_body, methods=["POST"]),
        ]
    )


SERVERS = pytest.mark.parametrize("server", ["uvicorn", *WSGI_SERVERS])


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    """One live server of each kind for the module."""
    wsgi_app = privguard.protect(flask_shop(), **OPTIONS)
    asgi_app = AsgiMiddleware(starlette_shop(), **OPTIONS)
    with (
        serve_asgi(asgi_app) as uvicorn_port,
        serve_wsgi(wsgi_app.wsgi_app, "wsgiref") as wsgiref_port,
        serve_wsgi(wsgi_app.wsgi_app, "werkzeug") as werkzeug_port,
    ):
        yield {"uvicorn": uvicorn_port, "wsgiref": wsgiref_port, "werkzeug": werkzeug_port}


# --- non-ASCII Host ------------------------------------------------------------------------------


@SERVERS
@pytest.mark.parametrize(
    "host",
    [
        pytest.param("bücher.example", id="utf8-idn"),
        pytest.param(b"caf\xe9.example", id="latin1-byte"),
        pytest.param("例え.テスト:8080", id="utf8-cjk-port"),
    ],
)
def test_non_ascii_host_gets_the_banner_not_a_500(
    ports: dict[str, int], server: str, host: str | bytes
) -> None:
    resp = raw_request(ports[server], "GET", "/", DE, host=host)
    assert resp.status == 200, resp
    assert b'id="privguard-banner"' in resp.body
    assert b'name="csrf_token" value="' in resp.body


@SERVERS
def test_non_ascii_host_on_the_age_gate_gets_the_form(ports: dict[str, int], server: str) -> None:
    resp = raw_request(ports[server], "GET", "/checkout", DE, host="bücher.example")
    assert resp.status == 200, resp  # the age form: asking is no refusal
    assert b'name="csrf_token" value="' in resp.body


@SERVERS
def test_token_minted_for_a_non_ascii_host_is_accepted_there_only(
    ports: dict[str, int], server: str
) -> None:
    page = raw_request(ports[server], "GET", "/", DE, host="bücher.example")
    token = page.body.split(b'name="csrf_token" value="', 1)[1].split(b'"', 1)[0].decode()
    form = f"accept=all&csrf_token={token}".encode()
    headers = [*DE, ("Content-Type", "application/x-www-form-urlencoded")]
    ok = raw_request(
        ports[server], "POST", "/privguard/consent", headers, form, host="bücher.example"
    )
    assert ok.status == 303, ok
    other = raw_request(
        ports[server], "POST", "/privguard/consent", headers, form, host="b.example"
    )
    assert other.status == 403, other


# --- request bodies under the endpoint prefix ----------------------------------------------------


@SERVERS
@pytest.mark.parametrize("path", ["/privguard/feedback", "/privguard/banner.css"])
@pytest.mark.timeout(30)
def test_shop_routes_under_the_prefix_get_their_post_body(
    ports: dict[str, int], server: str, path: str
) -> None:
    headers = [*DE, ("Content-Type", "text/plain")]
    resp = raw_request(ports[server], "POST", path, headers, b"hello shop", timeout=5)
    assert resp.status == 200, resp
    assert json.loads(resp.body) == {"got": "hello shop"}


# --- WSGI apps that call start_response lazily (PEP 3333) ---------------------------------------


def lazy_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A generator app: start_response runs only when the server asks for the body."""
    kind = environ["PATH_INFO"].strip("/")
    body = PAGE.encode()
    if kind == "text":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "_ga=1")])
        yield b"plain "
        yield b"text"
        return
    if kind == "empty":
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "0")])
        return
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Set-Cookie", "_ga=1")]
    if kind == "sized":
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    yield body[:20]
    yield body[20:]


LAZY_WSGI = pytest.mark.parametrize("server", WSGI_SERVERS)


def _both_wsgi_servers(wsgi_app: Any) -> Iterator[dict[str, int]]:
    """``wsgi_app`` behind privguard, served by wsgiref and by werkzeug: their ports."""
    app = privguard.wsgi.PrivacyMiddleware(wsgi_app, **OPTIONS)
    with serve_wsgi(app, "wsgiref") as wsgiref_port, serve_wsgi(app, "werkzeug") as werkzeug_port:
        yield {"wsgiref": wsgiref_port, "werkzeug": werkzeug_port}


@pytest.fixture(scope="module")
def lazy_ports() -> Iterator[dict[str, int]]:
    yield from _both_wsgi_servers(lazy_app)


@LAZY_WSGI
@pytest.mark.parametrize("kind", ["sized", "streamed"])
def test_lazy_wsgi_html_gets_the_banner(lazy_ports: dict[str, int], server: str, kind: str):
    resp = raw_request(lazy_ports[server], "GET", f"/{kind}", DE)
    assert resp.status == 200, resp
    assert b'id="privguard-banner"' in resp.body
    assert resp.body.endswith(b"</body></html>")
    assert not [v for v in resp.get_all("set-cookie") if v.startswith("_ga=")]
    assert "private" in (resp.get("cache-control") or "")
    if kind == "sized":
        assert resp.get("content-length") == str(len(resp.body))


@LAZY_WSGI
def test_lazy_wsgi_plain_and_empty_responses(lazy_ports: dict[str, int], server: str):
    text = raw_request(lazy_ports[server], "GET", "/text", DE)
    assert (text.status, text.body) == (200, b"plain text")
    assert not [v for v in text.get_all("set-cookie") if v.startswith("_ga=")]
    empty = raw_request(lazy_ports[server], "GET", "/empty", DE)
    assert (empty.status, empty.body) == (200, b"")
    assert empty.get("cache-control") is None


# --- an app that fails after starting a page (start_response again, with exc_info) -------------


def failing_page_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Starts an HTML page (privguard holds it back for the banner), then fails and starts
    its error answer instead, as PEP 3333 allows while nothing has been sent."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    try:
        raise ValueError("the page could not be rendered")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "application/json"), ("Set-Cookie", "_ga=1")],
            sys.exc_info(),
        )
    return [b'{"error": "failed"}']


@pytest.fixture(scope="module")
def failing_ports() -> Iterator[dict[str, int]]:
    yield from _both_wsgi_servers(failing_page_app)


@LAZY_WSGI
def test_an_error_started_after_a_held_page_replaces_it(
    failing_ports: dict[str, int], server: str
) -> None:
    for _ in range(3):  # the decision's first answer, then its plan's
        resp = raw_request(failing_ports[server], "GET", "/", DE)
        assert resp.status == 500, resp
        assert resp.body == b'{"error": "failed"}'  # the error's body, no banner
        assert resp.get("content-type") == "application/json"
        assert not [v for v in resp.get_all("set-cookie") if v.startswith("_ga=")]
