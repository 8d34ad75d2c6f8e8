"""The apps every benchmark drives: one tiny shop endpoint, bare and behind middlewares.

The same endpoint exists as a Starlette (ASGI) and a Flask (WSGI) app: a small
JSON answer that sets three cookies (``sessionid`` necessary, ``_ga``
performance, ``_fbp`` marketing). It is wrapped by

* nothing (``bare``);
* a do-nothing pass-through middleware (``passthrough``, the floor every
  middleware pays);
* privguard (``privguard``), with a generated GeoIP City database, one trusted
  proxy (``trusted_proxies=1``) and no ledger;
* the same policy (drop ``_ga``/``_fbp`` unless the consent cookie allows them,
  add ``Permissions-Policy``) written as a Starlette ``BaseHTTPMiddleware``
  (``basehttp``), and flask-talisman for the header part on Flask (``talisman``).

The HTML apps serve a 50 KB page as one body or as 8 streamed chunks; the
``html-token`` pages carry a per-request token (a CSRF token in a meta tag and in
every add-to-cart form, as a shop's template writes it), so their bytes differ on
every request, as a real page's do.

Served benchmarks import this module from uvicorn/gunicorn (``apps:asgi_privguard``);
the module-level names are built on first access from ``PRIVGUARD_BENCH_DIR``, the
directory holding the generated ``.mmdb``.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SECRET_KEY = "privguard-benchmark-secret-key-0123456789abcdef"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
#: The direct peer: a reverse proxy on the same host.
PROXY_IP = "127.0.0.1"
#: The visitor, as the proxy reports it in X-Forwarded-For (Germany: the GDPR regime).
VISITOR_IP = "203.0.113.7"
#: Networks of the generated City database: (country, subdivision or None).
GEO_NETWORKS: dict[str, tuple[str, str | None]] = {
    "198.51.100.0/24": ("US", "CA"),
    "203.0.113.0/24": ("DE", None),
    "2.0.0.0/8": ("DE", None),  # the memory run's million distinct visitors
    "5.0.0.0/8": ("FR", None),
}
#: What the returning visitor granted: _ga (performance) passes, _fbp (marketing) not.
GRANTED = ("necessary", "functionality", "performance")
APP_COOKIES = (
    ("sessionid", "f3a9c1d2e4b5a6978c0d1e2f3a4b5c6d"),
    ("_ga", "GA1.1.1234567890.1700000000"),
    ("_fbp", "fb.1.1700000000000.1234567890"),
)
PERMISSIONS_POLICY = "browsing-topics=(), interest-cohort=()"
HTML_SIZE = 50 * 1024
HTML_CHUNKS = 8
CONSENT_COOKIE = "privguard_consent"


# -- the generated GeoIP database --------------------------------------------------


def build_geo_db(path: Path) -> Path:
    """Write the benchmark City database to ``path`` (tests/geodb.py when present)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.geodb import build_city_db  # type: ignore[import-not-found]
    except ImportError:
        build_city_db = _build_city_db
    build_city_db(path, GEO_NETWORKS)
    return path


def _build_city_db(path: Path, networks: dict[str, tuple[str, str | None]]) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    for cidr, (country, sub) in networks.items():
        record: dict[str, Any] = {"country": {"iso_code": country}}
        if sub:
            record["subdivisions"] = [{"iso_code": sub}]
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))


# -- settings and the consent cookie ------------------------------------------------


def make_settings(geo_db: Path) -> Any:
    """privguard's settings for every benchmark (no ledger: no I/O on the hot path)."""
    from privguard import Settings

    return Settings(
        secret_key=SECRET_KEY,
        geoip_db=str(geo_db),
        trusted_proxies=1,
        ledger=None,
    )


def settings_summary(settings: Any) -> dict[str, Any]:
    """The options every benchmark row runs with (printed and stored with the results)."""
    return {
        "block_scripts": settings.block_scripts,
        "trusted_proxies": settings.trusted_proxies.hops,
        "geoip_db": "generated City database" if settings.geoip_db else None,
        "ledger": settings.ledger,
    }


