"""Auto-blocking in a real browser: the vendors' own snippets, unmodified, behind privguard.

Debian's Chromium through Playwright, a real uvicorn. Every request to a host other
than 127.0.0.1 is answered by route interception (nothing leaves the machine) with a
stand-in that behaves like the tracker where it matters here: it is a request to the
tracker host, and once it runs it writes the vendor's cookie from the page. An init
script watches the page itself from its first moment: every cookie write that reached
the browser's jar and every cookie visible to scripts, every 5 ms, so "no
non-essential cookie before a choice" is checked at any moment, not only at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from privguard.asgi import PrivacyMiddleware
from tests.browser.browser_shop import (
    SECRET,
    serve,
)
from tests.snippets import PAGE

TIMEOUT_MS = 5000
NECESSARY = {"session", "privguard_consent"}
#: a page-level script that uses the trackers' APIs before any choice, and tries to
#: write tracker cookies itself (first-party code the server cannot see through)
SHOP_CODE = """<script>
window.__pgMarker = "same document";
fbq('track', 'ViewContent');
gtag('event', 'view_item');
document.cookie = "_fbp=fb.1.page.1; path=/; max-age=3600";
document.cookie = "_ga=GA1.1.page.1; path=/; max-age=3600";
document.cookie = "cart=abc; path=/";
if (window.cookieStore) { cookieStore.set("_gcl_au", "1.1.page"); }
</script>"""
TRACKED = PAGE.replace("</body>", SHOP_CODE + "</body>")

#: stand-ins for the trackers' files: mark that they ran and write their cookie
STAND_INS = {
    "/gtag/js": "window.__ran=(window.__ran||[]).concat('gtag');"
    'document.cookie="_ga=GA1.1.42.1; path=/; max-age=3600";',
    "/gtm.js": "window.__ran=(window.__ran||[]).concat('gtm');"
    'document.cookie="_gcl_au=1.1.42; path=/; max-age=3600";',
    "/en_US/fbevents.js": "window.__ran=(window.__ran||[]).concat('fbevents');"
    'document.cookie="_fbp=fb.1.42; path=/; max-age=3600";',
}
#: which tracker host each check is about
GTAG = "www.googletagmanager.com/gtag/js"
GTM = "www.googletagmanager.com/gtm.js"
PIXEL = "connect.facebook.net"
YOUTUBE = "www.youtube.com"
PERFORMANCE_COOKIES = {"_ga"}
MARKETING_COOKIES = {"_fbp", "_gcl_au"}

WATCH = """
(() => {
  if (window !== window.top) return;  // the shop's document only, not its frames
  window.__seen = new Set();
  window.__written = [];
  const desc = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  Object.defineProperty(Document.prototype, "cookie", {
    configurable: true,
    get() { return desc.get.call(this); },
    set(v) { window.__written.push(String(v).split("=")[0].trim()); desc.set.call(this, v); },
  });
  const look = () => {
    let jar = "";
    try { jar = desc.get.call(document); } catch (e) { return; }  // about:blank before load
    jar.split(";").forEach(p => { const n = p.split("=")[0].trim(); if (n) window.__seen.add(n); });
  };
  setInterval(look, 5);
  if (window.cookieStore) {
    cookieStore.addEventListener("change", e => e.changed.forEach(c => window.__seen.add(c.name)));
  }
})();
"""


async def home(request: Request) -> Response:
    response = HTMLResponse(TRACKED)
    response.set_cookie("session", "s3ss10n", httponly=True, samesite="lax")
    return response


def shop() -> Starlette:
    return Starlette(routes=[StarletteRoute("/", home), StarletteRoute("/other", home)])


@pytest.fixture(scope="module")
def protected() -> Iterator[str]:
    app = PrivacyMiddleware(
        shop(),
        secret_key=SECRET,
        ledger=None,
        rate_limit=None,
        country_header="CF-IPCountry",
        trusted_proxies=["127.0.0.1/32"],
    )
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def bare() -> Iterator[str]:
    with serve(shop()) as url:
        yield url


class Visit:
    """One visitor: a fresh context whose off-machine requests are recorded and answered."""

    def __init__(self, browser: Browser, base: str, country: str, gpc: bool = False) -> None:
        headers = {"CF-IPCountry": country}
        if gpc:
            headers["Sec-GPC"] = "1"
        ua = (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{browser.version} Safari/537.36"
        )
        self.context: BrowserContext = browser.new_context(
            base_url=base, extra_http_headers=headers, user_agent=ua
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.add_init_script(WATCH)
        self.context.route("**/*", self._answer)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _answer(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.hostname == "127.0.0.1":
            route.continue_()
            return
        self.requests.append(parts.netloc + parts.path)
        for path, body in STAND_INS.items():
            if parts.path.endswith(path):
                route.fulfill(status=200, content_type="text/javascript", body=body)
                return
        if parts.path.startswith("/embed/"):
            route.fulfill(status=200, content_type="text/html", body="<p>video</p>")
            return
        route.fulfill(status=204, body="")

    def hit(self, what: str) -> bool:
        return any(r.startswith(what) for r in self.requests)

    def cookies_seen(self) -> set[str]:
        seen = set(self.page.evaluate("() => Array.from(window.__seen)"))
        seen |= {c["name"] for c in self.context.cookies()}
        return seen

    def settle(self) -> None:
        """Let timers, async scripts and frames run (nothing is waited for by name)."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_timeout(400)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Browser) -> Iterator[Any]:
    opened: list[Visit] = []

    def make(base: str, country: str = "DE", gpc: bool = False) -> Visit:
        v = Visit(browser, base, country, gpc)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


