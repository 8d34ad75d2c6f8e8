"""WSGI adapter: wraps ``start_response``; the body is untouched unless injecting.

Use::

    from privguard.wsgi import PrivacyMiddleware
    app.wsgi_app = PrivacyMiddleware(app.wsgi_app, secret_key=...)

For each request it builds a :class:`~privguard.core.request.RequestView`,
calls :func:`~privguard.core.decision.decide`, answers privguard's own
endpoints, stores the :class:`~privguard.context.PrivacyContext` at
``environ["privguard"]``, filters the app's headers and -- only for HTML that
needs it -- injects the banner before ``</body>``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

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
from privguard.core.request import RequestView, environ_key
from privguard.core.response import (
    FilterResult,
    changed_headers,
    content_length,
    filter_headers,
    quick_headers,
    without_length,
)
from privguard.endpoints import MAX_BODY, handle_endpoint, signal_withdrawal
from privguard.runtime import Runtime, build_settings
from privguard.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["PrivacyMiddleware"]

log = logging.getLogger("privguard")


class PrivacyMiddleware:
    """privguard for a WSGI app.

    :param app: the WSGI application.
    :param settings: a ready :class:`~privguard.Settings` (or pass options as keywords).
    :param options: any option of :class:`~privguard.Settings`.
    """

    def __init__(self, app: WSGIApplication, settings: Settings | None = None, **options: Any):
        self.app = app
        self.settings = build_settings(settings, options)
        self.runtime = Runtime(self.settings)
        self._environ_keys = environ_keys(self.runtime)
        # the decision memo's header inputs, as environ keys
        self._key_keys = tuple(map(environ_key, self.runtime.decisions.headers))
        self._gated = self.runtime.decisions.gated

    def view(self, environ: WSGIEnvironment) -> RequestView:
        """The request's facts, read from the environ in one pass."""
        return view_from_environ(environ, self._environ_keys)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rt = self.runtime
        get = environ.get
        # A returning visitor's decision is memoised: its key is read straight from the
        # environ, and the request's view is only built when something needs it.
        key = (
            get("REMOTE_ADDR"),
            get("wsgi.url_scheme", "http"),
            get("PATH_INFO") if self._gated else None,
            tuple(map(get, self._key_keys)),
        )
        # The usual request takes the short way: a memoised decision, not privguard's own
        # path, no age gate, no withdrawal signal (Runtime.usual). The rest (a decision
        # to make, an endpoint, ...) takes _call.
        decision = rt.usual(key, get("PATH_INFO", "") or "/")
        if decision is None:
            return self._call(environ, start_response, key, rt.cached(key))
        ctx = environ[CONTEXT_KEY] = new_context(
            decision, rt, get("HTTP_HOST") or get("SERVER_NAME", ""), get("HTTP_ACCEPT_LANGUAGE")
        )
        responder: _Responder | None = None
        started = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # The usual answer (see quick_headers) takes the quick pass right here;
            # anything else goes to a _Responder made then, and so does every later call.
            nonlocal started, responder
            if responder is None:
                if started and exc_info is None:
                    raise RuntimeError("start_response called twice without exc_info")
                started = True
                code = _CODES.get(status)
                if code is None:
                    code = _status_code(status)
                quick = quick_headers(headers, ctx.decision, self.settings, code, ctx.consulted)
                if quick is not None:
                    return start_response(status, quick, exc_info)
                # the quick pass declined: the whole filter, once (later calls go to
                # the responder's start_response, which knows it has started)
                responder = _Responder(self, start_response, None, ctx.decision, ctx, environ)
                responder.started = True
                return responder.filtered_start(status, headers, exc_info, code)
            return responder.start_response(status, headers, exc_info)

        app_iter = self.app(environ, start)
        if responder is None:
            if started:
                return app_iter  # the common case: headers filtered, body untouched
            # an app that calls start_response lazily (a generator app, PEP 3333): the
            # responder decides when the first chunk arrives (``start`` goes to it then)
            responder = _Responder(self, start_response, None, decision, ctx, environ)
        elif responder.started and not responder.injecting:
            return app_iter  # headers filtered, body untouched
        # HTML to inject into, or a lazy app
        return responder.body(app_iter)

    def _call(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        key: Any,
        decision: Decision | None,
    ) -> Iterable[bytes]:
        """:meth:`__call__` for the rest: a decision to make (``decision`` None),
        privguard's own endpoints, the age gate, a withdrawal signal."""
        rt = self.runtime
        view: RequestView | None = None
        if decision is None:
            view = self.view(environ)
            try:
                decision = rt.decide(view, key)
            except Exception:  # pragma: no cover - decide() is total; never 500 the shop
                log.exception("privguard could not decide; passing the request through")
                return self.app(environ, start_response)
        if rt.is_endpoint(environ.get("PATH_INFO", "") or "/"):
            view = view or self.view(environ)
            body = _read_body(environ) if rt.reads_body(view) else b""
            answer = handle_endpoint(rt, view, decision, body)
            if answer is not None:
                result = filter_headers(
                    answer.headers,
                    answer.decision or replace(decision, expire=()),
                    self.settings,
                    extra_cookies=answer.cookies,
                    status=answer.status,
                )
                start_response(_status_line(answer.status), result.headers)
                return [] if view.method == "HEAD" else [answer.body]
        ctx = new_context(decision, rt, environ_host(environ), environ.get("HTTP_ACCEPT_LANGUAGE"))
        environ[CONTEXT_KEY] = ctx
        if decision.age_gated:
            view = view or self.view(environ)
            lang = rt.negotiate(view)
            answer = rt.age_gate_response(view, decision, lang, csp_nonce(self.runtime, environ))
            result = filter_headers(
                answer.headers, decision, self.settings, changed=True, status=answer.status
            )
            start_response(_status_line(answer.status), result.headers)
            return [answer.body]
        # a decision's first answer (no plan yet) or a withdrawal signal: the whole filter
        responder = _Responder(self, start_response, view, decision, ctx, environ)
        app_iter = self.app(environ, responder.start_response)
        if responder.started and not responder.injecting:
            return app_iter  # headers filtered, body untouched
        return responder.body(app_iter)  # HTML to inject into, or a lazy app


