"""Huge and non-ASCII cookie jars through real servers (uvicorn, wsgiref, werkzeug).

A browser keeps about 180 cookies per site; an attacker can send thousands
of catalogued names in one Cookie header. privguard classifies a bounded
number, answers with response headers that fit nginx's default buffers, and
expires the rest on the following requests. A cookie name a browser sent in
UTF-8 is expired under exactly those bytes.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import privguard
import privguard.core.categories as categories
import privguard.core.cookies as core_cookies
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.core.consent import ConsentState
from privguard.core.cookies import MAX_CLASSIFIED
from privguard.core.decision import decide
from privguard.core.request import RequestView
from privguard.runtime import Runtime
from tests.e2e.live import WSGI_SERVERS, RawResponse, raw_request, serve_asgi, serve_wsgi

OPTIONS: dict[str, Any] = {
    "secret_key": "jar-key-" + "j" * 40,
    "ledger": None,
    "rate_limit": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
    "cookie_domains": [".shop.test"],
    "cookies": {"trk_*": "marketing"},
}
DE = [("CF-IPCountry", "DE"), ("User-Agent", "Mozilla/5.0 Firefox/130.0")]
#: 400 catalogued analytics names, as a tracker-heavy page can leave behind
JAR = [f"_ga_{i}" for i in range(200)] + [f"_pk_id{i}" for i in range(200)]


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


def flask_shop() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/api", "api", lambda: {"ok": True})
    return app


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    wsgi_app = privguard.protect(flask_shop(), **OPTIONS).wsgi_app
    asgi_app = AsgiMiddleware(Starlette(routes=[Route("/api", api)]), **OPTIONS)
    with (
        serve_asgi(asgi_app) as uvicorn_port,
        serve_wsgi(wsgi_app, "wsgiref") as wsgiref_port,
        serve_wsgi(wsgi_app, "werkzeug") as werkzeug_port,
    ):
        yield {"uvicorn": uvicorn_port, "wsgiref": wsgiref_port, "werkzeug": werkzeug_port}


SERVERS = pytest.mark.parametrize("server", ["uvicorn", *WSGI_SERVERS])


def header_bytes(resp: RawResponse) -> int:
    return sum(len(n) + len(v) + 4 for n, v in resp.headers)


def expired(resp: RawResponse) -> set[str]:
    return {v.split("=", 1)[0] for v in resp.get_all("set-cookie") if "Max-Age=0" in v}


@SERVERS
def test_400_cookie_names_get_small_headers_and_all_expire_in_turn(
    ports: dict[str, int], server: str
):
    jar = list(JAR)
    rounds = 0
    while jar:
        rounds += 1
        assert rounds <= 60, f"{len(jar)} cookies still in the jar"
        cookie = "; ".join(f"{name}=1" for name in jar)
        resp = raw_request(ports[server], "GET", "/api", [*DE, ("Cookie", cookie)])
        assert resp.status == 200, resp
        assert header_bytes(resp) < 4096  # nginx's smallest default proxy buffer
        gone = expired(resp)
        assert gone and gone <= set(jar[:MAX_CLASSIFIED])
        jar = [name for name in jar if name not in gone]  # what the browser does
    assert rounds > 1


@SERVERS
@pytest.mark.parametrize(
    "raw_name",
    [
        pytest.param("trk_é".encode(), id="utf8"),
        pytest.param("trk_日本".encode(), id="utf8-cjk"),
        pytest.param(b"trk_\xe9", id="latin1-byte"),
    ],
)
def test_a_non_ascii_cookie_name_is_expired_by_its_exact_bytes(
    ports: dict[str, int], server: str, raw_name: bytes
):
    resp = raw_request(ports[server], "GET", "/api", [*DE, (b"Cookie", raw_name + b"=1")])
    assert resp.status == 200, resp
    lines = [v.encode("latin-1") for v in resp.get_all("set-cookie")]  # the bytes as sent
    assert lines, resp.headers
    assert all(line.startswith(raw_name + b"=;") for line in lines), lines


# --- the cost and the memory, measured where they arise -----------------------------------------


def _view(cookie: str, peer: str = "203.0.113.7") -> RequestView:
    headers = {"cookie": cookie, "user-agent": "Mozilla/5.0 Firefox/130.0"}
    return RequestView("GET", "/", "https", "shop.test", peer, headers)


def test_classified_and_built_per_request_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = privguard.Settings(**OPTIONS)
    runtime = Runtime(settings)
    calls = {"classify": 0, "dump_cookie": 0}
    classify = categories.CookieCatalog.classify
    dump = core_cookies.dump_cookie

    def count_classify(self: Any, name: str) -> Any:
        calls["classify"] += 1
        return classify(self, name)

    def count_dump(*args: Any, **kwargs: Any) -> str:
        calls["dump_cookie"] += 1
        return dump(*args, **kwargs)

    monkeypatch.setattr(categories.CookieCatalog, "classify", count_classify)
    monkeypatch.setattr(core_cookies, "dump_cookie", count_dump)
    jar = "; ".join(f"{n}=1" for n in JAR * 10)  # 4,000 names, most repeated
    decision = decide(_view(jar), settings, runtime.lookups, time.time())
    assert calls["classify"] <= MAX_CLASSIFIED
    assert calls["dump_cookie"] <= 4  # one line shape per domain/path/secure, not per name
    assert 0 < sum(len(line) for line in decision.expire) <= 2400


def test_a_consent_cookie_after_many_others_still_counts() -> None:
    settings = privguard.Settings(**OPTIONS)
    runtime = Runtime(settings)
    state = ConsentState(settings.policy_version, categories.NON_ESSENTIAL, regime="gdpr")
    token = runtime.codec.dump(state)
    name = settings.consent_cookie_name(True)  # privguard_consent: cookie_domains is set
    jar = "; ".join(f"{n}=1" for n in JAR) + f"; {name}={token}"
    decision = decide(_view(jar), settings, runtime.lookups, time.time())
    assert decision.choice is not None and categories.NON_ESSENTIAL <= decision.choice
    assert decision.expire == ()


def test_the_decision_memo_is_bounded_in_bytes() -> None:
    runtime = Runtime(privguard.Settings(**OPTIONS))
    memo = runtime.decisions
    memo.MAX_CHARS = 1024 * 1024  # a smaller bound, so a short run crosses it
    base = ";".join(f"{n}=" for n in JAR)  # short values: the key stays under 4 KB
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(600):
            runtime.decide(_view(f"{base};v{i}="))
            assert memo._chars <= memo.MAX_CHARS
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(memo) > 10  # they were cached
    assert grown < 8 * 1024 * 1024, grown  # unbounded: ~80 MB for these 600
