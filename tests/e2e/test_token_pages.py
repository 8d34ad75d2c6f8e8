"""Pages a template renders per request (a CSRF token in every form), through Starlette
(streamed) and Flask (one body), and under real servers answering many requests at once
(gunicorn's threads share the memo, uvicorn's event loop interleaves streams): each
answer carries its own request's token, its trackers held and the banner in, however
much of the scan is reused from another request; a tracker tag written where a token
was is held too."""

from __future__ import annotations

import itertools
import random
import re
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp

import privguard
from privguard.asgi import PrivacyMiddleware
from privguard.banner import HtmlInjector
from privguard.banner import inject as inject_module
from tests.appserver import AppServer
from tests.spy import spy

KEY = "token-pages-test-key-" + "x" * 32
ROW = "<div class='p'><a href='/p/1'>Product</a> <span>19,99 EUR</span></div>\n"
TRACKERS = (
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    "<script>var s=document.createElement('script');"
    "s.src='https://connect.facebook.net/en_US/fbevents.js';</script>"
)
#: a value as long as a token that brings a tracker of its own
TAG = '<script src="https://bat.bing.com/bat.js"></script>'.ljust(64)


def page(token: str) -> str:
    form = f"<form><input type='hidden' name='csrf' value='{token}'><button>Add</button></form>"
    head = f"<!doctype html><html><head><meta charset='utf-8'>{TRACKERS}"
    head += f'<meta name="csrf-token" content="{token}"></head><body><main>'
    return head + (form + ROW * 20) * 24 + "</main></body></html>"


def tokens() -> itertools.chain[str]:
    """Random tokens; the fifth request writes a tracker tag where the token goes."""
    rng = random.Random(7)
    first = [f"{rng.getrandbits(256):064x}" for _ in range(4)]
    return itertools.chain(first, [TAG], (f"{rng.getrandbits(256):064x}" for _ in range(99)))


def check(body: str, token: str) -> None:
    assert body.count('id="privguard-banner"') == 1
    assert body.index('id="privguard-banner"') < body.rindex("</body>")
    held = body.count('type="text/plain" data-privguard-category=')
    if token == TAG:  # every tag written is held: 2 in the head, one per token place
        assert body.count('src="https://bat.bing.com/bat.js"') == 25
        assert '<script src="https://bat.bing.com' not in body and held == 2 + 25
    else:  # this request's own token, everywhere it was written
        assert body.count(token) == 25 and held == 2


def starlette_shop(cut: Callable[[bytes], list[bytes]]) -> tuple[Starlette, list[str]]:
    """The page streamed by Starlette in the chunks ``cut`` makes of it, behind privguard;
    and the tokens written so far, in order."""
    written: list[str] = []
    source = tokens()

    async def shop(request: object) -> StreamingResponse:
        token = next(source)
        written.append(token)
        parts = cut(page(token).encode())

        async def chunks():  # type: ignore[no-untyped-def]
            for part in parts:
                yield part

        return StreamingResponse(chunks(), media_type="text/html")

    app = Starlette(routes=[Route("/", shop)])
    app.add_middleware(PrivacyMiddleware, secret_key=KEY, ledger=None)
    return app, written


