"""The age gate end to end (Flask via webtest): rules, gated paths, minors, bad input."""

import logging

import pytest
from flask import Flask, make_response, request
from webtest import TestApp

import privguard

KEY = "age-test-key-" + "x" * 32
MINORS_SEEN = []


def build(country="DE", **options):
    app = Flask(__name__)

    @app.route("/checkout", methods=["GET", "POST"])
    def checkout():
        resp = make_response("<html><body>pay</body></html>")
        resp.set_cookie("_ga", "1")
        return resp

    @app.get("/")
    def index():
        ctx = privguard.get_context(request)
        resp = make_response(f"<html><body>{ctx.age_status}</body></html>")
        resp.set_cookie("_ga", "1")
        resp.set_cookie("lang", "de")
        return resp

    options.setdefault("secret_key", KEY)
    options.setdefault("ledger", None)
    options.setdefault("age_gate_paths", ["/checkout*", "/account/register*"])
    privguard.protect(
        app,
        country_header="CF-IPCountry",
        trusted_proxies=1,
        on_minor=MINORS_SEEN.append,
        **options,
    )
    env = {"REMOTE_ADDR": "127.0.0.1"}
    if country:
        env["HTTP_CF_IPCOUNTRY"] = country
    return TestApp(app, extra_environ=env)


ORIGIN = {"Origin": "http://localhost"}


def answer(app, status=303, **fields):
    return app.post("/privguard/age", fields, headers=ORIGIN, status=status)


# (country, age_rule, birth year that is 15 years old at least, expected) — born 2011-01-01
# is 15 on 2026-11-25: adult where 13/14/15 is enough, minor where 16 is required.
TABLE = [
    ("DE", "policy", "minor"),
    ("FR", "policy", "minor"),
    ("AT", "policy", "minor"),
    ("BE", "policy", "minor"),
    ("GB", "policy", "minor"),
    ("IE", "policy", "minor"),
    ("US", "policy", "adult"),
    ("BR", "policy", "adult"),
    (None, "policy", "minor"),
    ("DE", "member-state", "minor"),
    ("FR", "member-state", "adult"),
    ("AT", "member-state", "adult"),
    ("BE", "member-state", "adult"),
    ("GB", "member-state", "adult"),
    ("IE", "member-state", "minor"),
    ("US", "member-state", "adult"),
    ("BR", "member-state", "adult"),
    (None, "member-state", "minor"),
]


@pytest.mark.parametrize(
    ("country", "rule", "expected"), TABLE, ids=[f"{c or 'unknown'}-{r}" for c, r, _ in TABLE]
)
def test_fifteen_year_old_by_country_and_rule(country, rule, expected):
    app = build(country, age_rule=rule)
    answer(app, birth_date="2011-01-01")
    state = app.get("/privguard/consent").json
    assert state["age_status"] == expected
    gated = app.get("/checkout", headers={"Accept": "text/html"}, expect_errors=True)
    assert gated.status_int == (200 if expected == "adult" else 403)


def test_gated_path_without_answer_gets_form_or_json_and_app_not_reached():
    app = build()
    # being asked is not "forbidden": 200, never cached in place of the page
    html = app.get("/checkout?x=1", headers={"Accept": "text/html"}, status=200)
    assert 'id="privguard-age-gate"' in html.text
    assert html.headers["Cache-Control"] == "no-store"
    assert 'name="next" value="/checkout?x=1"' in html.text  # back to the page asked for
    assert not [v for v in html.headers.getall("Set-Cookie") if v.startswith("_ga=")]
    js = app.get("/checkout", headers={"Accept": "application/json"}, status=403)
    assert "age" in js.json["error"]
    assert app.get("/").status_int == 200  # ungated paths are open


def test_minor_everything_non_essential_is_expired_and_blocked():
    app = build("US")
    app.post("/privguard/consent", {"accept": "all"}, headers=ORIGIN)
    app.get("/")  # the browser holds _ga and lang now
    resp = answer(app, birth_year="2020")
    expired = sorted(
        v.split("=", 1)[0] for v in resp.headers.getall("Set-Cookie") if "Max-Age=0" in v
    )
    assert expired == ["_ga", "lang"]
    page = app.get("/")
    assert page.text.count("minor") == 1
    assert [v for v in page.headers.getall("Set-Cookie") if "Max-Age=0" not in v] == []
    minor_page = app.get("/checkout", headers={"Accept": "text/html"}, status=403)
    assert 'id="privguard-age-gate"' not in minor_page.text
    assert MINORS_SEEN and MINORS_SEEN[-1].age_status == "minor"


def test_minor_answer_sticks():
    app = build()
    answer(app, birth_year="2015")
    answer(app, birth_year="1980")
    assert app.get("/privguard/consent").json["age_status"] == "minor"


def test_adult_who_moves_to_a_stricter_region_is_asked_again():
    us = build("US")
    answer(us, birth_date="2012-01-01")  # 14: adult at 13
    token = us.cookies["privguard_consent"]
    de = build("DE")
    de.set_cookie("privguard_consent", token)
    assert de.get("/privguard/consent").json["age_status"] == "unknown"
    gate = de.get("/checkout", headers={"Accept": "text/html"}, status=200)
    assert 'id="privguard-age-gate"' in gate.text


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"birth_date": "2099-01-01"}, id="future"),
        pytest.param({"birth_year": "1850"}, id="over-130"),
        pytest.param({"birth_date": "31.12.2000"}, id="format"),
        pytest.param({"birth_year": "abc"}, id="garbage"),
        pytest.param({}, id="empty"),
    ],
)
def test_bad_age_input_is_400_with_message(fields):
    app = build()
    resp = answer(app, status=400, **fields)
    assert resp.json["error"]
    assert app.get("/privguard/consent").json["age_status"] == "unknown"


def test_age_post_needs_same_origin():
    app = build()
    app.post(
        "/privguard/age", {"birth_year": "1980"}, headers={"Origin": "http://evil.test"}, status=403
    )


def test_birth_date_never_stored_in_cookie_header_or_log(caplog):
    caplog.set_level(logging.DEBUG)
    app = build()
    resp = app.post_json("/privguard/age", {"birth_date": "1987-06-05"}, headers=ORIGIN)
    blob = " ".join(f"{k}: {v}" for k, v in resp.headers.items()) + resp.text
    for cookie in app.cookies.values():
        blob += cookie
    import base64
    import zlib

    token = app.cookies["privguard_consent"].strip('"')
    payload = token.split(".")[1] if token.startswith(".") else token.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    decoded = zlib.decompress(raw) if token.startswith(".") else raw
    blob += decoded.decode()
    blob += caplog.text
    for fragment in ("1987-06-05", "1987", "06-05"):
        assert fragment not in blob
    assert resp.json["age_status"] == "adult"
