"""The Flask example shop, end to end through privguard (webtest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from webtest import TestApp

from examples.flask_shop.app import create_app
from privguard.testing import (
    assert_banner_hidden,
    assert_banner_shown,
    assert_cookie_allowed,
    assert_cookie_blocked,
    assert_cookie_expired,
    assert_no_nonessential_cookies,
)

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAME_ORIGIN = {"Origin": "http://localhost"}


def visitor(country: str, **extra: str) -> dict[str, str]:
    return {"CF-IPCountry": country, "User-Agent": UA, "Accept": "text/html", **extra}


DE, US = visitor("DE"), visitor("US")


@pytest.fixture
def shop(tmp_path: Path) -> TestApp:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-" + "x" * 32,
            "DATABASE": str(tmp_path / "shop.db"),
            "PRIVGUARD_LEDGER": f"sqlite:///{tmp_path / 'ledger.db'}",
            "PRIVGUARD_TRUSTED_PROXIES": ["127.0.0.1"],
        }
    )
    yield TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    app.extensions["privguard"].runtime.close()


def consent(shop: TestApp, headers: dict[str, str], **form: str):  # type: ignore[no-untyped-def]
    return shop.post("/privguard/consent", form, headers={**headers, **SAME_ORIGIN})


def add_to_cart(shop: TestApp, headers: dict[str, str], product_id: int = 1) -> None:
    form = shop.get("/", headers=headers).forms[0]
    form["product_id"] = str(product_id)
    form.submit(headers=headers).follow(headers=headers)


def test_first_time_eea_visitor_sees_the_banner_and_no_tracking(shop: TestApp) -> None:
    page = shop.get("/", headers=DE)
    assert_banner_shown(page)
    assert_no_nonessential_cookies(page)
    assert_cookie_blocked(page, "_ga")
    assert 'data-regime="gdpr"' in page.text
    assert 'type="text/plain" data-privguard-category="performance"' in page.text
    assert 'type="text/plain" data-privguard-category="marketing"' in page.text
    lang = shop.get("/lang/de", headers=DE)
    assert_cookie_blocked(lang, "lang")


def test_cookies_pass_after_accept(shop: TestApp) -> None:
    shop.get("/", headers=DE)
    answer = consent(shop, DE, accept="all", next="/")
    assert answer.status_int == 303
    assert any(c.name.endswith("privguard_consent") for c in shop.cookiejar)
    page = shop.get("/", headers=DE)
    assert_banner_hidden(page)
    assert_cookie_allowed(page, "_ga")
    assert_cookie_allowed(shop.get("/lang/de", headers=DE), "lang")
    assert "Willkommen" in shop.get("/", headers=DE).text  # the language cookie works now
    assert "Analytics on" in page.text and "marketing on" in page.text


def test_partial_consent_keeps_marketing_off(shop: TestApp) -> None:
    shop.post(
        "/privguard/consent",
        [("category", "functionality"), ("category", "performance")],
        headers={**DE, **SAME_ORIGIN},
    )
    page = shop.get("/", headers=DE)
    assert "Analytics on" in page.text and "marketing off" in page.text


def test_withdrawal_expires_the_cookies(shop: TestApp) -> None:
    consent(shop, DE, accept="all")
    shop.get("/", headers=DE)
    shop.get("/lang/fr", headers=DE)
    assert {"_ga", "lang"} <= {c.name for c in shop.cookiejar}
    withdrawn = consent(shop, DE, accept="none")
    assert_cookie_expired(withdrawn, "_ga")
    assert_cookie_expired(withdrawn, "lang")
    assert {"_ga", "lang"}.isdisjoint(c.name for c in shop.cookiejar)
    assert_cookie_blocked(shop.get("/", headers=DE), "_ga")


def test_us_visitor_gets_analytics_by_default_but_gpc_stops_marketing(shop: TestApp) -> None:
    page = shop.get("/", headers=US)
    assert_cookie_allowed(page, "_ga")
    assert 'data-regime="us-optout"' in page.text
    gpc = shop.get("/", headers=visitor("US", **{"Sec-GPC": "1"}))
    assert "Global Privacy Control" in gpc.text and "marketing off" in gpc.text


def test_checkout_needs_an_age_answer(shop: TestApp) -> None:
    add_to_cart(shop, DE)
    gate = shop.get("/checkout", headers=DE, status=200)
    assert 'id="privguard-age-gate"' in gate.text
    shop.post(
        "/privguard/age", {"birth_year": "1990", "next": "/checkout"}, headers={**DE, **SAME_ORIGIN}
    )
    page = shop.get("/checkout", headers=DE)
    form = page.forms["checkout"]
    form["email"] = "ada@example.com"
    form["address"] = "1 Tea Street, Berlin"
    done = form.submit(headers=DE).follow(headers=DE)
    assert "Order 1 is placed" in done.text


def test_a_minor_cannot_check_out_or_sign_up(shop: TestApp) -> None:
    add_to_cart(shop, US)
    shop.post("/privguard/age", {"birth_year": "2015"}, headers={**US, **SAME_ORIGIN})
    blocked = shop.get("/checkout", headers=US, status=403)
    assert 'id="privguard-age-gate"' not in blocked.text
    shop.get("/account/register", headers=US, status=403)
    shop.post("/privguard/age", {"birth_year": "1970"}, headers={**US, **SAME_ORIGIN})
    shop.get("/checkout", headers=US, status=403)  # a minor answer sticks
    assert_no_nonessential_cookies(shop.get("/", headers=US))


def test_sign_up_stores_the_customer(shop: TestApp) -> None:
    shop.post("/privguard/age", {"birth_year": "1985"}, headers={**DE, **SAME_ORIGIN})
    form = shop.get("/account/register", headers=DE).forms["register"]
    form["name"] = "Ada"
    form["email"] = "ada@example.com"
    welcome = form.submit(headers=DE).follow(headers=DE)
    assert "Welcome, Ada!" in welcome.text


def test_privacy_page_renders_the_policy(shop: TestApp) -> None:
    page = shop.get("/privacy", headers=DE)
    assert "Qomoor Privacy Policy" in page.text
    assert "<table>" in page.text and "Contract Performance" in page.text


def test_cart_is_necessary_and_survives_a_reject(shop: TestApp) -> None:
    consent(shop, DE, accept="none")
    add_to_cart(shop, DE, product_id=2)
    cart = shop.get("/cart", headers=DE)
    assert "Assam Breakfast" in cart.text
