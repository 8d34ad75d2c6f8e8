"""Page tokens: their random part comes from the OS CSPRNG in batches; every nonce is
handed out once, across threads, and a forked worker never repeats its parent's."""

from __future__ import annotations

import os
import threading

from privguard.runtime import _NONCES, Runtime
from privguard.settings import Settings


def test_tokens_are_unique_and_valid_across_batches() -> None:
    rt = Runtime(Settings(secret_key="page-token-test-secret-0123456789abcdef"))
    tokens = [rt.csrf_token("shop.example") for _ in range(3 * _NONCES.BATCH + 7)]
    assert len(set(tokens)) == len(tokens)
    assert all(rt.view_token(t, "shop.example") is not None for t in tokens)
    assert rt.view_token(tokens[0], "other.example") is None


def test_threads_never_share_a_nonce() -> None:
    seen: list[bytes] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [_NONCES.take() for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8000
    assert len(set(seen)) == len(seen)
    assert all(len(n) == 11 for n in seen)


def test_a_forked_child_does_not_repeat_the_parents_next_nonces() -> None:
    _NONCES.take()  # a batch is buffered now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first nonces
        try:
            os.write(write, b"".join(_NONCES.take() for _ in range(5)))
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while len(child) < 55:
        part = os.read(read, 55)
        if not part:
            break
        child += part
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(_NONCES.take() for _ in range(5))
    assert len(child) == 55
    assert child != parent
    ours = {parent[i : i + 11] for i in range(0, 55, 11)}
    assert not ours & {child[i : i + 11] for i in range(0, 55, 11)}


def test_a_served_banner_carries_a_fresh_valid_token_per_page() -> None:
    """The banner's form token as Starlette serves the page: valid for the page's host
    only, different on every page, taken into the markup as it is (URL-safe base64)."""
    import re

    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from privguard.asgi import PrivacyMiddleware

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<html><head></head><body><p>shop</p></body></html>")

    mw = PrivacyMiddleware(
        Starlette(routes=[Route("/", page)]), secret_key="page-token-test-secret-0123456789abcdef"
    )
    client = TestClient(mw, base_url="http://shop.example")
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}
    tokens = []
    for _ in range(5):
        html = client.get("/", headers=browser).text
        found = re.findall(r'name="csrf_token" value="([^"]*)"', html)
        assert found, html[-400:]
        tokens.extend(found)
    assert len(set(tokens)) == 5  # one per page (the same on one page)
    rt = mw.runtime
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{36}", t) for t in tokens)
    assert all(rt.check_csrf(t, "shop.example") for t in tokens)
    assert not any(rt.check_csrf(t, "other.example") for t in tokens)
    assert rt.csrf_token_bytes("shop.example").decode("ascii") != tokens[-1]
