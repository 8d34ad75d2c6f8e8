"""Security review of privguard's endpoints and cookies: each finding is a test.

Every request goes through both adapters -- a tiny Flask app (WSGI) and a tiny
Starlette app (ASGI) -- called directly with raw environs and scopes, so that
headers no HTTP client would send (CR/LF, ``null`` origins, lying
``Content-Length``) and broken clients (a body stream that raises, a
disconnect mid-body) can be simulated exactly.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

import privguard
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.core.categories import Category
from privguard.core.consent import ConsentState
from privguard.endpoints import MAX_BODY

KEY = "security-review-key-" + "s" * 32
OTHER_KEY = "another-shop-key-" + "o" * 32
HOST = "testserver"
PAGE_COOKIES = ("sessionid", "lang", "_ga", "_fbp")
ALL = frozenset(Category)
FORM = "application/x-www-form-urlencoded"
#: Reading this much of a body is "16 KiB + a little"; more is a finding.
READ_LIMIT = MAX_BODY + 1024


# --- a raw client for both adapters ---------------------------------------------------


@dataclass
class Resp:
    """Status, header pairs and body of one response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def set_cookies(self) -> dict[str, str]:
        """Name -> full Set-Cookie line (the last one per name)."""
        return {v.split("=", 1)[0].strip(): v for v in self.get_all("set-cookie")}

    def consent_cookie(self) -> str | None:
        for name, line in self.set_cookies().items():
            if name.endswith("privguard_consent") and "Max-Age=0" not in line:
                return line
        return None


def _page_cookies_flask() -> Flask:
    app = Flask(__name__)

    @app.route("/", methods=["GET", "POST"])
    def index() -> Any:
        resp = make_response("<html><body><p>shop</p></body></html>")
        for name in PAGE_COOKIES:
            resp.set_cookie(name, "v")
        return resp

    return app


async def _index(request: Any) -> HTMLResponse:
    resp = HTMLResponse("<html><body><p>shop</p></body></html>")
    for name in PAGE_COOKIES:
        resp.set_cookie(name, "v")
    return resp


def _starlette() -> Starlette:
    return Starlette(routes=[Route("/", _index, methods=["GET", "POST"])])


class Adapter:
    """One protected app and a raw way to call it."""

    kind: str
    middleware: Any

    def call(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        https: bool = False,
        host: str = HOST,
        **extra: Any,
    ) -> Resp:
        raise NotImplementedError

    @property
    def runtime(self) -> Any:
        return self.middleware.runtime

    def token(self, host: str = HOST) -> str:
        return self.runtime.csrf_token(host)

    def consent_value(self, granted: Iterable[Category] | None, key: str | None = None) -> str:
        """A validly signed consent cookie value (with this app's key unless ``key``)."""
        state = ConsentState(
            version="1",
            granted=None if granted is None else frozenset(granted) | {Category.NECESSARY},
            receipt_id="r-test",
            regime="gdpr",  # made through the banner where the tests' visitors are
        )
        if key is None:
            return self.runtime.codec.dump(state)
        from privguard.core.consent import ConsentCodec

        return ConsentCodec([key.encode()], 3600).dump(state)

    def state(self, cookie: str | None = None, *, https: bool = False) -> dict[str, Any]:
        headers = [("Cookie", cookie)] if cookie else []
        resp = self.call("GET", "/privguard/consent", headers, https=https)
        assert resp.status == 200, resp
        return json.loads(resp.body)


