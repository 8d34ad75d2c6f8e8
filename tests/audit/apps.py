"""Small shops for the audit tests: the same pages, leaking (bare) and clean (privguard).

Pages: ``/`` links to ``/products`` and ``/about``; ``/products`` links to
``/products/1``. ``/`` sets a session (necessary) and ``_ga`` (performance),
``/products`` sets ``_fbp`` (marketing), ``/about`` an undeclared cookie.
``/script`` (not linked; the home page of ``scripted_wsgi``) sets ``_fbp`` from an inline
script before any consent: only a browser sees it.
"""

from __future__ import annotations

from typing import Any

from privguard import Settings
from privguard.asgi import PrivacyMiddleware as ASGIPrivacy
from privguard.wsgi import PrivacyMiddleware as WSGIPrivacy

SETTINGS = Settings(
    secret_key="audit-tests-secret-key-0123456789abcdef",
    country_header="CF-IPCountry",
    trusted_proxies=["127.0.0.1"],
    ledger=None,
    rate_limit=None,
)


def _html(body: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>shop</title></head><body>{body}</body></html>".encode()
    )


PAGES: dict[str, tuple[bytes, list[str]]] = {
    "/": (
        _html(
            '<a href="/products">products</a> <a href="/about#team">about</a> '
            '<a href="https://elsewhere.example/">out</a> <a href="mailto:a@b.c">mail</a>'
        ),
        ["session=abc; Path=/; HttpOnly; SameSite=Lax", "_ga=GA1.1.1.1; Path=/; Max-Age=63072000"],
    ),
    "/products": (
        _html('<a href="/products/1">one</a> <a href="/">home</a>'),
        ["_fbp=fb.1.1.1; Path=/; Max-Age=7776000"],
    ),
    "/products/1": (_html('<a href="/products">back</a>'), []),
    "/about": (_html("about us"), ["mystery_tracker=1; Path=/"]),
    "/script": (
        _html('<script>document.cookie = "_fbp=fb.1.2.3; path=/; max-age=7776000";</script>'),
        [],
    ),
    "/old": (b"", []),
}


def _answer(path: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if path == "/old":
        return "302 Found", [("Location", "/products")], b""
    page = PAGES.get(path)
    if page is None:
        return "404 Not Found", [("Content-Type", "text/plain")], b"not found"
    body, cookies = page
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers += [("Set-Cookie", c) for c in cookies]
    return "200 OK", headers, body


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The shop without privguard: every cookie leaks."""
    status, headers, body = _answer(environ.get("PATH_INFO") or "/")
    start_response(status, headers)
    return [body]


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same shop as a pure ASGI app, without privguard."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status, headers, body = _answer(scope["path"])
    await send(
        {
            "type": "http.response.start",
            "status": int(status[:3]),
            "headers": [(n.lower().encode(), v.encode()) for n, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def scripted_bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A shop whose home page runs an ungated script that sets ``_fbp``."""
    path = environ.get("PATH_INFO") or "/"
    status, headers, body = _answer("/script" if path == "/" else path)
    start_response(status, headers)
    return [body]


def json_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Not a site: the start page is JSON."""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def loop_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A redirect loop: / -> /a -> /."""
    path = environ.get("PATH_INFO") or "/"
    start_response("302 Found", [("Location", "/a" if path == "/" else "/")])
    return [b""]


leaky_wsgi = bare_wsgi
leaky_asgi = bare_asgi
clean_wsgi = WSGIPrivacy(bare_wsgi, SETTINGS)
clean_asgi = ASGIPrivacy(bare_asgi, SETTINGS)
# auto-blocking off: the inline script's document.cookie write goes through
scripted_wsgi = WSGIPrivacy(scripted_bare_wsgi, SETTINGS.replace(block_scripts=False))
# auto-blocking on (the default): the in-page guard refuses that write
guarded_wsgi = WSGIPrivacy(scripted_bare_wsgi, SETTINGS)


def tracked_bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A shop page carrying the vendors' real snippets (gtag, Meta Pixel, GTM, YouTube)."""
    from tests.snippets import PAGE as TRACKED

    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [TRACKED.encode()]


tracked_wsgi = WSGIPrivacy(tracked_bare_wsgi, SETTINGS)
tracked_unblocked_wsgi = WSGIPrivacy(tracked_bare_wsgi, SETTINGS.replace(block_scripts=False))
tracked_advanced_wsgi = WSGIPrivacy(tracked_bare_wsgi, SETTINGS.replace(consent_mode="advanced"))


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def home(request: Any) -> HTMLResponse:
        response = HTMLResponse(PAGES["/"][0].decode())
        response.set_cookie("session", "abc", httponly=True)
        response.set_cookie("_fbp", "fb.1.1.1", max_age=3600)
        return response

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(ASGIPrivacy, settings=SETTINGS.replace(unknown_cookies="allow"))
    return app


def _flask_app() -> Any:
    import flask

    import privguard

    app = flask.Flask("shop")

    @app.get("/")
    def home() -> Any:
        response = flask.make_response(PAGES["/"][0])
        response.set_cookie("session", "abc", httponly=True)
        response.set_cookie("_gcl_au", "1.1", max_age=3600)
        return response

    return privguard.protect(app, SETTINGS)


#: Starlette with privguard added by ``add_middleware`` (its stack is built on first use).
starlette_app = _starlette_app()
#: Flask with privguard wrapped around ``wsgi_app``.
flask_app = _flask_app()


def slow_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers after 3 seconds."""
    import time

    time.sleep(3)
    return bare_wsgi(environ, start_response)


def broken_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The home page works; every other page raises."""
    if (environ.get("PATH_INFO") or "/") != "/":
        raise RuntimeError("boom")
    return bare_wsgi(environ, start_response)


def make_leaky() -> Any:
    """An app factory, for ``module:make_leaky()`` targets."""
    return bare_wsgi


def failing_factory() -> Any:
    raise RuntimeError("database not configured")
