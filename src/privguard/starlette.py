"""Starlette and FastAPI helpers: the request's context in views, templates and dependencies.

The middleware itself is :class:`privguard.asgi.PrivacyMiddleware`::

    app.add_middleware(PrivacyMiddleware, secret_key=...)

This module only reads what it stored at ``scope["privguard"]``:

* :func:`get_context` -- the :class:`~privguard.PrivacyContext` of a request (or ``None``;
  the same function as :func:`privguard.get_context`);
* :func:`install` (alias :func:`templates_global`) -- every template rendered through a
  ``Jinja2Templates`` gets the variable ``privguard``, the current request's context,
  exactly as in Flask: ``{% if privguard.allows('marketing') %}``,
  and ``{{ privguard_banner() }}`` to place the banner yourself. Or pass
  :func:`context_processor` yourself:
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

from privguard.context import PrivacyContext
from privguard.context import get_context as get_context

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
#: Scope key that tells the middleware not to inject the banner.
SKIP_KEY = "privguard.skip"

_MISSING = (
    "privguard's context is missing: add privguard.asgi.PrivacyMiddleware to the app "
    "(app.add_middleware(PrivacyMiddleware, secret_key=...)) and make sure this path "
    "is not one of privguard's own endpoints"
)


def require_context(request: HTTPConnection | Any) -> PrivacyContext:
    """Like :func:`get_context`, but a :class:`RuntimeError` when the middleware is missing."""
    ctx = get_context(request)
    if ctx is None:
        raise RuntimeError(_MISSING)
    return ctx


def privguard_context(request: Request) -> PrivacyContext:
    """FastAPI dependency: ``ctx: PrivacyContext = Depends(privguard_context)``."""
    return require_context(request)


def context_processor(request: Request) -> dict[str, Any]:
    """Starlette template context processor: ``privguard`` and ``privguard_banner()``.

    ``privguard`` is the request's context (or ``None``); ``{{ privguard_banner() }}``
    places the banner where the template wants it and stops the middleware from
    injecting a second one before ``</body>``.
    """
    ctx = get_context(request)

    def privguard_banner(lang: str | None = None) -> str:
        if ctx is None:
            return ""
        request.scope[SKIP_KEY] = True  # placed by hand: no injected duplicate
        return ctx.banner(lang)

    return {TEMPLATE_NAME: ctx, "privguard_banner": privguard_banner}


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
