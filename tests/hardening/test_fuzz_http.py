"""Property tests: arbitrary HTTP input through both adapters never 500s or grants consent.

One tiny Flask app (WSGI, through werkzeug's test client) and one tiny
Starlette app (ASGI, called directly) are built once for the module --
hypothesis does not reset fixtures between examples. Headers go into the
environ and the scope as a server would put them, so any latin-1 value can be
sent.

Invariants, for every input:

* never a 5xx and no exception escapes the middleware;
* no CR, LF or NUL in any response header;
* a bad input grants nothing: ``GET /privguard/consent`` afterwards shows no
  category beyond what the visitor's regime gives by default, and no cookie of
  a category that is not allowed passes (for a GDPR visitor without consent:
  only necessary ones);
* a consent post grants at most the categories it named.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import itertools
import json
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask, make_response
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from werkzeug.test import Client

import privguard
import privguard.wsgi
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.core.categories import Category
from privguard.core.consent import CONSENT_SALT

KEY = "fuzz-http-key-" + "f" * 40
OTHER_KEY = "not-the-shop-key-" + "o" * 40
HOST = "testserver"
SAME_ORIGIN = "http://testserver"
PAGE_COOKIES = ("sessionid", "lang", "_ga", "_fbp")
ALL_NAMES = frozenset(c.value for c in Category)
OPTIONS: dict[str, Any] = {
    "secret_key": KEY,
    "ledger": None,
    "rate_limit": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Set-Cookie lines the app emits on /echo for the current example.
ECHO: list[str] = []


# --- the two apps, built once ---------------------------------------------------------------


def _flask() -> Flask:
    app = Flask(__name__)

    @app.route("/", methods=["GET", "POST"])
    def index() -> Any:
        resp = make_response("<html><body><p>shop</p></body></html>")
        for name in PAGE_COOKIES:
            resp.set_cookie(name, "v")
        return resp

    @app.get("/echo")
    def echo() -> Any:
        resp = make_response("<html><body>echo</body></html>")
        for line in ECHO:
            resp.headers.add("Set-Cookie", line)
        return resp

    return privguard.protect(app, **OPTIONS)


async def _index(request: Any) -> HTMLResponse:
    resp = HTMLResponse("<html><body><p>shop</p></body></html>")
    for name in PAGE_COOKIES:
        resp.set_cookie(name, "v")
    return resp


async def _echo(request: Any) -> HTMLResponse:
    resp = HTMLResponse("<html><body>echo</body></html>")
    for line in ECHO:
        resp.raw_headers.append((b"set-cookie", line.encode("latin-1")))
    return resp


FLASK_APP = _flask()
WSGI_CLIENT = Client(FLASK_APP, use_cookies=False)
ASGI_APP = AsgiMiddleware(
    Starlette(routes=[Route("/", _index, methods=["GET", "POST"]), Route("/echo", _echo)]),
    **OPTIONS,
)
SETTINGS = ASGI_APP.settings


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name]

    def consent_cookie(self) -> str | None:
        """``name=value`` of a consent cookie this response sets, if any."""
        for line in self.get_all("set-cookie"):
            pair = line.split(";", 1)[0]
            if pair.split("=", 1)[0].endswith("privguard_consent") and "Max-Age=0" not in line:
                return pair
        return None


def call_wsgi(
    method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes, https: bool
) -> Resp:
    """Through werkzeug's test client; headers go in the environ as a server puts them."""
    env: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": HOST}
    for name, value in headers:
        key = name.upper().replace("-", "_")
        key = key if key == "CONTENT_TYPE" else "HTTP_" + key
        sep = "; " if key == "HTTP_COOKIE" else ", "
        env[key] = env[key] + sep + value if key in env and key != "HTTP_HOST" else value
    resp = WSGI_CLIENT.open(
        path,
        method=method,
        data=body,
        base_url=f"{'https' if https else 'http'}://{HOST}/",
        environ_overrides=env,
    )
    try:
        # the raw pairs, before werkzeug's Headers could refuse a CR/LF
        return Resp(resp.status_code, list(resp.headers.to_wsgi_list()), resp.get_data())
    finally:
        resp.close()