def consent_cookie(settings: Any, receipt_id: str | None = None) -> str:
    """A valid signed consent cookie granting :data:`GRANTED`, chosen under gdpr.

    The regime is part of a stored choice: a cookie without it is a choice of
    unknown regime, which a gdpr visitor is asked again (not a returning visitor).
    """
    from privguard.core.categories import Category
    from privguard.core.consent import ConsentCodec, ConsentState

    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    state = ConsentState(
        version=settings.policy_version,
        granted=frozenset(Category(c) for c in GRANTED),
        receipt_id=receipt_id,
        regime="gdpr",
    )
    return codec.dump(state)


def request_headers(cookie: str | None, user_agent: str = CHROME_UA) -> list[tuple[str, str]]:
    """A browser's request headers; ``cookie`` is the consent cookie value or None."""
    headers = [
        ("host", "shop.example"),
        ("user-agent", user_agent),
        ("accept", "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"),
        ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-forwarded-for", VISITOR_IP),
    ]
    jar = "sessionid=f3a9c1d2e4b5a6978c0d1e2f3a4b5c6d; _ga=GA1.1.1234567890.1700000000"
    if cookie is not None:
        jar = f"{jar}; {CONSENT_COOKIE}={cookie}"
    headers.append(("cookie", jar))
    return headers


# -- pages ---------------------------------------------------------------------------


#: Ten script tags as shops carry them: eight load catalogued trackers (six by ``src``,
#: two inline loaders), two are the shop's own.
TRACKER_SCRIPTS = (
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-XXXXXXXXXX"></script>',
    b"<script>(function(w,d,s,l,i){w[l]=w[l]||[];var f=d.getElementsByTagName(s)[0],"
    b"j=d.createElement(s);j.async=true;j.src='https://www.googletagmanager.com/gtm.js?id='+i;"
    b"f.parentNode.insertBefore(j,f);})(window,document,'script','dataLayer','GTM-X');</script>",
    b"<script>!function(f,b,e,v){var t=b.createElement(e);t.async=!0;t.src=v;"
    b"b.head.appendChild(t)}(window,document,'script',"
    b"'https://connect.facebook.net/en_US/fbevents.js');</script>",
    b'<script src="https://static.hotjar.com/c/hotjar-1.js?sv=6" async></script>',
    b'<script src="https://www.clarity.ms/tag/abcdef" async></script>',
    b'<script src="https://bat.bing.com/bat.js" async></script>',
    b'<script src="https://analytics.tiktok.com/i18n/pixel/events.js" async></script>',
    b'<script src="https://snap.licdn.com/li.lms-analytics/insight.min.js" async></script>',
    b'<script src="/static/shop.js" defer></script>',
    b"<script>document.documentElement.className='js';</script>",
)
#: The same ten tags with nothing catalogued: what a tracker-free page pays.
PLAIN_SCRIPTS = (
    tuple(b'<script src="/static/app%d.js" defer></script>' % i for i in range(8))
    + TRACKER_SCRIPTS[-2:]
)


def html_page(scripts: tuple[bytes, ...] = ()) -> bytes:
    """A 50 KB shop page ending in ``</body></html>``, ``scripts`` spread through it."""
    head = b"<!doctype html><html lang='de'><head><meta charset='utf-8'><title>Shop</title>"
    head += b"".join(scripts[:3]) + b"</head><body><main>"
    tail = b"".join(scripts[3:]) + b"</main></body></html>"
    row = b"<div class='product'><a href='/p/1'>Product</a> <span>19,99 EUR</span></div>\n"
    rows = (HTML_SIZE - len(head) - len(tail)) // len(row)
    body = head + row * rows
    return body + b" " * (HTML_SIZE - len(body) - len(tail)) + tail


