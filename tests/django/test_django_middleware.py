"""privguard.django: middleware, endpoint views and template tags through Django's client."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.template import engines
from django.test import Client
from django.test.utils import override_settings
from django.urls import include, path

from privguard import get_context
from privguard.django import PrivacyMiddleware, settings_from_django
from privguard.django.apps import check_privguard_setting

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
EEA = {"HTTP_CF_IPCOUNTRY": "DE", "HTTP_USER_AGENT": UA, "HTTP_ACCEPT": "text/html"}
US = {**EEA, "HTTP_CF_IPCOUNTRY": "US"}
SAME_ORIGIN = {"HTTP_ORIGIN": "http://testserver"}

PAGE = """<html><body>
{% load privguard %}{% privguard_allows "performance" as perf %}
<p id="perf">{{ perf }}</p><p id="regime">{{ request.privguard.regime }}</p>
</body></html>"""
PLACED = """<html><body>{% load privguard %}<main>{% privguard_banner %}</main></body></html>"""


def page(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = [1]
    response = HttpResponse(engines["django"].from_string(PAGE).render({}, request))
    response.set_cookie("_ga", "GA1.1.1")
    response.set_cookie("lang", "de")
    response.set_cookie("mystery", "1")
    return response


def placed(request: HttpRequest) -> HttpResponse:
    return HttpResponse(engines["django"].from_string(PLACED).render({}, request))


def placed_by_context(request: HttpRequest) -> HttpResponse:
    banner = request.privguard.banner()  # type: ignore[attr-defined]
    return HttpResponse(f"<html><body><main>{banner}</main></body></html>")


def state(request: HttpRequest) -> JsonResponse:
    ctx = get_context(request)
    assert ctx is request.privguard is request.META["privguard"]  # type: ignore[attr-defined]
    return JsonResponse({"country": ctx.country, "age": ctx.age_status})


def checkout(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body>pay here</body></html>")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"<html><body>", b"streamed</body></html>"]))


def skipped(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("<html><body>embed</body></html>")
    response["Privguard-Skip"] = "1"
    return response


urlpatterns = [
    path("", page),
    path("placed/", placed),
    path("placed-by-context/", placed_by_context),
    path("state/", state),
    path("checkout/pay/", checkout),
    path("stream/", stream),
    path("skipped/", skipped),
    path("privguard/", include("privguard.django.urls")),
]


@pytest.fixture(autouse=True)
def urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def post_form(client: Client, url: str, data: dict[str, str], **extra: str) -> HttpResponse:
    """A urlencoded form post, as the banner's no-JS form sends it."""
    return client.post(
        url, urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )


def banner_shown(html: str) -> bool:
    match = re.search(r'<[^>]*\bid="privguard-banner"[^>]*>', html)
    return match is not None and re.search(r"\shidden[\s>=]", match.group(0)) is None


def set_cookies(response: HttpResponse) -> dict[str, str]:
    """Cookie name -> the Set-Cookie line as it leaves Django."""
    return {m.key: m.OutputString() for m in response.cookies.values()}


def consent_name(response: HttpResponse) -> str:
    return next(k for k in response.cookies if k.endswith("privguard_consent"))


def test_first_eea_visit_gets_banner_and_only_necessary_cookies() -> None:
    response = Client().get("/", **EEA)
    assert response.status_code == 200
    html = response.content.decode()
    assert banner_shown(html)
    assert sorted(set_cookies(response)) == ["sessionid"]
    assert '<p id="perf">False</p>' in html and '<p id="regime">gdpr</p>' in html
    assert "browsing-topics=()" in response["Permissions-Policy"]
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "cf-ipcountry" in response["Vary"].lower() and "Cookie" in response["Vary"]
    assert "private" in response["Cache-Control"]
    assert int(response["Content-Length"]) == len(response.content)


def test_us_visitor_gets_functionality_and_performance_by_default() -> None:
    response = Client().get("/", **US)
    assert sorted(set_cookies(response)) == ["_ga", "lang", "sessionid"]
    assert '<p id="perf">True</p>' in response.content.decode()


