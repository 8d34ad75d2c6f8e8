"""The cookie firewall end to end through a real Flask app (webtest)."""

import pytest
from flask import Flask, make_response, request
from webtest import TestApp

import privguard

KEY = "flask-test-key-" + "x" * 32
EEA = {"HTTP_CF_IPCOUNTRY": "DE", "REMOTE_ADDR": "127.0.0.1"}


def build(**options):
    app = Flask(__name__)

    @app.get("/")
    def index():
        resp = make_response("<html><body><h1>Shop</h1></body></html>")
        for name in ("session", "lang", "_ga", "_fbp", "mystery"):
            resp.set_cookie(name, "v")
        return resp

    @app.get("/ctx")
    def ctx():
        c = privguard.get_context(request)
        return {
            "regime": c.regime,
            "consent": sorted(c.consent) if c.consent else None,
            "marketing": c.allows("marketing"),
        }

    options.setdefault("secret_key", KEY)
    options.setdefault("ledger", None)
    options.setdefault("country_header", "CF-IPCountry")
    options.setdefault("trusted_proxies", ["127.0.0.1/32"])
    privguard.protect(app, **options)
    return TestApp(app, extra_environ=EEA)


def set_names(resp):
    return sorted(v.split("=", 1)[0] for v in resp.headers.getall("Set-Cookie"))


def live_names(resp):
    return sorted(
        v.split("=", 1)[0] for v in resp.headers.getall("Set-Cookie") if "Max-Age=0" not in v
    )


def accept(app, body, **kw):
    return app.post("/privguard/consent", body, headers={"Origin": "http://localhost"}, **kw)


def test_only_necessary_cookies_before_consent():
    app = build()
    resp = app.get("/")
    assert set_names(resp) == ["session"]
    assert "private" in resp.headers["Cache-Control"]
    assert "Sec-GPC" in resp.headers["Vary"]
    assert resp.headers["Permissions-Policy"] == "browsing-topics=(), interest-cohort=()"


def test_separate_set_cookie_headers_stay_separate_when_allowed():
    app = build(unknown_cookies="allow")
    accept(app, {"accept": "all"})
    resp = app.get("/")
    assert set_names(resp) == ["_fbp", "_ga", "lang", "mystery", "session"]
    assert len(resp.headers.getall("Set-Cookie")) == 5


def test_granted_categories_pass_afterwards():
    app = build()
    resp = app.post(
        "/privguard/consent",
        "category=performance&category=necessary",
        headers={"Origin": "http://localhost", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_int == 303 and resp.location.endswith("/")
    assert live_names(app.get("/")) == ["_ga", "session"]
    assert app.get("/ctx").json == {
        "regime": "gdpr",
        "consent": ["necessary", "performance"],
        "marketing": False,
    }


def test_withdrawal_expires_cookies():
    app = build()
    accept(app, {"accept": "all"})
    app.get("/")  # the browser now holds _ga, _fbp, lang
    resp = app.post_json(
        "/privguard/consent", {"accept": "none"}, headers={"Origin": "http://localhost"}
    )
    expired = sorted(
        v.split("=", 1)[0] for v in resp.headers.getall("Set-Cookie") if "Max-Age=0" in v
    )
    assert expired == ["_fbp", "_ga", "lang"]
    assert resp.json["categories"] == {
        "necessary": True,
        "functionality": False,
        "performance": False,
        "marketing": False,
    }
    assert "_ga" not in app.cookies and "_fbp" not in app.cookies


def test_json_state_shape():
    body = build().get("/privguard/consent").json
    assert list(body) == [
        "country",
        "subdivision",
        "regime",
        "choice_made",
        "policy_version",
        "categories",
        "signals",
        "age_status",
        "required_age",
        "needs_banner",
    ]
    assert body["country"] == "DE" and body["needs_banner"] is True


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("eyJ2IjoiMSIsImciOlsibWFya2V0aW5nIl19.x.y", id="forged"),
    ],
)
def test_tampered_cookie_counts_as_no_choice(value):
    app = build()
    app.set_cookie("privguard_consent", value)
    assert set_names(app.get("/")) == ["session"]
    assert app.get("/privguard/consent").json["choice_made"] is False


def test_old_policy_version_counts_as_no_choice():
    app = build(policy_version="1")
    accept(app, {"accept": "all"})
    token = app.cookies["privguard_consent"]
    app2 = build(policy_version="2")
    app2.set_cookie("privguard_consent", token)
    state = app2.get("/privguard/consent").json
    assert state["choice_made"] is False and state["needs_banner"] is True
    assert set_names(app2.get("/")) == ["session"]


def test_key_rotation_keeps_old_cookies_valid():
    old = build(secret_key=KEY)
    accept(old, {"accept": "all"})
    token = old.cookies["privguard_consent"]
    rotated = build(secret_key=["new-key-" + "y" * 32, KEY])
    rotated.set_cookie("privguard_consent", token)
    assert rotated.get("/privguard/consent").json["choice_made"] is True
    other = build(secret_key="other-key-" + "z" * 32)
    other.set_cookie("privguard_consent", token)
    assert other.get("/privguard/consent").json["choice_made"] is False


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://evil.test"}, id="foreign-origin"),
        pytest.param({"Origin": "null"}, id="null-origin"),
        pytest.param({"Referer": "http://evil.test/page"}, id="foreign-referer"),
        pytest.param({}, id="no-origin-no-token"),
        pytest.param({"X-Privguard-CSRF": "forged.token.value"}, id="bad-token"),
    ],
)
def test_csrf_refusals(headers):
    app = build()
    resp = app.post("/privguard/consent", {"accept": "all"}, headers=headers, status=403)
    assert "error" in resp.json
    assert app.get("/privguard/consent").json["choice_made"] is False