class _Responder:
    """One response: filters the app's start_response, injects into HTML bodies.

    The server's ``start_response`` is called at once for a response privguard
    leaves alone. For HTML that gets the banner it is called when the body
    shows what the injector did: a buffered body (known length) exactly; a
    stream at its first non-empty chunk, as changed unless the body ended there.
    """

    __slots__ = (
        "mw",
        "_start_response",
        "_view",
        "decision",
        "ctx",
        "environ",
        "own_cookies",
        "started",
        "injecting",
        "status",
        "headers",
        "code",
        "exc_info",
        "length",
        "result",
    )

    def __init__(
        self,
        mw: PrivacyMiddleware,
        start_response: StartResponse,
        view: RequestView | None,
        decision: Decision,
        ctx: PrivacyContext,
        environ: WSGIEnvironment,
    ) -> None:
        self.mw = mw
        self._start_response = start_response
        self._view = view  # built on first use (see :meth:`view`)
        self.decision = decision
        self.ctx = ctx
        self.environ = environ
        self.own_cookies = (
            signal_withdrawal(mw.runtime, self.view(), decision)
            if decision.signal_withdrawal
            else ()
        )
        self.started = False
        self.injecting = False
        # status, headers, exc_info and code are set by start_response; length and
        # result only for a page the injector works on (a JSON answer sets none)
        self.status: str
        self.headers: list[tuple[str, str]]
        self.code: int
        self.exc_info: Any
        self.length: int | None
        self.result: FilterResult[str]  # the filter's first answer (and content type)

    def view(self) -> RequestView:
        """The request's view (a memo hit answers without one)."""
        view = self._view
        if view is None:
            view = self._view = self.mw.view(self.environ)
        return view

    def _filter(self, changed: bool = False, vary_extra: tuple[str, ...] = ()) -> Any:
        return filter_headers(
            self.headers,
            self.decision,
            self.mw.settings,
            extra_cookies=self.own_cookies,
            changed=changed,
            vary_extra=vary_extra,
            status=self.code,
            consulted=self.ctx.consulted,
        )

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        """The ``start_response`` the app sees."""
        if self.started:
            if exc_info is None:
                raise RuntimeError("start_response called twice without exc_info")
            # a page held back for the banner was not sent yet: the app's new start (an
            # error, PEP 3333) replaces it, and is judged afresh
            self.injecting = False
        self.started = True
        code = _CODES.get(status)
        if code is None:
            code = _status_code(status)
        if not self.own_cookies:
            settings = self.mw.settings
            quick = quick_headers(headers, self.decision, settings, code, self.ctx.consulted)
            if quick is not None:  # the usual answer that is not a page (see quick_headers)
                return self._start_response(status, quick, exc_info)
        return self.filtered_start(status, headers, exc_info, code)

    def filtered_start(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any, code: int
    ) -> Any:
        """The rest of :meth:`start_response` once the quick pass declined: the whole
        filter, and for a page the banner's decision (``code``: the status line's)."""
        rt = self.mw.runtime
        self.status, self.headers, self.exc_info, self.code = status, headers, exc_info, code
        result = filter_headers(
            headers, self.decision, self.mw.settings, self.own_cookies, False, (), code,
            self.ctx.consulted,
        )  # fmt: skip
        if result.dropped and result.undeclared:
            rt.report_dropped(result.dropped, self.view().path)
        if code == 200 and rt.analytics is not None:
            rt.page_view(self.view(), self.decision, result.content_type)
        if not result.document:  # not a page: nothing to inject, nothing varies by browser
            return self._start_response(status, result.headers, exc_info)
        inject = should_inject(
            self.environ.get("REQUEST_METHOD", "GET"),
            code,
            result,
            self.decision,
            bool(self.environ.get("privguard.skip")) or self.ctx.placed,
        )
        self.injecting = inject
        if inject:
            self.result = result
            self.length = None
            length = content_length(result.headers)
            if length is not None and length.isdigit() and int(length) <= MAX_BUFFER:
                self.length = int(length)
            return _no_write
        note_compressed_html(rt, result)
        vary_extra = html_vary(False, result, self.decision)
        if vary_extra is not None:  # a bot's page: a browser's would differ
            result = self._filter(vary_extra=vary_extra)
        return self._start_response(status, result.headers, exc_info)

    def _send_start(self, changed: bool, length: int | None) -> None:
        """Call the server's start_response for an HTML response, changed or not.

        The filter's first answer, adjusted (see :func:`changed_headers`); the app's
        headers are filtered again only when it sent its own ``Vary``/``Cache-Control``.
        """
        headers = None
        if changed:
            settings = self.mw.settings
            headers = changed_headers(self.result, self.decision, settings, HTML_VARY, True)
        if headers is None:
            filtered = self._filter(changed, HTML_VARY).headers if changed else self.result.headers
            headers = without_length(filtered)
        if length is not None:
            headers.append(("Content-Length", str(length)))
        self._start_response(self.status, headers, self.exc_info)

    def _injector(self) -> Any:
        rt = self.mw.runtime
        environ = self.environ
        path, query = _path_query(environ)
        return rt.injector(self.ctx, path, query, csp_nonce(rt, environ), self.result.content_type)

    def body(self, app_iter: Iterable[bytes]) -> Iterator[bytes]:
        """The response body: handed on, or through the injector."""
        try:
            chunks = iter(app_iter)
            injector: Any = None
            held: list[bytes] = []
            sent = False
            for chunk in chunks:
                if not self.injecting:  # a lazy app's plain response: hand the rest on
                    if not self.started:
                        raise RuntimeError("the WSGI app yielded before start_response")
                    yield chunk
                    yield from chunks
                    return
                if self.length is not None:  # buffered: judged once the body is complete
                    if chunk:
                        held.append(chunk)
                    continue
                if injector is None:
                    injector = self._injector()
                out = injector.feed(chunk)
                if out:
                    # a stream that may still change: private from here on
                    self._send_start(True, None)
                    sent = True
                    yield out
                    break
            if sent:  # the rest of the stream: each chunk through the injector
                feed = injector.feed
                for chunk in chunks:
                    out = feed(chunk)
                    if out:
                        yield out
            if not self.injecting:
                if not self.started:
                    raise RuntimeError("the WSGI app returned without calling start_response")
                return
            if injector is None:
                injector = self._injector()
            if self.length is not None:  # the body in one piece (the usual case), or the parts
                if len(held) == 1:
                    body = injector.whole(held[0])
                else:
                    body = b"".join([*[injector.feed(c) for c in held], injector.finish()])
                self._send_start(body_changed(injector), len(body))
                yield body
                return
            tail = injector.finish()
            if not sent:
                self._send_start(body_changed(injector), None)
            if tail:
                yield tail
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()


