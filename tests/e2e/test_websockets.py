"""WebSocket handshakes through a real uvicorn server: their Set-Cookie obeys consent.

A browser stores cookies from the ``101 Switching Protocols`` answer and from
a denial response, so both go through the same rule as an HTTP response.
The client is the ``websockets`` library, the server uvicorn; Starlette's own
TestClient is checked too.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from privguard.asgi import PrivacyMiddleware
from tests.e2e.live import raw_request, serve_asgi

KEY = "websocket-key-" + "w" * 32
OPTIONS: dict[str, Any] = {
    "secret_key": KEY,
    "ledger": None,
    "rate_limit": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1/32"],
}
COOKIES = [
    (b"set-cookie", b"_ga=GA1.1; Path=/"),
    (b"set-cookie", b"_fbp=fb.1; Path=/"),
    (b"set-cookie", b"sessionid=s1; Path=/; HttpOnly"),
]


async def chat(websocket: WebSocket) -> None:
    await websocket.accept(headers=COOKIES)
    await websocket.send_text("hello")
    await websocket.close()


async def denied(websocket: WebSocket) -> None:
    resp = PlainTextResponse("no", status_code=403)
    resp.raw_headers.extend(COOKIES)
    await websocket.send_denial_response(resp)


def shop() -> PrivacyMiddleware:
    app = Starlette(routes=[WebSocketRoute("/ws", chat), WebSocketRoute("/denied", denied)])
    return PrivacyMiddleware(app, **OPTIONS)


def names(values: list[str]) -> list[str]:
    return [v.split("=", 1)[0] for v in values]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("country", "expected"),
    [
        pytest.param("DE", ["sessionid"], id="gdpr-no-choice"),
        pytest.param("US", ["_ga", "sessionid"], id="us-optout-default"),
    ],
)
def test_uvicorn_websocket_accept_headers_follow_consent(country: str, expected: list[str]):
    with serve_asgi(shop()) as port:
        with connect(
            f"ws://127.0.0.1:{port}/ws", additional_headers={"CF-IPCountry": country}
        ) as ws:
            assert ws.recv(timeout=5) == "hello"
            cookies = ws.response.headers.get_all("Set-Cookie")
    assert names(cookies) == expected


@pytest.mark.timeout(30)
def test_uvicorn_websocket_accept_after_a_choice_and_under_gpc():
    with serve_asgi(shop()) as port:
        answer = raw_request(
            port,
            "POST",
            "/privguard/consent",
            [
                ("CF-IPCountry", "DE"),
                ("Origin", f"http://127.0.0.1:{port}"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"accept=all",
            host=f"127.0.0.1:{port}",
        )
        assert answer.status == 303, answer
        consent = answer.get_all("set-cookie")[0].split(";", 1)[0]
        got = {}
        for label, extra in (("chosen", {}), ("gpc", {"Sec-GPC": "1"})):
            headers = {"CF-IPCountry": "DE", "Cookie": consent, **extra}
            with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
                got[label] = names(ws.response.headers.get_all("Set-Cookie"))
    assert got["chosen"] == ["_ga", "_fbp", "sessionid"]
    assert "_fbp" not in got["gpc"] and "sessionid" in got["gpc"]


@pytest.mark.timeout(30)
def test_uvicorn_websocket_denial_response_is_filtered():
    with serve_asgi(shop()) as port:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{port}/denied", additional_headers={"CF-IPCountry": "DE"})
    response = info.value.response
    assert response.status_code == 403
    assert names(response.headers.get_all("Set-Cookie")) == ["sessionid"]
    assert "Cookie" in response.headers.get("Vary", "")


def test_starlette_testclient_websocket_accept_is_filtered():
    with TestClient(shop()) as client:
        with client.websocket_connect("/ws", headers={"CF-IPCountry": "DE"}) as ws:
            assert ws.receive_text() == "hello"
            accepted = ws.extra_headers  # the accept message's headers
    assert accepted is not None
    assert names([v.decode() for n, v in accepted if n == b"set-cookie"]) == ["sessionid"]