def call_asgi(
    method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes, https: bool
) -> Resp:
    raw = [(b"host", HOST.encode())]
    raw += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https" if https else "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 40000),
        "server": (HOST, 443 if https else 80),
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(ASGI_APP(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    hdrs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start["headers"]]
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Resp(start["status"], hdrs, data)


CALLERS = {"wsgi": call_wsgi, "asgi": call_asgi}
ADAPTERS = pytest.mark.parametrize("adapter", sorted(CALLERS))


def request(
    adapter: str,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    https: bool = False,
) -> Resp:
    """One request; checks the invariants every response must meet."""
    resp = CALLERS[adapter](method, path, headers, body, https)
    assert resp.status < 500, resp
    for name, value in resp.headers:
        assert not any(c in name + value for c in "\r\n\x00"), (name, value)
    return resp


def state(adapter: str, headers: Sequence[tuple[str, str]] = (), https: bool = False) -> dict:
    resp = request(adapter, "GET", "/privguard/consent", headers, https=https)
    assert resp.status == 200
    return json.loads(resp.body)


def granted(data: dict) -> frozenset[str]:
    return frozenset(name for name, on in data["categories"].items() if on)


def browser_cookie_name(line: str) -> str:
    """The name a browser stores for a Set-Cookie line (RFC 6265bis §5.6)."""
    pair = line.split(";", 1)[0]
    if "=" not in pair:
        return ""
    return pair.split("=", 1)[0].strip(" \t")


def assert_cookies_within(resp: Resp, allowed: frozenset[str], app_lines: Sequence[str]) -> None:
    """Every live Set-Cookie the app emitted has an allowed category."""
    for line in resp.get_all("set-cookie"):
        name = browser_cookie_name(line)
        if "Max-Age=0" in line and line not in app_lines:
            continue  # privguard's own expiry
        if name.endswith("privguard_consent") and line not in app_lines:
            continue  # privguard's own consent cookie
        category = SETTINGS.catalog.classify(name)
        assert category is not None and category.value in allowed, (line, allowed)


def country_headers(country: str | None) -> list[tuple[str, str]]:
    return [] if country is None else [("CF-IPCountry", country)]


# --- strategies --------------------------------------------------------------------------------

LATIN1 = st.characters(max_codepoint=0xFF)
HEADER_TEXT = st.text(LATIN1, max_size=40)
SAFE_LATIN1 = st.characters(max_codepoint=0xFF, blacklist_characters="\r\n\x00")
CATALOG_NAMES = st.sampled_from(
    [
        *PAGE_COOKIES,
        "session",
        "_ga_ABC",
        "_gid",
        "_gcl_au",
        "IDE",
        "csrftoken",
        "privguard_consent",
        "__Host-privguard_consent",
        "_pk_id.1.abc",
        "mystery",
        "",
    ]
)
COOKIE_NAMES = st.one_of(CATALOG_NAMES, st.text(LATIN1, max_size=12))
COOKIE_VALUES = st.one_of(
    st.text(LATIN1, max_size=40),
    st.text(LATIN1, max_size=20).map(lambda v: f'"{v}"'),
    st.sampled_from(['"', '""', "=", "a=b", "\\", "%0d%0a"]),
)
COUNTRIES = st.one_of(
    st.none(),
    st.sampled_from(["DE", "US", "BR", "de", " FR ", "XX", "T1", "ZZ", "", "GB", "CH", "EU"]),
    HEADER_TEXT,
)


def _pairs_to_header(pairs: list[tuple[str, str]], sep: str, pad: bool) -> str:
    header = sep.join(f"{n}={v}" for n, v in pairs)
    if pad:  # 8 KB+ of cookies, many of them duplicates
        header += "; " + "; ".join(f"_ga={'x' * 90}" for _ in range(95))
    return header


COOKIE_HEADERS = st.builds(
    _pairs_to_header,
    st.lists(st.tuples(COOKIE_NAMES, COOKIE_VALUES), max_size=8),
    st.sampled_from(["; ", ";", ", ", ";;", " ; "]),
    st.booleans(),
)


def _serializer(key: str, **kw: Any) -> URLSafeTimedSerializer:
    kw.setdefault("signer_kwargs", {"digest_method": hashlib.sha256})
    return URLSafeTimedSerializer(key, salt=kw.pop("salt", CONSENT_SALT), serializer=json, **kw)


GOOD_PAYLOAD = {"v": "1", "g": sorted(ALL_NAMES), "r": "receipt"}
GOOD_TOKEN = _serializer(KEY).dumps(GOOD_PAYLOAD)


def _signed_at(offset: int) -> str:
    """A consent granting everything, validly signed ``offset`` seconds from now."""

    class Shifted(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) + offset

    return _serializer(KEY, signer=Shifted).dumps(GOOD_PAYLOAD)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
BAD_PAYLOADS = st.one_of(
    JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"v": JSON_VALUES.filter(lambda v: not isinstance(v, str))}),
    st.fixed_dictionaries(  # one category the policy does not know
        {
            "v": st.just("1"),
            "g": st.lists(st.sampled_from(sorted(ALL_NAMES)), max_size=3).flatmap(
                lambda g: (
                    st.text(max_size=8)
                    .filter(lambda x: x.strip().lower() not in ALL_NAMES)
                    .map(lambda bad: [*g, bad])
                )
            ),
        }
    ),
    st.fixed_dictionaries({"v": st.just("1"), "g": JSON_SCALARS.filter(lambda v: v is not None)}),
    st.fixed_dictionaries(  # an earlier policy version: no choice for this one
        {"v": st.sampled_from(["0", "2", "1.0", " 1"]), "g": st.just(sorted(ALL_NAMES))}
    ),
    st.fixed_dictionaries(
        {
            "v": st.just("1"),
            "g": st.just(sorted(ALL_NAMES)),
            "a": st.text(max_size=6).filter(lambda a: a not in ("unknown", "adult", "minor")),
        }
    ),
    st.fixed_dictionaries(
        {
            "v": st.just("1"),
            "g": st.just(sorted(ALL_NAMES)),
            "r": st.integers() | st.lists(st.none()),
        }
    ),
)
BAD_CONSENT = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(0, len(GOOD_TOKEN) - 1).map(lambda i: GOOD_TOKEN[:i]),
    st.integers(0, len(GOOD_TOKEN) - 1).map(lambda i: GOOD_TOKEN[:i] + "A" + GOOD_TOKEN[i + 1 :]),
    st.just(_serializer(OTHER_KEY).dumps(GOOD_PAYLOAD)),  # re-signed with another key
    st.just(_serializer(KEY, salt="privguard.csrf.v1").dumps(GOOD_PAYLOAD)),  # other salt
    st.just(_serializer(KEY, signer_kwargs={}).dumps(GOOD_PAYLOAD)),  # sha1, not sha256
    st.sampled_from([-200 * 86400, 3600]).map(_signed_at),  # expired / from the future
    BAD_PAYLOADS.map(lambda p: _serializer(KEY).dumps(p)),  # valid signature, bad payload
)