class Wsgi(Adapter):
    kind = "wsgi"

    def __init__(self, **options: Any) -> None:
        options.setdefault("secret_key", KEY)
        options.setdefault("ledger", None)
        options.setdefault("rate_limit", None)
        self.app = privguard.protect(_page_cookies_flask(), **options)
        self.middleware = self.app.wsgi_app

    def call(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        https: bool = False,
        host: str = HOST,
        stream: Any = None,
        environ: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Resp:
        env: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": HOST,
            "SERVER_PORT": "443" if https else "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": host,
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if https else "http",
            "wsgi.input": stream if stream is not None else io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in headers:
            key = name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            if key in env and key == "HTTP_COOKIE":
                env[key] += "; " + value
            else:
                env[key] = value
        env.update(environ or {})
        started: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started["status"] = status
            started["headers"] = list(hdrs)
            return lambda data: None

        app_iter = self.app(env, start_response)
        try:
            data = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return Resp(int(started["status"][:3]), started["headers"], data)


class Asgi(Adapter):
    kind = "asgi"

    def __init__(self, **options: Any) -> None:
        options.setdefault("secret_key", KEY)
        options.setdefault("ledger", None)
        options.setdefault("rate_limit", None)
        self.middleware = AsgiMiddleware(_starlette(), **options)

    def call(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        https: bool = False,
        host: str = HOST,
        receive: Callable[[], Any] | None = None,
        **extra: Any,
    ) -> Resp:
        raw = [(b"host", host.encode("latin-1")), (b"user-agent", b"Mozilla/5.0 Firefox/128.0")]
        raw += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "https" if https else "http",
            "path": path,
            "raw_path": path.encode("latin-1"),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": (HOST, 443 if https else 80),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def default_receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.middleware(scope, receive or default_receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        hdrs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start["headers"]]
        data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Resp(start["status"], hdrs, data)


@pytest.fixture(params=["wsgi", "asgi"])
def make(request: pytest.FixtureRequest) -> Callable[..., Adapter]:
    """Build the protected app of this adapter with the given options."""
    return Wsgi if request.param == "wsgi" else Asgi  # type: ignore[return-value]


@pytest.fixture
def site(make: Callable[..., Adapter]) -> Adapter:
    return make()


def assert_clean_headers(resp: Resp) -> None:
    for name, value in resp.headers:
        assert not any(c in name + value for c in "\r\n\x00"), (name, value)


# --- CSRF --------------------------------------------------------------------------


def _post(site: Adapter, headers: list[tuple[str, str]], body: bytes = b"accept=all", **kw: Any):
    return site.call("POST", "/privguard/consent", [("Content-Type", FORM), *headers], body, **kw)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Origin", "http://evil.test")], id="foreign-origin"),
        pytest.param([("Origin", "null")], id="null-origin"),
        pytest.param([("Origin", "")], id="empty-origin"),
        pytest.param([("Origin", "http://testserver:8080")], id="other-port"),
        pytest.param([("Origin", "https://testserver")], id="other-scheme"),
        pytest.param([("Origin", "http://testserver.evil.test")], id="suffix-host"),
        pytest.param([("Origin", "http://evil.test@testserver")], id="userinfo"),
        pytest.param([("Referer", "http://evil.test/cart")], id="foreign-referer"),
        pytest.param([("Referer", "http://evil.test/?http://testserver/")], id="referer-query"),
        pytest.param(
            [("Origin", "http://evil.test"), ("Referer", "http://testserver/")],
            id="foreign-origin-same-referer",
        ),
        pytest.param([], id="neither-no-token"),
        pytest.param([("X-Privguard-CSRF", "forged.token.value")], id="forged-token"),
    ],
)
def test_cross_site_consent_posts_are_refused(site: Adapter, headers: list[tuple[str, str]]):
    resp = _post(site, headers)
    assert resp.status == 403
    assert resp.consent_cookie() is None
    assert site.state()["choice_made"] is False


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Origin", "http://testserver")], id="same-origin"),
        pytest.param([("Origin", "http://TestServer:80")], id="same-origin-default-port"),
        pytest.param([("Referer", "http://testserver/shop?x=1")], id="same-referer"),
    ],
)
def test_same_origin_consent_posts_are_accepted(site: Adapter, headers: list[tuple[str, str]]):
    resp = _post(site, headers)
    assert resp.status == 303
    assert resp.consent_cookie() is not None


