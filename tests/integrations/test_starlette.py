"""privguard.starlette: context in views and templates, through the ASGI middleware."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.testclient import TestClient

from privguard.asgi import PrivacyMiddleware
from privguard.context import PrivacyContext
from privguard.starlette import (
    context_processor,
    get_context,
    install,
    require_context,
    templates_global,
)

SECRET = "s" * 40
EEA = {"CF-IPCountry": "FR", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
US = {**EEA, "CF-IPCountry": "US"}
PEER = ("127.0.0.1", 50000)
PAGE = """<html><body><p id="regime">{{ privguard.regime }}</p>
{% if privguard.allows('performance') %}<p id="perf">on</p>{% endif %}
<div id="slot">{{ privguard.banner() }}</div></body></html>"""


def banner_shown(html: str) -> bool:
    match = re.search(r'<[^>]*\bid="privguard-banner"[^>]*>', html)
    return match is not None and re.search(r"\shidden[\s>=]", match.group(0)) is None


@pytest.fixture
def templates(tmp_path: Path) -> Jinja2Templates:
    (tmp_path / "page.html").write_text(PAGE)
    return install(Jinja2Templates(directory=str(tmp_path)))


def make_app(templates: Jinja2Templates, protected: bool = True) -> Starlette:
    async def page(request: Request) -> Response:
        response = templates.TemplateResponse(request, "page.html")
        response.headers["Content-Type"] = "text/plain; charset=utf-8"  # banner placed by hand
        response.set_cookie("_ga", "GA1.1.1")
        return response

    async def ctx(request: Request) -> Response:
        context = get_context(request)
        return JSONResponse(
            None if context is None else {"country": context.country, "regime": context.regime}
        )

    async def strict(request: Request) -> Response:
        return JSONResponse({"regime": require_context(request).regime})

    async def html(request: Request) -> Response:
        return HTMLResponse("<html><body>hi</body></html>")

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/ctx", ctx),
            Route("/strict", strict),
            Route("/html", html),
        ]
    )
    if protected:
        app.add_middleware(
            PrivacyMiddleware,
            secret_key=SECRET,
            ledger=None,
            country_header="CF-IPCountry",
            trusted_proxies=["127.0.0.1"],
        )
    return app


def test_get_context_in_a_view(templates: Jinja2Templates) -> None:
    with TestClient(make_app(templates), client=PEER) as client:
        assert client.get("/ctx", headers=EEA).json() == {"country": "FR", "regime": "gdpr"}
        assert client.get("/ctx", headers=US).json() == {"country": "US", "regime": "us-optout"}


def test_get_context_is_none_without_the_middleware(templates: Jinja2Templates) -> None:
    with TestClient(make_app(templates, protected=False)) as client:
        assert client.get("/ctx").json() is None


def test_require_context_names_the_missing_middleware(templates: Jinja2Templates) -> None:
    with TestClient(make_app(templates, protected=False), raise_server_exceptions=True) as client:
        with pytest.raises(RuntimeError, match="PrivacyMiddleware"):
            client.get("/strict")


def test_template_variable_is_the_requests_context(templates: Jinja2Templates) -> None:
    with TestClient(make_app(templates), client=PEER) as client:
        eea = client.get("/", headers=EEA)
        assert '<p id="regime">gdpr</p>' in eea.text
        assert 'id="perf"' not in eea.text
        assert banner_shown(eea.text)  # placed by the template, not injected
        assert "_ga" not in eea.headers.get("set-cookie", "")
        us = client.get("/", headers=US)
        assert '<p id="regime">us-optout</p>' in us.text
        assert '<p id="perf">on</p>' in us.text


def test_middleware_injects_into_html(templates: Jinja2Templates) -> None:
    with TestClient(make_app(templates), client=PEER) as client:
        assert banner_shown(client.get("/html", headers=EEA).text)


def test_privguard_banner_places_the_banner_once(tmp_path: Path) -> None:
    (tmp_path / "placed.html").write_text(
        "<html><body><main>{{ privguard_banner() }}</main><p>after</p></body></html>"
    )
    templates = install(Jinja2Templates(directory=str(tmp_path)))

    async def placed(request: Request) -> Response:
        return templates.TemplateResponse(request, "placed.html")

    app = Starlette(routes=[Route("/", placed)])
    app.add_middleware(PrivacyMiddleware, secret_key=SECRET, ledger=None)
    with TestClient(app) as client:
        html = client.get("/", headers=EEA).text
    assert html.count('id="privguard-banner"') == 1
    assert html.index('id="privguard-banner"') < html.index("</main>")


def test_install_is_idempotent_and_aliased(tmp_path: Path) -> None:
    templates = Jinja2Templates(directory=str(tmp_path))
    assert templates_global is install
    install(templates)
    templates_global(templates)
    assert templates.context_processors == [context_processor]


def test_context_processor_can_be_passed_at_construction(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("{{ privguard.country }}")
    templates = Jinja2Templates(directory=str(tmp_path), context_processors=[context_processor])

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "page.html", media_type="text/plain")

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(
        PrivacyMiddleware,
        secret_key=SECRET,
        ledger=None,
        country_header="CF-IPCountry",
        trusted_proxies=["127.0.0.1"],
    )
    with TestClient(app, client=PEER) as client:
        assert client.get("/", headers=EEA).text == "FR"


def test_get_context_accepts_a_scope() -> None:
    assert get_context({"type": "http"}) is None
    assert get_context(object()) is None
    assert isinstance(PrivacyContext, type)
