"""gunicorn server hooks: no receipt is lost when a worker exits.

Each worker's ledger writer stores receipts from a background thread. On a
graceful stop, gunicorn runs ``worker_exit`` in the worker; on a timeout it
runs ``worker_abort`` (SIGABRT, shortly before the worker is killed). Both
hooks below store what is queued -- waiting a few seconds for the database --
and spool the rest; the next start replays the spool exactly once. Interpreter
exit does the same (``atexit``), so these hooks matter for the abort path and
for servers whose workers end without a normal exit.

In ``gunicorn.conf.py``::

    from privguard.gunicorn import worker_abort, worker_exit  # noqa: F401

(uvicorn workers under gunicorn also get the ASGI lifespan flush.) This module
does not import gunicorn.
"""

from __future__ import annotations

from typing import Any

from privguard.ledger.writer import SHUTDOWN_TIMEOUT, close_all

__all__ = ["worker_exit", "worker_abort", "worker_int", "on_exit"]


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn ``worker_exit``: store or spool this worker's queued receipts."""
    close_all(SHUTDOWN_TIMEOUT)


def worker_int(worker: Any) -> None:
    """gunicorn ``worker_int`` (SIGINT/SIGQUIT): the same, before the worker stops."""
    close_all(SHUTDOWN_TIMEOUT)


def worker_abort(worker: Any) -> None:
    """gunicorn ``worker_abort`` (timed out): spool quickly, the kill follows."""
    close_all(1.0)


def on_exit(server: Any) -> None:
    """gunicorn ``on_exit`` (the arbiter): a writer opened before the fork (``preload_app``)."""
    close_all(SHUTDOWN_TIMEOUT)
