"""privguard.testing's assertions against every supported kind of response.

One shop (``tests/audit/apps.py``): ``/`` sets ``session`` (necessary) and
``_ga`` (performance). ``bare_*`` serves it without privguard (it leaks),
``clean_*`` through privguard. Each client: webtest, werkzeug, Flask,
Starlette's TestClient, httpx on ASGI, and requests against a live server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from privguard.testing import (
    Visitor,
    assert_banner_hidden,
    assert_banner_shown,
    assert_cookie_allowed,
    assert_cookie_blocked,
    assert_cookie_expired,
    assert_no_nonessential_cookies,
    make_visitor,
    read_response,
)
from tests.audit.apps import SETTINGS, bare_asgi, bare_wsgi, clean_asgi, clean_wsgi

Get = Callable[[str, Visitor], Any]  # (which app, visitor) -> a client's response


def _webtest(kind: str, visitor: Visitor) -> Any:
    import webtest

    app = webtest.TestApp(clean_wsgi if kind == "clean" else bare_wsgi)
    return app.get("/", headers=visitor.all_headers, extra_environ=visitor.environ)


def _werkzeug(kind: str, visitor: Visitor) -> Any:
    from werkzeug.test import Client

    # werkzeug's and Flask's clients replace the Cookie header with their own jar
    client = Client(clean_wsgi if kind == "clean" else bare_wsgi, use_cookies=False)
    return client.get("/", headers=visitor.all_headers, environ_overrides=visitor.environ)


def _flask(kind: str, visitor: Visitor) -> Any:
    import flask

    import privguard

    app = flask.Flask("shop")

    @app.get("/")
    def home() -> Any:
        response = flask.make_response("<html><body>home</body></html>")
        response.set_cookie("session", "abc", httponly=True)
        response.set_cookie("_ga", "GA1.1.1.1", max_age=3600)
        return response

    if kind == "clean":
        privguard.protect(app, SETTINGS)
    client = app.test_client()
    visitor.set_cookies_on(client)  # the other way: fill the client's own jar
    return client.get("/", headers=visitor.headers)


def _starlette(kind: str, visitor: Visitor) -> Any:
    from starlette.testclient import TestClient

    app = clean_asgi if kind == "clean" else bare_asgi
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        return client.get("/", headers=visitor.all_headers)


def _httpx(kind: str, visitor: Visitor) -> Any:
    import httpx

    app = clean_asgi if kind == "clean" else bare_asgi

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return await client.get("/", headers=visitor.all_headers)

    return asyncio.run(get())


@pytest.fixture(scope="module")
def live_servers() -> Iterator[dict[str, str]]:
    from privguard.audit.serve import serve

    servers = {"clean": serve(clean_wsgi), "bare": serve(bare_wsgi)}
    try:
        yield {k: s.url for k, s in servers.items()}
    finally:
        for server in servers.values():
            server.close()


CLIENTS = ["webtest", "werkzeug", "flask", "starlette", "httpx", "requests"]


@pytest.fixture(params=CLIENTS)
def get(request: pytest.FixtureRequest) -> Get:
    if request.param == "requests":
        import requests

        urls = request.getfixturevalue("live_servers")

        def _requests(kind: str, visitor: Visitor) -> Any:
            return requests.get(urls[kind] + "/", headers=visitor.all_headers, timeout=10)

        return _requests
    return {
        "webtest": _webtest,
        "werkzeug": _werkzeug,
        "flask": _flask,
        "starlette": _starlette,
        "httpx": _httpx,
    }[request.param]


def visitor(**kw: Any) -> Visitor:
    return make_visitor(settings=SETTINGS, **kw)


def test_every_set_cookie_is_read_separately(get: Get) -> None:
    data = read_response(get("bare", visitor()))
    names = [v.split("=", 1)[0] for v in data.set_cookies]
    assert names == ["session", "_ga"]
    assert data.status == 200
    assert b"</html>" in data.body


def test_region_reaches_the_app(get: Get) -> None:
    # BR is an opt-out region: analytics are on until refused, marketing is not
    response = get("clean", visitor(country="BR"))
    assert_cookie_allowed(response, "_ga")
    assert_banner_shown(response)


def test_leak_names_cookie_category_and_visitor(get: Get) -> None:
    response = get("bare", visitor(country="DE"))
    with pytest.raises(AssertionError) as info:
        assert_no_nonessential_cookies(response, SETTINGS)
    message = str(info.value)
    assert "'_ga' (performance)" in message
    assert "visitor DE" in message  # read back from the request the client sent
    assert "session" not in message


def test_first_visit_through_privguard_is_clean(get: Get) -> None:
    response = get("clean", visitor(country="DE"))
    assert_no_nonessential_cookies(response, SETTINGS)
    assert_cookie_allowed(response, "session")
    assert_cookie_blocked(response, "_ga")
    assert_banner_shown(response)


def test_accepted_visitor_gets_analytics_and_no_banner(get: Get) -> None:
    response = get("clean", visitor(country="DE", consent="all"))
    assert_cookie_allowed(response, "_ga")
    assert_banner_hidden(response)
    with pytest.raises(AssertionError, match=r"'_ga' \(performance\).*DE-consent_all"):
        assert_cookie_blocked(response, "_ga")


def test_withdrawn_consent_expires_the_cookie(get: Get) -> None:
    base = visitor(country="DE", consent="none")
    cookies = {**base.cookies, "_ga": "GA1.1.1.1"}
    refused = Visitor(**{**_fields(base), "cookies": cookies})
    response = get("clean", refused)
    assert_cookie_expired(response, "_ga")
    assert_cookie_blocked(response, "_ga")  # expiring is not setting
    with pytest.raises(AssertionError, match=r"'session' \(necessary\) was not expired"):
        assert_cookie_expired(response, "session")


def _fields(v: Visitor) -> dict[str, Any]:
    return {name: getattr(v, name) for name in Visitor.__dataclass_fields__}


def test_banner_assertions_name_the_visitor() -> None:
    from privguard.testing.responses import ResponseData

    page = ResponseData(
        200,
        (("Content-Type", "text/html"),),
        b'<html><body><div id="privguard-banner" hidden></div></body></html>',
    )
    assert_banner_hidden(page)
    with pytest.raises(AssertionError, match="US-CA visitor, GPC.*present but hidden"):
        assert_banner_shown(page, visitor=visitor(state="CA", gpc=True))
    shown = ResponseData(200, (("Content-Type", "text/html"),), b'<div id="privguard-banner">')
    with pytest.raises(AssertionError, match="shown to BR visitor"):
        assert_banner_hidden(shown, visitor=visitor(country="BR"))
    not_html = ResponseData(200, (("Content-Type", "application/json"),), b"{}")
    with pytest.raises(AssertionError, match="not HTML"):
        assert_banner_shown(not_html)


def test_undeclared_cookie_counts_as_non_essential() -> None:
    from privguard.testing.responses import ResponseData

    response = ResponseData(200, (("Set-Cookie", "mystery=1; Path=/"),))
    with pytest.raises(AssertionError, match=r"'mystery' \(undeclared\)"):
        assert_no_nonessential_cookies(response)


def test_expiry_by_past_expires_date() -> None:
    from privguard.testing.responses import ResponseData

    response = ResponseData(
        200, (("Set-Cookie", "_fbp=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"),)
    )
    assert_cookie_expired(response, "_fbp")
    assert_no_nonessential_cookies(response)


def test_unknown_response_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot read a builtins.dict"):
        read_response({})


def test_the_visitors_settings_classify_shop_cookies() -> None:
    from privguard.testing.responses import ResponseData

    shop = SETTINGS.replace(cookies={"shop_pref": "functionality"})
    response = ResponseData(200, (("Set-Cookie", "shop_pref=dark; Path=/"),))
    with pytest.raises(AssertionError, match=r"'shop_pref' \(functionality\) was set for DE"):
        assert_cookie_blocked(response, "shop_pref", visitor=make_visitor(settings=shop))
    with pytest.raises(AssertionError, match=r"'shop_pref' \(undeclared\)"):
        assert_no_nonessential_cookies(response)  # the built-in catalog does not know it


def _clean_get(v: Visitor) -> Any:
    return _werkzeug("clean", v)


def test_consent_for_an_older_policy_asks_again() -> None:
    current = _clean_get(visitor(consent="all"))
    assert_cookie_allowed(current, "_ga")
    older = _clean_get(visitor(consent="all", policy_version="0"))
    assert_cookie_blocked(older, "_ga")
    assert_banner_shown(older)


def test_bot_gets_no_banner() -> None:
    response = _clean_get(visitor(bot=True))
    assert_banner_hidden(response)
    assert_no_nonessential_cookies(response, SETTINGS)


def test_visitor_shape() -> None:
    v = visitor(state="ca", gpc=True, dnt=True, language="de", consent=["marketing"], https=True)
    assert v.region == "US-CA" and v.country == "US"
    assert v.id == "US-CA-gpc-dnt-https-de-consent_marketing"
    assert v.describe() == "US-CA visitor, GPC, DNT, accepted marketing"
    assert dict(v.headers) == {
        "User-Agent": v.headers["User-Agent"],
        "Accept": v.headers["Accept"],
        "Accept-Language": "de",
        "CF-IPCountry": "US",
        "Sec-GPC": "1",
        "DNT": "1",
        "Privguard-Test-Visitor": v.id,
    }
    assert list(v.cookies) == ["__Host-privguard_consent"]
    assert v.cookie_header.startswith("__Host-privguard_consent=")
    assert v.environ["HTTP_COOKIE"] == v.cookie_header
    assert v.environ["HTTP_CF_IPCOUNTRY"] == "US"
    assert visitor(country=None).headers["CF-IPCountry"] == "XX"
    with pytest.raises(ValueError, match="unknown consent category 'ads'"):
        visitor(consent=["ads"])
    with pytest.raises(ValueError, match="age_status"):
        visitor(age_status="child")
