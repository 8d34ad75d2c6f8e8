"""``privguard demo``: the Flask example shop with a region switcher, in a minute.

``make demo`` (or ``privguard demo [--host H] [--port P]``, also ``python -m privguard
demo``) starts the Flask example shop on http://127.0.0.1:8000 -- the wheel ships it as
``privguard._examples.flask_shop``; a source checkout runs ``examples/flask_shop`` --
with:

* a small GeoIP database generated at start (mmdb-writer, a dev dependency) into a
  temporary directory: one range each for DE, FR, GB, US-CA, US-TX and BR. Without
  mmdb-writer the demo falls back to the CDN-header mode (``CF-IPCountry``; no US
  states then);
* a region switcher -- demo only, and deliberately *outside* privguard: a tiny WSGI
  wrapper turns the ``demo_region`` cookie into an ``X-Forwarded-For`` address from
  that range (or a ``CF-IPCountry`` header) before privguard sees the request, exactly
  as a CDN or proxy would. ``/demo/reset`` forgets every choice;
* a language switcher beside it: the ``demo_language`` cookie replaces the browser's
  ``Accept-Language`` with one of privguard's shipped languages (unset: the browser's
  own header decides, as for a real visitor);
* ``debug_headers`` on, so ``Privguard-Region``/``Privguard-Regime`` show in devtools.

Nothing is written outside the temporary directory (shop database and consent ledger
included); it is removed on exit.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from werkzeug.http import dump_cookie, parse_cookie

from privguard.banner.languages import SHIPPED_LANGUAGES
from privguard.logging import werkzeug_request_handler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["register", "run", "build_demo_app", "build_geoip_db", "RegionSwitcher", "REGIONS"]

REGION_COOKIE = "demo_region"
DEFAULT_REGION = "de"
LANGUAGE_COOKIE = "demo_language"
#: Each shipped language in its own name, for the switcher.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "bg": "Български",
    "cs": "Čeština",
    "da": "Dansk",
    "de": "Deutsch",
    "el": "Ελληνικά",
    "es": "Español",
    "et": "Eesti",
    "fi": "Suomi",
    "fr": "Français",
    "ga": "Gaeilge",
    "hr": "Hrvatski",
    "hu": "Magyar",
    "it": "Italiano",
    "lt": "Lietuvių",
    "lv": "Latviešu",
    "mt": "Malti",
    "nl": "Nederlands",
    "pl": "Polski",
    "pt": "Português (Portugal)",
    "ro": "Română",
    "sk": "Slovenčina",
    "sl": "Slovenščina",
    "sv": "Svenska",
    "nb": "Norsk bokmål",
    "is": "Íslenska",
    "pt-BR": "Português (Brasil)",
}


@dataclass(frozen=True, slots=True)
class Region:
    """One choice of the switcher: where a demo visitor pretends to be."""

    key: str
    label: str
    country: str | None
    subdivision: str | None  # ISO 3166-2 suffix, e.g. "CA"
    network: str | None  # the range written into the demo GeoIP database

    @property
    def ip(self) -> str | None:
        """A visitor address inside ``network``."""
        if self.network is None:
            return None
        net = ipaddress.ip_network(self.network)
        return str(net.network_address + 1234)


REGIONS: tuple[Region, ...] = (
    Region("de", "Germany — GDPR, age 16", "DE", None, "88.64.0.0/16"),
    Region("fr", "France — GDPR, age 16", "FR", None, "90.0.0.0/16"),
    Region("gb", "United Kingdom — UK GDPR", "GB", None, "81.128.0.0/16"),
    Region("us-ca", "California — US opt-out, age 13", "US", "CA", "104.0.0.0/16"),
    Region("us-tx", "Texas — US opt-out, age 13", "US", "TX", "104.1.0.0/16"),
    Region("br", "Brazil — notice", "BR", None, "177.0.0.0/16"),
    Region("unknown", "Unknown country — strictest rules", None, None, None),
)
_BY_KEY = {r.key: r for r in REGIONS}
#: Cookies ``/demo/reset`` expires: every choice a visitor made in the demo.
_RESET_COOKIES = ("privguard_consent", "session", "_ga", "_fbp", "lang")


def build_geoip_db(path: Path) -> Path | None:
    """Write the demo's City database to ``path``; ``None`` without mmdb-writer."""
    try:
        from mmdb_writer import MMDBWriter
        from netaddr import IPSet
    except ImportError:
        return None
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description={"en": "privguard demo (not real GeoIP data)"},
    )
    for region in REGIONS:
        if region.network is None or region.country is None:
            continue
        record: dict[str, Any] = {"country": {"iso_code": region.country}}
        if region.subdivision:
            record["subdivisions"] = [{"iso_code": region.subdivision}]
        writer.insert_network(IPSet([region.network]), record)
    writer.to_db_file(str(path))
    return path


