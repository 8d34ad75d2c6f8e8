"""A returning visitor's decision is memoised, and both adapters answer its usual
requests the short way (the memo read in the adapter's own frame). What that way must
leave to the whole path, whatever the memo holds: privguard's own endpoints and the GPC
resource, a visitor the age gate holds, a withdrawal signal's cookie. Each is asked
after the same visitor's decision is memoised, through Flask's and Starlette's own test
clients."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import privguard
from privguard.asgi import PrivacyMiddleware
from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.settings import Settings

SECRET = "memoised-paths-secret-0123456789abcdef"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}
OPTIONS: dict[str, Any] = {"secret_key": SECRET, "ledger": None}


def _flask(**options: Any) -> Any:
    app = Flask(__name__)

    @app.route("/", defaults={"path": ""})
    @app.route("/<path:path>")
    def anything(path: str) -> Any:
        response = make_response(json.dumps({"app": path}))
        response.headers["Content-Type"] = "application/json"
        response.set_cookie("_fbp", "1")  # marketing
        return response

    privguard.protect(app, **OPTIONS, **options)
    client = app.test_client()

    def get(path: str, headers: dict[str, str]) -> tuple[int, bytes, list[str]]:
        headers = dict(headers)
        cookie = headers.pop("Cookie", None)  # werkzeug's client sends its own jar only
        if cookie is not None:
            name, _, value = cookie.partition("=")
            client.set_cookie(name, value)
        response = client.get(path, headers=headers)
        return response.status_code, response.data, response.headers.getlist("Set-Cookie")

    return get


def _starlette(**options: Any) -> Any:
    async def anything(request: Any) -> Any:
        response = JSONResponse({"app": request.url.path.lstrip("/")})
        response.set_cookie("_fbp", "1")
        return response

    app = Starlette(routes=[Route("/{path:path}", anything)])
    client = TestClient(PrivacyMiddleware(app, **OPTIONS, **options))

    def get(path: str, headers: dict[str, str]) -> tuple[int, bytes, list[str]]:
        response = client.get(path, headers=headers)
        return response.status_code, response.content, response.headers.get_list("set-cookie")

    return get


ADAPTERS = pytest.mark.parametrize("make", [_flask, _starlette], ids=["flask", "starlette"])


def _memoise(get: Any, headers: dict[str, str]) -> None:
    """The visitor's decision made and memoised, its plan made (the quick pass's)."""
    for _ in range(3):
        status, body, cookies = get("/shop", headers)
        assert status == 200 and json.loads(body) == {"app": "shop"}
        assert not any(c.startswith("_fbp=") for c in cookies)  # no consent: dropped


@ADAPTERS
def test_privguard_answers_its_own_paths_for_a_memoised_visitor(make: Any) -> None:
    get = make()
    _memoise(get, BROWSER)
    status, body, _ = get("/.well-known/gpc.json", BROWSER)
    assert status == 200 and json.loads(body)["gpc"] is True
    status, body, _ = get("/privguard/consent", BROWSER)
    assert status == 200 and "app" not in json.loads(body)
    status, body, _ = get("/privguardx", BROWSER)  # not under the prefix: the app's
    assert json.loads(body) == {"app": "privguardx"}


@ADAPTERS
def test_the_age_gate_holds_a_memoised_visitor(make: Any) -> None:
    get = make(age_gate_paths=["/shop*"])
    headers = {**BROWSER, "Accept": "text/html"}
    for _ in range(3):  # every answer, memoised or not, is the gate's
        status, body, cookies = get("/shop", headers)
        assert b'"app"' not in body, status
        assert not any(c.startswith("_fbp=") for c in cookies)
    status, body, _ = get("/about", headers)  # not gated: the app's
    assert json.loads(body) == {"app": "about"}


@ADAPTERS
def test_a_withdrawal_signal_rewrites_privguard_cookie_when_memoised(make: Any) -> None:
    get = make()
    name, value = _consent_all()
    signalled = {**BROWSER, "Cookie": f"{name}={value}", "Sec-GPC": "1"}
    for _ in range(3):  # the decision memoised after the first
        status, body, cookies = get("/shop", signalled)
        assert status == 200 and json.loads(body) == {"app": "shop"}
        assert not any(c.startswith("_fbp=") for c in cookies)  # sale/sharing opted out
        ours = [c for c in cookies if c.startswith(name + "=")]
        assert len(ours) == 1 and not ours[0].startswith(f"{name}={value};")  # marketing out


def _consent_all() -> tuple[str, str]:
    """The consent cookie's name and a value granting every category (gdpr)."""
    settings = Settings(**OPTIONS)
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    state = ConsentState(
        version=settings.policy_version,
        granted=frozenset(Category),
        receipt_id=None,
        regime="gdpr",
    )
    return settings.consent_cookie_name(False), codec.dump(state)