def test_host_bound_token_is_accepted_only_without_origin_and_referer(site: Adapter):
    token = site.token()
    assert _post(site, [("X-Privguard-CSRF", token)]).status == 303
    body = f"accept=all&csrf_token={quote(token)}".encode()
    assert _post(site, [], body).status == 303
    # a valid token does not excuse a foreign Origin or Referer
    for foreign in (("Origin", "http://evil.test"), ("Referer", "http://evil.test/")):
        assert _post(site, [foreign, ("X-Privguard-CSRF", token)]).status == 403
        assert _post(site, [foreign], body).status == 403


def test_cross_site_fetch_metadata_is_refused_even_with_a_scraped_token(site: Adapter):
    scraped = site.token()  # what an attacker reads from the shop's own banner
    headers = [("Sec-Fetch-Site", "cross-site"), ("X-Privguard-CSRF", scraped)]
    assert _post(site, headers).status == 403


def test_token_is_bound_to_its_host_and_salt(site: Adapter):
    assert _post(site, [("X-Privguard-CSRF", site.token("evil.test"))]).status == 403
    # a consent cookie is signed with another salt: it is no CSRF token
    assert _post(site, [("X-Privguard-CSRF", site.consent_value(ALL))]).status == 403
    assert _post(site, [("X-Privguard-CSRF", site.token() + "x")]).status == 403
    assert _post(site, [("X-Privguard-CSRF", "a" * 10_000)]).status == 403


def test_age_endpoint_has_the_same_csrf_rules(site: Adapter):
    body = b"birth_year=1980"
    hdr = [("Content-Type", FORM)]
    assert site.call("POST", "/privguard/age", [*hdr, ("Origin", "null")], body).status == 403
    assert site.call("POST", "/privguard/age", hdr, body).status == 403
    ok = site.call("POST", "/privguard/age", [*hdr, ("X-Privguard-CSRF", site.token())], body)
    assert ok.status == 303


def test_get_never_changes_consent(site: Adapter):
    resp = site.call("GET", "/privguard/consent?accept=all", [("Origin", "http://testserver")])
    assert resp.consent_cookie() is None
    put = site.call("PUT", "/privguard/consent", [("Origin", "http://testserver")], b"accept=all")
    assert put.status == 405 and put.consent_cookie() is None


def test_rate_limit_bounds_a_client_that_keeps_its_cookie(make: Callable[..., Adapter]):
    # each post issues a new receipt id, so the per-cookie key alone never fills up;
    # the truncated IP is limited too, at ten times the rate
    site = make(rate_limit="3/minute")
    headers = [("Content-Type", "application/json"), ("Origin", "http://testserver")]
    cookie: list[tuple[str, str]] = []
    statuses = []
    for _ in range(40):
        resp = site.call("POST", "/privguard/consent", [*headers, *cookie], b'{"accept":"all"}')
        statuses.append(resp.status)
        line = resp.consent_cookie()
        if line is not None:
            cookie = [("Cookie", line.split(";", 1)[0])]
    assert statuses.count(200) <= 30 and statuses[-1] == 429, statuses


def test_rate_limit_holds_for_a_client_without_cookies(make: Callable[..., Adapter]):
    site = make(rate_limit="3/minute")
    headers = [("Content-Type", "application/json"), ("Origin", "http://testserver")]
    statuses = [
        site.call("POST", "/privguard/consent", headers, b'{"accept":"all"}').status
        for _ in range(6)
    ]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_a_replayed_cookie_with_gpc_records_one_withdrawal(
    make: Callable[..., Adapter], tmp_path: Any
):
    from privguard.ledger import open_ledger

    url = f"sqlite:///{tmp_path}/ledger.db"
    site = make(ledger=url, rate_limit="3/minute")
    cookie = f"privguard_consent={site.consent_value(ALL)}"
    for _ in range(10):
        resp = site.call("GET", "/", [("Cookie", cookie), ("Sec-GPC", "1")])
        assert resp.status == 200
    site.runtime.ledger.flush(10)
    site.runtime.close()
    ledger = open_ledger(url)
    try:
        count = len(list(ledger.iter_receipts()))
    finally:
        ledger.close()
    assert count == 1


