"""Page views reach the analytics sink only when performance is allowed, never with a full IP."""

import json

from flask import Flask
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp

import privguard
from privguard.asgi import PrivacyMiddleware

KEY = "analytics-e2e-key-" + "x" * 32
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
OPTIONS = {
    "secret_key": KEY,
    "ledger": None,
    "trusted_proxies": 1,
    "country_header": "CF-IPCountry",
}


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_wsgi_page_views_need_performance_and_carry_a_truncated_ip(tmp_path):
    sink = tmp_path / "views.jsonl"
    app = Flask(__name__)
    app.get("/")(lambda: "<html><body>home</body></html>")
    privguard.protect(app, analytics=str(sink), **OPTIONS)
    client = TestApp(
        app,
        extra_environ={
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_FORWARDED_FOR": "203.0.113.77",
            "HTTP_CF_IPCOUNTRY": "DE",
            "HTTP_USER_AGENT": CHROME,
        },
    )
    client.get("/?q=secret")
    assert lines(sink) == []  # gdpr, no choice: no page view at all
    client.post_json(
        "/privguard/consent",
        {"categories": ["performance"]},
        headers={"Origin": "http://localhost"},
    )
    client.get("/?q=secret", headers={"Referer": "https://search.example/?q=me"})
    views = lines(sink)
    assert len(views) == 1
    assert views[0]["ip"] == "203.0.113.0" and views[0]["path"] == "/"
    assert "203.0.113.77" not in sink.read_text() and "secret" not in sink.read_text()
    client.get("/", headers={"Sec-GPC": "1"})  # GPC denies marketing, not performance
    assert len(lines(sink)) == 2


def test_asgi_callable_sink_and_ipv6(tmp_path):
    seen = []

    async def home(request):
        return HTMLResponse("<html><body>home</body></html>")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(PrivacyMiddleware, analytics=seen.append, **OPTIONS)
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        headers = {
            "X-Forwarded-For": "2001:db8:1234:5678::9",
            "CF-IPCountry": "US",
            "User-Agent": CHROME,
        }
        client.get("/", headers=headers)  # us-optout: performance on until refused
        client.post(
            "/privguard/consent",
            json={"accept": "none"},
            headers={**headers, "Origin": "http://testserver"},
        )
        client.get("/", headers=headers)
    assert len(seen) == 1
    assert seen[0].ip == "2001:db8:1234::"
