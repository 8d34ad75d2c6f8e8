"""ASGI lifespan: passed to the app untouched; the ledger is flushed before shutdown completes.

Driven with raw lifespan messages, as a server sends them, for an app that
speaks lifespan and for one that raises on it (privguard then answers).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from privguard.asgi import PrivacyMiddleware
from privguard.ledger import ReceiptDraft, open_ledger
from tests.ledger.conftest import make_draft

KEY = "lifespan-test-key-" + "x" * 32


async def drive(app: Any, before_shutdown: Any = None) -> list[dict[str, Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    await inbox.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))
        if message["type"] == "lifespan.startup.complete":
            if before_shutdown is not None:
                before_shutdown()
            await inbox.put({"type": "lifespan.shutdown"})

    await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 30)
    return sent


def submit(mw: PrivacyMiddleware, draft: ReceiptDraft) -> None:
    mw.runtime.ledger.submit(draft)


@pytest.mark.parametrize("speaks_lifespan", [True, False])
def test_lifespan_flushes_the_ledger(tmp_path: Path, speaks_lifespan: bool) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not speaks_lifespan:
            raise RuntimeError("only http here")
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete", "extra": "kept"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=url)
    drafts = [make_draft(n) for n in range(20)]
    sent = asyncio.run(drive(mw, lambda: [submit(mw, d) for d in drafts]))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    if speaks_lifespan:
        assert seen == ["lifespan.startup", "lifespan.shutdown"]
        assert sent[0]["extra"] == "kept"  # the app's own messages go out untouched
    with open_ledger(url) as ledger:  # stored before shutdown.complete went out
        assert [r.id for r in ledger.iter_receipts()] == [d.id for d in drafts]


def test_startup_replays_a_spool_left_by_a_previous_run(tmp_path: Path) -> None:
    from privguard.ledger.spool import Spool
    from privguard.ledger.writer import default_spool_path

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    drafts = [make_draft(n) for n in range(5)]
    spool_path = default_spool_path(url)
    assert spool_path is not None
    Spool(spool_path).append(drafts)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("only http here")

    mw = PrivacyMiddleware(app, secret_key=KEY, ledger=url)
    # replayed from start-up on, without a new choice and without a flush
    deadline = time.monotonic() + 20
    ids: list[str] = []
    while len(ids) < len(drafts) and time.monotonic() < deadline:
        time.sleep(0.1)
        with open_ledger(url) as ledger:
            ids = [r.id for r in ledger.iter_receipts()]
    assert ids == [d.id for d in drafts]
    asyncio.run(drive(mw))