# --- redirects and header injection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_next", "expected"),
    [
        pytest.param("//evil.test/", "/", id="scheme-relative"),
        pytest.param("/\\evil.test", "/", id="backslash"),
        pytest.param("%2F%5Cevil.test", "/", id="encoded-backslash"),
        pytest.param("/%09/evil.test", "/", id="tab"),
        pytest.param("https://evil.test/", "/", id="absolute"),
        pytest.param("http:evil.test", "/", id="scheme-no-slashes"),
        pytest.param("javascript:alert(1)", "/", id="javascript"),
        pytest.param("%2F%2Fevil.test", "/", id="encoded-scheme-relative"),
        pytest.param("/%0d%0aSet-Cookie:%20_fbp=1", "/", id="encoded-crlf"),
        pytest.param("/x%0aLocation:%20http://evil.test", "/", id="encoded-lf"),
        pytest.param("/%C4%80", "/", id="non-latin1"),
        pytest.param("/%E3%80%82evil.test", "/", id="ideographic-dot"),
        pytest.param("evil.test", "/", id="no-leading-slash"),
        pytest.param("/" + "a" * 3000, "/", id="too-long"),
        pytest.param("/cart?step=2#pay", "/cart?step=2#pay", id="kept"),
        pytest.param("/%250d%250a", "/%0d%0a", id="double-encoded-stays-literal"),
    ],
)
def test_next_only_redirects_to_a_same_origin_path(site: Adapter, raw_next: str, expected: str):
    resp = _post(site, [("Origin", "http://testserver")], f"accept=none&next={raw_next}".encode())
    assert resp.status == 303
    location = resp.header("location")
    assert location == expected
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc and location.startswith("/")
    assert not location.startswith(("//", "/\\"))
    assert all(0x20 < ord(c) < 0x7F for c in location)
    assert_clean_headers(resp)


def test_next_given_twice_is_refused(site: Adapter):
    resp = _post(site, [("Origin", "http://testserver")], b"accept=none&next=/a&next=//evil.test")
    assert resp.status == 400 and resp.header("location") is None


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("_ga=1\r\nX-Injected: yes", id="crlf-in-value"),
        pytest.param("_ga_x\r\nX-Injected: yes=1", id="crlf-in-glob-name"),
        pytest.param("_ga_\nSet-Cookie: _fbp=evil=1", id="lf-in-glob-name"),
        pytest.param("_pk_id\r\n\r\n<script>=1", id="split-body"),
        pytest.param("_fbp=1\x00X-Injected: yes", id="nul"),
        pytest.param("lang=\r\nSet-Cookie: _fbp=1; _gcl_au=2", id="crlf-then-marketing"),
    ],
)
def test_cookie_values_never_reach_response_headers(site: Adapter, cookie: str):
    for path in ("/", "/privguard/consent"):
        resp = site.call("GET", path, [("Cookie", cookie)])
        assert resp.status < 500
        assert_clean_headers(resp)
        assert not any(n.lower() == "x-injected" for n, _ in resp.headers)


def test_consent_post_expiry_headers_carry_no_request_garbage(site: Adapter):
    resp = _post(
        site,
        [("Origin", "http://testserver"), ("Cookie", "_ga_x\r\nX-Injected: yes=1; _ga=1")],
        b"accept=none",
    )
    assert resp.status == 303
    assert_clean_headers(resp)
    assert any(v.startswith("_ga=;") for v in resp.get_all("set-cookie"))


