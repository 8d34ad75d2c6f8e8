"""ASGI adapter: pure ASGI (no BaseHTTPMiddleware); lifespan passes through, websocket filtered.

Lifespan messages reach the app untouched, and the app's exceptions reach
the server; what privguard does on the way is in :mod:`privguard.lifespan`.

Use::

    from privguard.asgi import PrivacyMiddleware
    app.add_middleware(PrivacyMiddleware, secret_key=...)

``http.response.start`` is held back only when the response is HTML that gets
the banner, and only until the first body message; everything else streams
as it comes. The context is stored at ``scope["privguard"]``. A websocket
handshake (``websocket.accept``, or a denial through
``websocket.http.response.start``) has its ``Set-Cookie`` filtered by the same
rule as an HTTP response; lifespan passes through.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from privguard._adapter import (
    HTML_VARY,
    MAX_BUFFER,
    body_changed,
    consulted_names,
    csp_nonce,
    html_vary,
    note_compressed_html,
    should_inject,
)
from privguard.context import CONTEXT_KEY, PrivacyContext, new_context
from privguard.core.decision import Decision
from privguard.core.request import RequestView
from privguard.core.response import (
    FilterResult,
    changed_headers,
    content_length,
    filter_headers,
    filter_raw_cookies,
    filter_raw_headers,
    quick_headers,
    without_length,
)
from privguard.endpoints import MAX_BODY, EndpointResponse, handle_endpoint, signal_withdrawal
from privguard.lifespan import ASGIApp, Message, Receive, Scope, Send, run_lifespan
from privguard.runtime import Runtime, build_settings
from privguard.settings import Settings

__all__ = ["PrivacyMiddleware"]

log = logging.getLogger("privguard")


def _decode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]


class PrivacyMiddleware:
    """privguard for an ASGI app.

    :param app: the ASGI application.
    :param settings: a ready :class:`~privguard.Settings` (or pass options as keywords).
    :param options: any option of :class:`~privguard.Settings`.
    """

    def __init__(self, app: ASGIApp, settings: Settings | None = None, **options: Any) -> None:
        self.app = app
        self.settings = build_settings(settings, options)
        self.runtime = Runtime(self.settings)
        # raw header name -> its str form, so a request decodes only the values it keeps
        self._wanted = {n.encode("latin-1"): n for n in consulted_names(self.runtime)}
        self._wanted[b"host"] = "host"
        # the decision memo's header inputs, in the scope's own (latin-1 bytes) form
        self._key_headers = tuple(n.encode("latin-1") for n in self.runtime.decisions.headers)
        self._gated = self.runtime.decisions.gated

    def view(self, scope: Scope, fields: dict[bytes, bytes] | None = None) -> RequestView:
        """The request's facts, read from the scope's header list in one pass.

        ``fields``: the header list as a dict, when it has no repeated field (the
        fast lane made it already): then only the consulted names are looked up.
        """
        wanted = self._wanted
        headers: dict[str, str] = {}
        if fields is not None:
            headers = {
                name: value.decode("latin-1")
                for raw, value in fields.items()
                if (name := wanted.get(raw)) is not None
            }
            return self._view(scope, headers)
        for raw_name, raw_value in scope.get("headers", ()):
            name = wanted.get(raw_name)
            if name is not None:
                if name in headers:  # repeated fields joined in order (RFC 9110 §5.3)
                    value = raw_value.decode("latin-1")
                    if name == "host":
                        headers[name] = value  # the last one, as before
                    else:
                        sep = "; " if name == "cookie" else ", "
                        headers[name] = headers[name] + sep + value
                else:
                    headers[name] = raw_value.decode("latin-1")
        return self._view(scope, headers)

    @staticmethod
    def _view(scope: Scope, headers: dict[str, str]) -> RequestView:
        host = headers.pop("host", "") or _server_host(scope)
        client = scope.get("client")
        path, query = _path_query(scope)
        return RequestView(
            scope.get("method", "GET"),
            path,
            scope.get("scheme", "http"),
            host,
            client[0] if client else None,
            headers,
            query,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stype = scope["type"]
        if stype != "http":
            if stype == "websocket":  # the handshake's Set-Cookie goes through the same rule
                ws_view = self.view(scope)
                ws_decision = self.runtime.decide(ws_view)
                ws_send = functools.partial(self._ws_send, send, ws_decision, ws_view.path)
                await self.app(scope, receive, ws_send)
                return
            if stype == "lifespan":  # privguard.lifespan: passed through, ledger flushed
                await run_lifespan(self.runtime, self.app, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        # A returning visitor's decision is memoised: its key is read straight from the
        # header list, and the request's view is only built when something needs it.
        headers = scope.get("headers", ())
        if type(headers) is not list:
            headers = list(headers)  # an iterable is read once
            scope["headers"] = headers
        fields = dict(headers)  # cheaper than a comprehension (cachegrind: -2k instructions)
        if len(fields) != len(headers):  # repeated fields (those are joined: the view)
            await self._call(scope, receive, send, None, None)
            return
        client = scope.get("client")
        path = scope.get("path")
        key = (
            client[0] if client else None,
            scope.get("scheme", "http"),
            path if self._gated else None,
            tuple(map(fields.get, self._key_headers)),
        )
        # The usual request takes the short way: a memoised decision, not privguard's own
        # path, no age gate, no withdrawal signal (Runtime.usual). The rest (a decision
        # to make, an endpoint, ...) takes _call.
        decision = rt.usual(key, path or "/")
        if decision is None:
            await self._call(scope, receive, send, key, fields)
            return
        host = fields.get(b"host")
        language = fields.get(b"accept-language")
        ctx = scope[CONTEXT_KEY] = new_context(
            decision,
            rt,
            host.decode("latin-1") if host else _server_host(scope),
            None if language is None else language.decode("latin-1"),
        )
        responder = _Responder(self, send, None, decision, ctx, scope, fields)
        await self.app(scope, receive, responder.send)

    async def _call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: Any,
        known: dict[bytes, bytes] | None,
    ) -> None:
        """:meth:`__call__` for the rest: a decision to make, privguard's own endpoints,
        the age gate, a withdrawal signal, a header list with repeated fields (``key``
        and ``known`` None: the view joins them; else the header list as a dict)."""
        rt = self.runtime
        view: RequestView | None = None
        found = None if key is None else rt.cached(key)
        if found is None:
            view = self.view(scope, known)
            found = rt.decide(view, key)
        decision = found
        if view is None:
            host = known.get(b"host") if known is not None else None
            language = known.get(b"accept-language") if known is not None else None
            ctx = new_context(
                decision,
                rt,
                host.decode("latin-1") if host else _server_host(scope),
                None if language is None else language.decode("latin-1"),
            )
        else:
            ctx = new_context(decision, rt, view.host, view.headers.get("accept-language"))
        if rt.is_endpoint(scope.get("path") or "/"):
            view = view or self.view(scope, known)
            body = await _read_body(receive) if rt.reads_body(view) else b""
            answer = handle_endpoint(rt, view, decision, body)
            if answer is not None:
                await self._answer(send, view, decision, answer, changed=False)
                return
        scope[CONTEXT_KEY] = ctx
        if decision.age_gated:
            view = view or self.view(scope, known)
            lang = rt.negotiate(view)
            answer = rt.age_gate_response(view, decision, lang, csp_nonce(self.runtime, scope))
            await self._answer(send, view, decision, answer, changed=True)
            return
        responder = _Responder(self, send, view, decision, ctx, scope, known)
        await self.app(scope, receive, responder.send)

    async def _ws_send(self, send: Send, decision: Decision, path: str, message: Message) -> None:
        """Filter a websocket handshake: ``accept`` headers, or the denial response."""
        mtype = message["type"]
        if mtype == "websocket.accept":
            headers = message.get("headers")
            if headers:
                kept, dropped = filter_raw_cookies(headers, decision, self.settings)
                if dropped:
                    self.runtime.report_dropped(dropped, path)
                    message = {**message, "headers": kept}
        elif mtype == "websocket.http.response.start":
            result = filter_raw_headers(
                message.get("headers", ()), decision, self.settings, status=message["status"]
            )
            message = {**message, "headers": result.headers}
        await send(message)

    async def _answer(
        self,
        send: Send,
        view: RequestView,
        decision: Decision,
        answer: EndpointResponse,
        changed: bool,
    ) -> None:
        result = filter_headers(
            answer.headers,
            answer.decision or (replace(decision, expire=()) if not changed else decision),
            self.settings,
            extra_cookies=answer.cookies,
            changed=changed,
            status=answer.status,
        )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": _decode(result.headers),
            }
        )
        body = b"" if view.method == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _Responder:
    """Per-request state: filters the start message, injects into HTML bodies.

    An HTML start is held until the body shows what the injector did: a body
    privguard left as it was keeps the headers it would have had without a
    banner (no ``Cache-Control: private``, no ``Vary: Accept-Language``). A
    body buffered whole (known length) or ending in its first message is
    judged exactly; a longer stream is judged at its first chunk, as changed
    unless it is known not to be.
    """

    __slots__ = (
        "mw",
        "_send",
        "_view",
        "decision",
        "ctx",
        "scope",
        "start",
        "raw_headers",
        "result",
        "status",
        "injector",
        "buffer",
        "passthrough",
        "own_cookies",
        "fields",
        "sized",
    )

    def __init__(
        self,
        mw: PrivacyMiddleware,
        send: Send,
        view: RequestView | None,
        decision: Decision,
        ctx: PrivacyContext,
        scope: Scope,
        fields: dict[bytes, bytes] | None = None,
    ) -> None:
        self.mw = mw
        self._send = send
        self._view = view  # built on first use (see :meth:`view`)
        self.fields = fields  # the header list as a dict (no repeated field), if made
        self.decision = decision
        self.ctx = ctx
        self.scope = scope
        self.passthrough = True
        # start, raw_headers, status, injector and buffer: set in _start for a page
        # the injector works on (a JSON answer sets none of them)
        self.start: Message | None
        self.raw_headers: Any
        self.result: FilterResult[bytes]
        self.status: int
        self.injector: Any
        self.buffer: list[bytes] | None
        self.own_cookies: tuple[str, ...] = (
            signal_withdrawal(mw.runtime, self.view(), decision)
            if decision.signal_withdrawal
            else ()
        )

    def view(self) -> RequestView:
        """The request's view (a memo hit answers without one)."""
        view = self._view
        if view is None:
            view = self._view = self.mw.view(self.scope, self.fields)
        return view

    def send(self, message: Message) -> Awaitable[None]:
        """The ``send`` the app sees.

        A response privguard leaves unchanged costs one call: its start is
        filtered here and the server's own awaitable is returned, and its
        body messages go straight to the server's ``send``.
        """
        if self.passthrough:
            if message["type"] == "http.response.start":
                return self._start(message)
            return self._send(message)
        if message["type"] == "http.response.body":
            if self.start is None and self.buffer is None:
                # a stream whose start went out: the chunk through the injector, and the
                # server's own awaitable back (no coroutine of privguard's per chunk);
                # its last message with what the injector held and the banner
                injector = self.injector
                chunk = message.get("body", b"")
                if message.get("more_body", False):
                    message["body"] = injector.feed(chunk)
                else:
                    message["body"] = (injector.feed(chunk) if chunk else b"") + injector.finish()
                return self._send(message)
            return self._body(message)
        return self._held(message)

    async def _held(self, message: Message) -> None:
        """A message of an HTML response whose start is held (or being injected into)."""
        mtype = message["type"]
        if mtype == "http.response.body":
            await self._body(message)
            return
        if self.start is not None:
            # e.g. http.response.pathsend: the body is a file privguard cannot change,
            # so the held start goes out as an unchanged response, Content-Length included
            start = self.start
            start["headers"] = self._headers(False)
            self.start = None
            self.passthrough = True
            await self._send(start)
        await self._send(message)

    def _headers(self, changed: bool, drop_length: bool = False) -> list[tuple[bytes, bytes]]:
        """The start's headers once it is known whether the body was changed.

        The filter's first answer, adjusted (see :func:`changed_headers`); the app's
        headers are filtered again only when it sent its own ``Vary``/``Cache-Control``.
        """
        result = self.result
        if not changed:
            headers = result.headers
        else:
            found = changed_headers(result, self.decision, self.mw.settings, HTML_VARY, drop_length)
            if found is not None:
                return found
            headers = filter_raw_headers(
                self.raw_headers,
                self.decision,
                self.mw.settings,
                changed=True,
                extra_cookies=self.own_cookies,
                vary_extra=HTML_VARY,
                status=self.status,
                consulted=self.ctx.consulted,
            ).headers
        return without_length(headers) if drop_length else headers

    def _start(self, message: Message) -> Awaitable[None]:
        mw = self.mw
        rt = mw.runtime
        headers = message.get("headers", ())
        status = int(message["status"])
        if not self.own_cookies:
            quick = quick_headers(
                headers, self.decision, mw.settings, status, self.ctx.consulted, True
            )
            if quick is not None:  # the usual answer that is not a page (see quick_headers)
                message["headers"] = quick
                return self._send(message)
        result = filter_raw_headers(
            headers,
            self.decision,
            mw.settings,
            self.own_cookies,
            False,
            (),
            status,
            self.ctx.consulted,
        )
        if result.dropped and result.undeclared:
            rt.report_dropped(result.dropped, self.view().path)
        if status == 200 and rt.analytics is not None:
            rt.page_view(self.view(), self.decision, result.content_type)
        if not result.document:  # not a page: nothing to inject, nothing varies by browser
            message["headers"] = result.headers
            return self._send(message)
        inject = should_inject(
            self.scope.get("method", "GET"),
            status,
            result,
            self.decision,
            bool(self.scope.get("privguard.skip")) or self.ctx.placed,
        )
        if not inject:
            vary_extra = html_vary(False, result, self.decision)
            if vary_extra is not None:  # a bot's page: a browser's would differ
                result = filter_raw_headers(
                    headers,
                    self.decision,
                    mw.settings,
                    extra_cookies=self.own_cookies,
                    vary_extra=vary_extra,
                    status=status,
                    consulted=self.ctx.consulted,
                )
            note_compressed_html(rt, result)
            message["headers"] = result.headers
            return self._send(message)
        self.passthrough = False
        self.start = self.buffer = None
        self.raw_headers = headers
        self.result = result
        self.status = status
        scope = self.scope
        path, query = _path_query(scope)
        self.injector = rt.injector(
            self.ctx, path, query, csp_nonce(rt, scope), result.content_type
        )
        if result.cased:  # a name not in lower case (the ASGI spec asks for lower case)
            length = content_length(result.headers)
        else:
            length = dict(result.headers).get(b"content-length")
        self.sized = length is not None  # the app's Content-Length is replaced or dropped
        self.start = message
        if length is not None and length.isdigit() and int(length) <= MAX_BUFFER:
            self.buffer = []  # known, bounded length: recompute Content-Length
        return _held_back()

    async def _body(self, message: Message) -> None:
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        send = self._send
        if not more and self.start is not None and not self.buffer:  # the body in one message
            body = self.injector.whole(chunk)
            length = None if self.buffer is None else len(body)  # Content-Length as it came
            self.buffer = None
            await send(self._started(body_changed(self.injector), length))
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        out = self.injector.feed(chunk)
        if not more:
            out += self.injector.finish()
        if self.buffer is not None:
            self.buffer.append(out)
            if more:
                return
            body = b"".join(self.buffer)
            self.buffer = None
            await send(self._started(body_changed(self.injector), len(body)))
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if self.start is not None:  # streaming: send the held start with the first chunk
            # judged exactly when the body ends here; a longer stream may still change
            await send(self._started(more or body_changed(self.injector), None))
        message["body"] = out  # the app's message, passed on with the new body
        await send(message)

    def _started(self, changed: bool, length: int | None) -> Message:
        """The held start, its headers as the body turned out (no longer held)."""
        start = self.start
        assert start is not None
        self.start = None
        headers = self._headers(changed, self.sized)
        if length is not None:
            headers.append((b"content-length", b"%d" % length))
        start["headers"] = headers
        return start


async def _held_back() -> None:
    """What ``send`` returns for a start privguard holds until the body shows what it did."""


def _path_query(scope: Scope) -> tuple[str, str]:
    """The request's path and query string, as the request view has them."""
    query = scope.get("query_string")
    return scope.get("path") or "/", query.decode("latin-1") if query else ""


def _server_host(scope: Scope) -> str:
    """The host from the scope's ``server`` when the request sent no ``Host``."""
    server = scope.get("server")
    if not server:
        return ""
    return f"{server[0]}:{server[1]}" if server[1] not in (80, 443) else server[0]


async def _read_body(receive: Receive) -> bytes | None:
    """Up to MAX_BODY bytes of the request body; ``None`` when it is larger."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
