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
  Vary and Cache-Control are merged as for every other adapter (``Vary: Cookie``
  and the signal headers also on a non-document response when the view read the
  consent, ``request.privguard.allows(...)`` and the like);
* injects the banner into non-streaming HTML ``response.content``. The banner
  language is negotiated only where text is shown: the injected banner, the age
  page, ``{% privguard_banner %}``.

Put it first in ``MIDDLEWARE`` (after ``SecurityMiddleware`` at most) so that it sees
the cookies every other middleware sets. ``"privguard.django"`` must be in
``INSTALLED_APPS`` (its template tags and system checks); without it the middleware
refuses to start with ``ImproperlyConfigured``.

Every response that comes back from ``get_response`` is filtered -- privguard's own
endpoint views included, since the middleware listed after privguard may add cookies
to them. Only what the middleware answers itself, without calling ``get_response``
(``gpc.json``, the age form), leaves untouched.

The middleware runs in both of Django's modes, like Django's own: under WSGI it is a
plain callable; under ASGI (an async ``get_response``) it is a coroutine function, so
no request pays a thread hop for privguard. Its own work is CPU only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from http.cookies import Morsel, SimpleCookie
from typing import TYPE_CHECKING, Any

from privguard._adapter import csp_nonce, html_vary, note_compressed_html, should_inject
from privguard.context import CONTEXT_KEY, PrivacyContext, new_context
from privguard.core.cookies import set_cookie_name
from privguard.core.decision import Decision
from privguard.core.request import RequestView
from privguard.core.response import FilterResult, filter_headers
from privguard.endpoints import EndpointResponse, handle_endpoint, signal_withdrawal
from privguard.runtime import GPC_PATH, Runtime
from privguard.settings import Settings
from privguard.wsgi import environ_keys, view_from_environ

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse, HttpResponseBase

__all__ = [
    "PrivacyMiddleware",
    "settings_from_django",
    "SETTING",
    "APP",
    "MIDDLEWARE_PATH",
    "RUNTIME_ATTR",
]

log = logging.getLogger("privguard")

#: Name of the Django setting holding privguard's options.
SETTING = "PRIVGUARD"
#: The entry ``INSTALLED_APPS`` needs (template tags, system checks).
APP = "privguard.django"
#: The entry in ``MIDDLEWARE``.
MIDDLEWARE_PATH = "privguard.django.PrivacyMiddleware"
_SECURITY_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
#: Request attribute carrying ``(runtime, view, decision)`` to privguard's views.
RUNTIME_ATTR = "_privguard_state"
#: Response attribute of privguard's own endpoint answers: the Decision they were
#: filtered for and the Set-Cookie values privguard wrote.
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


def require_app() -> None:
    """``ImproperlyConfigured`` unless ``"privguard.django"`` is in ``INSTALLED_APPS``."""
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if not apps.is_installed(APP):
        raise ImproperlyConfigured(
            f"privguard: add {APP!r} to INSTALLED_APPS (it provides the {{% load privguard %}} "
            "template tags and the start-up checks); without it every template that loads "
            "the tags fails"
        )


def django_referrer_policy() -> str | None:
    """The Referrer-Policy Django's ``SecurityMiddleware`` will set, if it is installed.

    privguard adds ``strict-origin-when-cross-origin`` only where nobody else chose a
    policy; placed after ``SecurityMiddleware`` it would otherwise add its default before
    Django's ``setdefault`` runs and replace the shop's ``SECURE_REFERRER_POLICY``.
    """
    from django.conf import settings as django_settings

    if _SECURITY_MIDDLEWARE not in getattr(django_settings, "MIDDLEWARE", ()):
        return None
    policy = getattr(django_settings, "SECURE_REFERRER_POLICY", None)
    if not policy:
        return None
    if isinstance(policy, str):
        return ",".join(v.strip() for v in policy.split(","))
    return ",".join(str(v).strip() for v in policy)