def test_without_privguard_the_snippets_do_track(visit: Any, bare: str) -> None:
    """The control: the same page, unprotected, calls every tracker and gets its cookies."""
    v = visit(bare)
    v.page.goto("/")
    v.settle()
    v.page.wait_for_function("() => (window.__ran || []).length === 3")
    assert v.hit(GTAG) and v.hit(GTM) and v.hit(PIXEL) and v.hit(YOUTUBE), v.requests
    assert {"_ga", "_fbp", "_gcl_au"} <= v.cookies_seen()


def test_gdpr_first_visit_makes_no_tracker_request_and_holds_no_cookie(
    visit: Any, protected: str
) -> None:
    v = visit(protected)
    v.page.goto("/")
    expect(v.page.locator("#privguard-banner")).to_be_visible()
    v.settle()
    assert v.requests == []
    assert v.cookies_seen() <= NECESSARY | {"cart"}
    assert "cart" in v.cookies_seen()  # a necessary cookie written by the page passes
    assert v.page.evaluate("() => window.__ran") is None
    assert v.errors == []  # fbq()/gtag() before consent did not throw
    # the embed is held, with a placeholder that says so and offers to allow it
    placeholder = v.page.locator('[data-privguard-placeholder="marketing"]')
    expect(placeholder).to_be_visible()
    expect(placeholder.get_by_role("button")).to_have_text("Allow Marketing cookies and load")
    expect(v.page.locator('iframe[title="YouTube video player"]')).to_be_hidden()


def test_accept_all_runs_everything_without_a_reload(visit: Any, protected: str) -> None:
    v = visit(protected)
    v.page.goto("/")
    v.settle()
    assert v.requests == []
    v.page.click('[data-privguard-action="accept-all"]')
    v.page.wait_for_function("() => (window.__ran || []).length === 3")
    expect(v.page.locator('iframe[title="YouTube video player"]')).to_be_visible()
    assert v.page.evaluate("() => window.__pgMarker") == "same document"  # no reload
    assert v.hit(GTAG) and v.hit(GTM) and v.hit(PIXEL) and v.hit(YOUTUBE), v.requests
    # document order: the Pixel's inline loader runs only once gtag.js (before it in
    # <head>) has run, as the parser would have done (gtm.js is async by its own snippet)
    ran = v.page.evaluate("() => window.__ran")
    assert ran.index("gtag") < ran.index("fbevents"), ran
    v.page.wait_for_timeout(100)
    assert {"_ga", "_fbp", "_gcl_au"} <= v.cookies_seen()
    assert v.page.locator("[data-privguard-placeholder]").count() == 0
    assert v.errors == []


