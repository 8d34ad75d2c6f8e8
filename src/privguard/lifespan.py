"""ASGI lifespan: handed to the app untouched; the ledger rides along on its events.

Decides what privguard does on the ``lifespan`` scope, and nothing else:

* ``lifespan.startup`` reaches the app after a spool left by a previous run
  has been handed to the ledger writer (replayed in the background).
* Before the app's ``lifespan.shutdown.complete`` (or ``.failed``) goes out,
  every queued receipt is stored, or spooled when the database does not take
  it in time, so a server that stops after that message loses nothing.
* An exception of the app reaches the server exactly as it would without
  privguard -- also one raised before the app answered startup. A server
  cannot tell "no lifespan support" from "start-up broke" either way, and
  does what it does with the bare app (uvicorn's ``lifespan="auto"`` logs
  the error and serves without lifespan; ``"on"`` refuses to start).
  Without a lifespan shutdown, receipts are safe through the writer's
  journal and its exit flush (:mod:`privguard.ledger.writer`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privguard.runtime import Runtime

__all__ = ["run_lifespan"]

# the ASGI types (also the ASGI adapter's)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("privguard")


async def _in_thread(fn: Callable[[], object]) -> None:
    """Run a blocking call in a worker thread of the running event loop's library.

    anyio (Starlette's, FastAPI's) serves asyncio and trio alike; without it
    the server is asyncio's.
    """
    try:
        from anyio import to_thread
    except ImportError:
        await asyncio.to_thread(fn)
    else:
        await to_thread.run_sync(fn)


async def _flush(runtime: Runtime) -> None:
    """Store (or spool) every queued receipt, off the event loop; never raises."""
    try:
        await _in_thread(runtime.close)
    except Exception:
        log.exception("privguard ledger: error while flushing at shutdown")


async def run_lifespan(
    runtime: Runtime, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run the app's lifespan; replay the spool at start-up, flush before shutdown completes."""
    answered = False  # the app answered startup: it speaks lifespan

    async def app_receive() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await _in_thread(runtime.replay_spool)
        return message

    async def app_send(message: Message) -> None:
        nonlocal answered
        kind = message["type"]
        if kind.startswith("lifespan.startup."):
            answered = True
        elif kind.startswith("lifespan.shutdown."):
            await _flush(runtime)
        await send(message)

    try:
        await app(scope, app_receive, app_send)
    except BaseException:
        if answered:  # requests were served: what they queued must not wait for exit
            await _flush(runtime)
        raise  # as the bare app would: the server decides what a failed lifespan means
    await _flush(runtime)  # an app that returned without waiting for shutdown