class PrivacyMiddleware:
    """privguard for Django (sync and async; ``settings.PRIVGUARD`` is read once)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.core.exceptions import MiddlewareNotUsed

        settings = settings_from_django()
        if settings is None:
            raise MiddlewareNotUsed("privguard is disabled (PRIVGUARD['enabled'] is False)")
        require_app()
        self.get_response = get_response
        self.settings = settings
        self.runtime = Runtime(settings)
        self._environ_keys = environ_keys(self.runtime)
        self._referrer_policy = django_referrer_policy()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def view(self, request: HttpRequest) -> RequestView:
        """The request's facts, read from ``request.META`` like the WSGI adapter does."""
        view = view_from_environ(request.META, self._environ_keys)
        scheme = request.scheme
        path = request.path_info or "/"
        if scheme != view.scheme or path != view.path:
            view = replace(view, scheme=scheme or "http", path=path)
        return view

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        before = self._before(request)
        if isinstance(before, tuple):
            response = self.get_response(request)
            self._after(request, response, *before)
            return response
        return before

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        before = self._before(request)
        if isinstance(before, tuple):
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
            get_response = self.get_response
            response = await get_response(request)
            self._after(request, response, *before)
            return response
        return before

    def _before(
        self, request: HttpRequest
    ) -> tuple[RequestView, Decision, PrivacyContext] | tuple[None, None, None] | HttpResponseBase:
        """Decide; privguard's own answer, or what :meth:`_after` needs."""
        rt = self.runtime
        view = self.view(request)
        try:
            decision = rt.decide(view)
        except Exception:  # pragma: no cover - decide() is total; never 500 the shop
            log.exception("privguard could not decide; passing the request through")
            return (None, None, None)
        if view.path == GPC_PATH:
            answer = handle_endpoint(rt, view, decision, b"")
            if answer is not None:
                return endpoint_response(rt, view, decision, answer)
        # the banner language is negotiated only where text is shown (banner, age page, tag)
        ctx = new_context(decision, rt, view.host, view.header("accept-language"))
        request.privguard = ctx
        request.META[CONTEXT_KEY] = ctx
        setattr(request, RUNTIME_ATTR, (rt, view, decision))
        if decision.age_gated and not rt.is_endpoint(view.path):
            lang = rt.negotiate(view)
            answer = rt.age_gate_response(view, decision, lang, csp_nonce(rt, request.META))
            result = filter_headers(answer.headers, decision, self.settings, changed=True)
            return _build_response(answer.status, result, answer.body, decision)
        return (view, decision, ctx)

    def _after(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        view: RequestView | None,
        decision: Decision | None,
        ctx: PrivacyContext | None,
    ) -> None:
        if view is None or decision is None or ctx is None:
            return
        done = getattr(response, _DONE_ATTR, None)
        if done is not None:
            # privguard's own endpoint answer, back through the middleware listed after
            # privguard: what they added is filtered for the answer's decision
            _refilter(response, done[0], done[1], self.settings)
            return
        if self._referrer_policy is not None and not response.has_header("Referrer-Policy"):
            response.headers["Referrer-Policy"] = self._referrer_policy
        self._filter(request, response, view, decision, ctx)

    def _filter(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        view: RequestView,
        decision: Decision,
        ctx: PrivacyContext,
    ) -> None:
        """Filter ``response`` in place; ``ctx.consulted``: the view read the visitor's
        consent; ``ctx.placed``: the template placed the banner itself (``ctx.banner()``)."""
        rt = self.runtime
        consulted = ctx.consulted
        pairs = list(response.items())
        originals: dict[str, tuple[str, Morsel[str]]] = {}
        for key, morsel in response.cookies.items():
            line = morsel.OutputString()
            originals[line] = (key, morsel)
            pairs.append(("Set-Cookie", line))
        own = signal_withdrawal(rt, view, decision) if decision.signal_withdrawal else ()
        status = response.status_code
        result = filter_headers(
            pairs, decision, self.settings, extra_cookies=own, status=status, consulted=consulted
        )
        if result.undeclared:
            rt.report_dropped(result.dropped, view.path)
        if status == 200 and rt.analytics is not None:
            rt.page_view(view, decision, result.content_type)
        inject = not response.streaming and should_inject(
            view.method,
            status,
            result,
            decision,
            bool(request.META.get(_SKIP_KEY)) or ctx.placed,
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
                status=status,
                consulted=consulted,
            )
        _write_headers(response, result, originals)
        if inject:
            dj_response: HttpResponse = response
            nonce = csp_nonce(rt, request.META)
            injector = rt.injector(ctx, view.path, view.query, nonce, result.content_type)
            body = injector.whole(dj_response.content)
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


def _build_response(
    status: int, result: FilterResult[str], body: bytes, decision: Decision
) -> HttpResponse:
    from django.http import HttpResponse

    response = HttpResponse(body, status=status)
    _write_headers(response, result, {})
    own = frozenset(v for n, v in result.headers if n.lower() == "set-cookie")
    setattr(response, _DONE_ATTR, (decision, own))
    return response


def _refilter(
    response: HttpResponseBase, decision: Decision, own: frozenset[str], settings: Settings
) -> None:
    """Drop the cookies that middleware after privguard added to one of its answers."""
    foreign = {
        key: morsel for key, morsel in response.cookies.items() if morsel.OutputString() not in own
    }
    if not foreign:
        return
    pairs = [("Set-Cookie", morsel.OutputString()) for morsel in foreign.values()]
    kept = filter_headers(pairs, replace(decision, expire=()), settings).headers
    passed = {value for name, value in kept if name == "Set-Cookie"}
    for key, morsel in foreign.items():
        if morsel.OutputString() not in passed:
            del response.cookies[key]


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
    body = b"" if view.method == "HEAD" else answer.body
    return _build_response(answer.status, result, body, answer.decision or decision)
