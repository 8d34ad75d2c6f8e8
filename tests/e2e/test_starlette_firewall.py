"""The cookie firewall end to end through a real Starlette app (httpx TestClient)."""

import asyncio
import contextlib

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

import privguard
from privguard.asgi import PrivacyMiddleware

KEY = "starlette-test-key-" + "x" * 32
ORIGIN = {"Origin": "http://testserver"}


async def index(request):
    resp = HTMLResponse("<html><body><p>shop</p></body></html>")
    for name in ("sessionid", "lang", "_ga", "_fbp"):
        resp.set_cookie(name, "v")
    return resp


async def stream(request):
    async def gen():
        for i in range(3):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0)

    resp = StreamingResponse(gen(), media_type="text/plain")
    resp.set_cookie("_ga", "1")
    return resp


async def ctx(request):
    c = privguard.get_context(request)
    return JSONResponse({"regime": c.regime, "allowed": sorted(c.allowed)})


async def ws(websocket):
    await websocket.accept()
    assert "privguard" not in websocket.scope
    await websocket.send_text("hello")
    await websocket.close()


def build(**options):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/stream", stream),
            Route("/ctx", ctx),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )
    options.setdefault("secret_key", KEY)
    options.setdefault("ledger", None)
    app.add_middleware(PrivacyMiddleware, **options)
    return app, events


def names(resp, live=True):
    return sorted(
        v.split("=", 1)[0]
        for v in resp.headers.get_list("set-cookie")
        if ("Max-Age=0" not in v) == live
    )


def test_lifespan_and_websocket_pass_through():
    app, events = build()
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as sock:
            assert sock.receive_text() == "hello"
    assert events == ["startup", "shutdown"]


def test_only_necessary_before_consent_then_granted_pass_then_withdrawal():
    app, _ = build()
    with TestClient(app) as client:
        assert names(client.get("/")) == ["sessionid"]
        r = client.post("/privguard/consent", json={"categories": ["performance"]}, headers=ORIGIN)
        assert r.status_code == 200 and r.json()["categories"]["performance"] is True
        assert names(client.get("/")) == ["_ga", "sessionid"]
        assert client.get("/ctx").json() == {
            "regime": "gdpr",
            "allowed": ["necessary", "performance"],
        }
        r = client.post("/privguard/consent", json={"accept": "none"}, headers=ORIGIN)
        assert names(r, live=False) == ["_ga"]


def test_streaming_non_html_stays_streamed_and_filtered():
    app, _ = build()
    with TestClient(app) as client:
        with client.stream("GET", "/stream") as r:
            chunks = list(r.iter_raw())
            assert b"".join(chunks) == b"line 0\nline 1\nline 2\n"
            assert "content-length" not in r.headers
            assert names(r) == []


def test_csrf_refused_and_protect_detects_asgi():
    inner, _ = build()
    app = privguard.protect(Starlette(routes=[Route("/", index)]), secret_key=KEY, ledger=None)
    assert isinstance(app, PrivacyMiddleware)
    with TestClient(inner) as client:
        r = client.post(
            "/privguard/consent", json={"accept": "all"}, headers={"Origin": "http://evil.test"}
        )
        assert r.status_code == 403
        assert client.get("/privguard/consent").json()["choice_made"] is False


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"categories": "marketing"}'])
def test_bad_json_is_400(body):
    app, _ = build()
    with TestClient(app) as client:
        r = client.post(
            "/privguard/consent",
            content=body,
            headers={**ORIGIN, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and "error" in r.json()


def test_pathsend_html_is_sent_untouched_with_its_length():
    """A file body sent with http.response.pathsend cannot be injected into."""
    sent = []

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", b"42")],
            }
        )
        await send({"type": "http.response.pathsend", "path": "/srv/page.html"})

    async def record(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=None)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "headers": [(b"host", b"shop.test"), (b"user-agent", b"Mozilla/5.0 Firefox/130.0")],
        "client": ("127.0.0.1", 5000),
        "extensions": {"http.response.pathsend": {}},
    }
    asyncio.run(mw(scope, receive, record))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert (b"content-length", b"42") in sent[0]["headers"]


def test_compressed_html_is_left_intact_and_reported_once(caplog):
    import gzip

    body = gzip.compress(b"<html><body>shop</body></html>")

    async def page(request):
        return HTMLResponse(body, headers={"Content-Encoding": "gzip"})

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(PrivacyMiddleware, secret_key=KEY, ledger=None)
    with caplog.at_level("WARNING", logger="privguard"), TestClient(app) as client:
        for _ in range(3):
            r = client.get("/", headers={"User-Agent": "Mozilla/5.0 Firefox/130.0"})
            assert r.content == b"<html><body>shop</body></html>"  # httpx decoded it
            assert int(r.headers["content-length"]) == len(body)
    reports = [rec for rec in caplog.records if "compressed HTML" in rec.getMessage()]
    assert len(reports) == 1


def test_withdrawal_uses_the_paths_of_the_matching_glob_entry():
    app, _ = build(cookies={"trk_*": {"category": "marketing", "paths": ["/shop", "/cart"]}})
    with TestClient(app) as client:
        client.post("/privguard/consent", json={"accept": "all"}, headers=ORIGIN)
        client.cookies.set("trk_a", "1")
        r = client.post("/privguard/consent", json={"accept": "none"}, headers=ORIGIN)
        paths = sorted(
            part.strip().split("=", 1)[1]
            for v in r.headers.get_list("set-cookie")
            if v.startswith("trk_a=") and "Max-Age=0" in v
            for part in v.split(";")
            if part.strip().startswith("Path=")
        )
        assert paths == ["/", "/cart", "/shop"]