class RegionSwitcher:
    """Demo-only WSGI wrapper: the ``demo_region`` cookie becomes a proxy header.

    :param app: the protected app (privguard runs inside it).
    :param mode: ``"geoip"`` sets ``X-Forwarded-For`` to an address of the region;
        ``"header"`` sets ``CF-IPCountry``.
    """

    def __init__(self, app: WSGIApplication, mode: str = "geoip") -> None:
        if mode not in ("geoip", "header"):
            raise ValueError(f"mode must be 'geoip' or 'header', not {mode!r}")
        self.app = app
        self.mode = mode

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/demo/region" and environ.get("REQUEST_METHOD") == "POST":
            return self._switch(environ, start_response)
        if path == "/demo/reset":
            cookies = [dump_cookie(n, "", max_age=0, expires=0, path="/") for n in _RESET_COOKIES]
            return _redirect(start_response, "/", cookies)
        key = parse_cookie(environ.get("HTTP_COOKIE", "")).get(REGION_COOKIE, DEFAULT_REGION)
        region = _BY_KEY.get(key, _BY_KEY[DEFAULT_REGION])
        # whatever the browser sent is replaced, as a real proxy would do
        environ.pop("HTTP_X_FORWARDED_FOR", None)
        environ.pop("HTTP_FORWARDED", None)
        environ.pop("HTTP_CF_IPCOUNTRY", None)
        if self.mode == "geoip":
            if region.ip is not None:
                environ["HTTP_X_FORWARDED_FOR"] = region.ip
        else:
            environ["HTTP_CF_IPCOUNTRY"] = region.country or "XX"
        environ["demo.region"] = region.key
        lang = parse_cookie(environ.get("HTTP_COOKIE", "")).get(LANGUAGE_COOKIE)
        if lang in LANGUAGE_NAMES:  # as a browser set to that language would send it
            environ["HTTP_ACCEPT_LANGUAGE"] = lang
        return self.app(environ, start_response)

    def _switch(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), 1024)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
        form = parse_qs(body)
        key = (form.get("region") or [DEFAULT_REGION])[0]
        if key not in _BY_KEY:
            key = DEFAULT_REGION
        month = 30 * 24 * 3600
        cookies = [dump_cookie(REGION_COOKIE, key, max_age=month, path="/", samesite="Lax")]
        lang = (form.get("language") or [""])[0]
        if lang in LANGUAGE_NAMES:
            cookies.append(dump_cookie(LANGUAGE_COOKIE, lang, max_age=month, path="/"))
        else:  # "the browser's language": forget the override
            cookies.append(dump_cookie(LANGUAGE_COOKIE, "", max_age=0, expires=0, path="/"))
        return _redirect(start_response, "/", cookies)


