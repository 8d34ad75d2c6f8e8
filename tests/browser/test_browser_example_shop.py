"""Playwright over the example shop (``examples/starlette_shop`` on a real uvicorn):
the US opt-out link, focus after a choice, and the reopened dialog's close button."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from examples.starlette_shop.app import create_app
from privguard.ledger import open_ledger
from tests.browser.browser_shop import SECRET, serve
from tests.browser.test_browser_banner import new_context

US = {"CF-IPCountry": "US", "Accept-Language": "en-US,en;q=0.9"}
DE = {"CF-IPCountry": "DE", "Accept-Language": "de-DE,de;q=0.9"}
LINK = '[data-privguard-action="do-not-sell"]'


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    instance = tmp_path_factory.mktemp("shop")
    app = create_app(
        instance=instance,
        privguard={"secret_key": SECRET, "rate_limit": None, "trusted_proxies": ["127.0.0.1"]},
    )
    with serve(app) as url:
        yield url, instance


def visitor(browser: Browser, shop: tuple[str, Path], headers: dict[str, str], **kw: Any) -> Page:
    context = new_context(browser, shop[0], headers=headers, **kw)
    # the shop's pages carry the vendors' real tags and a video embed, which load once
    # the visitor accepts: answer every off-site request here, so nothing leaves the
    # machine and no page waits for its "load" event on a network it cannot reach
    origin = shop[0].rstrip("/") + "/"
    context.route(
        lambda url: not url.startswith(origin),
        lambda route: route.fulfill(status=200, body="", content_type="text/plain"),
    )
    return context.new_page()


def in_viewport_and_on_top(page: Page, selector: str) -> bool:
    """Is the element's centre inside the viewport and not covered by anything else?"""
    return bool(
        page.evaluate(
            """(sel) => {
              const el = document.querySelector(sel);
              const r = el.getBoundingClientRect();
              const x = r.left + r.width / 2, y = r.top + r.height / 2;
              if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
              const top = document.elementFromPoint(x, y);
              return el === top || el.contains(top);
            }""",
            selector,
        )
    )


# --- the US link ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1280, 800), (375, 740)], ids=["desktop", "phone"])
def test_us_link_first_visit_after_a_choice_and_with_gpc(
    browser: Browser, shop: tuple[str, Path], size: tuple[int, int]
) -> None:
    viewport = {"width": size[0], "height": size[1]}
    page = visitor(browser, shop, US, viewport=viewport)
    try:
        page.goto("/")
        expect(page.locator("#privguard-banner")).to_be_visible()
        expect(page.locator(LINK)).to_have_text("Do Not Sell or Share My Personal Information")
        assert in_viewport_and_on_top(page, LINK)  # visible with the dialog open
        page.click('[data-privguard-action="accept-all"]')
        expect(page.locator("#privguard-banner")).to_be_hidden()
        page.goto("/product/1")
        assert in_viewport_and_on_top(page, LINK)  # persistent after the choice
        assert in_viewport_and_on_top(page, "#privguard-reopen")  # and not on top of it
    finally:
        page.context.close()
    gpc = visitor(browser, shop, {**US, "Sec-GPC": "1"}, viewport=viewport)
    try:
        gpc.goto("/")
        assert in_viewport_and_on_top(gpc, LINK)
        expect(gpc.locator('[data-privguard-notice="gpc-honored"]').first).to_be_visible()
    finally:
        gpc.context.close()


