"""privguard.django where real projects put it: after SecurityMiddleware, before others
that add cookies to privguard's own answers, without the app installed, under ASGI."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.test.utils import override_settings
from django.urls import include, path

from privguard.django import PrivacyMiddleware
from privguard.django.apps import check_middleware_order

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
EEA = {"HTTP_CF_IPCOUNTRY": "DE", "HTTP_USER_AGENT": UA, "HTTP_ACCEPT": "text/html"}
SAME_ORIGIN = {"HTTP_ORIGIN": "http://testserver"}
PRIVGUARD = "privguard.django.PrivacyMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
PIXEL = f"{__name__}.PixelMiddleware"


class PixelMiddleware:
    """A third-party middleware listed after privguard: a marketing pixel on everything."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.set_cookie("_fbp", "fb.1.1.1")
        response.set_cookie("csrftoken", "t" * 32)  # necessary: must still pass
        return response


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body>shop</body></html>")


def with_policy(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("<html><body>own policy</body></html>")
    response["Referrer-Policy"] = "no-referrer"
    return response


async def async_page(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("<html><body>async shop</body></html>")
    response.set_cookie("_ga", "GA1.1.1")
    response.set_cookie("sessionid", "s")
    return response


urlpatterns = [
    path("", page),
    path("own-policy/", with_policy),
    path("async/", async_page),
    path("privguard/", include("privguard.django.urls")),
]


@pytest.fixture(autouse=True)
def urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def asset_urls() -> list[str]:
    html = Client().get("/", **EEA).content.decode()
    found = re.findall(r'(?:src|href)="(/privguard/banner\.[0-9a-f]+\.(?:js|css))"', html)
    assert len(found) == 2, html
    return found


# --- privguard's own answers pass back through the middleware after it ---------------


@pytest.mark.parametrize("kind", ["css", "js"])
def test_banner_assets_drop_cookies_a_later_middleware_adds(kind: str) -> None:
    url = next(u for u in asset_urls() if u.endswith(kind))
    with override_settings(MIDDLEWARE=[PRIVGUARD, PIXEL]):
        response = Client().get(url, **EEA)
    assert response.status_code == 200
    assert "_fbp" not in response.cookies  # a public, immutable answer a CDN shares
    assert "csrftoken" in response.cookies
    assert "immutable" in response["Cache-Control"]


def test_consent_post_drops_a_later_middlewares_pixel_until_accepted() -> None:
    with override_settings(MIDDLEWARE=[PRIVGUARD, PIXEL]):
        client = Client()
        body = urlencode({"accept": "none"})
        form = "application/x-www-form-urlencoded"
        refused = client.post("/privguard/consent", body, content_type=form, **EEA, **SAME_ORIGIN)
        assert refused.status_code == 303
        assert "_fbp" not in refused.cookies
        assert any(k.endswith("privguard_consent") for k in refused.cookies)
        state = client.get("/privguard/consent", **EEA)
        assert "_fbp" not in state.cookies
        body = urlencode({"accept": "all"})
        accepted = client.post("/privguard/consent", body, content_type=form, **EEA, **SAME_ORIGIN)
        assert "_fbp" in accepted.cookies  # marketing is allowed by this very answer


def test_pages_drop_a_later_middlewares_pixel() -> None:
    with override_settings(MIDDLEWARE=[PRIVGUARD, PIXEL]):
        response = Client().get("/", **EEA)
    assert "_fbp" not in response.cookies and "csrftoken" in response.cookies


# --- Referrer-Policy: Django's SECURE_REFERRER_POLICY wins over privguard's default ---


def test_secure_referrer_policy_is_kept_when_privguard_sits_after_security() -> None:
    with override_settings(MIDDLEWARE=[SECURITY, PRIVGUARD], SECURE_REFERRER_POLICY="same-origin"):
        assert Client().get("/", **EEA)["Referrer-Policy"] == "same-origin"
    both = ["same-origin", "strict-origin"]
    with override_settings(MIDDLEWARE=[SECURITY, PRIVGUARD], SECURE_REFERRER_POLICY=both):
        assert Client().get("/", **EEA)["Referrer-Policy"] == "same-origin,strict-origin"


def test_a_policy_the_view_set_is_kept() -> None:
    with override_settings(MIDDLEWARE=[SECURITY, PRIVGUARD], SECURE_REFERRER_POLICY="same-origin"):
        assert Client().get("/own-policy/", **EEA)["Referrer-Policy"] == "no-referrer"
    with override_settings(MIDDLEWARE=[PRIVGUARD]):
        assert Client().get("/own-policy/", **EEA)["Referrer-Policy"] == "no-referrer"


def test_privguard_default_without_a_django_policy() -> None:
    with override_settings(MIDDLEWARE=[PRIVGUARD]):
        response = Client().get("/", **EEA)
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    with override_settings(MIDDLEWARE=[SECURITY, PRIVGUARD], SECURE_REFERRER_POLICY=None):
        response = Client().get("/", **EEA)
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"


# --- INSTALLED_APPS and MIDDLEWARE order ------------------------------------------------


def test_missing_app_is_improperly_configured_at_start_up() -> None:
    from django.core.handlers.wsgi import WSGIHandler

    apps = [a for a in settings.INSTALLED_APPS if a != "privguard.django"]
    with override_settings(INSTALLED_APPS=apps):
        with pytest.raises(ImproperlyConfigured, match=r"'privguard.django' to INSTALLED_APPS"):
            WSGIHandler()  # what runserver, gunicorn and uvicorn build at start-up


def test_middleware_order_check() -> None:
    with override_settings(MIDDLEWARE=[SECURITY, PRIVGUARD, SESSIONS]):
        assert check_middleware_order() == []
    with override_settings(MIDDLEWARE=[SESSIONS, PRIVGUARD]):
        assert [w.id for w in check_middleware_order()] == ["privguard.W001"]
    with override_settings(MIDDLEWARE=[SESSIONS]):
        assert [w.id for w in check_middleware_order()] == ["privguard.W002"]


# --- async mode -----------------------------------------------------------------------


def test_async_get_response_makes_an_async_middleware() -> None:
    async def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    assert asyncio.iscoroutinefunction(PrivacyMiddleware(get_response))
    assert not asyncio.iscoroutinefunction(PrivacyMiddleware(lambda request: HttpResponse()))
    assert PrivacyMiddleware.async_capable and PrivacyMiddleware.sync_capable


def test_async_client_filters_like_the_sync_one() -> None:
    async def visit() -> Any:
        return await AsyncClient().get("/async/", headers={"CF-IPCountry": "DE", "User-Agent": UA})

    with override_settings(MIDDLEWARE=[PRIVGUARD]):
        response = asyncio.run(visit())
    assert response.status_code == 200
    assert sorted(response.cookies) == ["sessionid"]
    assert b'id="privguard-banner"' in response.content


# --- Django's own cookies are in the built-in catalog ---------------------------------


def flash(request: HttpRequest) -> HttpResponse:
    from django.contrib import messages
    from django.shortcuts import redirect

    messages.success(request, "Your order was placed.")
    return redirect("/shown/")


def shown(request: HttpRequest) -> HttpResponse:
    from django.contrib.messages import get_messages

    text = " ".join(str(m) for m in get_messages(request))
    return HttpResponse(f"<html><body><p id='flash'>{text}</p></body></html>")


urlpatterns += [path("flash/", flash), path("shown/", shown)]


def test_django_flash_messages_survive_for_a_first_time_eea_visitor() -> None:
    apps = [*settings.INSTALLED_APPS, "django.contrib.messages"]
    middleware = [PRIVGUARD, SESSIONS, "django.contrib.messages.middleware.MessageMiddleware"]
    with override_settings(
        INSTALLED_APPS=apps,
        MIDDLEWARE=middleware,
        MESSAGE_STORAGE="django.contrib.messages.storage.cookie.CookieStorage",
    ):
        client = Client()
        sent = client.get("/flash/", **EEA)
        assert sent.status_code == 302
        assert "messages" in sent.cookies  # necessary: the confirmation of the visitor's action
        page = client.get("/shown/", **EEA)
    assert "Your order was placed." in page.content.decode()
