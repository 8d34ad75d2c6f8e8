"""Structural guards of the hot path (no timings: those live in benchmarks/).

* non-HTML ASGI responses stream: the first body chunk reaches the server
  before the app produces the second (an asyncio.Event handshake proves it);
* non-HTML WSGI responses come back as the app's own iterable object;
* lifespan and websocket scopes reach the app untouched (same scope, receive, send);
* every per-instance cache has a bound;
* the ASGI middleware is pure ASGI: no starlette ``BaseHTTPMiddleware``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import privguard.asgi
from privguard.asgi import PrivacyMiddleware as AsgiMiddleware
from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.useragent import UserAgents
from privguard.wsgi import PrivacyMiddleware as WsgiMiddleware

SECRET = "structure-test-secret-key-0123456789abcdef"
OPTIONS: dict[str, Any] = {"secret_key": SECRET, "ledger": None}
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# a first-time visitor of unknown region: the banner is due, so only the
# content type keeps these responses from being held back
NOT_INJECTED = [
    pytest.param([(b"content-type", b"text/plain")], id="text-plain"),
    pytest.param([(b"content-type", b"application/json")], id="json"),
    pytest.param([(b"content-type", b"text/event-stream")], id="event-stream"),
    pytest.param(
        [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], id="gzipped-html"
    ),
]


def http_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"shop.example"),
            (b"user-agent", CHROME.encode()),
            (b"accept", b"text/html"),
        ],
        "client": ("203.0.113.7", 50123),
        "server": ("shop.example", 80),
    }


# -- ASGI: no buffering of non-HTML bodies ------------------------------------------------


@pytest.mark.parametrize("headers", NOT_INJECTED)
def test_asgi_streams_first_chunk_before_app_makes_second(headers: list[Any]) -> None:
    async def scenario() -> list[dict[str, Any]]:
        first_chunk_at_server = asyncio.Event()
        received: list[dict[str, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            # a middleware holding the chunk back would leave this wait unanswered
            await asyncio.wait_for(first_chunk_at_server.wait(), timeout=5)
            await send({"type": "http.response.body", "body": b"two", "more_body": False})

        async def server_send(message: dict[str, Any]) -> None:
            received.append(message)
            if message["type"] == "http.response.body" and message.get("body") == b"one":
                first_chunk_at_server.set()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await AsgiMiddleware(app, **OPTIONS)(http_scope(), receive, server_send)
        return received

    received = asyncio.run(scenario())
    assert [m["type"] for m in received] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert [m.get("body") for m in received[1:]] == [b"one", b"two"]


# -- WSGI: the app's own iterable comes back ----------------------------------------------


class TrackedBody:
    """A WSGI body whose identity, iteration and close() are observable."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Content-Type", "text/plain")], id="text-plain"),
        pytest.param([("Content-Type", "application/json")], id="json"),
        pytest.param([("Content-Type", "text/event-stream")], id="event-stream"),
        pytest.param(
            [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], id="gzipped-html"
        ),
    ],
)
def test_wsgi_returns_the_apps_own_iterable(headers: list[tuple[str, str]]) -> None:
    body = TrackedBody()
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [*headers, ("Set-Cookie", "_fbp=fb.1.2.3; Path=/")])
        return body

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
        started.append((status, list(response_headers)))
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80",
        "HTTP_HOST": "shop.example",
        "HTTP_USER_AGENT": CHROME,
        "REMOTE_ADDR": "203.0.113.7",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    result = WsgiMiddleware(app, **OPTIONS)(environ, start_response)
    assert result is body
    assert [name for name, _ in started[0][1] if name.lower() == "set-cookie"] == []


# -- ASGI: lifespan passes through untouched; a websocket's scope too (send is filtered) --


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
def test_non_http_scopes_reach_the_app_untouched(scope_type: str) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": f"{scope_type}.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope: dict[str, Any] = {"type": scope_type, "asgi": {"version": "3.0"}}
    if scope_type == "websocket":
        scope.update(path="/ws", headers=[(b"host", b"shop.example")], client=("1.2.3.4", 1))
    before = dict(scope)
    asyncio.run(AsgiMiddleware(app, **OPTIONS)(scope, receive, send))
    assert len(seen) == 1
    assert seen[0][0] is scope
    assert scope == before
    if scope_type == "websocket":
        assert seen[0][1] is receive
        # send filters the handshake's Set-Cookie (tests/e2e/test_websockets.py)
        assert seen[0][2] is not send


# -- bounded caches -------------------------------------------------------------------------


def test_consent_codec_cache_is_bounded() -> None:
    codec = ConsentCodec([SECRET.encode()], 3600)
    now = time.time()
    for i in range(50_000):
        if i % 50 == 0:  # valid, distinct cookies among the junk
            value = codec.dump(ConsentState("1", frozenset({Category.NECESSARY}), f"r{i}"))
            assert codec.load(value, now) is not None
        else:
            assert codec.load(f"eyJ2IjoiMSJ9.{i:x}.not-a-signature", now) is None
    assert 0 < len(codec._cache) <= codec._cache_size < 50_000


def test_user_agent_cache_is_bounded() -> None:
    default = AsgiMiddleware(_noop_app, **OPTIONS).runtime.lookups.user_agents
    assert isinstance(default, UserAgents)
    assert default._cached.cache_info().maxsize is not None
    small = UserAgents(cache_size=64)
    for i in range(500):
        small.parse(f"{CHROME} build/{i}")
    info = small._cached.cache_info()
    assert info.currsize <= 64
    assert info.misses == 500


def test_undeclared_cookie_report_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="privguard")
    runtime = AsgiMiddleware(_noop_app, **OPTIONS).runtime
    for i in range(12_000):
        runtime.report_dropped([(f"undeclared_{i}", None)], "/")
    assert 0 < len(runtime.undeclared_cookies) <= 10_000


def test_csrf_host_digest_cache_is_bounded() -> None:
    runtime = AsgiMiddleware(_noop_app, **OPTIONS).runtime
    for i in range(5_000):
        runtime.csrf_token(f"host-{i}.example")
    # cleared when it reaches 1,024 hosts, then the new host is added
    assert len(runtime._host_digests) <= 1_024


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


# -- pure ASGI ------------------------------------------------------------------------------


def test_asgi_middleware_is_not_base_http_middleware() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    assert not issubclass(AsgiMiddleware, BaseHTTPMiddleware)
    assert "BaseHTTPMiddleware" not in {cls.__name__ for cls in AsgiMiddleware.__mro__}
    tree = ast.parse(inspect.getsource(privguard.asgi))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m == "starlette" or m.startswith("starlette.")}


def test_importing_the_asgi_adapter_loads_no_starlette() -> None:
    code = "import sys, privguard.asgi; print(sorted(m for m in sys.modules if 'starlette' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
