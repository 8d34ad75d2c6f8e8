"""An ASGI app that writes header names in capitals still gets one, right Content-Length.

The ASGI spec asks apps for lower-case response header names, and privguard looks the
app's ``Content-Length`` up by that spelling. An app that sends ``Content-Length`` (as
hand-written apps and ports from WSGI do) must be understood all the same: a page
privguard injects into goes out with the new body's length only, never with the app's
old one beside it or instead of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from privguard.asgi import PrivacyMiddleware

SECRET = "asgi-header-case-test-secret-0123456789ab"
PAGE = b"<!doctype html><html><head><title>t</title></head><body><p>shop</p></body></html>"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def _page_app(name_case: str, chunks: int) -> Any:
    def name(text: str) -> bytes:
        return (text if name_case == "capitals" else text.lower()).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (name("Content-Type"), b"text/html; charset=utf-8"),
                    (name("Content-Length"), str(len(PAGE)).encode()),
                    (name("X-Shop"), b"1"),
                ],
            }
        )
        step = -(-len(PAGE) // chunks)
        parts = [PAGE[i : i + step] for i in range(0, len(PAGE), step)]
        for i, part in enumerate(parts):
            more = i < len(parts) - 1
            await send({"type": "http.response.body", "body": part, "more_body": more})

    return app


@pytest.mark.parametrize("name_case", ["capitals", "lower case"])
@pytest.mark.parametrize("chunks", [1, 3])
def test_an_injected_page_carries_its_new_length_only(name_case: str, chunks: int) -> None:
    mw = PrivacyMiddleware(_page_app(name_case, chunks), secret_key=SECRET)
    client = TestClient(mw, base_url="http://shop.example")  # no lifespan: a bare ASGI app
    response = client.get("/", headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    body = response.content
    assert b"privguard" in body and len(body) > len(PAGE)  # the banner went in
    lengths = [v for n, v in response.headers.raw if n.lower() == b"content-length"]
    assert lengths == [str(len(body)).encode()]
    assert response.headers["x-shop"] == "1"
