"""Languages end to end: ``Accept-Language`` picks the banner and age-gate language
through the WSGI adapter (Flask via webtest) and the ASGI adapter (Starlette's
TestClient), with every shipped language offered by default."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp

import privguard
from privguard.asgi import PrivacyMiddleware
from privguard.banner.languages import SHIPPED_LANGUAGES, load_builtin_texts

KEY = "languages-test-key-" + "x" * 32
PAGE = "<!DOCTYPE html><html><head><title>shop</title></head><body><p>shop</p></body></html>"
OPTIONS: dict[str, object] = {
    "secret_key": KEY,
    "ledger": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
    "age_gate_paths": ["/checkout*"],
}

#: (header, negotiated language)
CASES = [
    ("pt-BR,pt;q=0.9,en;q=0.5", "pt-BR"),
    ("pt-PT,pt;q=0.9", "pt"),
    ("nb-NO,nb;q=0.9", "nb"),
    ("no", "nb"),
    ("de-AT,de;q=0.9,en;q=0.5", "de"),
    ("en-GB", "en"),
    ("pl-PL,pl;q=0.9,en-US;q=0.8", "pl"),
    ("ga-IE,en-IE;q=0.7", "ga"),
    ("zh-CN", "en"),
]

#: A desktop browser: a missing or bot User-Agent gets no banner.
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
}

Get = Callable[[str, dict[str, str]], tuple[int, dict[str, str], str]]


def flask_client(**options: object) -> Get:
    app = Flask(__name__)

    @app.get("/")
    def index() -> object:
        return make_response(PAGE)

    @app.get("/checkout")
    def checkout() -> object:
        return make_response(PAGE)

    privguard.protect(app, **{**OPTIONS, **options})
    client = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})

    def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
        resp = client.get(path, headers={**BROWSER, **headers}, expect_errors=True)
        return resp.status_int, {k.lower(): v for k, v in resp.headers.items()}, resp.text

    return get


def starlette_client(**options: object) -> Get:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    app = Starlette(routes=[Route("/", page), Route("/checkout", page)])
    client = TestClient(PrivacyMiddleware(app, **{**OPTIONS, **options}))

    def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
        resp = client.get(path, headers={**BROWSER, **headers})
        return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.text

    return get


ADAPTERS = [pytest.param(flask_client, id="wsgi-flask"), pytest.param(starlette_client, id="asgi")]


def banner_lang(text: str) -> str:
    match = re.search(r'<div id="privguard-banner"[^>]* lang="([^"]+)"', text)
    assert match is not None, "no banner"
    return match.group(1)


@pytest.mark.parametrize("make", ADAPTERS)
@pytest.mark.parametrize("header,lang", CASES)
def test_banner_language_follows_accept_language(
    make: Callable[..., Get], header: str, lang: str
) -> None:
    get = make()
    status, headers, text = get("/", {"CF-IPCountry": "DE", "Accept-Language": header})
    assert status == 200
    assert banner_lang(text) == lang
    texts = load_builtin_texts(lang)
    assert html.escape(texts["reject_all"]) in text
    assert html.escape(texts["accept_all"]) in text
    assert "Accept-Language" in headers["vary"]


@pytest.mark.parametrize("make", ADAPTERS)
@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_age_gate_speaks_every_language(make: Callable[..., Get], lang: str) -> None:
    get = make()
    status, headers, text = get(
        "/checkout", {"CF-IPCountry": "DE", "Accept-Language": lang, "Accept": "text/html"}
    )
    assert headers["content-language"] == lang
    assert f'<html lang="{lang}">' in text
    assert html.escape(load_builtin_texts(lang)["age_title"]) in text
    assert status in (200, 403)


@pytest.mark.parametrize("make", ADAPTERS)
def test_a_shop_narrows_the_languages(make: Callable[..., Get]) -> None:
    get = make(languages=["de", "en"])
    _, _, text = get("/", {"CF-IPCountry": "DE", "Accept-Language": "pl, pt-BR;q=0.5"})
    assert banner_lang(text) == "de"  # neither offered: the first configured language
    _, _, text = get("/", {"CF-IPCountry": "DE", "Accept-Language": "en-GB"})
    assert banner_lang(text) == "en"
