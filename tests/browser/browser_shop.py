"""A tiny shop behind privguard, served by a real uvicorn on 127.0.0.1 for browser tests.

Also used by ``scripts/screenshots.py``. Country comes from ``CF-IPCountry``, which
privguard trusts because the peer (the browser, on 127.0.0.1) is a listed proxy.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from privguard.asgi import PrivacyMiddleware

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


async def home(request: Request) -> Response:
    response = HTMLResponse(PAGE)
    response.set_cookie("session", "s3ss10n", httponly=True, samesite="lax")
    response.set_cookie("_ga", "GA1.1.server.1", samesite="lax")
    return response


async def other(request: Request) -> Response:
    return HTMLResponse(PAGE.replace("Qomoor test shop</h1>", "Other page</h1>"))


async def embed(request: Request) -> Response:
    return HTMLResponse("<!DOCTYPE html><p>embedded</p>")


def make_app(**options: Any) -> PrivacyMiddleware:
    """The test shop wrapped in privguard's ASGI middleware."""
    app = Starlette(routes=[Route("/", home), Route("/other", other), Route("/embed", embed)])
    settings: dict[str, Any] = {
        "secret_key": SECRET,
        "ledger": None,
        "rate_limit": None,
        "country_header": "CF-IPCountry",
        "trusted_proxies": ["127.0.0.1/32"],
        "policy_url": "/privacy",
    }
    settings.update(options)
    return PrivacyMiddleware(app, **settings)


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


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM) or shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is not installed (Debian package `chromium`; `make system-deps`)"
    return None
