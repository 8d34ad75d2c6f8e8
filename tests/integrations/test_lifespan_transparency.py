"""ASGI lifespan through Starlette's TestClient, on asyncio and on trio.

privguard's lifespan hook replays the receipt spool at startup and flushes the
ledger at shutdown in a worker thread; that thread must be started through
the running event loop's own library (anyio serves trio too), not asyncio's.
Found by Starlette's own suite run behind privguard (docs/transparency.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from privguard.asgi import PrivacyMiddleware

SECRET = "s" * 40


def _app(events: list[str], fail_startup: bool = False) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        if fail_startup:
            raise RuntimeError("the database is down")
        yield
        events.append("shutdown")

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", home)], lifespan=lifespan)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_lifespan_runs_on_both_anyio_backends(tmp_path: Path, backend: str) -> None:
    events: list[str] = []
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = PrivacyMiddleware(_app(events), secret_key=SECRET, ledger=ledger)
    with TestClient(app, backend=backend) as client:
        assert client.get("/").text == "ok"
    assert events == ["startup", "shutdown"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_failed_startup_reaches_the_server_on_both_backends(backend: str) -> None:
    events: list[str] = []
    app = PrivacyMiddleware(_app(events, fail_startup=True), secret_key=SECRET, ledger=None)
    with pytest.raises(RuntimeError, match="the database is down"):
        with TestClient(app, backend=backend):
            pass  # pragma: no cover
    assert events == ["startup"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_app_that_raises_on_lifespan_reaches_the_server(tmp_path: Path, backend: str) -> None:
    """Before answering startup (Starlette's ``test_exception_in_middleware``)."""

    class Broken(Exception):
        pass

    async def app(scope: object, receive: object, send: object) -> None:
        raise Broken()

    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with pytest.raises(Broken):
        with TestClient(PrivacyMiddleware(app, secret_key=SECRET, ledger=ledger), backend=backend):
            pass  # pragma: no cover
