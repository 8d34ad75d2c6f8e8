"""Every shipped language in Chromium at a 360 px wide phone screen: nothing overflows.

For each language the banner (first layer, then with "Customize" opened) and the US
variant with its persistent "Do Not Sell or Share" link must not scroll the page
sideways, no control may clip its label, the link must not cover the dialog, and
"Accept all" and "Reject all" must both be on screen without scrolling, at the same
size. The opt-out page and the age check are held to the same width.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from privguard.banner.languages import SHIPPED_LANGUAGES
from tests.browser.browser_shop import make_app, serve

PHONE = {"width": 360, "height": 740}
TIMEOUT_MS = 5000

#: Every control of the dialog and the reopen link: its box and whether it clips.
MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const controls = [...document.querySelectorAll(
    '#privguard-banner button, #privguard-banner summary, #privguard-banner a, ' +
    '#privguard-reopen, #privguard-do-not-sell'
  )];
  const box = el => el.getBoundingClientRect();
  return {
    viewport: vw,
    pageWidth: document.documentElement.scrollWidth,
    clipped: controls
      .filter(el => el.getClientRects().length > 0)
      .filter(el => el.scrollWidth > el.clientWidth + 1
                   || box(el).left < 0 || box(el).right > vw + 0.5)
      .map(el => (el.dataset.privguardAction || el.id || el.tagName) + ': ' + el.textContent),
    buttons: Object.fromEntries(
      [...document.querySelectorAll('[data-privguard-action]')]
        .filter(el => el.getClientRects().length > 0)
        .map(el => [el.dataset.privguardAction, {w: box(el).width, h: box(el).height,
                                                 top: box(el).top, bottom: box(el).bottom,
                                                 left: box(el).left, right: box(el).right}])),
    panel: (p => p && p.getClientRects().length > 0 ? {top: p.getBoundingClientRect().top,
                                                 bottom: p.getBoundingClientRect().bottom}
                                              : null)(document.querySelector('.privguard__panel')),
    innerHeight: window.innerHeight,
  };
}"""


#: A whole privguard page (opt-out, age check): sideways scroll and clipped controls.
PAGE_MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  return {
    viewport: vw,
    pageWidth: document.documentElement.scrollWidth,
    clipped: [...document.querySelectorAll('main button, main a, main input, main h1')]
      .filter(el => el.getClientRects().length > 0)
      .filter(el => el.scrollWidth > el.clientWidth + 1
                   || el.getBoundingClientRect().right > vw + 0.5)
      .map(el => el.tagName + ': ' + el.textContent),
  };
}"""


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with serve(make_app()) as url:
        yield url


def open_page(browser: Browser, shop: str, lang: str, country: str) -> Page:
    context = browser.new_context(
        base_url=shop,
        viewport=PHONE,
        extra_http_headers={"CF-IPCountry": country, "Accept-Language": lang},
        user_agent=(
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{browser.version} Mobile Safari/537.36"
        ),
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("#privguard-banner:not([hidden])")
    return page


def assert_fits(state: dict[str, Any], lang: str, where: str) -> None:
    assert state["pageWidth"] <= state["viewport"], (
        f"{lang} {where}: page scrolls sideways ({state['pageWidth']} > {state['viewport']})"
    )
    assert not state["clipped"], f"{lang} {where}: clipped controls {state['clipped']}"


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_banner_fits_a_360px_phone(browser: Browser, shop: str, lang: str) -> None:
    page = open_page(browser, shop, lang, "DE")
    try:
        assert page.get_attribute("#privguard-banner", "lang") == lang
        first = page.evaluate(MEASURE)
        assert_fits(first, lang, "first layer")
        accept, reject = first["buttons"]["accept-all"], first["buttons"]["reject-all"]
        # same size, both reachable without scrolling
        assert abs(accept["w"] - reject["w"]) < 1 and abs(accept["h"] - reject["h"]) < 1, first
        assert max(accept["bottom"], reject["bottom"]) <= first["panel"]["bottom"], (
            f"{lang}: Accept/Reject below the fold at {PHONE}"
        )
        page.click("[data-privguard-action=settings]")
        page.wait_for_selector("[data-privguard-action=save]", state="visible")
        assert_fits(page.evaluate(MEASURE), lang, "settings open")

        # the same visitor language in California: the opt-out banner and its button
        page.context.clear_cookies()
        page.context.set_extra_http_headers({"CF-IPCountry": "US", "Accept-Language": lang})
        page.goto("/")
        page.wait_for_selector("#privguard-banner:not([hidden])")
        us = page.evaluate(MEASURE)
        assert "do-not-sell" in us["buttons"], us
        assert_fits(us, lang, "US opt-out")
        choices = us["buttons"]["accept-all"], us["buttons"]["reject-all"]
        assert max(b["bottom"] for b in choices) <= us["panel"]["bottom"], (lang, us)
        link = us["buttons"]["do-not-sell"]
        # the persistent link covers neither the dialog nor the "Privacy settings" link
        assert link["top"] >= us["panel"]["bottom"] - 0.5, (lang, link, us["panel"])
        reopen = page.evaluate(
            "() => { const r = document.getElementById('privguard-reopen');"
            " if (!r || r.getClientRects().length === 0) return null;"
            " const b = r.getBoundingClientRect(); return {top: b.top, bottom: b.bottom}; }"
        )
        if reopen is not None:
            assert link["bottom"] <= reopen["top"] + 0.5 or link["top"] >= reopen["bottom"], (
                lang,
                link,
                reopen,
            )

        # the pages privguard serves itself: the opt-out page and the age check
        page.goto("/privguard/do-not-sell")
        assert page.get_attribute("html", "lang") == lang
        assert_fits(page.evaluate(PAGE_MEASURE), lang, "opt-out page")
        page.context.set_extra_http_headers({"CF-IPCountry": "DE", "Accept-Language": lang})
        page.goto("/checkout")
        page.wait_for_selector("#privguard-age-gate")
        assert page.get_attribute("html", "lang") == lang
        assert_fits(page.evaluate(PAGE_MEASURE), lang, "age check")
    finally:
        page.context.close()
