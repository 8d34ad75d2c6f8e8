"""Serve an in-process app on ``127.0.0.1`` for the browser audit (which needs a real URL).

WSGI apps run under ``wsgiref`` (threaded), ASGI apps under uvicorn. Both
listen on a free port of the loopback interface only, and stop on ``close``.
"""

from __future__ import annotations

import socketserver
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from privguard.audit.target import TargetError
from privguard.audit.transport import is_asgi

__all__ = ["LocalServer", "serve"]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class LocalServer:
    """A running local server: ``url`` (``http://127.0.0.1:PORT``) and ``close()``."""

    def __init__(self, url: str, stop: Any) -> None:
        self.url = url
        self._stop = stop

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        self._stop()


def _serve_wsgi(app: Any) -> LocalServer:
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="privguard-serve", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return LocalServer(f"http://127.0.0.1:{server.server_address[1]}", stop)


def _serve_asgi(app: Any, timeout: float) -> LocalServer:
    try:
        import uvicorn
    except ImportError:
        raise TargetError("serving an ASGI app for --browser needs uvicorn installed") from None
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="auto")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="privguard-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise TargetError("the ASGI app could not be served on 127.0.0.1")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return LocalServer(f"http://127.0.0.1:{port}", stop)


def serve(app: Any, timeout: float = 10) -> LocalServer:
    """Serve ``app`` (WSGI or ASGI) on a free loopback port."""
    return _serve_asgi(app, timeout) if is_asgi(app) else _serve_wsgi(app)