def test_us_link_page_without_javascript_records_a_receipt(
    browser: Browser, shop: tuple[str, Path]
) -> None:
    page = visitor(browser, shop, US, java_script_enabled=False)
    try:
        page.goto("/product/1")
        with page.expect_navigation():
            page.click(LINK)
        expect(page.locator("#privguard-optout h1")).to_have_text(
            "Do Not Sell or Share My Personal Information"
        )
        expect(page.locator('[data-privguard-notice="gpc-absent"]')).to_be_visible()
        with page.expect_navigation():
            page.click('[data-privguard-action="confirm-do-not-sell"]')
        receipt = page.locator("[data-privguard-receipt]").get_attribute("data-privguard-receipt")
        assert receipt
        with page.expect_navigation():
            page.click('[data-privguard-action="back"]')
        assert page.url.endswith("/product/1")
        expect(page.locator(LINK)).to_be_visible()
    finally:
        page.context.close()
    ledger = open_ledger(f"sqlite:///{shop[1] / 'privguard-ledger.db'}")
    try:
        for _ in range(50):  # the writer thread commits in the background
            rows = {r.id: r for r in ledger.iter_receipts()}
            if receipt in rows:
                break
            time.sleep(0.1)
        assert rows[receipt].method == "do-not-sell"
        assert "marketing" in rows[receipt].denied
    finally:
        ledger.close()


# --- focus and the close button ---------------------------------------------------------------


def test_focus_returns_to_the_reopen_link_and_close_button(
    browser: Browser, shop: tuple[str, Path]
) -> None:
    page = visitor(browser, shop, DE)
    try:
        page.goto("/")
        close = page.locator('#privguard-banner [data-privguard-action="close"]')
        expect(close).to_be_hidden()  # a first-time dialog cannot be closed without a choice
        page.click('[data-privguard-action="reject-all"]')
        expect(page.locator("#privguard-banner")).to_be_hidden()
        # keyboard: reopen with Enter, make a choice, focus is back on the reopen link
        page.focus("#privguard-reopen")
        page.keyboard.press("Enter")
        expect(page.locator("#privguard-banner")).to_be_visible()
        expect(close).to_be_visible()
        expect(close).to_have_text("×Schließen")
        page.click('[data-privguard-action="reject-all"]')
        expect(page.locator("#privguard-banner")).to_be_hidden()
        assert page.evaluate("() => document.activeElement.id") == "privguard-reopen"
        # the close button closes without a choice, focus back on the reopen link
        page.focus("#privguard-reopen")
        page.keyboard.press("Enter")
        close.click()
        expect(page.locator("#privguard-banner")).to_be_hidden()
        assert page.evaluate("() => document.activeElement.id") == "privguard-reopen"
    finally:
        page.context.close()


def test_focus_returns_to_the_shop_control_that_opened_the_dialog(
    browser: Browser, shop: tuple[str, Path]
) -> None:
    page = visitor(browser, shop, DE)
    try:
        page.goto("/")
        page.click('[data-privguard-action="reject-all"]')
        # the dialog closes when the server has answered the choice: opening it before
        # that would race the answer's close (seen under a loaded CI run)
        expect(page.locator("#privguard-banner")).to_be_hidden()
        # a shop's own "cookie settings" button calling window.privguard.open()
        page.evaluate(
            """() => {
              const b = document.createElement('button');
              b.id = 'shop-cookie-settings';
              b.textContent = 'Cookie settings';
              b.addEventListener('click', () => window.privguard.open());
              document.querySelector('main, body').appendChild(b);
            }"""
        )
        page.focus("#shop-cookie-settings")
        page.keyboard.press("Enter")
        expect(page.locator("#privguard-banner")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#privguard-banner")).to_be_hidden()
        assert page.evaluate("() => document.activeElement.id") == "shop-cookie-settings"
    finally:
        page.context.close()


def test_first_visit_focus_returns_to_the_page_element_in_use(
    browser: Browser, shop: tuple[str, Path]
) -> None:
    page = visitor(browser, shop, DE)
    try:
        page.goto("/")
        in_banner = (
            "() => document.getElementById('privguard-banner').contains(document.activeElement)"
        )
        assert page.evaluate(in_banner)  # the first-time dialog takes focus
        # the dialog is not modal: the visitor may use the page meanwhile
        first_link = page.locator("main a, header a").first
        first_link.focus()
        page.click('[data-privguard-action="accept-all"]')
        expect(page.locator("#privguard-banner")).to_be_hidden()
        assert first_link.evaluate("(el) => el === document.activeElement")
    finally:
        page.context.close()
