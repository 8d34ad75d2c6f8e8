"""Real servers on 127.0.0.1 for end-to-end tests, and a raw HTTP/1.1 client.

uvicorn (ASGI, with websockets), wsgiref and werkzeug's development server
(WSGI, what ``run_simple`` starts) each run in a thread on a free port. The
raw client writes the request bytes itself, so a test can send what a browser
or an attacker sends (a UTF-8 ``Host``, non-ASCII cookie names) and read the
response headers exactly as the server wrote them.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn


@dataclass
class RawResponse:
    """Status, header pairs (latin-1 text, as sent) and body of one response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get_all(self, name: str) -> list[str]:
        """Every value of the header ``name`` (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        """The first value of the header ``name``, or ``None``."""
        values = self.get_all(name)
        return values[0] if values else None


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_asgi(app: Any) -> Iterator[int]:
    """uvicorn (websockets enabled) serving ``app``; yields the port."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ws="websockets-sansio", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


@contextmanager
def serve_wsgi(app: Any, server: str = "wsgiref") -> Iterator[int]:
    """``app`` on wsgiref's server or werkzeug's development server; yields the port."""
    httpd: Any
    if server == "wsgiref":
        httpd = make_server("127.0.0.1", 0, app, WSGIServer, _QuietHandler)
    elif server == "werkzeug":
        from werkzeug.serving import WSGIRequestHandler as WerkzeugHandler
        from werkzeug.serving import make_server as werkzeug_server

        class Quiet(WerkzeugHandler):
            def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
                pass

        httpd = werkzeug_server("127.0.0.1", 0, app, request_handler=Quiet)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(server)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


WSGI_SERVERS = ("wsgiref", "werkzeug")


def raw_request(
    port: int,
    method: str = "GET",
    target: str | bytes = "/",
    headers: Sequence[tuple[str | bytes, str | bytes]] = (),
    body: bytes = b"",
    host: str | bytes = "127.0.0.1",
    timeout: float = 10.0,
) -> RawResponse:
    """Send one HTTP/1.1 request as exactly these bytes; read the whole response.

    ``str`` parts are sent as UTF-8 (what a browser sends for an IDN typed
    without punycode, or a cookie name set by a script).
    """

    def raw(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode("utf-8")

    lines = [raw(method) + b" " + raw(target) + b" HTTP/1.1", b"Host: " + raw(host)]
    lines += [raw(n) + b": " + raw(v) for n, v in headers]
    if body or method == "POST":
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        payload = resp.read()
        pairs = list(resp.getheaders())
    return RawResponse(resp.status, pairs, payload)
