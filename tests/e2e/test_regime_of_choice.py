"""A choice belongs to the regime it was made in (DESIGN §13), through Flask and Starlette.

A US visitor's "Do Not Sell" form (which keeps functionality and performance)
and "accept all" are no GDPR opt-in: with the same cookie from Germany,
``_ga`` and ``_fbp`` are blocked and the banner asks again. A refusal made
under GDPR holds in the US. A cookie written before the regime was recorded
counts as made elsewhere.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp

import privguard
from privguard.asgi import PrivacyMiddleware
from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.settings import Settings

KEY = "regime-of-choice-key-" + "x" * 32
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
PAGE = "<!DOCTYPE html><html><body><h1>shop</h1></body></html>"
SHOP_COOKIES = ("session", "lang", "_ga", "_fbp")
OPTIONS: dict[str, Any] = {
    "secret_key": KEY,
    "ledger": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
    "rate_limit": None,
}


class Browser:
    """One cookie jar, one adapter; the country changes between requests."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "flask":
            app = Flask(__name__)

            @app.get("/")
            def index() -> Any:
                resp = make_response(PAGE)
                for name in SHOP_COOKIES:
                    resp.set_cookie(name, "v")
                return resp

            privguard.protect(app, **OPTIONS)
            self.webtest = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
            self.origin = "http://localhost"
        else:

            async def index(request: Any) -> HTMLResponse:
                resp = HTMLResponse(PAGE)
                for name in SHOP_COOKIES:
                    resp.set_cookie(name, "v")
                return resp

            star = Starlette(routes=[Route("/", index)])
            star.add_middleware(PrivacyMiddleware, **OPTIONS)
            self.client = TestClient(star, client=("127.0.0.1", 50000))
            self.origin = "http://testserver"

    def get(self, path: str, country: str) -> tuple[list[str], list[str], str]:
        """(live cookies set, cookies expired, body)."""
        headers = {"CF-IPCountry": country, "User-Agent": BROWSER, "Accept": "text/html"}
        if self.kind == "flask":
            r = self.webtest.get(path, headers=headers)
            values, body = r.headers.getall("Set-Cookie"), r.text
        else:
            resp = self.client.get(path, headers=headers)
            values, body = resp.headers.get_list("set-cookie"), resp.text
        live = sorted(v.split("=", 1)[0] for v in values if "Max-Age=0" not in v)
        gone = sorted(v.split("=", 1)[0] for v in values if "Max-Age=0" in v)
        return live, gone, body

    def state(self, country: str) -> dict[str, Any]:
        headers = {"CF-IPCountry": country}
        if self.kind == "flask":
            data: dict[str, Any] = self.webtest.get("/privguard/consent", headers=headers).json
        else:
            data = self.client.get("/privguard/consent", headers=headers).json()
        return data

    def post(self, path: str, form: dict[str, str], country: str) -> None:
        headers = {"CF-IPCountry": country, "Origin": self.origin}
        if self.kind == "flask":
            status = self.webtest.post(path, form, headers=headers).status_int
        else:
            status = self.client.post(
                path, data=form, headers=headers, follow_redirects=False
            ).status_code
        assert status == 303

    def set_consent_cookie(self, value: str) -> None:
        if self.kind == "flask":
            self.webtest.set_cookie("privguard_consent", value)
        else:
            self.client.cookies.set("privguard_consent", value)


@pytest.fixture(params=["flask", "starlette"])
def browser(request: pytest.FixtureRequest) -> Browser:
    return Browser(request.param)


NOTHING = {"necessary": True, "functionality": False, "performance": False, "marketing": False}


@pytest.mark.parametrize(
    ("path", "form"),
    [
        pytest.param("/privguard/do-not-sell", {}, id="do-not-sell"),
        pytest.param("/privguard/consent", {"accept": "all"}, id="accept-all"),
    ],
)
def test_a_us_choice_is_no_gdpr_opt_in(browser: Browser, path: str, form: dict[str, str]) -> None:
    browser.post(path, form, "US")
    live, _, _ = browser.get("/", "US")
    assert {"_ga", "lang"} <= set(live)  # the US choice applies in the US
    live, gone, body = browser.get("/", "DE")
    assert "_ga" not in live and "_fbp" not in live and "lang" not in live
    assert {"_ga", "lang"} <= set(gone)  # the browser's US copies are withdrawn
    assert 'id="privguard-banner"' in body
    state = browser.state("DE")
    assert state["needs_banner"] is True
    assert state["choice_made"] is False
    assert state["categories"] == NOTHING
    # asked again and answered under GDPR, the choice holds there
    browser.post("/privguard/consent", {"accept": "all"}, "DE")
    live, _, body = browser.get("/", "DE")
    assert {"_ga", "_fbp", "lang"} <= set(live)
    assert browser.state("DE")["needs_banner"] is False


def test_do_not_sell_refusal_holds_under_gdpr(browser: Browser) -> None:
    browser.post("/privguard/do-not-sell", {}, "US")
    browser.post("/privguard/consent", {"accept": "all"}, "DE")  # asked again: a real opt-in
    browser.post("/privguard/do-not-sell", {}, "US")  # marketing refused in the US
    live, _, _ = browser.get("/", "DE")
    assert "_fbp" not in live  # a refusal is honoured everywhere
    assert browser.state("DE")["categories"]["marketing"] is False


def test_a_gdpr_refusal_holds_in_the_us(browser: Browser) -> None:
    browser.post("/privguard/consent", {"accept": "none"}, "DE")
    live, _, body = browser.get("/", "US")
    assert live == ["session"]  # no US defaults over a refusal
    state = browser.state("US")
    assert state["categories"] == NOTHING
    assert state["choice_made"] is True and state["needs_banner"] is False


def test_a_cookie_without_its_regime_counts_as_made_elsewhere(browser: Browser) -> None:
    """Cookies written before the regime was recorded: asked again under GDPR, refusals kept."""
    settings = Settings(**OPTIONS)
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    granted = frozenset({Category.NECESSARY, Category.PERFORMANCE, Category.MARKETING})
    browser.set_consent_cookie(codec.dump(ConsentState("1", granted, "old-receipt")))
    live, _, body = browser.get("/", "DE")
    assert live == ["session"]
    assert 'id="privguard-banner"' in body
    assert browser.state("DE")["needs_banner"] is True
    live, _, _ = browser.get("/", "US")
    assert "lang" not in live  # its refusal of functionality still holds