def test_reflected_path_host_and_nonce_are_escaped(make: Callable[..., Adapter]):
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    site = make(age_gate_paths=["/checkout*"], csp_nonce=lambda scope: payload)
    html_accept = [("Accept", "text/html")]
    pages = [
        site.call("GET", "/checkout" + payload, html_accept),  # path -> age form `next`
        site.call("GET", "/checkout", html_accept, host="shop" + payload),  # Host -> token
        site.call("GET", "/", html_accept, host="shop" + payload),  # banner
    ]
    for resp in pages:
        assert resp.status in (200, 403)
        assert b"<script>alert(1)" not in resp.body
        assert b"onerror=alert(2)>" not in resp.body
        assert_clean_headers(resp)
    assert b"privguard-age-gate" in pages[0].body and b"privguard-banner" in pages[2].body


# --- cookie tossing and the consent cookie itself --------------------------------------------


def test_over_https_only_the_host_prefixed_cookie_is_read(site: Adapter):
    granted_all = site.consent_value(ALL)
    # a subdomain (or an http page) can toss a plain cookie; it must be ignored
    tossed = site.state(f"privguard_consent={granted_all}", https=True)
    assert tossed["choice_made"] is False
    assert tossed["categories"]["marketing"] is False
    own = site.state(f"__Host-privguard_consent={granted_all}", https=True)
    assert own["choice_made"] is True and own["categories"]["marketing"] is True
    # both present: the __Host- one wins, whatever the order
    refused = site.consent_value(())
    both = f"privguard_consent={granted_all}; __Host-privguard_consent={refused}"
    state = site.state(both, https=True)
    assert state["choice_made"] is True and state["categories"]["marketing"] is False


def test_consent_cookie_attributes_over_https(site: Adapter):
    resp = _post(site, [("Origin", "https://testserver")], https=True)
    assert resp.status == 303
    line = resp.consent_cookie()
    assert line is not None and line.startswith("__Host-privguard_consent=")
    attrs = [a.strip().lower() for a in line.split(";")[1:]]
    assert "secure" in attrs and "path=/" in attrs and "samesite=lax" in attrs
    assert not any(a.startswith("domain=") for a in attrs)
    assert "httponly" not in attrs  # the banner script reads it (DESIGN §4)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda s: s.consent_value(ALL, key=OTHER_KEY), id="other-key"),
        pytest.param(lambda s: s.token(), id="csrf-token-as-consent"),
        pytest.param(lambda s: s.consent_value(ALL)[:-3], id="truncated"),
        pytest.param(lambda s: s.consent_value(ALL) + "A", id="extended"),
        pytest.param(lambda s: "x" * 5000, id="oversize"),
    ],
)
def test_forged_consent_cookies_grant_nothing(site: Adapter, value: Callable[[Adapter], str]):
    state = site.state(f"privguard_consent={value(site)}")
    assert state["choice_made"] is False
    assert state["categories"] == {
        "necessary": True,
        "functionality": False,
        "performance": False,
        "marketing": False,
    }


def test_state_endpoint_is_not_cacheable(site: Adapter):
    resp = site.call("GET", "/privguard/consent")
    assert "no-store" in (resp.header("cache-control") or "")


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        pytest.param(["10.0.0.0/8"], (None, "gdpr"), id="peer-not-a-proxy"),
        pytest.param(0, (None, "gdpr"), id="no-proxies"),
        pytest.param(["127.0.0.1/32"], ("US", "us-optout"), id="peer-is-the-proxy"),
    ],
)
def test_country_header_is_believed_only_from_a_trusted_peer(
    make: Callable[..., Adapter], trusted: Any, expected: tuple[str | None, str]
):
    site = make(country_header="CF-IPCountry", trusted_proxies=trusted)
    resp = site.call("GET", "/privguard/consent", [("CF-IPCountry", "US")])
    data = json.loads(resp.body)
    assert (data["country"], data["regime"]) == expected
    if expected[0] is None:
        assert data["required_age"] == 16


