"""privguard: one line puts a shop's privacy policy on every response.

>>> import privguard
>>> app = privguard.protect(app, secret_key=...)          # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import Any

from privguard.context import PrivacyContext as PrivacyContext
from privguard.context import get_context as get_context
from privguard.errors import ConfigError as ConfigError
from privguard.errors import PrivguardError as PrivguardError
from privguard.settings import Settings as Settings

__all__ = ["protect", "get_context", "Settings", "ConfigError", "PrivguardError", "PrivacyContext"]
__version__ = "0.1.0"


def _is_asgi(app: Any) -> bool:
    """ASGI apps are async callables of (scope, receive, send)."""
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - the method itself, not callable()
    if call is not None and inspect.iscoroutinefunction(call):
        return True
    try:
        params = inspect.signature(app).parameters
    except (TypeError, ValueError):
        return False
    return len(params) == 3


def protect(app: Any, settings: Settings | None = None, **options: Any) -> Any:
    """Wrap ``app`` (WSGI or ASGI, detected) in privguard's middleware.

    A Flask app's ``wsgi_app`` is wrapped in place, so ``app.run()`` keeps working.
    """
    if _is_asgi(app):
        from privguard.asgi import PrivacyMiddleware as ASGIMiddleware

        return ASGIMiddleware(app, settings, **options)
    from privguard.wsgi import PrivacyMiddleware as WSGIMiddleware

    inner = getattr(app, "wsgi_app", None)
    if inner is not None and callable(inner) and hasattr(app, "config"):  # Flask
        app.wsgi_app = WSGIMiddleware(inner, settings, **options)
        return app
    return WSGIMiddleware(app, settings, **options)
