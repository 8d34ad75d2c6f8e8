"""The README's CSP recipe in Chromium: a nonce with ``'strict-dynamic'`` lets the
tracker tags privguard held back load after consent, including the scripts they
insert themselves, and nothing before.

The shop page carries an untagged third-party ``<script src>`` (on another origin,
``localhost`` against the shop's ``127.0.0.1``) that privguard's auto-blocking
holds (``scripts={"localhost": "marketing"}``). Like gtag.js, the tracker inserts a
second script at run time. The same page under a nonce-only policy shows why the
recipe needs ``'strict-dynamic'``: the inserted script is refused.
"""

from __future__ import annotations

import ast
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from privguard.asgi import PrivacyMiddleware
from tests.browser.browser_shop import SECRET, csp_violations, serve
from tests.browser.test_browser_banner import new_context
from tests.readme import block


def readme_policy() -> str:
    """The ``POLICY`` constant of the README's ``# example: csp`` block (not executed)."""
    tree = ast.parse(block("example: csp").code)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "POLICY":
            return str(ast.literal_eval(node.value))
    raise AssertionError("the README's csp example has no POLICY")


EEA = {"CF-IPCountry": "DE", "Accept-Language": "en"}
#: The README recipe, read from its ``# example: csp`` block (so the tested policy is
#: the documented one), with ``{nonce}`` filled in per response.
RECIPE = readme_policy()
NONCE_ONLY = (
    "script-src 'nonce-{nonce}'; object-src 'none'; base-uri 'none'; "
    "style-src 'self' 'nonce-{nonce}'"
)

TRACKER_JS = """
window.__pgTracker = true;
var s = document.createElement("script");
s.src = "http://localhost:%d/inserted.js";
document.head.appendChild(s);
"""


def tracker_app(hits: list[str]) -> Starlette:
    async def tracker(request: Request) -> Response:
        hits.append(request.url.path)
        port = request.url.port or 80
        return Response(TRACKER_JS % port, media_type="text/javascript")

    async def inserted(request: Request) -> Response:
        hits.append(request.url.path)
        return Response("window.__pgInserted = true;", media_type="text/javascript")

    return Starlette(routes=[Route("/tracker.js", tracker), Route("/inserted.js", inserted)])


def shop_app(tracker_port: int, policy: str) -> Any:
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>CSP shop</title>"
        f'<script nonce="{{nonce}}" src="http://localhost:{tracker_port}/tracker.js"></script>'
        "</head><body><h1>CSP shop</h1></body></html>"
    )

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(page.replace("{nonce}", request.scope["csp_nonce"]))

    inner = PrivacyMiddleware(
        Starlette(routes=[Route("/", home)]),
        secret_key=SECRET,
        ledger=None,
        rate_limit=None,
        country_header="CF-IPCountry",
        trusted_proxies=["127.0.0.1/32"],
        scripts={"localhost": "marketing"},
        csp_nonce=lambda scope: scope.get("csp_nonce"),
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope["csp_nonce"] = nonce
        header = policy.replace("{nonce}", nonce).encode("ascii")

        async def send_with_csp(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"content-security-policy", header)],
                }
            await send(message)

        await inner(scope, receive, send_with_csp)

    return app


@pytest.fixture(scope="module")
def tracker() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    with serve(tracker_app(hits)) as url:
        yield int(url.rsplit(":", 1)[1]), hits


def test_recipe_loads_held_trackers_after_consent_only(
    browser: Browser, tracker: tuple[int, list[str]]
) -> None:
    port, hits = tracker
    hits.clear()
    with serve(shop_app(port, RECIPE)) as shop:
        context = new_context(browser, shop, headers=EEA)
        page = context.new_page()
        violations = csp_violations(page)
        try:
            page.goto("/")
            expect(page.locator("#privguard-banner")).to_be_visible()  # banner.js ran
            # the stylesheet loaded under the nonce: the dialog is positioned
            position = page.evaluate(
                "() => getComputedStyle(document.getElementById('privguard-banner')).position"
            )
            assert position == "fixed"
            assert hits == []  # held back: nothing went to the tracker before a choice
            assert page.evaluate("() => window.__pgTracker") is None
            page.click('[data-privguard-action="accept-all"]')
            page.wait_for_function("() => window.__pgInserted === true")
            assert page.evaluate("() => window.__pgTracker") is True
            assert hits == ["/tracker.js", "/inserted.js"]
            assert violations == []
        finally:
            context.close()


def test_nonce_only_policy_refuses_what_the_tracker_inserts(
    browser: Browser, tracker: tuple[int, list[str]]
) -> None:
    """Why the recipe has 'strict-dynamic': without it the tracker's own insert fails."""
    port, hits = tracker
    hits.clear()
    with serve(shop_app(port, NONCE_ONLY)) as shop:
        context = new_context(browser, shop, headers=EEA)
        page = context.new_page()
        violations = csp_violations(page)
        try:
            page.goto("/")
            page.click('[data-privguard-action="accept-all"]')
            page.wait_for_function("() => window.__pgTracker === true")
            page.wait_for_timeout(300)
            assert page.evaluate("() => window.__pgInserted") is None
            assert "/inserted.js" not in hits
            assert violations
        finally:
            context.close()
