"""privguard's endpoints as Django views, each delegating to ``handle_endpoint``.

They are ``csrf_exempt`` because privguard does its own check (same-origin ``Origin``
or ``Referer``, else the banner's CSRF token) -- Django's token is not in the banner.
They need :class:`privguard.django.PrivacyMiddleware`, which hands them its runtime
and the request's decision.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt

from privguard.django.middleware import RUNTIME_ATTR, endpoint_response
from privguard.endpoints import MAX_BODY, handle_endpoint
from privguard.runtime import GPC_PATH

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

__all__ = ["consent", "age", "asset", "gpc_json"]


def _read_body(request: HttpRequest) -> bytes | None:
    """Up to MAX_BODY bytes of the body; ``None`` when it is larger."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    try:
        data = request.body
    except Exception:  # body already consumed or too big for Django: treat as unreadable
        return None
    return None if len(data) > MAX_BODY else bytes(data)


def _answer(request: HttpRequest, name: str) -> HttpResponse:
    state = getattr(request, RUNTIME_ATTR, None)
    if state is None:
        raise ImproperlyConfigured(
            "privguard's views need 'privguard.django.PrivacyMiddleware' in MIDDLEWARE"
        )
    runtime, view, decision = state
    # the path the core expects, wherever the URLconf mounted these views
    path = name if name.startswith("/") else runtime.prefix_slash + name
    view = replace(view, path=path)
    body = _read_body(request) if view.method == "POST" else b""
    answer = handle_endpoint(runtime, view, decision, body)
    if answer is None:
        raise Http404("no such privguard endpoint")
    return endpoint_response(runtime, view, decision, answer)


@csrf_exempt
def consent(request: HttpRequest) -> HttpResponse:
    """``GET`` the visitor's state, ``POST`` a choice."""
    return _answer(request, "consent")


@csrf_exempt
def age(request: HttpRequest) -> HttpResponse:
    """``POST`` a birth date or year for the age gate."""
    return _answer(request, "age")


@csrf_exempt
def asset(request: HttpRequest, name: str) -> HttpResponse:
    """The banner's script and styles (``banner.<hash>.js`` / ``.css``)."""
    return _answer(request, name)


@csrf_exempt
def gpc_json(request: HttpRequest) -> HttpResponse:
    """``/.well-known/gpc.json`` (the middleware answers it first; this is for URLconfs)."""
    return _answer(request, GPC_PATH)