def _redirect(start_response: StartResponse, location: str, cookies: list[str]) -> list[bytes]:
    headers = [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store")]
    headers += [("Set-Cookie", c) for c in cookies]
    start_response("303 See Other", headers)
    return []


_SHIPPED_SHOP = "privguard._examples.flask_shop.app"
_CHECKOUT_SHOP = "examples.flask_shop.app"


def _load_shop() -> Callable[..., Any]:
    """The shop's ``create_app``: the copy the wheel ships, else the source checkout's."""
    try:
        import flask  # noqa: F401
    except ImportError:
        raise RuntimeError("the demo is a Flask shop: pip install 'privguard[flask]'") from None
    try:
        module = importlib.import_module(_SHIPPED_SHOP)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _SHIPPED_SHOP.startswith(exc.name):
            raise
        module = _checkout_shop()
    return module.create_app  # type: ignore[no-any-return]


def _checkout_shop() -> Any:
    """``examples.flask_shop.app`` of the source checkout (an editable install)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "examples" / "flask_shop" / "app.py").is_file():
        raise RuntimeError(
            "the example shop is missing from this installation; reinstall privguard"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(_CHECKOUT_SHOP)


def build_demo_app(workdir: Path, geoip: bool = True) -> tuple[Any, str]:
    """The demo WSGI app (switcher around the protected shop) and its mode.

    Everything the shop writes goes into ``workdir``.
    """
    create_app = _load_shop()
    db = build_geoip_db(workdir / "demo-city.mmdb") if geoip else None
    mode = "geoip" if db is not None else "header"
    config: dict[str, Any] = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE": str(workdir / "shop.db"),
        "PRIVGUARD_LEDGER": f"sqlite:///{workdir / 'privguard-ledger.db'}",
        # the switcher in front is the one proxy hop privguard trusts
        "PRIVGUARD_TRUSTED_PROXIES": 1,
        "PRIVGUARD_DEBUG_HEADERS": True,
        "DEMO_REGIONS": [(r.key, r.label) for r in REGIONS],
        "DEMO_DEFAULT_REGION": DEFAULT_REGION,
        "DEMO_LANGUAGES": [(tag, LANGUAGE_NAMES[tag]) for tag in SHIPPED_LANGUAGES],
    }
    if db is not None:
        config["PRIVGUARD_GEOIP_DB"] = str(db)
        config["PRIVGUARD_COUNTRY_HEADER"] = None
    else:
        config["PRIVGUARD_COUNTRY_HEADER"] = "CF-IPCountry"
    app = create_app(config)
    app.wsgi_app = RegionSwitcher(app.wsgi_app, mode)
    return app, mode


def run(args: argparse.Namespace) -> int:
    """Start the demo server until Ctrl-C."""
    from werkzeug.serving import run_simple

    with tempfile.TemporaryDirectory(prefix="privguard-demo-") as tmp:
        try:
            app, mode = build_demo_app(Path(tmp), geoip=not args.no_geoip)
        except (ImportError, RuntimeError) as exc:
            print(f"privguard demo: {exc}", file=sys.stderr)
            return 2
        where = (
            "a generated GeoIP database"
            if mode == "geoip"
            else "the CF-IPCountry header (US states need a City database: "
            "pip install mmdb-writer netaddr and the demo generates one)"
        )
        print(
            f"privguard demo: http://{args.host}:{args.port}/ -- regions from {where}; "
            "pick one in the bar at the top, /demo/reset forgets your choices. Ctrl-C stops.",
            flush=True,
        )
        try:
            run_simple(
                args.host,
                args.port,
                app,
                threaded=True,
                use_reloader=False,
                # the access log keeps truncated IPs only
                request_handler=werkzeug_request_handler(),
            )
        finally:
            app.extensions["privguard"].runtime.close()
    return 0


def register(subparsers: Any) -> None:
    """Add ``privguard demo`` to the CLI."""
    parser = subparsers.add_parser(
        "demo",
        help="run the example shop with a region switcher",
        description="Run the Flask example shop with a region switcher on a local port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--no-geoip",
        action="store_true",
        help="use the CF-IPCountry header instead of a generated GeoIP database",
    )
    parser.set_defaults(func=run)
