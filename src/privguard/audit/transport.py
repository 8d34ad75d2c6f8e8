"""Transports: send one request to a WSGI app, an ASGI app or a URL, read the answer.

All three answer with a :class:`~privguard.testing.responses.ResponseData`
whose headers keep every ``Set-Cookie`` separately, and none follows
redirects or keeps cookies: the caller decides both. In-process requests come
from ``127.0.0.1`` (``REMOTE_ADDR`` / the ASGI ``client``), the address the
audited app must trust for the country header.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from privguard.testing.responses import ResponseData

__all__ = [
    "Transport",
    "WSGITransport",
    "ASGITransport",
    "HTTPTransport",
    "TransportError",
    "PEER",
    "is_asgi",
]

#: The address in-process requests come from.
PEER = "127.0.0.1"
_MAX_BODY = 8 * 1024 * 1024

Headers = Sequence[tuple[str, str]]


class TransportError(Exception):
    """The target could not be reached or did not answer in time."""


def is_asgi(app: Any) -> bool:
    """Is ``app`` an ASGI application (an async callable of scope, receive, send)?"""
    from privguard import _is_asgi

    return bool(_is_asgi(app))


class Transport:
    """Sends requests to one origin (``http://host[:port]``)."""

    origin: str = "http://localhost"

    def request(
        self, method: str, target: str, headers: Headers, body: bytes = b"", timeout: float = 10
    ) -> ResponseData:
        """Send one request; ``target`` is a path with an optional query."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the transport holds."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _app_error(method: str, target: str, exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    return TransportError(f"{method} {target}: the app raised {type(exc).__name__}: {exc}")


def _split_target(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path or "/", query


class WSGITransport(Transport):
    """Calls a WSGI app in-process (in a worker thread, so ``timeout`` holds).

    An exception raised by the app becomes a :class:`TransportError` (a server
    would have answered 500).
    """

    def __init__(self, app: Any, host: str = "localhost") -> None:
        self.app = app
        self.host = host
        self.origin = f"http://{host}"

    def _call(self, method: str, target: str, headers: Headers, body: bytes) -> ResponseData:
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        path, query = _split_target(target)
        builder = EnvironBuilder(
            path=path,
            query_string=query,
            method=method,
            headers=list(headers),
            data=body or None,
            base_url=self.origin,
            environ_base={"REMOTE_ADDR": PEER},
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, response_headers = run_wsgi_app(self.app, environ)
        chunks = []
        try:
            for chunk in app_iter:
                chunks.append(chunk)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return ResponseData(
            status=int(status.split(None, 1)[0]),
            headers=tuple(response_headers.to_wsgi_list()),
            body=b"".join(chunks),
            url=self.origin + target,
            request_headers={n.lower(): v for n, v in headers},
        )

    def request(
        self, method: str, target: str, headers: Headers, body: bytes = b"", timeout: float = 10
    ) -> ResponseData:
        # a daemon thread per request: an app that hangs must not hold the process at exit
        outcome: list[Any] = []

        def work() -> None:
            try:
                outcome.append(self._call(method, target, headers, body))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        thread = threading.Thread(target=work, name="privguard-wsgi", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            raise TransportError(f"{method} {target}: no answer within {timeout:g} s")
        if isinstance(outcome[0], BaseException):
            raise _app_error(method, target, outcome[0])
        return outcome[0]  # type: ignore[no-any-return]


class ASGITransport(Transport):
    """Calls an ASGI app in-process, on an event loop of its own (in a thread).

    The app's lifespan is started on first use (apps without lifespan support
    are fine) and shut down by :meth:`close`.
    """

    def __init__(self, app: Any, host: str = "localhost") -> None:
        self.app = app
        self.host = host
        self.origin = f"http://{host}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lifespan: tuple[asyncio.Queue[Any], asyncio.Future[Any]] | None = None
        self._state: dict[str, Any] = {}  # lifespan state, copied into each request's scope

    def _ensure_loop(self, timeout: float) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="privguard-asgi", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            self._run(self._start_lifespan(timeout), timeout + 1)
        return self._loop

    def _run(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransportError(f"no answer within {timeout:g} s") from None

    async def _start_lifespan(self, timeout: float) -> None:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})

        async def receive() -> Any:
            return await inbox.get()

        async def send(message: Any) -> None:
            await outbox.put(message)

        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException:  # an app without lifespan support may raise here
                pass
            finally:
                await outbox.put({"type": "lifespan.app-exited"})

        task = asyncio.ensure_future(run())
        try:
            message = await asyncio.wait_for(outbox.get(), timeout)
        except TimeoutError:
            task.cancel()
            return
        if message["type"] == "lifespan.startup.failed":
            raise TransportError(f"ASGI lifespan startup failed: {message.get('message', '')}")
        if message["type"] == "lifespan.startup.complete":
            self._lifespan = (inbox, task)

    async def _stop_lifespan(self) -> None:
        if self._lifespan is None:
            return
        inbox, task = self._lifespan
        await inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except TimeoutError:
            task.cancel()

    async def _call(self, method: str, target: str, headers: Headers, body: bytes) -> ResponseData:
        path, query = _split_target(target)
        from urllib.parse import unquote

        raw_headers = [(b"host", self.host.encode("latin-1"))]
        raw_headers += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": raw_headers,
            "client": (PEER, 50000),
            "server": (self.host, 80),
            "state": dict(self._state),
        }
        sent_body = False
        status = 0
        response_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_headers.extend(
                    (n.decode("latin-1"), v.decode("latin-1")) for n, v in message["headers"]
                )
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        if not status:
            raise TransportError(f"{method} {target}: the ASGI app sent no response")
        return ResponseData(
            status=status,
            headers=tuple(response_headers),
            body=b"".join(chunks),
            url=self.origin + target,
            request_headers={n.lower(): v for n, v in headers},
        )

    def request(
        self, method: str, target: str, headers: Headers, body: bytes = b"", timeout: float = 10
    ) -> ResponseData:
        self._ensure_loop(timeout)
        try:
            response: ResponseData = self._run(self._call(method, target, headers, body), timeout)
        except TransportError as exc:
            raise TransportError(f"{method} {target}: {exc}") from None
        except Exception as exc:  # the app raised
            raise _app_error(method, target, exc) from exc
        return response

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            self._run(self._stop_lifespan(), 6)
        except TransportError:
            pass

        async def _cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self._run(_cancel_rest(), 5)
        except TransportError:
            pass
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(5)
        loop.close()
        self._loop = None
        self._thread = None


class HTTPTransport(Transport):
    """Talks HTTP(S) to a live server (``http.client``; one connection per request)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"{base_url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.origin = f"{parts.scheme}://{parts.netloc}"

    def request(
        self, method: str, target: str, headers: Headers, body: bytes = b"", timeout: float = 10
    ) -> ResponseData:
        conn_class = (
            http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_class(self.netloc, timeout=timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read(_MAX_BODY)
            return ResponseData(
                status=response.status,
                headers=tuple(response.getheaders()),
                body=data,
                url=self.origin + target,
                request_headers={n.lower(): v for n, v in headers},
            )
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"{method} {self.origin}{target}: {exc}") from None
        finally:
            conn.close()
