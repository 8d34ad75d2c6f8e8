"""privguard.django in Django's async mode, under a real ASGI server (uvicorn).

A small Django project is written to a temporary folder and served by uvicorn in a
subprocess. Django logs (``django.request``, DEBUG) every middleware it has to adapt
to the other mode; privguard must not be one of them, so an async view behind it pays
no thread hop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"

SETTINGS = """
SECRET_KEY = "a" * 50
DEBUG = True  # Django logs each middleware it adapts only in debug mode
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "asgisite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "privguard.django"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "privguard.django.PrivacyMiddleware",
    "django.middleware.common.CommonMiddleware",
]
SECURE_REFERRER_POLICY = "same-origin"
USE_TZ = True
PRIVGUARD = {{"ledger": None, "country_header": "CF-IPCountry", "trusted_proxies": ["127.0.0.1"]}}
LOGGING = {{
    "version": 1,
    "handlers": {{"file": {{"class": "logging.FileHandler", "filename": {log!r}}}}},
    "loggers": {{"django.request": {{"handlers": ["file"], "level": "DEBUG"}}}},
}}
"""

URLS = """
import asyncio

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import include, path


async def page(request):
    await asyncio.sleep(0)
    response = HttpResponse("<html><body>async shop</body></html>")
    response.set_cookie("_ga", "GA1.1.1")
    response.set_cookie("sessionid", "s")
    return response


async def stream(request):
    async def chunks():
        yield b"<html><body>"
        yield b"streamed</body></html>"

    return StreamingHttpResponse(chunks(), content_type="text/html")


urlpatterns = [
    path("", page),
    path("stream/", stream),
    path("privguard/", include("privguard.django.urls")),
]
"""

ASGI = """
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asgisite.settings")
from django.core.asgi import get_asgi_application

application = get_asgi_application()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("asgisite")
    log = root / "django-request.log"
    package = root / "asgisite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(textwrap.dedent(SETTINGS.format(log=str(log))))
    (package / "urls.py").write_text(URLS)
    (package / "asgi.py").write_text(ASGI)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "asgisite.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--lifespan", "off"],
        cwd=root,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail("uvicorn exited instead of serving the Django site")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("uvicorn did not start the Django site")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


def test_async_view_behind_privguard_under_uvicorn(server: tuple[str, Path]) -> None:
    url, log = server
    response = httpx.get(url + "/", headers={"CF-IPCountry": "DE", "User-Agent": UA})
    assert response.status_code == 200
    assert [c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")] == ["sessionid"]
    assert 'id="privguard-banner"' in response.text
    assert response.headers["referrer-policy"] == "same-origin"
    us = httpx.get(url + "/", headers={"CF-IPCountry": "US", "User-Agent": UA})
    assert {c.split("=", 1)[0] for c in us.headers.get_list("set-cookie")} == {"_ga", "sessionid"}
    streamed = httpx.get(url + "/stream/", headers={"CF-IPCountry": "DE", "User-Agent": UA})
    assert streamed.text == "<html><body>streamed</body></html>"
    state = httpx.get(url + "/privguard/consent", headers={"CF-IPCountry": "DE"}).json()
    assert state["regime"] == "gdpr" and state["needs_banner"] is True
    adapted = [line for line in log.read_text().splitlines() if "privguard" in line]
    assert adapted == []  # Django did not have to wrap privguard in sync_to_async