def html_chunks(scripts: tuple[bytes, ...] = ()) -> list[bytes]:
    """:func:`html_page` cut into :data:`HTML_CHUNKS` pieces."""
    page = html_page(scripts)
    size = -(-len(page) // HTML_CHUNKS)
    return [page[i : i + size] for i in range(0, len(page), size)]


#: Stands for the per-request token in the ``html-token`` pages (as long as a token).
TOKEN_SLOT = b"{{csrf-token-of-this-request.}}}"
assert len(TOKEN_SLOT) == 32
#: One add-to-cart form per this many product rows, each with the token.
TOKEN_EVERY = 20


def token_page() -> bytes:
    """A 50 KB page as a template renders it with a CSRF token: :data:`TOKEN_SLOT` in a
    ``<meta>`` of the head and in an add-to-cart form every :data:`TOKEN_EVERY` product
    rows (every chunk of :func:`html_chunks` holds at least one), no script."""
    head = b"<!doctype html><html lang='de'><head><meta charset='utf-8'><title>Shop</title>"
    head += b'<meta name="csrf-token" content="' + TOKEN_SLOT + b'"></head><body><main>'
    tail = b"</main></body></html>"
    row = b"<div class='product'><a href='/p/1'>Product</a> <span>19,99 EUR</span></div>\n"
    form = (
        b"<form method='post' action='/cart'><input type='hidden' name='csrf' value='"
        + TOKEN_SLOT
        + b"'><button>Add</button></form>\n"
    )
    group = form + row * TOKEN_EVERY
    body = head + group * ((HTML_SIZE - len(head) - len(tail)) // len(group))
    body += row * ((HTML_SIZE - len(body) - len(tail)) // len(row))
    return body + b" " * (HTML_SIZE - len(body) - len(tail)) + tail


def token_templates(kind: str) -> list[list[bytes]]:
    """The ``html-token`` (one body) or ``html-token-stream`` (8 chunks) page, each
    chunk split at its token slots: ``token.join(parts)`` renders it."""
    page = token_page()
    if kind == "html-token":
        return [page.split(TOKEN_SLOT)]
    size = -(-len(page) // HTML_CHUNKS)
    chunks = [page[i : i + size] for i in range(0, len(page), size)]
    assert all(TOKEN_SLOT in c for c in chunks), "a chunk without a token, or one cut"
    return [c.split(TOKEN_SLOT) for c in chunks]


def token_source() -> Callable[[], bytes]:
    """A new random 32-byte token (hex) on every call, as a CSRF token is: no two
    share more than chance bytes (``random``, not ``secrets``: no system call, the same
    cost on both sides of a comparison)."""
    rng = random.Random(20)
    return lambda: b"%032x" % rng.getrandbits(128)


def page_chunks(kind: str) -> list[bytes]:
    """The streamed chunks of ``html-stream``, ``html-trackers`` or ``html-scripts``."""
    scripts = {"html-trackers": TRACKER_SCRIPTS, "html-scripts": PLAIN_SCRIPTS}.get(kind, ())
    return html_chunks(scripts)


#: What privguard adds to the returning visitor's JSON answer, in its order, and the
#: Permissions-Policy it adds to documents: the served header experiment appends the
#: first N of these (``headers<N>``) without privguard (``served_headers.py``).
PRIVGUARD_HEADERS = (
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("vary", "Cookie, Sec-GPC, DNT"),
    ("cache-control", "private"),
    ("permissions-policy", PERMISSIONS_POLICY),
)


# -- ASGI (Starlette) ----------------------------------------------------------------


def starlette_app(kind: str = "json") -> Any:
    """The Starlette endpoint: ``json`` (3 cookies), ``html``, ``html-stream``, ``html-token``
    or ``html-token-stream`` (page kinds, see :func:`page_chunks` and :func:`token_templates`)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    page = html_page()
    chunks = page_chunks(kind)
    templates = token_templates(kind) if kind.startswith("html-token") else []
    token = token_source()

    async def shop(request: Any) -> Any:
        response = JSONResponse({"ok": True, "items": [1, 2, 3]})
        for name, value in APP_COOKIES:
            response.set_cookie(name, value, samesite="lax")
        return response

    async def page_single(request: Any) -> Any:
        return HTMLResponse(page)

    async def page_stream(request: Any) -> Any:
        async def gen() -> Any:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(gen(), media_type="text/html; charset=utf-8")

    async def token_single(request: Any) -> Any:
        return HTMLResponse(token().join(templates[0]))

    async def token_stream(request: Any) -> Any:
        value = token()

        async def gen() -> Any:
            for parts in templates:
                yield value.join(parts)

        return StreamingResponse(gen(), media_type="text/html; charset=utf-8")

    endpoint = {
        "json": shop,
        "html": page_single,
        "html-token": token_single,
        "html-token-stream": token_stream,
    }.get(kind, page_stream)
    return Starlette(routes=[Route("/", endpoint)])


class AsgiPassThrough:
    """The floor: a pure ASGI middleware that does nothing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class AsgiAddHeaders:
    """A pure ASGI middleware appending constant headers (the pass-through's frames)."""

    def __init__(self, app: Any, headers: tuple[tuple[str, str], ...]) -> None:
        self.app = app
        self.headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        extra = self.headers

        async def add(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)

        await self.app(scope, receive, add)


def _header_count(variant: str) -> int | None:
    if variant.startswith("headers") and variant[7:].isdigit():
        return int(variant[7:])
    return None


def extra_headers(count: int) -> tuple[tuple[str, str], ...]:
    """The first ``count`` of :data:`PRIVGUARD_HEADERS`, then ``x-bench-<i>`` fillers."""
    fill = tuple((f"x-bench-{i}", "strict-origin-when-cross-origin") for i in range(count))
    return (PRIVGUARD_HEADERS + fill)[:count]


def asgi_basehttp_policy(app: Any, settings: Any) -> Any:
    """The same cookie policy written as a starlette ``BaseHTTPMiddleware`` (the peer)."""
    from starlette.middleware.base import BaseHTTPMiddleware

    from privguard.core.consent import ConsentCodec

    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    gated = {"_ga": "performance", "_fbp": "marketing"}

    async def dispatch(request: Any, call_next: Any) -> Any:
        import time

        state = codec.load(request.cookies.get(CONSENT_COOKIE), time.time())
        granted = {c.value for c in state.granted} if state and state.granted else set()
        response = await call_next(request)
        kept = []
        for name, value in response.raw_headers:
            if name == b"set-cookie":
                cname = value.split(b"=", 1)[0].decode("latin-1").strip()
                if cname in gated and gated[cname] not in granted:
                    continue
            kept.append((name, value))
        if "marketing" not in granted:
            kept.append((b"permissions-policy", PERMISSIONS_POLICY.encode()))
        response.raw_headers[:] = kept
        return response

    return BaseHTTPMiddleware(app, dispatch=dispatch)


def asgi_app(variant: str, settings: Any = None, kind: str = "json") -> Any:
    """The ASGI app for ``variant``: bare, passthrough, privguard or basehttp."""
    app = starlette_app(kind)
    if variant == "bare":
        return app
    if variant == "passthrough":
        return AsgiPassThrough(app)
    if variant == "privguard":
        from privguard.asgi import PrivacyMiddleware

        return PrivacyMiddleware(app, settings=settings)
    if variant == "basehttp":
        return asgi_basehttp_policy(app, settings)
    count = _header_count(variant)
    if count is not None:
        return AsgiAddHeaders(app, extra_headers(count))
    if variant == "no-autoblock":  # privguard with block_scripts=False: today's banner pass
        from privguard.asgi import PrivacyMiddleware

        return PrivacyMiddleware(app, settings=settings.replace(block_scripts=False))
    raise ValueError(f"unknown ASGI variant {variant!r}")


# -- WSGI (Flask) --------------------------------------------------------------------


def flask_app(kind: str = "json", talisman: bool = False) -> Any:
    """The Flask endpoint: the same kinds as :func:`starlette_app`."""
    from flask import Flask, Response, jsonify

    page = html_page()
    chunks = page_chunks(kind)
    templates = token_templates(kind) if kind.startswith("html-token") else []
    token = token_source()
    app = Flask("privguard_bench")

    if kind == "json":

        @app.get("/")
        def shop() -> Any:
            response = jsonify(ok=True, items=[1, 2, 3])
            for name, value in APP_COOKIES:
                response.set_cookie(name, value, samesite="Lax")
            return response

    elif kind == "html":

        @app.get("/")
        def page_single() -> Any:
            return Response(page, mimetype="text/html")

    elif kind == "html-token":

        @app.get("/")
        def token_single() -> Any:
            return Response(token().join(templates[0]), mimetype="text/html")

    elif kind == "html-token-stream":

        @app.get("/")
        def token_stream() -> Any:
            value = token()
            return Response((value.join(parts) for parts in templates), mimetype="text/html")

    else:

        @app.get("/")
        def page_stream() -> Any:
            return Response(iter(chunks), mimetype="text/html")

    if talisman:
        from flask_talisman import Talisman

        Talisman(
            app,
            force_https=False,
            strict_transport_security=False,
            session_cookie_secure=False,
            content_security_policy=None,
            referrer_policy="strict-origin-when-cross-origin",
            permissions_policy={"browsing-topics": "()", "interest-cohort": "()"},
        )
    return app


class WsgiAddHeaders:
    """A WSGI middleware appending constant headers in ``start_response``."""

    def __init__(self, app: Any, headers: tuple[tuple[str, str], ...]) -> None:
        self.app = app
        self.headers = list(headers)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        extra = self.headers

        def add(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, add)


class WsgiPassThrough:
    """The floor: a WSGI middleware that does nothing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


def wsgi_app(variant: str, settings: Any = None, kind: str = "json") -> Callable[..., Any]:
    """The WSGI app for ``variant``: bare, passthrough, privguard, no-autoblock or talisman.

    Middlewares wrap ``app.wsgi_app`` (the documented Flask pattern), so every
    variant is called the way a server calls it: ``app(environ, start_response)``.
    """
    app = flask_app(kind, talisman=variant == "talisman")
    if variant in ("bare", "talisman"):
        return app
    if variant == "passthrough":
        app.wsgi_app = WsgiPassThrough(app.wsgi_app)  # type: ignore[method-assign]
        return app
    if variant == "privguard":
        from privguard.wsgi import PrivacyMiddleware

        app.wsgi_app = PrivacyMiddleware(app.wsgi_app, settings=settings)  # type: ignore[method-assign]
        return app
    count = _header_count(variant)
    if count is not None:
        app.wsgi_app = WsgiAddHeaders(app.wsgi_app, extra_headers(count))  # type: ignore[method-assign]
        return app
    if variant == "no-autoblock":  # privguard with block_scripts=False: today's banner pass
        from privguard.wsgi import PrivacyMiddleware

        plain = settings.replace(block_scripts=False)
        app.wsgi_app = PrivacyMiddleware(app.wsgi_app, settings=plain)  # type: ignore[method-assign]
        return app
    raise ValueError(f"unknown WSGI variant {variant!r}")


# -- served: uvicorn/gunicorn import ``apps:asgi_<variant>`` / ``apps:wsgi_<variant>`` --


def __getattr__(name: str) -> Any:
    kind, _, variant = name.partition("_")
    if kind not in ("asgi", "wsgi") or not variant:
        raise AttributeError(name)
    bench_dir = os.environ.get("PRIVGUARD_BENCH_DIR")
    if not bench_dir:
        raise AttributeError(f"{name}: set PRIVGUARD_BENCH_DIR to the benchmark directory")
    settings = make_settings(Path(bench_dir) / "bench-city.mmdb")
    app = asgi_app(variant, settings) if kind == "asgi" else wsgi_app(variant, settings)
    globals()[name] = app
    return app