def test_context_on_the_request() -> None:
    assert Client().get("/state/", **EEA).json() == {"country": "DE", "age": "unknown"}


def test_accept_then_withdraw() -> None:
    client = Client()
    client.get("/", **EEA)
    answer = post_form(client, "/privguard/consent", {"accept": "all"}, **EEA, **SAME_ORIGIN)
    assert answer.status_code == 303 and answer["Location"] == "/"
    assert consent_name(answer) == "privguard_consent"
    after = client.get("/", **EEA)
    assert not banner_shown(after.content.decode())
    assert {"_ga", "lang", "sessionid"} <= set(set_cookies(after))
    assert "mystery" not in set_cookies(after)  # undeclared: blocked
    withdrawn = post_form(client, "/privguard/consent", {"accept": "none"}, **EEA, **SAME_ORIGIN)
    lines = set_cookies(withdrawn)
    assert "Max-Age=0" in lines["_ga"] and "Max-Age=0" in lines["lang"]


def test_consent_json_state_and_cross_origin_refusal() -> None:
    client = Client()
    state = client.get("/privguard/consent", **EEA).json()
    assert state["country"] == "DE" and state["needs_banner"] is True
    refused = post_form(
        client, "/privguard/consent", {"accept": "all"}, **EEA, HTTP_ORIGIN="https://evil.example"
    )
    assert refused.status_code == 403
    assert "error" in refused.json()
    answer = client.post(
        "/privguard/consent",
        {"accept": "all"},
        content_type="application/json",
        **EEA,
        **SAME_ORIGIN,
    )
    assert answer.status_code == 200
    assert answer.json()["categories"]["marketing"] is True


def test_django_csrf_does_not_block_privguard_but_its_own_check_does() -> None:
    client = Client(enforce_csrf_checks=True)
    assert post_form(client, "/privguard/consent", {"accept": "none"}, **EEA).status_code == 403
    ok = post_form(client, "/privguard/consent", {"accept": "none"}, **EEA, **SAME_ORIGIN)
    assert ok.status_code == 303


def test_age_gate_then_adult_answer() -> None:
    client = Client()
    gate = client.get("/checkout/pay/", **EEA)
    assert gate.status_code == 200 and gate["Cache-Control"] == "no-store"
    assert 'id="privguard-age-gate"' in gate.content.decode()
    json_gate = client.get("/checkout/pay/", HTTP_CF_IPCOUNTRY="DE", HTTP_USER_AGENT=UA)
    assert json_gate.status_code == 403 and "error" in json_gate.json()
    answer = post_form(client, "/privguard/age", {"birth_year": "1980"}, **EEA, **SAME_ORIGIN)
    assert answer.status_code == 303
    assert client.get("/checkout/pay/", **EEA).status_code == 200


def test_minor_cannot_check_out_and_gets_no_optional_cookies() -> None:
    client = Client()
    post_form(client, "/privguard/age", {"birth_year": "2020"}, **US, **SAME_ORIGIN)
    blocked = client.get("/checkout/pay/", **US)
    assert blocked.status_code == 403
    assert 'id="privguard-age-gate"' not in blocked.content.decode()
    assert sorted(set_cookies(client.get("/", **US))) == ["sessionid"]
    assert client.get("/state/", **US).json()["age"] == "minor"


def test_gpc_json_is_answered_by_the_middleware() -> None:
    response = Client().get("/.well-known/gpc.json", **EEA)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["gpc"] is True


def test_banner_assets_are_served() -> None:
    html = Client().get("/", **EEA).content.decode()
    script = re.search(r'src="(/privguard/banner\.[0-9a-f]+\.js)"', html)
    assert script is not None
    response = Client().get(script.group(1), **EEA)
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert Client().get("/privguard/nothing.js", **EEA).status_code == 404