def eighths(doc: bytes) -> list[bytes]:
    size = -(-len(doc) // 8)
    return [doc[i : i + size] for i in range(0, len(doc), size)]


def after_span_starts(doc: bytes) -> list[bytes]:
    """8 chunks, each but the last ending in the ``<s`` of a ``<span>``."""
    marks = [m.start() + 2 for m in re.finditer(rb"<span>", doc)]
    ends = [marks[len(marks) * i // 8] for i in range(1, 8)]
    parts = [doc[a:b] for a, b in zip([0, *ends], [*ends, len(doc)], strict=True)]
    assert all(part.endswith(b"<s") for part in parts[:-1])
    return parts


def test_a_streamed_token_page_through_starlette() -> None:
    app, written = starlette_shop(eighths)
    with TestClient(app) as client:
        for _ in range(8):
            check(
                client.get("/", headers={"user-agent": "Mozilla/5.0 Chrome/131.0"}).text,
                written[-1],
            )


def test_a_stream_cut_inside_tags_through_starlette(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream cut right after the ``<s`` of a ``<span>`` (bytes that may begin a
    ``<script``, held by the scan for the next chunk): every answer is right (its own
    token, the trackers held, one banner), the rendering that writes a tracker tag where
    the token goes included; once the page is learnt, only its head chunk and its
    ``</body>`` chunk pass through the tag stage."""
    stages = spy(monkeypatch, HtmlInjector, "_tag_stage")
    searches = spy(monkeypatch, inject_module, "_head_at")
    app, written = starlette_shop(after_span_starts)
    passes = []
    with TestClient(app) as client:
        for _ in range(9):
            del stages[:], searches[:]
            answer = client.get("/", headers={"user-agent": "Mozilla/5.0 Chrome/131.0"})
            check(answer.text, written[-1])
            passes.append(len(stages))
            assert len(searches) == 1  # the head chunk only, scanned or not
    assert written[4] == TAG  # scanned: a ``<`` where the token goes is never skipped
    assert passes[-2:] == [2, 2]


def test_a_token_page_in_one_body_through_flask() -> None:
    written: list[str] = []
    source = tokens()
    app = Flask(__name__)

    @app.get("/")
    def shop() -> str:
        written.append(next(source))
        return page(written[-1])

    privguard.protect(app, secret_key=KEY, ledger=None)
    client = TestApp(app, extra_environ={"HTTP_USER_AGENT": "Mozilla/5.0 Chrome/131.0"})
    for _ in range(8):
        check(client.get("/").text, written[-1])


#: the shop for the real servers: the page streamed in 8 chunks, its token also in a header
SHOP = """
import random
from flask import Flask, Response, stream_with_context
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
import privguard
from privguard.asgi import PrivacyMiddleware
from tests.e2e.test_token_pages import KEY, TAG, page

def render():
    token = TAG if random.random() < 0.1 else "%064x" % random.getrandbits(256)
    doc = page(token).encode()
    size = -(-len(doc) // 8)
    return token, [doc[i : i + size] for i in range(0, len(doc), size)]

flask_app = Flask(__name__)

@flask_app.get("/")
def shop():
    token, chunks = render()
    return Response(iter(chunks), mimetype="text/html", headers={"x-token": token.strip()})

privguard.protect(flask_app, secret_key=KEY, ledger=None)

async def asgi_shop(request):
    token, chunks = render()

    async def body():
        for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type="text/html", headers={"x-token": token.strip()})

asgi_app = Starlette(routes=[Route("/", asgi_shop)])
asgi_app.add_middleware(PrivacyMiddleware, secret_key=KEY, ledger=None)
"""


@pytest.mark.parametrize(
    ("server", "target", "extra"),
    [
        ("gunicorn", "shop:flask_app", ("--worker-class", "gthread", "--threads", "8")),
        ("uvicorn", "shop:asgi_app", ()),
    ],
)
def test_many_requests_at_once_under_a_real_server(
    tmp_path: Path, server: str, target: str, extra: tuple[str, ...]
) -> None:
    (tmp_path / "shop.py").write_text(textwrap.dedent(SHOP))
    app = AppServer(tmp_path, target, server=server, extra=extra).wait_ready()
    try:
        with httpx.Client(base_url=app.base, timeout=30) as client:

            def fetch(_: int) -> tuple[str, str]:
                answer = client.get("/", headers={"user-agent": "Mozilla/5.0 Chrome/131.0"})
                assert answer.status_code == 200
                return answer.headers["x-token"], answer.text

            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(fetch, range(240)))
    finally:
        app.stop()
    assert any(token == TAG.strip() for token, _ in answers)  # some brought a tracker
    for token, body in answers:
        check(body, TAG if token == TAG.strip() else token)