def test_referer_and_token_accepted():
    app = build()
    app.post(
        "/privguard/consent",
        {"accept": "none"},
        headers={"Referer": "http://localhost/cart"},
        status=303,
    )
    token = app.app.wsgi_app.runtime.csrf_token("localhost:80")
    app.post("/privguard/consent", {"accept": "all", "csrf_token": token}, status=303)
    assert app.get("/privguard/consent").json["categories"]["marketing"] is True


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/cart?x=1", "/cart?x=1"),
        ("https://evil.test/", "/"),
        ("//evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_open_redirect_refused(target, expected):
    resp = accept(build(), {"accept": "all", "next": target}, status=303)
    assert resp.headers["Location"].removeprefix("http://localhost") == expected


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        pytest.param("{not json", "application/json", 400, id="bad-json"),
        pytest.param('["all"]', "application/json", 400, id="json-array"),
        pytest.param('{"accept": "some"}', "application/json", 400, id="bad-accept"),
        pytest.param('{"categories": ["ads"]}', "application/json", 400, id="unknown-category"),
        pytest.param(
            "accept=all&category=marketing", "application/x-www-form-urlencoded", 400, id="both"
        ),
        pytest.param("x" * 20000, "application/x-www-form-urlencoded", 413, id="too-large"),
        pytest.param(b"\xff\xfe", "application/x-www-form-urlencoded", 400, id="not-utf8"),
        pytest.param("a", "text/plain", 415, id="media-type"),
    ],
)
def test_malformed_bodies_are_4xx_json(body, ctype, status):
    app = build()
    resp = app.post(
        "/privguard/consent",
        body,
        headers={"Origin": "http://localhost", "Content-Type": ctype},
        status=status,
    )
    assert resp.content_type == "application/json" and resp.json["error"]
    assert app.get("/privguard/consent").json["choice_made"] is False


def test_gpc_json():
    resp = build().get("/.well-known/gpc.json")
    assert resp.content_type == "application/json"
    assert resp.json["gpc"] is True and len(resp.json["lastUpdate"]) == 10


def test_gpc_withdraws_stored_marketing_consent_once():
    app = build()
    accept(app, {"accept": "all"})
    app.get("/")  # holds _fbp now
    resp = app.get("/", headers={"Sec-GPC": "1"})
    assert "_fbp" not in live_names(resp) and "_ga" in live_names(resp)
    assert "privguard_consent" in live_names(resp)  # rewritten once, without marketing
    assert any(
        v.startswith("_fbp=;") and "Max-Age=0" in v for v in resp.headers.getall("Set-Cookie")
    )
    # the signal is gone, the withdrawal stays: absence of a signal is not an opt-in
    later = app.get("/privguard/consent").json
    assert later["categories"]["marketing"] is False and later["choice_made"] is True
    again = app.get("/", headers={"Sec-GPC": "1"})
    assert "privguard_consent" not in live_names(again)


def test_banner_placed_by_the_template_is_not_injected_twice():
    app = Flask(__name__)

    @app.get("/")
    def index():
        ctx = privguard.get_context(request)
        return f"<html><body><main>{ctx.banner()}</main></body></html>"

    @app.get("/plain")
    def plain():
        return "<html><body><main></main></body></html>"

    privguard.protect(app, secret_key=KEY, ledger=None)
    client = TestApp(
        app,
        extra_environ={
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Safari/537.36"
        },
    )
    assert client.get("/").text.count('id="privguard-banner"') == 1
    assert client.get("/plain").text.count('id="privguard-banner"') == 1


@pytest.mark.parametrize(
    ("path", "ua", "expected", "absent"),
    [
        pytest.param(
            "/",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/126.0 Safari/537.36",
            {"Accept-Language", "User-Agent"},
            set(),
            id="html-browser-injected",
        ),
        pytest.param(
            "/",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            {"User-Agent"},
            {"Accept-Language"},
            id="html-bot-left-alone",
        ),
        pytest.param("/ctx", "Googlebot/2.1", set(), {"User-Agent", "Accept-Language"}, id="json"),
    ],
)
def test_vary_lists_the_headers_the_body_depended_on(path, ua, expected, absent):
    resp = build().get(path, headers={"User-Agent": ua})
    vary = {v.strip() for v in resp.headers["Vary"].split(",")}
    assert {"Cookie", "Sec-GPC", "DNT"} <= vary and "cf-ipcountry" in {v.lower() for v in vary}
    assert expected <= vary and not (absent & vary)
    assert ('id="privguard-banner"' in resp.text) == ("Accept-Language" in expected)


def _expired_paths(resp, name):
    return sorted(
        part.split("=", 1)[1]
        for v in resp.headers.getall("Set-Cookie")
        if v.startswith(f"{name}=") and "Max-Age=0" in v
        for part in (p.strip() for p in v.split(";"))
        if part.startswith("Path=")
    )


def test_withdrawal_uses_the_paths_of_the_matching_glob_entry():
    app = build(
        cookies={
            "trk_*": {"category": "marketing", "paths": ["/shop"]},
            "wish": {"category": "functionality", "paths": ["/account"]},
        }
    )
    accept(app, {"accept": "all"})
    app.set_cookie("trk_a", "1")  # set by a script under /shop: the browser sends it
    app.set_cookie("wish", "1")
    resp = app.post_json(
        "/privguard/consent", {"accept": "none"}, headers={"Origin": "http://localhost"}
    )
    assert _expired_paths(resp, "trk_a") == ["/", "/shop"]
    assert _expired_paths(resp, "wish") == ["/", "/account"]
