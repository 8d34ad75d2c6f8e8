"""The context a request carries makes no reference cycle, and ``banner()`` still counts.

The context is stored in the scope/environ; it must not point back at it, or every
request would leave a cycle (scope -> context -> scope) that only the garbage
collector frees: more collections, and memory that is not reused while hot.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.context import get_context
from privguard.wsgi import PrivacyMiddleware as WsgiMiddleware

SECRET = "s" * 40
EEA = [
    ("host", "shop.example"),
    ("cf-ipcountry", "DE"),
    ("user-agent", "Mozilla/5.0 Firefox/124.0"),
]
OPTIONS: dict[str, Any] = {"secret_key": SECRET, "ledger": None, "country_header": "cf-ipcountry"}


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "scheme": "http",
        "headers": [(n.encode(), v.encode()) for n, v in EEA],
        "client": ("198.51.100.7", 5000),
        "server": ("shop.example", 80),
        "query_string": b"",
    }


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    ctx = scope["privguard"]
    if scope["path"] == "/placed":
        body = f"<html><body><main>{ctx.banner()}</main></body></html>".encode()
        ctype = b"text/html; charset=utf-8"
    else:
        body = b'{"allowed": %d}' % len(ctx.allowed)
        ctype = b"application/json"
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _asgi_get(app: Any, path: str) -> bytes:
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    asyncio.run(app(_scope(path), receive, send))
    return b"".join(out)


def _wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    ctx = get_context(environ)
    if environ["PATH_INFO"] == "/placed":
        body = f"<html><body><main>{ctx.banner()}</main></body></html>".encode()
        ctype = "text/html; charset=utf-8"
    else:
        body = b'{"allowed": %d}' % len(ctx.allowed)
        ctype = "application/json"
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _wsgi_get(app: Any, path: str) -> bytes:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "198.51.100.7",
        "wsgi.url_scheme": "http",
        **{"HTTP_" + n.upper().replace("-", "_"): v for n, v in EEA},
    }
    return b"".join(app(environ, lambda status, headers, exc_info=None: None))


def test_asgi_requests_leave_no_cyclic_garbage(no_gc: None) -> None:
    app = AsgiMiddleware(_asgi_app, **OPTIONS)
    _asgi_get(app, "/api")  # first request: caches filled
    gc.collect()
    for _ in range(20):
        assert b"allowed" in _asgi_get(app, "/api")
    assert gc.collect() == 0


def test_wsgi_requests_leave_no_cyclic_garbage(no_gc: None) -> None:
    app = WsgiMiddleware(_wsgi_app, **OPTIONS)
    _wsgi_get(app, "/api")
    gc.collect()
    for _ in range(20):
        assert b"allowed" in _wsgi_get(app, "/api")
    assert gc.collect() == 0


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
def test_banner_placed_through_the_context_is_not_injected_again(side: str) -> None:
    if side == "asgi":
        html = _asgi_get(AsgiMiddleware(_asgi_app, **OPTIONS), "/placed").decode()
    else:
        html = _wsgi_get(WsgiMiddleware(_wsgi_app, **OPTIONS), "/placed").decode()
    assert html.count('id="privguard-banner"') == 1
    assert html.index('id="privguard-banner"') < html.index("</main>")