def test_reject_all_never_runs_them(visit: Any, protected: str) -> None:
    v = visit(protected)
    v.page.goto("/")
    v.page.click('[data-privguard-action="reject-all"]')
    expect(v.page.locator("#privguard-banner")).to_be_hidden()
    v.settle()
    v.page.goto("/other")
    v.settle()
    assert v.requests == []
    assert v.cookies_seen() <= NECESSARY | {"cart"}
    assert v.errors == []


def test_us_optout_visitor_runs_performance_never_marketing(visit: Any, protected: str) -> None:
    v = visit(protected, country="US")
    v.page.goto("/")
    v.settle()
    v.page.wait_for_function("() => (window.__ran || []).includes('gtag')")
    assert v.hit(GTAG)
    assert not (v.hit(GTM) or v.hit(PIXEL) or v.hit(YOUTUBE)), v.requests
    seen = v.cookies_seen()
    assert "_ga" in seen and not seen & MARKETING_COOKIES
    assert v.errors == []


def test_gpc_blocks_marketing_even_after_accept_all(visit: Any, protected: str) -> None:
    v = visit(protected, country="DE", gpc=True)
    v.page.goto("/")
    v.settle()
    assert v.requests == []
    v.page.click('[data-privguard-action="accept-all"]')
    v.page.wait_for_function("() => (window.__ran || []).includes('gtag')")
    v.settle()
    v.page.goto("/other")
    v.settle()
    assert v.hit(GTAG)
    assert not (v.hit(GTM) or v.hit(PIXEL) or v.hit(YOUTUBE)), v.requests
    assert not v.cookies_seen() & MARKETING_COOKIES
    assert v.errors == []


def test_placeholder_button_allows_the_embed_only(visit: Any, protected: str) -> None:
    v = visit(protected)
    v.page.goto("/")
    v.settle()
    v.page.locator('[data-privguard-placeholder="marketing"]').get_by_role("button").click()
    expect(v.page.locator('iframe[title="YouTube video player"]')).to_be_visible()
    v.page.wait_for_function("() => (window.__ran || []).includes('fbevents')")
    assert v.hit(YOUTUBE)
    assert not v.hit(GTAG)  # performance was not asked for
    assert not v.cookies_seen() & PERFORMANCE_COOKIES


def test_withdrawal_expires_script_cookies_and_stops_new_loads(visit: Any, protected: str) -> None:
    v = visit(protected)
    v.page.goto("/")
    v.page.click('[data-privguard-action="accept-all"]')
    v.page.wait_for_function("() => (window.__ran || []).length === 3")
    v.page.wait_for_function("() => document.cookie.includes('_fbp=')")
    v.requests.clear()
    v.page.evaluate(
        "() => fetch('/privguard/consent', {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/json'},"
        " body: JSON.stringify({accept: 'none'})})"
    )
    v.page.goto("/other")
    v.settle()
    assert v.requests == []
    assert not {c["name"] for c in v.context.cookies()} & (MARKETING_COOKIES | {"_ga"})
    # in the same document, the guard refuses at once what a choice withdrew
    v.page.evaluate("() => privguardGuard.update(['functionality'])")
    v.page.evaluate("() => { document.cookie = '_fbp=again; path=/'; }")
    assert "_fbp" not in v.page.evaluate("() => document.cookie")
    v.page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.src = 'https://connect.facebook.net/en_US/fbevents.js';"
        " document.head.appendChild(s); }"
    )
    v.settle()
    assert not v.hit(PIXEL)
