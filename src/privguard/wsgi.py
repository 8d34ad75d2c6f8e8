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
    MAX_BUFFER,
    consulted_names,
    csp_nonce,
    html_vary,
    note_compressed_html,
    should_inject,
)
from privguard.context import CONTEXT_KEY, PrivacyContext
from privguard.core.request import RequestView
from privguard.core.response import filter_headers
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

    def view(self, environ: WSGIEnvironment) -> RequestView:
        """The request's facts, read from the environ in one pass."""
        return view_from_environ(environ, self._environ_keys)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rt = self.runtime
        view = self.view(environ)
        try:
            decision = rt.decide(view)
        except Exception:  # pragma: no cover - decide() is total; never let it 500 the shop
            log.exception("privguard could not decide; passing the request through")
            return self.app(environ, start_response)
        if rt.is_endpoint(view.path):
            body = _read_body(environ) if rt.reads_body(view) else b""
            answer = handle_endpoint(rt, view, decision, body)
            if answer is not None:
                result = filter_headers(
                    answer.headers,
                    answer.decision or replace(decision, expire=()),
                    self.settings,
                    extra_cookies=answer.cookies,
                )
                start_response(_status_line(answer.status), result.headers)
                return [] if view.method == "HEAD" else [answer.body]
        lang = rt.banner.negotiate(view.header("accept-language"))
        environ[CONTEXT_KEY] = PrivacyContext(decision, rt, lang, view.host, environ)
        if decision.age_gated:
            answer = rt.age_gate_response(view, decision, lang, csp_nonce(self.runtime, environ))
            result = filter_headers(answer.headers, decision, self.settings, changed=True)
            start_response(_status_line(answer.status), result.headers)
            return [answer.body]

        state: dict[str, Any] = {}
        own_cookies = signal_withdrawal(rt, view, decision) if decision.signal_withdrawal else ()

        def filtering_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            code = int(status[:3]) if status[:3].isdigit() else 0
            result = filter_headers(headers, decision, self.settings, extra_cookies=own_cookies)
            inject = should_inject(
                view.method, code, result, decision, bool(environ.get("privguard.skip"))
            )
            if not inject:
                note_compressed_html(rt, result)
            if result.dropped:
                rt.report_dropped(result.dropped, view.path)
            if code == 200 and rt.analytics is not None:
                rt.page_view(view, decision, result.content_type)
            vary_extra = html_vary(inject, result, decision)
            if vary_extra is not None:
                # re-filter: a changed body is private and depends on more headers
                result = filter_headers(
                    headers,
                    decision,
                    self.settings,
                    extra_cookies=own_cookies,
                    changed=inject,
                    vary_extra=vary_extra,
                )
            if inject:
                state["inject"] = (status, result.headers, exc_info)
                return _no_write
            return start_response(status, result.headers, exc_info)

        app_iter = self.app(environ, filtering_start_response)
        if "inject" not in state:
            return app_iter
        return self._inject(
            app_iter, state["inject"], start_response, decision, lang, view, environ
        )

    def _inject(
        self,
        app_iter: Iterable[bytes],
        started: tuple[str, list[tuple[str, str]], Any],
        start_response: StartResponse,
        decision: Any,
        lang: str,
        view: RequestView,
        environ: WSGIEnvironment,
    ) -> Iterable[bytes]:
        rt = self.runtime
        status, headers, exc_info = started
        nonce = csp_nonce(self.runtime, environ)
        injector = rt.injector(decision, lang, view, nonce)
        length = next((v for n, v in headers if n.lower() == "content-length"), None)
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        if length is not None and length.isdigit() and int(length) <= MAX_BUFFER:
            try:
                chunks = [injector.feed(chunk) for chunk in app_iter]
                chunks.append(injector.finish())
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
            body = b"".join(chunks)
            headers.append(("Content-Length", str(len(body))))
            start_response(status, headers, exc_info)
            return [body]
        start_response(status, headers, exc_info)
        return _stream(app_iter, injector)


def environ_keys(runtime: Runtime) -> tuple[tuple[str, str], ...]:
    """``(environ key, header name)`` for every header privguard consults."""
    return tuple(
        ("HTTP_" + n.upper().replace("-", "_"), n)
        for n in consulted_names(runtime)
        if n != "content-type"
    )


def view_from_environ(environ: Any, keys: tuple[tuple[str, str], ...]) -> RequestView:
    """The request's facts from a WSGI environ (or Django's ``request.META``)."""
    headers = {n: environ[k] for k, n in keys if k in environ}
    ctype = environ.get("CONTENT_TYPE")
    if ctype:
        headers["content-type"] = ctype
    return RequestView(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "") or "/",
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
        peer=environ.get("REMOTE_ADDR"),
        headers=headers,
        query=environ.get("QUERY_STRING", ""),
    )


def _stream(app_iter: Iterable[bytes], injector: Any) -> Iterator[bytes]:
    try:
        for chunk in app_iter:
            out = injector.feed(chunk)
            if out:
                yield out
        tail = injector.finish()
        if tail:
            yield tail
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()


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


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"
