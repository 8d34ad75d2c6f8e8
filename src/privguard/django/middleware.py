"""Django middleware: translates a Django request/response to privguard's core and back.

It adds no rule of its own. Per request it builds the same
:class:`~privguard.core.request.RequestView` as the WSGI adapter (from ``request.META``),
asks :meth:`privguard.runtime.Runtime.decide`, and then:

* answers ``/.well-known/gpc.json`` (the endpoints under ``endpoint_prefix`` are views,
  see :mod:`privguard.django.urls`);
* stores the :class:`~privguard.PrivacyContext` as ``request.privguard`` and
  ``request.META["privguard"]``;
* serves the age form (or the minors' page) on ``age_gate_paths``;
* filters the response with :func:`privguard.core.response.filter_headers`: cookies in
  ``response.cookies`` whose category is not allowed (or undeclared, when blocked) are
  removed, withdrawn cookies are expired, and Permissions-Policy, Referrer-Policy,
  Vary and Cache-Control are merged as for every other adapter;
* injects the banner into non-streaming HTML ``response.content``.

Put it first in ``MIDDLEWARE`` (after ``SecurityMiddleware`` at most) so that it sees
the cookies every other middleware sets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from http.cookies import Morsel, SimpleCookie
from typing import TYPE_CHECKING, Any

from privguard._adapter import csp_nonce, html_vary, note_compressed_html, should_inject
from privguard.context import CONTEXT_KEY, PrivacyContext
from privguard.core.cookies import set_cookie_name
from privguard.core.decision import Decision
from privguard.core.request import RequestView
from privguard.core.response import FilterResult, filter_headers
from privguard.endpoints import EndpointResponse, handle_endpoint, signal_withdrawal
from privguard.runtime import Runtime
from privguard.settings import Settings
from privguard.wsgi import environ_keys, view_from_environ

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse, HttpResponseBase

__all__ = ["PrivacyMiddleware", "settings_from_django", "SETTING", "RUNTIME_ATTR"]

log = logging.getLogger("privguard")

#: Name of the Django setting holding privguard's options.
SETTING = "PRIVGUARD"
#: Request attribute carrying ``(runtime, view, decision)`` to privguard's views.
RUNTIME_ATTR = "_privguard_state"
_DONE_ATTR = "_privguard_filtered"
_SKIP_KEY = "privguard.skip"


def settings_from_django() -> Settings | None:
    """privguard's Settings from ``settings.PRIVGUARD``; ``None`` when ``"enabled": False``.

    ``PRIVGUARD`` is a dict of options (or a ready :class:`~privguard.Settings`);
    ``secret_key`` falls back to Django's ``SECRET_KEY``.
    """
    from django.conf import settings as django_settings
    from django.core.exceptions import ImproperlyConfigured

    options = getattr(django_settings, SETTING, None)
    if isinstance(options, Settings):
        return options
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"settings.{SETTING} must be a dict of privguard options")
    values = dict(options)
    if not values.pop("enabled", True):
        return None
    if "secret_key" not in values and getattr(django_settings, "SECRET_KEY", None):
        values["secret_key"] = django_settings.SECRET_KEY
    return Settings(**values)


class PrivacyMiddleware:
    """privguard for Django (new-style middleware; ``settings.PRIVGUARD`` is read once)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        from django.core.exceptions import MiddlewareNotUsed

        settings = settings_from_django()
        if settings is None:
            raise MiddlewareNotUsed("privguard is disabled (PRIVGUARD['enabled'] is False)")
        self.get_response = get_response
        self.settings = settings
        self.runtime = Runtime(settings)
        self._environ_keys = environ_keys(self.runtime)

    def view(self, request: HttpRequest) -> RequestView:
        """The request's facts, read from ``request.META`` like the WSGI adapter does."""
        view = view_from_environ(request.META, self._environ_keys)
        scheme = request.scheme
        path = request.path_info or "/"
        if scheme != view.scheme or path != view.path:
            view = replace(view, scheme=scheme or "http", path=path)
        return view

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        rt = self.runtime
        view = self.view(request)
        try:
            decision = rt.decide(view)
        except Exception:  # pragma: no cover - decide() is total; never 500 the shop
            log.exception("privguard could not decide; passing the request through")
            return self.get_response(request)
        if view.path == "/.well-known/gpc.json":
            answer = handle_endpoint(rt, view, decision, b"")
            if answer is not None:
                return endpoint_response(rt, view, decision, answer)
        lang = rt.banner.negotiate(view.header("accept-language"))
        ctx = PrivacyContext(decision, rt, lang, view.host)
        request.privguard = ctx
        request.META[CONTEXT_KEY] = ctx
        setattr(request, RUNTIME_ATTR, (rt, view, decision))
        if decision.age_gated and not rt.is_endpoint(view.path):
            answer = rt.age_gate_response(view, decision, lang, csp_nonce(rt, request.META))
            result = filter_headers(answer.headers, decision, self.settings, changed=True)
            return _build_response(answer.status, result, answer.body)
        response = self.get_response(request)
        if getattr(response, _DONE_ATTR, False):
            return response
        self._filter(request, response, view, decision, lang)
        return response

    def _filter(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        view: RequestView,
        decision: Decision,
        lang: str,
    ) -> None:
        rt = self.runtime
        pairs = list(response.items())
        originals: dict[str, tuple[str, Morsel[str]]] = {}
        for key, morsel in response.cookies.items():
            line = morsel.OutputString()
            originals[line] = (key, morsel)
            pairs.append(("Set-Cookie", line))
        own = signal_withdrawal(rt, view, decision) if decision.signal_withdrawal else ()
        result = filter_headers(pairs, decision, self.settings, extra_cookies=own)
        status = response.status_code
        if result.dropped:
            rt.report_dropped(result.dropped, view.path)
        if status == 200 and rt.analytics is not None:
            rt.page_view(view, decision, result.content_type)
        inject = not response.streaming and should_inject(
            view.method, status, result, decision, bool(request.META.get(_SKIP_KEY))
        )
        if not inject:
            note_compressed_html(rt, result)
        vary_extra = html_vary(inject, result, decision)
        if vary_extra is not None:
            result = filter_headers(
                pairs,
                decision,
                self.settings,
                extra_cookies=own,
                changed=inject,
                vary_extra=vary_extra,
            )
        _write_headers(response, result, originals)
        if inject:
            dj_response: HttpResponse = response
            injector = rt.injector(decision, lang, view, csp_nonce(rt, request.META))
            body = injector.feed(dj_response.content) + injector.finish()
            dj_response.content = body
            if dj_response.has_header("Content-Length"):
                dj_response.headers["Content-Length"] = str(len(body))


