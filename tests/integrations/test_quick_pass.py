"""A returning visitor's repeated JSON answers, through Flask's and Starlette's own test
clients: the first goes through the whole header filter (which makes the decision's
plan), the later ones through the quick pass. Their headers must be the same, a
marketing cookie dropped every time, an undeclared cookie dropped every time and
reported, privguard's own headers added every time."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from privguard import Settings
from privguard.asgi import PrivacyMiddleware as AsgiPrivacy
from privguard.wsgi import PrivacyMiddleware as WsgiPrivacy
from tests.consent import consent_cookie

SECRET = "quick-pass-frameworks-secret-0123456789"
SETTINGS = Settings(secret_key=SECRET, ledger=None)
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}
COOKIES = [("sessionid", "abc"), ("_ga", "GA1.1.1"), ("_fbp", "fb.1")]


def _flask(extra: list[tuple[str, str]]) -> Any:
    app = Flask(__name__)

    @app.get("/api")
    def api() -> Any:
        response = jsonify(ok=True)
        for name, value in COOKIES + extra:
            response.set_cookie(name, value)
        return response

    app.wsgi_app = WsgiPrivacy(app.wsgi_app, settings=SETTINGS)  # type: ignore[method-assign]
    return app.test_client(use_cookies=False)  # the request's Cookie header as given


def _starlette(extra: list[tuple[str, str]]) -> Any:
    async def api(request: Request) -> JSONResponse:
        response = JSONResponse({"ok": True})
        for name, value in COOKIES + extra:
            response.set_cookie(name, value)
        return response

    app = Starlette(routes=[Route("/api", api)])
    return TestClient(AsgiPrivacy(app, settings=SETTINGS))


def _answers(client: Any, framework: str, times: int) -> list[list[tuple[str, str]]]:
    name, value = consent_cookie(SETTINGS, https=False).split("=", 1)
    out = []
    for _ in range(times):
        if framework == "flask":
            headers = {**BROWSER, "Cookie": f"{name}={value}"}
            response = client.get("/api", headers=headers)
            pairs = list(response.headers.items())
        else:
            client.cookies.clear()  # only the consent cookie, on every request
            client.cookies.set(name, value)
            response = client.get("/api", headers=BROWSER)
            pairs = list(response.headers.multi_items())
        assert response.status_code == 200
        out.append([(n.lower(), v) for n, v in pairs if n.lower() != "date"])
    return out


@pytest.mark.parametrize("framework", ["flask", "starlette"])
def test_repeated_json_answers_are_filtered_alike(framework: str) -> None:
    client = _flask([]) if framework == "flask" else _starlette([])
    first, *later = _answers(client, framework, 4)
    assert all(answer == first for answer in later)  # the quick pass answers as the filter
    cookies = [v.split("=", 1)[0] for n, v in first if n == "set-cookie"]
    assert cookies == ["sessionid", "_ga"]  # consent to performance: _fbp (marketing) dropped
    names = {n for n, _ in first}
    assert {"vary", "cache-control", "referrer-policy"} <= names


@pytest.mark.parametrize("framework", ["flask", "starlette"])
def test_an_undeclared_cookie_is_dropped_and_reported_on_every_answer(
    framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = (_flask if framework == "flask" else _starlette)([("mystery_" + framework, "1")])
    with caplog.at_level(logging.WARNING, logger="privguard"):
        answers = _answers(client, framework, 3)
    for answer in answers:
        cookies = [v.split("=", 1)[0] for n, v in answer if n == "set-cookie"]
        assert cookies == ["sessionid", "_ga"]
    reports = [r for r in caplog.records if "mystery_" + framework in r.getMessage()]
    assert len(reports) == 1  # logged once per runtime, found on every answer
