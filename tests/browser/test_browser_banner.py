"""The banner in a real browser: Debian's Chromium driven by Playwright, against a real
uvicorn serving a Starlette shop wrapped in privguard.asgi.PrivacyMiddleware."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.browser_shop import (
    csp_violations,
    make_app,
    make_csp_app,
    serve,
)

NECESSARY = {"session", "privguard_consent"}
EEA = {"CF-IPCountry": "DE", "Accept-Language": "de-DE,de;q=0.9"}
TIMEOUT_MS = 5000


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with serve(make_app()) as url:
        yield url


@pytest.fixture(scope="module")
def consent_mode_shop() -> Iterator[str]:
    with serve(make_csp_app(consent_mode=True)) as url:
        yield url


def new_context(browser: Browser, base: str, **kw: Any) -> BrowserContext:
    headers = kw.pop("headers", EEA)
    context = browser.new_context(
        base_url=base, extra_http_headers=headers, user_agent=user_agent(browser), **kw
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def user_agent(browser: Browser) -> str:
    """A desktop Chrome UA: "HeadlessChrome" is (rightly) a bot, and bots get no banner."""
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{browser.version} Safari/537.36"
    )


@pytest.fixture
def eea(browser: Browser, shop: str) -> Iterator[Page]:
    context = new_context(browser, shop)
    page = context.new_page()
    yield page
    context.close()


def banner_hidden(page: Page) -> bool:
    return bool(
        page.evaluate(
            "() => { const r = document.getElementById('privguard-banner');"
            " return !r || r.hasAttribute('hidden'); }"
        )
    )


def document_cookies(page: Page) -> set[str]:
    raw = page.evaluate("() => document.cookie")
    return {c.split("=", 1)[0].strip() for c in raw.split(";") if c.strip()}


def jar(context: BrowserContext) -> set[str]:
    return {c["name"] for c in context.cookies()}


def consent_state(page: Page) -> dict[str, Any]:
    return page.evaluate(
        "() => fetch('/privguard/consent', {credentials: 'same-origin'}).then(r => r.json())"
    )


# --- first visit ----------------------------------------------------------------------


def test_banner_shown_to_eea_visitor_not_to_returning_one(eea: Page) -> None:
    eea.goto("/")
    banner = eea.locator("#privguard-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("lang", "de")
    expect(eea.locator('[data-privguard-action="reject-all"]')).to_have_text("Alle ablehnen")
    # focus moved into the dialog
    assert eea.evaluate(
        "() => document.getElementById('privguard-banner').contains(document.activeElement)"
    )
    # nothing non-essential before a choice
    assert document_cookies(eea) <= NECESSARY
    assert "_ga" not in jar(eea.context)
    assert eea.evaluate("() => window.__pgMarketing") is None
    eea.click('[data-privguard-action="reject-all"]')
    expect(banner).to_be_hidden()
    eea.goto("/other")
    assert banner_hidden(eea)
    expect(eea.locator("#privguard-reopen")).to_be_visible()


def test_reject_all_leaves_only_necessary_cookies(eea: Page) -> None:
    eea.goto("/")
    eea.click('[data-privguard-action="reject-all"]')
    expect(eea.locator("#privguard-banner")).to_be_hidden()
    state = consent_state(eea)
    assert state["choice_made"] is True
    assert state["categories"] == {
        "necessary": True,
        "functionality": False,
        "performance": False,
        "marketing": False,
    }
    eea.reload()
    assert banner_hidden(eea)
    assert document_cookies(eea) <= NECESSARY
    assert jar(eea.context) <= NECESSARY
    assert "privguard_consent" in jar(eea.context)
    assert eea.evaluate("() => [window.__pgMarketing, window.__pgPerformance]") == [None, None]


def test_accept_all_activates_gated_content_without_reload(eea: Page) -> None:
    eea.goto("/")
    eea.evaluate("() => { window.__pgSamePage = 1; }")
    assert eea.locator("iframe[data-privguard-category]").get_attribute("src") is None
    eea.click('[data-privguard-action="accept-all"]')
    expect(eea.locator("#privguard-banner")).to_be_hidden()
    eea.wait_for_function("() => window.__pgMarketing === true")
    assert eea.evaluate("() => window.__pgSamePage") == 1  # no reload happened
    assert eea.evaluate("() => [window.__pgPerformance, window.__pgFunctionality]") == [True, True]
    assert {"_fbp", "_ga"} <= document_cookies(eea)
    assert eea.locator("iframe[data-privguard-category]").get_attribute("src") == "/embed"
    events = eea.evaluate("() => window.__pgEvents")
    assert events[-1]["initial"] is False
    assert sorted(events[-1]["categories"]) == [
        "functionality",
        "marketing",
        "necessary",
        "performance",
    ]
    # next page: no banner, and the scripts run on load
    eea.goto("/other")
    assert banner_hidden(eea)
    eea.wait_for_function("() => window.__pgMarketing === true")


def test_settings_save_selected_categories(eea: Page) -> None:
    eea.goto("/")
    boxes = eea.locator('#privguard-banner input[type="checkbox"][name="category"]')
    eea.click('[data-privguard-action="settings"]')
    expect(boxes.first).to_be_visible()
    assert boxes.count() == 3
    assert [boxes.nth(i).is_checked() for i in range(3)] == [False, False, False]
    eea.check("#privguard-cat-performance")
    eea.click('[data-privguard-action="save"]')
    expect(eea.locator("#privguard-banner")).to_be_hidden()
    eea.wait_for_function("() => window.__pgPerformance === true")
    assert eea.evaluate("() => window.__pgMarketing") is None
    state = consent_state(eea)
    assert state["categories"]["performance"] is True
    assert state["categories"]["marketing"] is False
    # reopening shows the stored choice; Escape closes without changing it
    eea.click("#privguard-reopen")
    expect(eea.locator("#privguard-banner")).to_be_visible()
    eea.click('[data-privguard-action="settings"]')
    expect(eea.locator("#privguard-cat-performance")).to_be_checked()
    expect(eea.locator("#privguard-cat-marketing")).not_to_be_checked()
    eea.keyboard.press("Escape")  # collapses the settings
    eea.keyboard.press("Escape")  # closes the reopened dialog
    expect(eea.locator("#privguard-banner")).to_be_hidden()
    assert consent_state(eea)["categories"] == state["categories"]


def test_withdrawal_reloads_and_expires_cookies(eea: Page) -> None:
    eea.goto("/")
    eea.click('[data-privguard-action="accept-all"]')
    eea.wait_for_function("() => window.__pgMarketing === true")
    eea.evaluate("() => window.privguard.open()")
    with eea.expect_navigation():
        eea.click('[data-privguard-action="reject-all"]')
    assert eea.evaluate("() => window.__pgMarketing") is None
    assert document_cookies(eea) <= NECESSARY
    assert jar(eea.context) <= NECESSARY


def test_failed_fetch_falls_back_to_the_form_post(eea: Page) -> None:
    def abort_fetch(route: Any) -> None:
        if route.request.resource_type == "fetch" and route.request.method == "POST":
            route.abort()
        else:
            route.continue_()

    eea.route("**/privguard/consent", abort_fetch)
    eea.goto("/other")
    with eea.expect_navigation():
        eea.click('[data-privguard-action="reject-all"]')
    assert eea.url.endswith("/other")  # the script filled in `next`
    assert banner_hidden(eea)
    assert consent_state(eea)["choice_made"] is True


# --- keyboard ---------------------------------------------------------------------------


def test_keyboard_only(eea: Page) -> None:
    eea.goto("/")
    in_banner = "() => document.getElementById('privguard-banner').contains(document.activeElement)"
    # Escape is not consent: the first-time dialog stays, nothing is stored
    eea.keyboard.press("Escape")
    expect(eea.locator("#privguard-banner")).to_be_visible()
    assert consent_state(eea)["choice_made"] is False
    # focus starts in the dialog; Tab reaches every choice, then moves on to the page
    # (the dialog is not modal, aria-modal="false": nothing is trapped)
    assert eea.evaluate(in_banner)
    assert eea.get_attribute("#privguard-banner", "aria-modal") == "false"
    seen = set()
    left = False
    for _ in range(12):
        eea.keyboard.press("Tab")
        if not eea.evaluate(in_banner):
            left = True
            break
        seen.add(eea.evaluate("() => document.activeElement.dataset.privguardAction || ''"))
    assert {"accept-all", "reject-all", "settings"} <= seen
    assert left
    eea.focus('[data-privguard-action="accept-all"]')
    # Tab to Reject all, then Enter
    for _ in range(12):
        if eea.evaluate("() => document.activeElement.dataset.privguardAction") == "reject-all":
            break
        eea.keyboard.press("Tab")
    else:
        pytest.fail("Reject all is not reachable with Tab")
    outline = eea.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")  # visible focus
    eea.keyboard.press("Enter")
    expect(eea.locator("#privguard-banner")).to_be_hidden()
    assert consent_state(eea)["categories"]["marketing"] is False
    assert document_cookies(eea) <= NECESSARY


# --- without JavaScript -------------------------------------------------------------------


def test_no_javascript_form(browser: Browser, shop: str) -> None:
    context = new_context(browser, shop, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/other")
        expect(page.locator("#privguard-banner")).to_be_visible()
        with page.expect_navigation():
            page.click('[data-privguard-action="reject-all"]')
        assert page.url == shop + "/other"  # the form carries the page it was on
        expect(page.locator("#privguard-banner")).to_be_hidden()
        assert jar(context) <= NECESSARY and "privguard_consent" in jar(context)
        state = context.request.get("/privguard/consent").json()
        assert state["choice_made"] is True
        assert state["categories"]["performance"] is False
        # reopen without JS (the link targets the hidden dialog), tick one, save
        page.click("#privguard-reopen")
        expect(page.locator("#privguard-banner")).to_be_visible()
        page.click('[data-privguard-action="settings"]')
        for name in ("functionality", "performance", "marketing"):  # the stored refusal
            expect(page.locator(f"#privguard-cat-{name}")).not_to_be_checked()
        page.check("#privguard-cat-functionality")
        with page.expect_navigation():
            page.click('[data-privguard-action="save"]')
        state = context.request.get("/privguard/consent").json()
        assert state["categories"]["functionality"] is True
        assert state["categories"]["marketing"] is False
        # the page it returned to shows that choice when reopened, still without JS
        page.click("#privguard-reopen")
        page.click('[data-privguard-action="settings"]')
        expect(page.locator("#privguard-cat-functionality")).to_be_checked()
        expect(page.locator("#privguard-cat-performance")).not_to_be_checked()
    finally:
        context.close()


@pytest.mark.parametrize("country", ["US", "BR"])
def test_opt_out_regimes_show_defaults_on_in_the_settings(
    browser: Browser, shop: str, country: str
) -> None:
    context = new_context(browser, shop, headers={"CF-IPCountry": country})
    page = context.new_page()
    try:
        page.goto("/")
        page.wait_for_function("() => window.__pgPerformance === true")  # _ga runs: on
        page.click('[data-privguard-action="settings"]')
        expect(page.locator("#privguard-cat-performance")).to_be_checked()
        expect(page.locator("#privguard-cat-functionality")).to_be_checked()
        expect(page.locator("#privguard-cat-marketing")).not_to_be_checked()
        # the declarations name _ga, its provider and lifetime
        page.click('[data-privguard-cookies="performance"] summary')
        row = page.locator('[data-privguard-cookies="performance"] tbody tr').first
        expect(row).to_contain_text("_ga")
        expect(row).to_contain_text("Google Analytics (Google)")
        expect(row).to_contain_text("2 years")
    finally:
        context.close()


# --- US visitors ------------------------------------------------------------------------


def test_us_visitor_with_gpc_sees_the_honoured_notice(browser: Browser, shop: str) -> None:
    context = new_context(
        browser, shop, headers={"CF-IPCountry": "US", "Sec-GPC": "1", "Accept-Language": "en"}
    )
    page = context.new_page()
    try:
        page.goto("/")
        # visible without any action, next to "Privacy settings"
        status = page.locator('[data-privguard-notice="gpc-honored"]')
        expect(status).to_be_visible()
        expect(status).to_have_text("Opt-Out Request Honored")
        assert banner_hidden(page)
        notice = page.locator('[data-privguard-notice="gpc"]')
        # GPC denies marketing, performance/functionality are on until refused: no choice
        # is open, so the dialog is hidden; the notice is there when it is opened
        page.evaluate("() => window.privguard.open()")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("Opt-Out Request Honored")
        page.wait_for_function("() => window.__pgPerformance === true")
        assert page.evaluate("() => window.__pgMarketing") is None
    finally:
        context.close()


def test_us_visitor_do_not_sell(browser: Browser, shop: str) -> None:
    context = new_context(browser, shop, headers={"CF-IPCountry": "US"})
    page = context.new_page()
    try:
        page.goto("/other")
        expect(page.locator("#privguard-banner")).to_be_visible()
        expect(page.locator('[data-privguard-notice="gpc"]')).to_have_count(0)
        link = page.locator('[data-privguard-action="do-not-sell"]')
        expect(link).to_have_text("Do Not Sell or Share My Personal Information")
        expect(link).to_be_visible()
        page.wait_for_function("() => window.__pgPerformance === true")  # on until refused
        # the link is not covered by the open dialog: a real click reaches it
        with page.expect_navigation():
            link.click()
        assert page.url.startswith(shop + "/privguard/do-not-sell")
        expect(page.locator('[data-privguard-notice="gpc-absent"]')).to_be_visible()
        with page.expect_navigation():
            page.click('[data-privguard-action="confirm-do-not-sell"]')
        expect(page.locator('[data-privguard-notice="opted-out"]')).to_be_visible()
        with page.expect_navigation():
            page.click('[data-privguard-action="back"]')
        assert page.url == shop + "/other"
        assert banner_hidden(page)
        expect(page.locator('[data-privguard-action="do-not-sell"]')).to_be_visible()
        state = consent_state(page)
        assert state["regime"] == "us-optout"
        assert state["categories"] == {
            "necessary": True,
            "functionality": True,
            "performance": True,
            "marketing": False,
        }
    finally:
        context.close()


# --- Consent Mode -------------------------------------------------------------------------


def test_consent_mode_default_and_update_under_strict_csp(
    browser: Browser, consent_mode_shop: str
) -> None:
    context = new_context(browser, consent_mode_shop)
    page = context.new_page()
    violations = csp_violations(page)
    try:
        response = page.goto("/")
        assert response is not None
        assert "nonce-" in response.headers["content-security-policy"]
        # the stylesheet loaded (nonce on <link>), the script ran (nonce on <script>)
        expect(page.locator("#privguard-banner")).to_be_visible()
        position = page.evaluate(
            "() => getComputedStyle(document.getElementById('privguard-banner')).position"
        )
        assert position == "fixed"
        calls = "() => (window.dataLayer || []).map(a => Array.from(a))"
        first = page.evaluate(calls)
        assert first[0][:2] == ["consent", "default"]
        assert first[0][2]["ad_storage"] == "denied"
        assert first[0][2]["analytics_storage"] == "denied"
        page.click('[data-privguard-action="accept-all"]')
        page.wait_for_function(
            "() => window.dataLayer.some(a => a[0] === 'consent' && a[1] === 'update')"
        )
        update = [c for c in page.evaluate(calls) if c[:2] == ["consent", "update"]][-1][2]
        assert update["ad_storage"] == "granted" and update["analytics_storage"] == "granted"
        # gated scripts were activated with the page's nonce
        page.wait_for_function("() => window.__pgMarketing === true")
        page.goto("/other")
        again = page.evaluate(calls)
        assert again[0][2]["ad_storage"] == "granted"
        page.wait_for_function("() => window.__pgMarketing === true")
        assert violations == []
    finally:
        context.close()


# --- age gate -----------------------------------------------------------------------------


def test_age_form_adult_continues(eea: Page) -> None:
    response = eea.goto("/checkout")
    assert response is not None and response.status == 200  # being asked is no refusal
    gate = eea.locator("#privguard-age-gate")
    expect(gate).to_be_visible()
    assert eea.evaluate("() => document.documentElement.lang") == "de"
    expect(eea.get_by_label("Geburtsdatum")).to_be_visible()
    eea.get_by_label("Geburtsdatum").fill("1990-05-17")
    with eea.expect_navigation():
        eea.click('#privguard-age-gate button[type="submit"]')
    assert eea.url.endswith("/checkout")
    expect(eea.locator("h1")).to_have_text("Checkout")


def test_age_form_minor_gets_the_explanation(eea: Page) -> None:
    eea.goto("/checkout")
    eea.get_by_label("Geburtsdatum").fill(f"{date.today().year - 10}-01-01")
    with eea.expect_navigation():
        eea.click('#privguard-age-gate button[type="submit"]')
    expect(eea.locator("#privguard-minor")).to_be_visible()
    response = eea.goto("/checkout")
    assert response is not None and response.status == 403
    expect(eea.locator("#privguard-minor h1")).to_have_text(
        "Diese Seite ist für Sie nicht verfügbar"
    )
