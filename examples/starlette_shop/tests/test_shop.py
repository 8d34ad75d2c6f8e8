"""The Starlette example shop, end to end through privguard (Starlette's TestClient)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from examples.starlette_shop.app import create_app
from privguard.testing import (
    assert_banner_hidden,
    assert_banner_shown,
    assert_cookie_allowed,
    assert_cookie_blocked,
    assert_cookie_expired,
    assert_no_nonessential_cookies,
)

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAME_ORIGIN = {"Origin": "http://testserver"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def visitor(country: str, **extra: str) -> dict[str, str]:
    return {"CF-IPCountry": country, "User-Agent": UA, "Accept": "text/html", **extra}


DE, US = visitor("DE"), visitor("US")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        database=str(tmp_path / "shop.db"),
        instance=tmp_path,
        privguard={
            "secret_key": "test-secret-" + "x" * 32,
            "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
            "trusted_proxies": ["127.0.0.1"],
        },
    )
    # the peer must be an address privguard trusts to read CF-IPCountry
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


def consent(shop: TestClient, headers: dict[str, str], body: str) -> httpx.Response:
    return shop.post(
        "/privguard/consent",
        content=body,
        headers={**headers, **SAME_ORIGIN, **FORM},
        follow_redirects=False,
    )


def age(shop: TestClient, headers: dict[str, str], year: int) -> httpx.Response:
    return shop.post(
        "/privguard/age",
        content=f"birth_year={year}",
        headers={**headers, **SAME_ORIGIN, **FORM},
        follow_redirects=False,
    )


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def add_to_cart(shop: TestClient, headers: dict[str, str], product_id: int = 1) -> None:
    token = csrf(shop.get("/", headers=headers).text)
    shop.post(
        "/cart/add",
        content=f"csrf={token}&product_id={product_id}",
        headers={**headers, **FORM},
    )


def test_first_time_eea_visitor_sees_the_banner_and_no_tracking(shop: TestClient) -> None:
    page = shop.get("/", headers=DE)
    assert_banner_shown(page)
    assert_no_nonessential_cookies(page)
    assert_cookie_blocked(page, "_ga")
    assert 'data-regime="gdpr"' in page.text
    assert 'type="text/plain" data-privguard-category="marketing"' in page.text
    lang = shop.get("/lang/de", headers=DE, follow_redirects=False)
    assert_cookie_blocked(lang, "lang")


def test_cookies_pass_after_accept(shop: TestClient) -> None:
    shop.get("/", headers=DE)
    answer = consent(shop, DE, "accept=all&next=/")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    page = shop.get("/", headers=DE)
    assert_banner_hidden(page)
    assert_cookie_allowed(page, "_ga")
    assert_cookie_allowed(shop.get("/lang/de", headers=DE, follow_redirects=False), "lang")
    assert "Willkommen" in shop.get("/", headers=DE).text
    assert "Analytics on" in page.text and "marketing on" in page.text


def test_withdrawal_expires_the_cookies(shop: TestClient) -> None:
    consent(shop, DE, "accept=all")
    shop.get("/", headers=DE)
    shop.get("/lang/es", headers=DE)
    assert {"_ga", "lang"} <= set(shop.cookies.keys())
    withdrawn = consent(shop, DE, "accept=none")
    assert_cookie_expired(withdrawn, "_ga")
    assert_cookie_expired(withdrawn, "lang")
    assert "_ga" not in shop.cookies and "lang" not in shop.cookies
    assert_cookie_blocked(shop.get("/", headers=DE), "_ga")


def test_us_visitor_gets_analytics_by_default_but_gpc_stops_marketing(shop: TestClient) -> None:
    page = shop.get("/", headers=US)
    assert_cookie_allowed(page, "_ga")
    assert 'data-regime="us-optout"' in page.text
    gpc = shop.get("/", headers=visitor("US", **{"Sec-GPC": "1"}))
    assert "Global Privacy Control" in gpc.text and "marketing off" in gpc.text


def test_checkout_needs_an_age_answer(shop: TestClient) -> None:
    add_to_cart(shop, DE)
    gate = shop.get("/checkout", headers=DE)
    assert gate.status_code == 200 and 'id="privguard-age-gate"' in gate.text
    assert age(shop, DE, 1990).status_code == 303
    page = shop.get("/checkout", headers=DE)
    assert page.status_code == 200 and "Sencha Fresh" in page.text
    done = shop.post(
        "/checkout",
        content=f"csrf={csrf(page.text)}&email=ada%40example.com&address=1+Tea+Street",
        headers={**DE, **FORM},
    )
    assert "Order 1 is placed" in done.text


def test_a_minor_cannot_check_out_or_sign_up(shop: TestClient) -> None:
    add_to_cart(shop, US)
    age(shop, US, 2015)
    blocked = shop.get("/checkout", headers=US)
    assert blocked.status_code == 403 and 'id="privguard-age-gate"' not in blocked.text
    assert shop.get("/account/register", headers=US).status_code == 403
    age(shop, US, 1970)
    assert shop.get("/checkout", headers=US).status_code == 403  # a minor answer sticks
    assert_no_nonessential_cookies(shop.get("/", headers=US))


def test_sign_up_stores_the_customer(shop: TestClient) -> None:
    age(shop, DE, 1985)
    form = shop.get("/account/register", headers=DE)
    welcome = shop.post(
        "/account/register",
        content=f"csrf={csrf(form.text)}&name=Ada&email=ada%40example.com",
        headers={**DE, **FORM},
    )
    assert "Welcome, Ada!" in welcome.text


def test_privacy_page_renders_the_policy(shop: TestClient) -> None:
    page = shop.get("/privacy", headers=DE)
    assert "Qomoor Privacy Policy" in page.text and "Contract Performance" in page.text


def test_consent_state_endpoint(shop: TestClient) -> None:
    state = shop.get("/privguard/consent", headers=DE).json()
    assert state["country"] == "DE" and state["needs_banner"] is True
    assert state["required_age"] == 16