def test_template_tag_places_the_banner_once() -> None:
    html = Client().get("/placed/", **EEA).content.decode()
    assert html.count('id="privguard-banner"') == 1
    assert re.search(r"<main><!-- privguard consent banner -->|<main><[^>]*privguard", html)


def test_context_banner_call_places_the_banner_once() -> None:
    # request.privguard.banner() without the template tag: the context remembers it
    html = Client().get("/placed-by-context/", **EEA).content.decode()
    assert html.count('id="privguard-banner"') == 1
    assert html.index('id="privguard-banner"') < html.index("</main>")


def test_streaming_and_skipped_responses_are_not_injected() -> None:
    streamed = Client().get("/stream/", **EEA)
    assert b"privguard-banner" not in b"".join(streamed.streaming_content)
    skipped = Client().get("/skipped/", **EEA)
    assert b"privguard-banner" not in skipped.content
    assert "Privguard-Skip" not in skipped


def test_gpc_denies_marketing_on_the_first_request() -> None:
    response = Client().get("/privguard/consent", **US, HTTP_SEC_GPC="1")
    body = response.json()
    assert body["signals"]["gpc"] is True and body["categories"]["marketing"] is False


def test_settings_are_read_once_with_secret_key_fallback() -> None:
    settings = settings_from_django()
    assert settings is not None and settings.secret_keys == (b"d" * 50,)
    with override_settings(PRIVGUARD={"secret_key": "k" * 40, "ledger": None}):
        assert settings_from_django().secret_keys == (b"k" * 40,)  # type: ignore[union-attr]


def test_disabled_removes_the_middleware() -> None:
    from django.core.exceptions import MiddlewareNotUsed

    with override_settings(PRIVGUARD={"enabled": False}):
        with pytest.raises(MiddlewareNotUsed):
            PrivacyMiddleware(lambda request: HttpResponse())
        response = Client().get("/state/", **EEA) if False else Client().get("/placed/", **EEA)
        assert b"privguard-banner" not in response.content


def test_bad_setting_fails_at_start_and_in_manage_check() -> None:
    from privguard import ConfigError

    with override_settings(PRIVGUARD={"ledger": None, "age_rule": "nope"}):
        with pytest.raises(ConfigError):
            PrivacyMiddleware(lambda request: HttpResponse())
        errors = check_privguard_setting()
        assert [e.id for e in errors] == ["privguard.E001"]
        assert "age_rule" in errors[0].msg
    assert check_privguard_setting() == []


def test_views_without_middleware_are_misconfigured() -> None:
    with override_settings(MIDDLEWARE=[]):
        with pytest.raises(ImproperlyConfigured, match="PrivacyMiddleware"):
            Client().get("/privguard/consent")


def test_withdrawal_on_parent_domains_leaves_django_as_separate_set_cookies() -> None:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from webtest import TestApp

    options = {**settings.PRIVGUARD, "cookie_domains": ["shop.example"]}
    with override_settings(PRIVGUARD=options):
        app = TestApp(WSGIHandler(), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        headers = {"CF-IPCountry": "DE", "User-Agent": UA, "Cookie": "_ga=GA1.1.1; lang=de"}
        response = app.get("/state/", headers=headers)
    lines = [v.strip() for v in response.headers.getall("Set-Cookie")]
    lines = [v for v in lines if v.startswith("_ga=")]
    assert len(lines) == 2
    assert any("Domain=shop.example" in v for v in lines)
    assert all("Max-Age=0" in v for v in lines)


def test_gpc_withdraws_a_stored_marketing_consent_once() -> None:
    client = Client()
    post_form(client, "/privguard/consent", {"accept": "all"}, **EEA, **SAME_ORIGIN)
    with_gpc = client.get("/", **EEA, HTTP_SEC_GPC="1")
    assert "privguard_consent" in with_gpc.cookies  # rewritten without marketing
    state = client.get("/privguard/consent", **EEA).json()  # the signal is gone now
    assert state["choice_made"] is True and state["categories"]["marketing"] is False
    assert "privguard_consent" not in client.get("/", **EEA, HTTP_SEC_GPC="1").cookies