# --- oversize bodies and broken clients ---------------------------------------------------------


class GuardedStream(io.RawIOBase):
    """A request body that records (and refuses) reads beyond :data:`READ_LIMIT`."""

    def __init__(self, total: int | None = None, chunk: bytes = b"a") -> None:
        self.total = total  # None: endless
        self.read_bytes = 0
        self.violations: list[str] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self.violations.append("read() without a size")
            raise OSError("unbounded read")
        if self.read_bytes + size > READ_LIMIT:
            self.violations.append(f"read up to {self.read_bytes + size} bytes")
            raise OSError("read past the limit")
        left = size if self.total is None else min(size, self.total - self.read_bytes)
        self.read_bytes += left
        return b"a" * left


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"CONTENT_LENGTH": str(MAX_BODY + 1)}, id="declared-too-large"),
        pytest.param({"CONTENT_LENGTH": "", "wsgi.input_terminated": True}, id="chunked-endless"),
        pytest.param({"CONTENT_LENGTH": "-1", "wsgi.input_terminated": True}, id="negative-length"),
        pytest.param({"CONTENT_LENGTH": "10**9", "wsgi.input_terminated": True}, id="garbage"),
    ],
)
def test_wsgi_body_is_never_read_beyond_the_limit(environ: dict[str, Any]):
    site = Wsgi()
    stream = GuardedStream()
    resp = site.call(
        "POST",
        "/privguard/consent",
        [("Content-Type", FORM), ("Origin", "http://testserver")],
        stream=stream,
        environ=environ,
    )
    assert stream.violations == []
    assert resp.status in (400, 413)
    assert resp.consent_cookie() is None


def test_wsgi_lying_content_length_reads_only_what_it_declares():
    stream = GuardedStream()
    resp = Wsgi().call(
        "POST",
        "/privguard/consent",
        [("Content-Type", FORM), ("Origin", "http://testserver")],
        stream=stream,
        environ={"CONTENT_LENGTH": "10"},
    )
    assert stream.violations == [] and stream.read_bytes == 10
    assert resp.status == 400


def test_oversize_body_is_413_on_both_adapters(site: Adapter):
    big = b'{"accept": "all", "pad": "' + b"x" * MAX_BODY + b'"}'
    headers = [("Content-Type", "application/json"), ("Origin", "http://testserver")]
    resp = site.call("POST", "/privguard/consent", headers, big)
    assert resp.status == 413 and resp.consent_cookie() is None
    assert b"error" in resp.body
    fits = b'{"accept": "all"}'.ljust(MAX_BODY, b" ")
    assert site.call("POST", "/privguard/consent", headers, fits).status == 200


def test_asgi_body_is_never_received_beyond_the_limit():
    site = Asgi()
    received = 0

    async def endless() -> dict[str, Any]:
        nonlocal received
        received += 1024
        return {"type": "http.request", "body": b"a" * 1024, "more_body": True}

    resp = site.call(
        "POST",
        "/privguard/consent",
        [("Content-Type", FORM), ("Origin", "http://testserver")],
        receive=endless,
    )
    assert resp.status == 413 and resp.consent_cookie() is None
    assert received <= READ_LIMIT


