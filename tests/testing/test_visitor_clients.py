"""``visitor.get(client, path)`` works the same with every supported client: a first-time
DE visitor gets the banner and no ``_ga``; a returning visitor who allowed performance
gets ``_ga`` and no banner. Where a client cannot carry the visitor, it says so."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import requests
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp
from werkzeug.test import Client

from privguard import Settings
from privguard.asgi import PrivacyMiddleware as ASGIPrivacy
from privguard.testing import (
    assert_banner_hidden,
    assert_banner_shown,
    assert_cookie_allowed,
    assert_cookie_blocked,
    make_visitor,
)
from privguard.wsgi import PrivacyMiddleware as WSGIPrivacy

SETTINGS = Settings(
    secret_key="visitor-clients-secret-0123456789abcdef",
    ledger=None,
    country_header="CF-IPCountry",
    trusted_proxies=["127.0.0.1"],
)
PAGE = "<html><body>shop</body></html>"


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> Any:
        response = make_response(PAGE)
        response.set_cookie("_ga", "GA1.1.1")
        return response

    app.wsgi_app = WSGIPrivacy(app.wsgi_app, SETTINGS)  # type: ignore[method-assign]
    return app


def starlette_app() -> Any:
    async def index(request: Request) -> HTMLResponse:
        response = HTMLResponse(PAGE)
        response.set_cookie("_ga", "GA1.1.1")
        return response

    return ASGIPrivacy(Starlette(routes=[Route("/", index)]), SETTINGS)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, flask_app(), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def clients(kind: str, live_url: str) -> tuple[Any, str]:
    if kind == "webtest":
        return TestApp(flask_app()), "/"
    if kind == "flask":
        return flask_app().test_client(), "/"
    if kind == "flask-no-cookies":
        return flask_app().test_client(use_cookies=False), "/"
    if kind == "werkzeug":
        return Client(flask_app()), "/"
    if kind == "starlette":
        return TestClient(starlette_app(), client=("127.0.0.1", 50000)), "/"
    if kind == "httpx-wsgi":
        transport = httpx.WSGITransport(app=flask_app(), remote_addr="127.0.0.1")
        return httpx.Client(transport=transport, base_url="http://shop.test"), "/"
    if kind == "requests":
        return requests.Session(), live_url + "/"
    raise AssertionError(kind)


KINDS = ["webtest", "flask", "flask-no-cookies", "werkzeug", "starlette", "httpx-wsgi", "requests"]


@pytest.mark.parametrize("kind", KINDS)
def test_first_and_returning_visitor_with_every_client(kind: str, live_url: str) -> None:
    client, path = clients(kind, live_url)
    first = make_visitor(country="DE", settings=SETTINGS)
    response = first.get(client, path)
    assert_banner_shown(response, visitor=first)
    assert_cookie_blocked(response, "_ga", visitor=first)
    client, path = clients(kind, live_url)  # a fresh client: nothing in its jar
    returning = make_visitor(country="DE", consent=["performance"], settings=SETTINGS)
    response = returning.get(client, path)
    assert_banner_hidden(response, visitor=returning)  # the stored consent arrived
    assert_cookie_allowed(response, "_ga", visitor=returning)


def test_us_visitor_gets_performance_by_default(live_url: str) -> None:
    client, path = clients("flask", live_url)
    visitor = make_visitor(country="US", state="CA", settings=SETTINGS)
    assert_cookie_allowed(visitor.get(client, path), "_ga", visitor=visitor)


def test_flask_client_dropping_the_stored_consent_is_refused_loudly() -> None:
    returning = make_visitor(country="DE", consent="all", settings=SETTINGS)
    client = flask_app().test_client()
    response = client.get("/", environ_overrides=returning.environ)
    with pytest.raises(AssertionError, match="dropped the visitor's cookies.*visitor.get"):
        assert_banner_hidden(response)


def test_starlettes_default_peer_is_refused_loudly() -> None:
    visitor = make_visitor(country="DE", settings=SETTINGS)
    with pytest.raises(ValueError, match=r"presents itself as 'testclient'.*client=\('127.0.0.1'"):
        visitor.get(TestClient(starlette_app()), "/")


def test_an_unknown_client_is_refused() -> None:
    visitor = make_visitor(country="DE", settings=SETTINGS)
    with pytest.raises(ValueError, match="cannot drive a builtins.object"):
        visitor.get(object(), "/")


def test_settings_given_as_a_dict_of_options_work_and_anything_else_is_refused() -> None:
    options = {
        "secret_key": "visitor-clients-secret-0123456789abcdef",
        "country_header": "CF-IPCountry",
        "trusted_proxies": ["127.0.0.1"],
        "ledger": None,
    }
    visitor = make_visitor(country="DE", consent="all", settings=options)  # type: ignore[arg-type]
    assert visitor.headers["CF-IPCountry"] == "DE" and visitor.cookies
    from privguard import ConfigError

    with pytest.raises(ConfigError, match="returned a list; return the app's privguard.Settings"):
        make_visitor(country="DE", settings=[1])  # type: ignore[arg-type]