class _SetCookieLine(Morsel):  # type: ignore[type-arg]
    """A ``Set-Cookie`` value privguard built (consent cookie, expiry), output verbatim."""

    def __init__(self, line: str) -> None:
        super().__init__()
        name = set_cookie_name(line)
        value = line.split(";", 1)[0].partition("=")[2]
        self._key = name
        self._value = value
        self._coded_value = value
        self._line = line

    def OutputString(self, attrs: Any = None) -> str:  # noqa: N802 - Morsel's API
        return self._line


def _write_headers(
    response: HttpResponseBase,
    result: FilterResult[str],
    originals: dict[str, tuple[str, Morsel[str]]],
) -> None:
    """Replace ``response``'s headers and cookies with the filtered ones, in order."""
    for name in list(response.headers):
        del response.headers[name]
    cookies: SimpleCookie = SimpleCookie()
    for name, value in result.headers:
        if name.lower() != "set-cookie":
            response.headers[name] = value
            continue
        original = originals.get(value)
        if original is not None:  # the app's own cookie, passed through untouched
            dict.__setitem__(cookies, original[0], original[1])
            continue
        morsel = _SetCookieLine(value)
        key = morsel.key
        n = 1
        while key in cookies:  # the same name on another domain or path
            key = f"{morsel.key}#{n}"
            n += 1
        dict.__setitem__(cookies, key, morsel)
    response.cookies = cookies


def _build_response(status: int, result: FilterResult[str], body: bytes) -> HttpResponse:
    from django.http import HttpResponse

    response = HttpResponse(body, status=status)
    _write_headers(response, result, {})
    setattr(response, _DONE_ATTR, True)
    return response


def endpoint_response(
    runtime: Runtime, view: RequestView, decision: Decision, answer: EndpointResponse
) -> HttpResponse:
    """A Django response for one of privguard's endpoint answers (already filtered)."""
    result = filter_headers(
        answer.headers,
        answer.decision or replace(decision, expire=()),
        runtime.settings,
        extra_cookies=answer.cookies,
    )
    return _build_response(answer.status, result, b"" if view.method == "HEAD" else answer.body)