# --- properties --------------------------------------------------------------------------------


def _baseline(adapter: str, country: str | None, https: bool = False) -> frozenset[str]:
    return granted(state(adapter, country_headers(country), https))


@ADAPTERS
@FUZZ
@given(cookie=COOKIE_HEADERS, country=COUNTRIES)
def test_arbitrary_cookie_headers(adapter: str, cookie: str, country: str | None):
    base = _baseline(adapter, country)
    headers = [*country_headers(country), ("Cookie", cookie)]
    assert granted(state(adapter, headers)) <= base
    page = request(adapter, "GET", "/", headers)
    assert page.status == 200
    assert_cookies_within(page, base, ["sessionid=v; Path=/"])


SET_COOKIE_LINES = st.builds(
    lambda lead, name, sep, value, attrs: f"{lead}{name}{sep}{value}{attrs}",
    st.sampled_from(["", " ", "\t", "  "]),
    COOKIE_NAMES.map(lambda n: n.replace("\r", "").replace("\n", "").replace("\x00", "")),
    st.sampled_from(["=", " = ", "", "=="]),
    st.text(SAFE_LATIN1, max_size=30),
    st.sampled_from(
        ["", "; Path=/", "; Domain=.testserver; Secure", "; Max-Age=0", ";HttpOnly", "; =x"]
    ),
)