@pytest.mark.parametrize("first", [b"", b"accept=all", b"accept=all&next=/x"])
def test_asgi_disconnect_mid_body_gives_no_consent(first: bytes):
    site = Asgi()
    messages = [
        {"type": "http.request", "body": first, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    resp = site.call(
        "POST",
        "/privguard/consent",
        [("Content-Type", FORM), ("Origin", "http://testserver")],
        receive=receive,
    )
    assert resp.status < 500
    assert resp.consent_cookie() is None


def test_wsgi_broken_client_gives_no_consent():
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            raise OSError("client went away")

    resp = Wsgi().call(
        "POST",
        "/privguard/consent",
        [("Content-Type", FORM), ("Origin", "http://testserver")],
        stream=Broken(),
        environ={"CONTENT_LENGTH": "10"},
    )
    assert resp.status < 500 and resp.consent_cookie() is None


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        pytest.param("application/json", b"[" * 5000, id="deep-json-array"),
        pytest.param("application/json", b'{"categories":' + b"[" * 5000, id="deep-json-field"),
        pytest.param("application/json", b'{"birth_year": 1e400}', id="huge-float"),
        pytest.param("application/json", b'{"accept": "all"', id="truncated-json"),
        pytest.param(FORM, b"\xff\xfe", id="not-utf8"),
        pytest.param(FORM, b"&".join([b"a=1"] * 200), id="too-many-fields"),
        pytest.param("text/xml", b"<accept>all</accept>", id="xml"),
    ],
)
@pytest.mark.parametrize("path", ["/privguard/consent", "/privguard/age"])
def test_malformed_bodies_are_4xx(site: Adapter, ctype: str, body: bytes, path: str):
    resp = site.call("POST", path, [("Content-Type", ctype), ("Origin", "http://testserver")], body)
    assert 400 <= resp.status < 500, resp
    assert resp.consent_cookie() is None


# --- timing-safe comparisons ---------------------------------------------------------------------


@dataclass
class Recorder:
    real: Callable[[Any, Any], bool]
    calls: list[tuple[Any, Any]] = field(default_factory=list)

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self.real(a, b)