def environ_keys(runtime: Runtime) -> tuple[tuple[str, str], ...]:
    """``(environ key, header name)`` for every header privguard consults."""
    return tuple((environ_key(n), n) for n in consulted_names(runtime) if n != "content-type")


def environ_host(environ: Any) -> str:
    """The request's host: ``Host``, else the server name (PEP 3333)."""
    return environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")  # type: ignore[no-any-return]


def view_from_environ(environ: Any, keys: tuple[tuple[str, str], ...]) -> RequestView:
    """The request's facts from a WSGI environ (or Django's ``request.META``)."""
    headers = {n: environ[k] for k, n in keys if k in environ}
    ctype = environ.get("CONTENT_TYPE")
    if ctype:
        headers["content-type"] = ctype
    path, query = _path_query(environ)
    return RequestView(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=path,
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=environ_host(environ),
        peer=environ.get("REMOTE_ADDR"),
        headers=headers,
        query=query,
    )


def _path_query(environ: Any) -> tuple[str, str]:
    """The request's path and query string, as the request view has them."""
    return environ.get("PATH_INFO", "") or "/", environ.get("QUERY_STRING", "")


def _no_write(data: bytes) -> None:  # pragma: no cover - legacy write() unsupported when injecting
    raise RuntimeError("privguard: the WSGI write() callable is not supported for HTML pages")


def _read_body(environ: WSGIEnvironment) -> bytes | None:
    """Up to MAX_BODY bytes of the request body; ``None`` when it is larger."""
    try:
        length = max(0, int(environ.get("CONTENT_LENGTH") or 0))  # -1 must not read all
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    stream = environ.get("wsgi.input")
    if stream is None or (not length and not environ.get("wsgi.input_terminated")):
        return b""
    try:
        data = stream.read(min(length, MAX_BODY) if length else MAX_BODY + 1)
    except Exception:  # a broken or slow client: treat as empty, never a 500
        return b""
    if len(data) > MAX_BODY:
        return None
    return bytes(data)


#: status line -> its code, for the lines apps send (bounded: see _status_code)
_CODES: dict[str, int] = {}


def _status_code(status: str) -> int:
    """The code of a WSGI status line (0 when it has none), remembered for the next."""
    code = int(status[:3]) if status[:3].isdigit() else 0
    if len(_CODES) < 256:
        _CODES[status] = code
    return code


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"