@ADAPTERS
@FUZZ
@given(lines=st.lists(SET_COOKIE_LINES, max_size=6), country=COUNTRIES, gpc=st.booleans())
def test_app_set_cookie_lines(adapter: str, lines: list[str], country: str | None, gpc: bool):
    signal = [("Sec-GPC", "1")] if gpc else []
    base = _baseline(adapter, country)
    if gpc:
        base -= {"marketing"}
    ECHO[:] = lines
    try:
        resp = request(adapter, "GET", "/echo", [*country_headers(country), *signal])
    finally:
        ECHO.clear()
    assert resp.status == 200
    assert_cookies_within(resp, base, lines)
    passed = [line for line in resp.get_all("set-cookie") if line in lines]
    # only privguard writes its own cookie
    assert not [line for line in passed if browser_cookie_name(line).endswith("privguard_consent")]
    # passed through byte for byte, never re-serialised, repeats kept
    for line in passed:
        assert passed.count(line) == lines.count(line)


@ADAPTERS
@FUZZ
@given(
    xff=st.one_of(st.none(), HEADER_TEXT, st.lists(st.ip_addresses().map(str)).map(", ".join)),
    forwarded=st.one_of(
        st.none(),
        HEADER_TEXT,
        st.builds(
            lambda ip, q: f"for={q}{ip}{q};proto=https",
            st.ip_addresses(),
            st.sampled_from(["", '"']),
        ),
    ),
    country=COUNTRIES,
)
def test_forwarded_headers_and_country_values(
    adapter: str, xff: str | None, forwarded: str | None, country: str | None
):
    headers = country_headers(country)
    if xff is not None:
        headers.append(("X-Forwarded-For", xff))
    if forwarded is not None:
        headers.append(("Forwarded", forwarded))
    data = state(adapter, headers)
    code = (country or "").strip().upper()
    known = len(code) == 2 and code.isascii() and code.isalpha()
    if not known or code in ("XX", "T1", "ZZ", "EU"):
        # unknown: the strictest regime and the highest required age
        assert data["country"] is None
        assert data["regime"] == "gdpr" and data["required_age"] == 16
    assert granted(data) == _baseline(adapter, country)
    page = request(adapter, "GET", "/", headers)
    assert page.status == 200


@ADAPTERS
@FUZZ
@given(
    accept_language=st.one_of(
        HEADER_TEXT,
        st.lists(
            st.tuples(
                st.sampled_from(["de", "fr-CH", "es", "*", "en-GB", "xx", "", "DE"]),
                st.one_of(st.none(), st.floats(-2, 3), st.text(LATIN1, max_size=4)),
            ),
            max_size=5,
        ).map(lambda items: ",".join(f"{t};q={q}" if q is not None else t for t, q in items)),
    ),
)
def test_accept_language(adapter: str, accept_language: str):
    headers = [
        ("Accept-Language", accept_language),
        ("Accept", "text/html"),
        ("User-Agent", "Mozilla/5.0"),
    ]
    resp = request(adapter, "GET", "/", headers)
    assert resp.status == 200
    assert b'id="privguard-banner"' in resp.body
    lang = resp.body.split(b'id="privguard-banner"', 1)[1].split(b'lang="', 1)[1][:5]
    assert lang.split(b'"', 1)[0].decode() in SETTINGS.languages


@ADAPTERS
@FUZZ
@given(value=BAD_CONSENT, country=COUNTRIES, https=st.booleans(), extra=COOKIE_HEADERS)
def test_bad_consent_cookies_grant_nothing(
    adapter: str, value: str, country: str | None, https: bool, extra: str
):
    name = "__Host-privguard_consent" if https else "privguard_consent"
    base = _baseline(adapter, country, https)
    for cookie in (f"{name}={value}", f'{name}="{value}"', f"{extra}; {name}={value}"):
        headers = [*country_headers(country), ("Cookie", cookie)]
        data = state(adapter, headers, https)
        assert data["choice_made"] is False or cookie.startswith(extra), data
        assert granted(data) <= base
        page = request(adapter, "GET", "/", headers, https=https)
        assert_cookies_within(page, base, ["sessionid=v; Path=/"])
        if data["regime"] == "gdpr":
            assert granted(data) == {"necessary"}