def test_signatures_are_compared_in_constant_time(site: Adapter, monkeypatch: pytest.MonkeyPatch):
    hmac_rec = Recorder(hmac.compare_digest)
    secrets_rec = Recorder(secrets.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", hmac_rec)
    monkeypatch.setattr(secrets, "compare_digest", secrets_rec)
    token = site.token()
    assert _post(site, [("X-Privguard-CSRF", token)]).status == 303
    assert hmac_rec.calls, "the CSRF signature was not compared with hmac.compare_digest"
    hmac_rec.calls.clear()
    # a forged signature (the MAC covers the host too) is rejected through compare_digest
    forged = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    assert _post(site, [("X-Privguard-CSRF", forged)]).status == 403
    other_host = site.token("other.test")
    assert _post(site, [("X-Privguard-CSRF", other_host)]).status == 403
    assert hmac_rec.calls
    # consent cookies as well
    hmac_rec.calls.clear()
    fresh = Wsgi() if site.kind == "wsgi" else Asgi()  # no verified-cookie cache yet
    fresh.state(f"privguard_consent={fresh.consent_value(ALL)}")
    assert hmac_rec.calls


# --- secrets never logged ------------------------------------------------------------------------


SECRET = "do-not-log-me-" + secrets.token_hex(16)
SHORT_SECRET = "short-" + secrets.token_hex(4)


def test_secrets_never_reach_logs_errors_or_reprs(
    make: Callable[..., Adapter], caplog: pytest.LogCaptureFixture, tmp_path: Any
):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    # configuration errors
    for options in (
        {"secret_key": SHORT_SECRET},
        {"secret_key": [SECRET, SHORT_SECRET]},
        {"secret_key": SECRET, "ledger": "mysql://nope"},
        {"secret_key": SECRET, "unknown_cookies": "sometimes"},
        {"secret_key": SECRET, "no_such_option": 1},
    ):
        with pytest.raises(privguard.ConfigError) as info:
            privguard.Settings(**options)
        texts += [str(info.value), repr(info.value)]
    with pytest.raises(privguard.ConfigError) as info:
        privguard.Settings.from_env({"PRIVGUARD_SECRET_KEY": SHORT_SECRET})
    texts.append(str(info.value))
    settings = privguard.Settings(secret_key=[SECRET, OTHER_KEY])
    texts += [repr(settings), str(settings), repr(settings.raw), str(settings.replace(debug=True))]

    # runtime error paths: hooks that fail, a ledger that cannot be written, bad input
    def broken_hook(arg: Any) -> None:
        raise RuntimeError("hook failed")

    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()  # writable at start-up (checked then) ...
    site = make(
        secret_key=[SECRET, OTHER_KEY],
        on_minor=broken_hook,
        csp_nonce=broken_hook,
        analytics=broken_hook,
        ledger=f"sqlite:///{ledger_dir}/ledger.db",
        age_gate_paths=["/checkout*"],
    )
    ledger_dir.rmdir()  # ... then the folder becomes a file (a lost mount)
    ledger_dir.write_text("")
    same = [("Origin", "http://testserver")]
    site.call("GET", "/", [("Cookie", "privguard_consent=forged.value.sig; _ga=1")])
    site.call("GET", "/", [("Accept", "text/html")])
    site.call("GET", "/checkout", [("Accept", "text/html")])
    _post(site, [("Origin", "http://evil.test")])
    _post(site, [("X-Privguard-CSRF", "bad")])
    _post(site, same, b"accept=maybe")
    _post(site, same, b"x" * (MAX_BODY + 10))
    _post(site, same)  # stored: the ledger write fails and spooling fails too
    site.call("POST", "/privguard/age", [("Content-Type", FORM), *same], b"birth_year=2020")
    site.call("POST", "/privguard/age", [("Content-Type", FORM), *same], b"birth_year=1")
    writer = site.runtime.ledger
    if writer is not None:
        writer.flush(5)
    site.runtime.close()
    texts += [repr(site.runtime.settings), repr(writer)]
    texts.append(caplog.text)
    texts += [str(r.args) for r in caplog.records]
    assert caplog.records, "the error paths logged nothing at all"
    for text in texts:
        assert SECRET not in text
        assert SHORT_SECRET not in text
        assert OTHER_KEY not in text


def test_database_password_never_reaches_reprs_or_errors():
    dsn = f"postgresql://shop:{SECRET}@db.internal/privguard"
    texts = [repr(privguard.Settings(secret_key=KEY, ledger=dsn))]
    with pytest.raises(privguard.ConfigError) as info:
        from privguard.ledger import LedgerWriter

        LedgerWriter(dsn.replace("postgresql", "postgresq"))
    texts.append(str(info.value))
    assert not [t for t in texts if SECRET in t]


@pytest.mark.parametrize(
    "url",
    ["sqlite:///ledger.db?timeout=abc", "sqlite:///ledger.db?mode=ro"],
    ids=["bad", "unknown"],
)
def test_malformed_ledger_url_is_refused_at_start_up(make: Callable[..., Adapter], url: str):
    with pytest.raises(privguard.ConfigError) as info:
        make(ledger=url)
    assert info.value.option == "ledger"


# --- weak keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("x" * 31, id="31-chars"),
        pytest.param(b"y" * 16, id="16-bytes"),
        pytest.param(["z" * 40, "short"], id="rotation-with-a-weak-key"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
    ],
)
def test_weak_secret_key_is_refused_at_start_up(make: Callable[..., Adapter], key: Any):
    with pytest.raises(privguard.ConfigError) as info:
        make(secret_key=key)
    assert info.value.option == "secret_key"
    assert "secret_key" in str(info.value)
    if key:
        make(secret_key=key, debug=True)  # development only


def test_key_length_counts_bytes():
    privguard.Settings(secret_key="x" * 32)
    privguard.Settings(secret_key="ü" * 16)  # 32 bytes in UTF-8
    with pytest.raises(privguard.ConfigError):
        privguard.Settings(secret_key="ü" * 15)
    with pytest.raises(privguard.ConfigError) as info:
        privguard.Settings.from_env({"PRIVGUARD_SECRET_KEY": "weak"})
    assert info.value.option == "secret_key"
