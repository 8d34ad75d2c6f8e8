"""Starlette and FastAPI helpers: the request's context in views, templates and dependencies.

The middleware itself is :class:`privguard.asgi.PrivacyMiddleware`::

    app.add_middleware(PrivacyMiddleware, secret_key=...)

This module only reads what it stored at ``scope["privguard"]``:

* :func:`get_context` -- the :class:`~privguard.PrivacyContext` of a request (or ``None``);
* :func:`install` (alias :func:`templates_global`) -- every template rendered through a
  ``Jinja2Templates`` gets the variable ``privguard``, the current request's context,
  exactly as in Flask: ``{% if privguard.allows('marketing') %}``,
  ``{{ privguard.banner() }}``. Or pass :func:`context_processor` yourself:
  ``Jinja2Templates(directory=..., context_processors=[context_processor])``;
* :func:`privguard_context` -- a FastAPI dependency::

      @app.get("/")
      def index(ctx: PrivacyContext = Depends(privguard_context)): ...

  It raises :class:`RuntimeError` when the middleware is not installed, so a
  forgotten ``add_middleware`` fails loudly instead of treating everyone as "no choice".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from privguard.context import CONTEXT_KEY, PrivacyContext

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection
    from starlette.templating import Jinja2Templates

__all__ = [
    "get_context",
    "require_context",
    "privguard_context",
    "context_processor",
    "install",
    "templates_global",
    "TEMPLATE_NAME",
]

#: Name of the template variable holding the request's context.
TEMPLATE_NAME = "privguard"

_MISSING = (
    "privguard's context is missing: add privguard.asgi.PrivacyMiddleware to the app "
    "(app.add_middleware(PrivacyMiddleware, secret_key=...)) and make sure this path "
    "is not one of privguard's own endpoints"
)


def get_context(request: HTTPConnection | Any) -> PrivacyContext | None:
    """The :class:`~privguard.PrivacyContext` of a Starlette request (or scope); else ``None``."""
    scope = request if isinstance(request, dict) else getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    ctx = scope.get(CONTEXT_KEY)
    return ctx if isinstance(ctx, PrivacyContext) else None


def require_context(request: HTTPConnection | Any) -> PrivacyContext:
    """Like :func:`get_context`, but a :class:`RuntimeError` when the middleware is missing."""
    ctx = get_context(request)
    if ctx is None:
        raise RuntimeError(_MISSING)
    return ctx


def privguard_context(request: Request) -> PrivacyContext:
    """FastAPI dependency: ``ctx: PrivacyContext = Depends(privguard_context)``."""
    return require_context(request)


def context_processor(request: Request) -> dict[str, PrivacyContext | None]:
    """Starlette template context processor: ``{"privguard": <context or None>}``."""
    return {TEMPLATE_NAME: get_context(request)}


def install(templates: Jinja2Templates) -> Jinja2Templates:
    """Give every template of ``templates`` the variable ``privguard``; returns ``templates``.

    Idempotent. The variable is ``None`` when the middleware did not run for the request.
    """
    processors = templates.context_processors
    if context_processor not in processors:
        processors.append(context_processor)
    return templates


#: Alias of :func:`install`.
templates_global = install