FIELD_NAMES = st.one_of(
    st.sampled_from(
        ["accept", "category", "categories", "next", "csrf_token", "banner", "birth_date"]
    ),
    st.text(max_size=8),
)
FIELD_VALUES = st.one_of(
    st.sampled_from(
        ["all", "none", "ALL", " all", *sorted(ALL_NAMES), "Marketing", "ads", "/", "//evil.test"]
    ),
    st.text(max_size=20),
)
ORIGINS = st.one_of(
    st.just(SAME_ORIGIN),
    st.sampled_from([None, "http://evil.test", "null", "https://testserver", ""]),
)
NONESSENTIAL = sorted(ALL_NAMES - {"necessary"})
#: Mostly well-formed choices with noise around them (unknown fields, ``next``).
CHOICE_PAIRS = st.builds(
    lambda choice, noise: choice + noise,
    st.one_of(
        st.sampled_from([[("accept", "all")], [("accept", "none")]]),
        st.lists(st.sampled_from(sorted(ALL_NAMES)), max_size=4).map(
            lambda cats: [("category", c) for c in cats] or [("categories", "")]
        ),
    ),
    st.lists(
        st.tuples(st.sampled_from(["next", "banner", "x", "csrf_token"]), FIELD_VALUES),
        max_size=3,
    ),
)


