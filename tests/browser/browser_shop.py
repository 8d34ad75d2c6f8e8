"""A tiny shop behind privguard, served by a real uvicorn on 127.0.0.1 for browser tests.

Also used by ``scripts/screenshots.py``. Country comes from ``CF-IPCountry``, which
privguard trusts because the peer (the browser, on 127.0.0.1) is a listed proxy.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from privguard.asgi import PrivacyMiddleware

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-tests-secret-key-0123456789abcdef"

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Qomoor test shop</title>
<script>
window.__pgEvents = [];
document.addEventListener("privguard:consent", function (e) {
  window.__pgEvents.push(e.detail);
});
</script>
</head>
<body>
<h1>Qomoor test shop</h1>
<p><a href="/other" id="other">Another page</a> <input id="search" aria-label="Search"></p>
<script type="text/plain" data-privguard-category="marketing">
window.__pgMarketing = true;
document.cookie = "_fbp=fb.1.1700000000.42; path=/; max-age=3600";
</script>
<script type="text/plain" data-privguard-category="performance">
window.__pgPerformance = true;
document.cookie = "_ga=GA1.1.42.1700000000; path=/; max-age=3600";
</script>
<script type="text/plain" data-privguard-category="functionality">
window.__pgFunctionality = true;
</script>
<iframe title="video" data-privguard-category="marketing" data-src="/embed"></iframe>
</body></html>
"""


def _page(request: Request, heading: str = "Qomoor test shop") -> str:
    nonce = request.scope.get("csp_nonce")
    page = PAGE.replace("Qomoor test shop</h1>", heading + "</h1>")
    return page.replace("<script", f'<script nonce="{nonce}"') if nonce else page


async def home(request: Request) -> Response:
    response = HTMLResponse(_page(request))
    response.set_cookie("session", "s3ss10n", httponly=True, samesite="lax")
    response.set_cookie("_ga", "GA1.1.server.1", samesite="lax")
    return response


async def other(request: Request) -> Response:
    return HTMLResponse(_page(request, "Other page"))


async def checkout(request: Request) -> Response:
    return HTMLResponse(_page(request, "Checkout"))


async def embed(request: Request) -> Response:
    return HTMLResponse("<!DOCTYPE html><p>embedded</p>")


def make_app(**options: Any) -> PrivacyMiddleware:
    """The test shop wrapped in privguard's ASGI middleware."""
    routes = [
        Route("/", home),
        Route("/other", other),
        Route("/checkout", checkout),
        Route("/embed", embed),
    ]
    app = Starlette(routes=routes)
    settings: dict[str, Any] = {
        "secret_key": SECRET,
        "ledger": None,
        "rate_limit": None,
        "country_header": "CF-IPCountry",
        "trusted_proxies": ["127.0.0.1/32"],
        "policy_url": "/privacy",
        "age_gate_paths": ["/checkout*"],
        "cookies": {"session": "necessary", "_ga": "performance", "_fbp": "marketing"},
    }
    settings.update(options)
    return PrivacyMiddleware(app, **settings)


class StrictCSP:
    """Outermost ASGI layer: a fresh nonce per request and a strict CSP using it.

    The nonce is left in ``scope["csp_nonce"]`` for the app and privguard's
    ``csp_nonce`` option (``lambda scope: scope.get("csp_nonce")``).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope["csp_nonce"] = nonce
        policy = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; "
            f"style-src 'self' 'nonce-{nonce}'; object-src 'none'; base-uri 'none'"
        )

        async def send_with_csp(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", policy.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_csp)


def make_csp_app(**options: Any) -> StrictCSP:
    """The shop under a strict nonce-based CSP, privguard using the same nonce."""
    return StrictCSP(make_app(csp_nonce=lambda scope: scope.get("csp_nonce"), **options))


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def chromium_missing_reason(path: str = CHROMIUM) -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        return f"{path} is not installed (Debian package `chromium`; `make system-deps`)"
    return None


@contextmanager
def launch_chromium(path: str = CHROMIUM) -> Iterator[Browser]:
    """Debian's Chromium, headless, with :data:`CHROMIUM_ARGS`; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def csp_violations(page: Page) -> list[str]:
    """The page's Content-Security-Policy reports on the console, collected as they come."""
    found: list[str] = []
    page.on(
        "console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None
    )
    return found


def require_chromium(path: str = CHROMIUM) -> None:
    """Return when Chromium is there; else fail under ``CI``, skip elsewhere."""
    from tests.needs import unavailable

    reason = chromium_missing_reason(path)
    if reason is not None:
        unavailable("the browser tests", reason)
