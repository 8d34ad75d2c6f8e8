"""privguard.django behaves as the WSGI/ASGI adapters do: ``Vary: Cookie`` when a view read
the consent, and the banner language negotiated only when text is shown.

Through Django's test client (sync and async) and a real gunicorn serving a Django
project, so a shared cache in front of the shop sees the same headers.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.test import AsyncClient, Client
from django.test.utils import override_settings
from django.urls import include, path

from privguard.banner.render import BannerRenderer
from tests.appserver import AppServer

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
EEA = {"HTTP_CF_IPCOUNTRY": "DE", "HTTP_USER_AGENT": UA, "HTTP_ACCEPT_LANGUAGE": "de-DE,de"}
JSON = {**EEA, "HTTP_ACCEPT": "application/json"}
HTML = {**EEA, "HTTP_ACCEPT": "text/html"}


def offers(request: HttpRequest) -> JsonResponse:
    """A JSON view whose answer depends on the visitor's consent."""
    ok = request.privguard.allows("marketing")  # type: ignore[attr-defined]
    return JsonResponse({"offers": ["retargeted"] if ok else []})


def stock(request: HttpRequest) -> JsonResponse:
    """A JSON view that answers every visitor alike."""
    return JsonResponse({"stock": 3})


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body>shop</body></html>")


def moved(request: HttpRequest) -> HttpResponse:
    """A redirect with an HTML body, as Django's ``HttpResponseRedirect`` sends it."""
    return HttpResponse("<html><body>moved</body></html>", status=302, headers={"Location": "/"})


def placed(request: HttpRequest) -> HttpResponse:
    tpl = "<html><body>{% load privguard %}<main>{% privguard_banner %}</main></body></html>"
    return HttpResponse(engines["django"].from_string(tpl).render({}, request))


urlpatterns = [
    path("offers/", offers),
    path("stock/", stock),
    path("moved/", moved),
    path("", page),
    path("placed/", placed),
    path("checkout/pay/", page),
    path("privguard/", include("privguard.django.urls")),
]


@pytest.fixture(autouse=True)
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def root_lang(html: str, root_id: str) -> str | None:
    """The ``lang`` attribute of the element with ``id=root_id``."""
    tag = re.search(rf'<[^>]*\bid="{root_id}"[^>]*>', html)
    lang = re.search(r'\blang="([^"]+)"', tag.group(0)) if tag else None
    return lang.group(1) if lang else None


def vary(response: Any) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


@pytest.mark.parametrize(
    "client", [pytest.param(Client, id="sync"), pytest.param(None, id="async")]
)
def test_a_view_that_read_the_consent_varies_on_cookie(client: Any) -> None:
    if client is None:
        import asyncio

        response = asyncio.run(AsyncClient().get("/offers/", **JSON))
    else:
        response = client().get("/offers/", **JSON)
    assert response.json() == {"offers": []}
    assert "cookie" in vary(response)
    assert {"sec-gpc", "dnt", "cf-ipcountry"} <= vary(response)


def test_a_view_that_did_not_read_it_keeps_its_headers() -> None:
    response = Client().get("/stock/", **JSON)
    assert response.json() == {"stock": 3}
    assert "cookie" not in vary(response)


def test_a_redirect_is_no_document() -> None:
    """As under WSGI/ASGI: no banner and no document-only Permissions-Policy on a 3xx."""
    page_response = Client().get("/", **HTML)
    assert "Permissions-Policy" in page_response
    response = Client().get("/moved/", **HTML)
    assert response.status_code == 302
    assert "Permissions-Policy" not in response
    assert b"privguard" not in response.content


@pytest.fixture
def negotiations(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every Accept-Language the banner renderer negotiates (the real method still answers)."""
    seen: list[str | None] = []
    real = BannerRenderer.negotiate

    def counting(self: BannerRenderer, header: str | None) -> str:
        seen.append(header)
        return real(self, header)

    monkeypatch.setattr(BannerRenderer, "negotiate", counting)
    return seen


@pytest.mark.parametrize("url", ["/offers/", "/stock/"])
def test_no_negotiation_where_no_text_is_shown(url: str, negotiations: list[str | None]) -> None:
    assert Client().get(url, **JSON).status_code == 200
    assert negotiations == []


def test_the_injected_banner_is_negotiated(negotiations: list[str | None]) -> None:
    html = Client().get("/", **HTML).content.decode()
    assert re.search(
        r'id="privguard-banner"[^>]*lang="de"|lang="de"[^>]*id="privguard-banner"', html
    )
    assert negotiations == ["de-DE,de"]


def test_the_template_tag_banner_is_negotiated(negotiations: list[str | None]) -> None:
    html = Client().get("/placed/", **HTML).content.decode()
    assert html.count('id="privguard-banner"') == 1
    assert root_lang(html, "privguard-banner") == "de"
    assert negotiations == ["de-DE,de"]


def test_the_age_page_is_negotiated(negotiations: list[str | None]) -> None:
    html = Client().get("/checkout/pay/", **HTML).content.decode()  # conftest: /checkout/*
    assert 'id="privguard-age-gate"' in html
    assert re.search(r'<html lang="de"', html)
    assert negotiations == ["de-DE,de"]


# -- a real server ----------------------------------------------------------------------

PROJECT = """
import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY={secret!r},
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF="shop",
    INSTALLED_APPS=["privguard.django"],
    MIDDLEWARE=["privguard.django.PrivacyMiddleware"],
    PRIVGUARD={{"ledger": None, "country_header": "CF-IPCountry", "trusted_proxies": 1}},
)
django.setup()

from django.http import JsonResponse
from django.urls import include, path


def offers(request):
    ok = request.privguard.allows("marketing")
    return JsonResponse({{"offers": ["retargeted"] if ok else []}})


def stock(request):
    return JsonResponse({{"stock": 3}})


urlpatterns = [
    path("offers/", offers),
    path("stock/", stock),
    path("privguard/", include("privguard.django.urls")),
]

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""


def test_gunicorn_serves_vary_cookie_for_a_consent_dependent_view(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(textwrap.dedent(PROJECT.format(secret="p" * 50)))
    server = AppServer(tmp_path, "shop:application", server="gunicorn").wait_ready()
    try:
        headers = {"CF-IPCountry": "DE", "User-Agent": UA, "Accept": "application/json"}
        offers = httpx.get(server.base + "/offers/", headers=headers)
        stock = httpx.get(server.base + "/stock/", headers=headers)
    finally:
        server.stop()
    assert offers.json() == {"offers": []}
    assert "cookie" in vary(offers.headers)
    assert "cookie" not in vary(stock.headers)