def _requested_form(body: bytes) -> frozenset[str] | None:
    """What a form body asks for, read as privguard reads it; ``None``: everything."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return frozenset()
    if ("accept", "all") in pairs:
        return None
    return frozenset(v for k, v in pairs if k in ("category", "categories"))


def _requested_json(data: Any) -> frozenset[str] | None:
    if not isinstance(data, dict):
        return frozenset()
    if data.get("accept") == "all":
        return None
    cats = data.get("categories")
    return (
        frozenset(c for c in cats if isinstance(c, str)) if isinstance(cats, list) else frozenset()
    )


def _check_post(
    adapter: str,
    path: str,
    resp: Resp,
    origin: str | None,
    country: str | None,
    requested: frozenset[str] | None,
) -> dict | None:
    cookie = resp.consent_cookie()
    event(f"status {resp.status}")
    if origin != SAME_ORIGIN:
        assert resp.status not in (200, 303) and cookie is None, resp
        return None
    if resp.status not in (200, 303):
        assert 400 <= resp.status < 500 and cookie is None, resp
        return None
    assert cookie is not None
    if resp.status == 303:
        location = resp.get_all("location")[0]
        assert location.startswith("/") and not location.startswith(("//", "/\\"))
    after = state(adapter, [*country_headers(country), ("Cookie", cookie)])
    assert after["choice_made"] or path.endswith("/age")
    if requested is not None:
        assert granted(after) - {"necessary"} <= requested, (after, requested)
    return after


@ADAPTERS
@FUZZ
@given(
    body=st.one_of(
        CHOICE_PAIRS.map(lambda pairs: urlencode(pairs).encode()),
        st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=8).map(
            lambda pairs: urlencode(pairs).encode()
        ),
        st.binary(max_size=100),
    ),
    origin=ORIGINS,
    country=COUNTRIES,
)
def test_consent_form_posts(adapter: str, body: bytes, origin: str | None, country: str | None):
    headers = [*country_headers(country), ("Content-Type", "application/x-www-form-urlencoded")]
    if origin is not None:
        headers.append(("Origin", origin))
    resp = request(adapter, "POST", "/privguard/consent", headers, body)
    _check_post(adapter, "/privguard/consent", resp, origin, country, _requested_form(body))


JSON_BODIES = st.one_of(
    st.sampled_from([{"accept": "all"}, {"accept": "none"}]),
    st.lists(st.sampled_from(sorted(ALL_NAMES)), max_size=4, unique=True).map(
        lambda cats: {"categories": cats}
    ),
    JSON_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "accept": st.one_of(st.sampled_from(["all", "none", "All"]), JSON_VALUES),
            "categories": st.one_of(st.lists(FIELD_VALUES, max_size=4), JSON_VALUES),
            "next": FIELD_VALUES,
            "csrf_token": FIELD_VALUES,
        },
    ),
)


@ADAPTERS
@FUZZ
@given(
    data=JSON_BODIES,
    raw=st.one_of(st.none(), st.none(), st.binary(max_size=60)),
    origin=ORIGINS,
    country=COUNTRIES,
)
def test_consent_json_posts(
    adapter: str, data: Any, raw: bytes | None, origin: str | None, country: str | None
):
    body = raw if raw is not None else json.dumps(data).encode()
    headers = [*country_headers(country), ("Content-Type", "application/json")]
    if origin is not None:
        headers.append(("Origin", origin))
    resp = request(adapter, "POST", "/privguard/consent", headers, body)
    requested = _requested_json(data) if raw is None else frozenset()
    _check_post(adapter, "/privguard/consent", resp, origin, country, requested)


BIRTH_DATES = st.one_of(
    st.dates(dt.date(1890, 1, 1), dt.date(2030, 1, 1)).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.text(string.digits + "-", max_size=12),
    st.text(max_size=12),
    st.integers(),
)
BIRTH_YEARS = st.one_of(
    st.integers(1890, 2030),
    st.integers(-(10**6), 10**6),
    st.integers(1800, 2100).map(str),
    st.text(string.digits + " +-", max_size=6),
    st.floats(),
)


@ADAPTERS
@FUZZ
@given(
    fields=st.fixed_dictionaries(
        {}, optional={"birth_date": BIRTH_DATES, "birth_year": BIRTH_YEARS, "next": FIELD_VALUES}
    ),
    as_json=st.booleans(),
    origin=ORIGINS,
    country=COUNTRIES,
)
def test_age_posts(
    adapter: str, fields: dict[str, Any], as_json: bool, origin: str | None, country: str | None
):
    if as_json:
        body = json.dumps(fields).encode()
        ctype = "application/json"
    else:
        body = urlencode({k: str(v) for k, v in fields.items()}).encode()
        ctype = "application/x-www-form-urlencoded"
    headers = [*country_headers(country), ("Content-Type", ctype)]
    if origin is not None:
        headers.append(("Origin", origin))
    base = _baseline(adapter, country)
    resp = request(adapter, "POST", "/privguard/age", headers, body)
    after = _check_post(adapter, "/privguard/age", resp, origin, country, None)
    if after is None:
        return
    assert after["age_status"] in ("adult", "minor")
    assert granted(after) <= base  # an age answer never grants a category
    # the cookie holds adult/minor and the threshold, never the birth date
    value = resp.consent_cookie().split("=", 1)[1]  # type: ignore[union-attr]
    payload = _serializer(KEY).loads(value)
    assert set(payload) <= {"v", "g", "r", "a", "at", "ac"}
    # (the birth fields, looked for in the payload's text values: its JSON also holds
    # ``null`` and a timestamp, in which a generated value may appear by chance)
    texts = [json.dumps(v) for v in payload.values() if not isinstance(v, int | None)]
    for name in ("birth_date", "birth_year"):
        text = str(fields.get(name, ""))
        if len(text) >= 4:
            assert not any(text in t for t in texts), (text, payload)


# --- raw requests: any bytes in host, path and headers; lazy WSGI apps; websockets -----------
#
# Each example is one request built as a server builds it (an environ or a scope), sent
# straight to a bare WSGI or ASGI app behind privguard: no test client and one event
# loop for the module, so ten thousand examples take seconds. The app answers every
# request with the cookies of every category, in one of several shapes.

RAW_EXAMPLES = 5_000  # per adapter: 10,000 raw inputs a run, derandomised under CI
RAW_FUZZ = settings(
    max_examples=RAW_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RAW_COOKIES = [
    ("Set-Cookie", "_ga=GA1.2; Path=/"),
    ("Set-Cookie", "_fbp=fb.1; Path=/"),
    ("Set-Cookie", "sessionid=s; Path=/; HttpOnly"),
]
#: Names of cookies whose category a GDPR visitor without consent has not allowed.
DENIED = ("_ga=", "_fbp=")
SHAPES = ("page", "fragment", "empty", "json", "redirect", "stream")
PAGE_BYTES = b"<html><head><title>t</title></head><body><p>shop</p></body></html>"


def _shape_response(shape: str) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    html = ("Content-Type", "text/html; charset=utf-8")
    if shape == "page":
        return 200, [html, ("Content-Length", str(len(PAGE_BYTES)))], [PAGE_BYTES]
    if shape == "fragment":
        return 200, [html], [b"<li>a</li>"]
    if shape == "empty":
        return 200, [html, ("Content-Length", "0")], []
    if shape == "json":
        return 200, [("Content-Type", "application/json"), ("Vary", "Origin")], [b"{}"]
    if shape == "redirect":
        return 302, [html, ("Location", "/")], [b"<html><body>moved</body></html>"]
    return 200, [html], [PAGE_BYTES[:30], PAGE_BYTES[30:], b""]  # stream


def _raw_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    status, headers, chunks = _shape_response(environ["fuzz.shape"])
    line = f"{status} {'Found' if status == 302 else 'OK'}"
    if not environ["fuzz.lazy"]:
        start_response(line, [*headers, *RAW_COOKIES])
        return chunks

    def lazy() -> Any:  # start_response only once the server asks for the body (PEP 3333)
        start_response(line, [*headers, *RAW_COOKIES])
        yield from chunks

    return lazy()


async def _raw_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        cookies = [(n.lower().encode(), v.encode()) for n, v in RAW_COOKIES]
        if scope["path"].endswith("deny"):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": cookies})
            await send({"type": "websocket.http.response.body", "body": b"no"})
            return
        await send({"type": "websocket.accept", "headers": cookies})
        await send({"type": "websocket.close", "code": 1000})
        return
    status, headers, chunks = _shape_response(scope["fuzz.shape"])
    raw = [(n.lower().encode(), v.encode()) for n, v in [*headers, *RAW_COOKIES]]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    if not chunks:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    for i, chunk in enumerate(chunks):
        await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})


RAW_OPTIONS = {**OPTIONS, "age_gate_paths": ["/adult*"]}
RAW_WSGI = privguard.wsgi.PrivacyMiddleware(_raw_wsgi_app, **RAW_OPTIONS)
RAW_ASGI = AsgiMiddleware(_raw_asgi_app, **RAW_OPTIONS)
LOOP = asyncio.new_event_loop()

RAW_BYTES = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)
NON_ASCII_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=24
)
RAW_HOSTS = st.one_of(
    st.sampled_from([b"testserver", "bücher.example".encode(), b"caf\xe9.test:8080", b""]),
    NON_ASCII_TEXT.map(lambda t: t.encode("utf-8")),
    RAW_BYTES,
)
RAW_PATHS = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["/", "/privguard/", "/privguard/consent", "/adult", "/.well-known/", "//"]),
    st.one_of(NON_ASCII_TEXT, st.sampled_from(["", "banner.css", "age", "feedback", "deny"])),
)
RAW_HEADER_NAMES = st.sampled_from(
    [
        b"cookie",
        b"accept-language",
        b"user-agent",
        b"sec-gpc",
        b"dnt",
        b"x-forwarded-for",
        b"forwarded",
        b"origin",
        b"referer",
        b"content-type",
        b"accept",
        b"sec-fetch-site",
        b"x-privguard-csrf",
        b"x-other",
    ]
)
RAW_HEADER_VALUES = st.one_of(
    RAW_BYTES,
    NON_ASCII_TEXT.map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"1", b"text/html", b"Mozilla/5.0", b"de-DE,de;q=0.9", b"http://testserver"]),
    st.lists(st.sampled_from(["_ga", "_fbp", "trk_é", "sessionid", "日本"]), max_size=4).map(
        lambda names: "; ".join(f"{n}=1" for n in names).encode("utf-8")
    ),
)
#: kind, method, response shape, lazy WSGI app, https: one draw (cheap examples)
RAW_VARIANTS = st.sampled_from(
    list(
        itertools.product(
            ["http", "http", "http", "websocket"],
            ["GET", "POST", "HEAD", "PUT", "get"],
            SHAPES,
            [False, True],
            [False, True],
        )
    )
)
RAW_REQUESTS = st.builds(
    lambda variant, host, path, headers, body: dict(
        zip(("kind", "method", "shape", "lazy", "https"), variant, strict=True),
        host=host,
        path=path,
        headers=headers,
        body=body,
    ),
    RAW_VARIANTS,
    RAW_HOSTS,
    RAW_PATHS,
    st.lists(st.tuples(RAW_HEADER_NAMES, RAW_HEADER_VALUES), max_size=5),
    st.binary(max_size=40),
)


def _check_raw_headers(pairs: Sequence[tuple[str, str]]) -> None:
    for name, value in pairs:
        assert not any(c in name + value for c in "\r\n\x00"), (name, value)
        if name.lower() == "set-cookie" and "Max-Age=0" not in value:  # not an expiry
            assert not value.startswith(DENIED), value  # a GDPR visitor without consent


def _raw_wsgi(req: dict[str, Any]) -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req["method"],
        # PEP 3333: the path's bytes as latin-1 text
        "PATH_INFO": req["path"].encode("utf-8").decode("latin-1"),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": req["host"].decode("latin-1"),
        "HTTP_CF_IPCOUNTRY": "DE",
        "wsgi.url_scheme": "https" if req["https"] else "http",
        "wsgi.input": io.BytesIO(req["body"]),
        "CONTENT_LENGTH": str(len(req["body"])),
        "fuzz.shape": req["shape"],
        "fuzz.lazy": req["lazy"],
    }
    for name, value in req["headers"]:
        key = name.decode().upper().replace("-", "_")
        key = key if key == "CONTENT_TYPE" else "HTTP_" + key
        text = value.decode("latin-1")
        environ[key] = environ[key] + ", " + text if key in environ else text
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    result = RAW_WSGI(environ, start_response)
    try:
        for chunk in result:  # a server refuses body bytes before start_response
            assert started or not chunk, "body before start_response"
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert len(started) == 1, started
    status, headers = started[0]
    assert int(status[:3]) < 500, status
    _check_raw_headers(headers)


def _raw_asgi(req: dict[str, Any]) -> None:
    kind = req["kind"]
    raw_path = req["path"].encode("utf-8")
    headers = [(b"host", req["host"]), (b"cf-ipcountry", b"DE"), *req["headers"]]
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": ("wss" if req["https"] else "ws") if kind == "websocket" else "http",
        "path": req["path"],
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "fuzz.shape": req["shape"],
    }
    if kind == "http":
        scope["method"] = req["method"]
        scope["scheme"] = "https" if req["https"] else "http"
        pending = [{"type": "http.request", "body": req["body"], "more_body": False}]
    else:
        scope["extensions"] = {"websocket.http.response": {}}
        pending = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": f"{kind}.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    LOOP.run_until_complete(RAW_ASGI(scope, receive, send))
    first = sent[0]
    assert first["type"] in (
        "http.response.start",
        "websocket.accept",
        "websocket.http.response.start",
    ), first
    if "status" in first:
        assert first["status"] < 500, first
    pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in first.get("headers", ())]
    _check_raw_headers(pairs)


@pytest.mark.parametrize("adapter", ["wsgi", "asgi"])
@RAW_FUZZ
@given(req=RAW_REQUESTS)
def test_raw_requests_never_escape(adapter: str, req: dict[str, Any]):
    """No exception, no 5xx, no CR/LF/NUL, no denied cookie: any host, path or header bytes."""
    event(f"{req['kind']} {req['shape']}{' lazy' if req['lazy'] else ''}")
    if adapter == "wsgi":
        if req["kind"] == "websocket":
            req = {**req, "kind": "http"}  # WSGI has no websockets: a plain request instead
        _raw_wsgi(req)
    else:
        _raw_asgi(req)
