"""What is audited: a URL, or a ``module:app`` run in-process, and its privguard settings.

For ``module:app`` the privguard middleware is found by walking the wrappers
(``.app``, ``.wsgi_app``, ``.middleware_stack``, ``._app``, and Starlette's
``user_middleware`` list before its stack is built); its ``.settings``
classify the cookies. Without it (or for a URL without ``--settings``) the
built-in catalog is used.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privguard.audit.transport import (
    ASGITransport,
    HTTPTransport,
    Transport,
    TransportError,
    WSGITransport,
    is_asgi,
)

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = [
    "Target",
    "TargetError",
    "open_target",
    "load_object",
    "find_settings",
    "find_middleware",
]

_WRAPPER_ATTRS = ("app", "wsgi_app", "middleware_stack", "_app", "application", "handler")


class TargetError(Exception):
    """The target cannot be audited (bad input): one line for stderr."""


@dataclass(slots=True)
class Target:
    """An opened target: how to reach it and the settings that classify its cookies."""

    spec: str
    transport: Transport
    start_path: str
    settings: Settings | None
    app: Any = None
    kind: str = "url"  # url | wsgi | asgi

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted); the current directory is importable.

    ``module:create_app()`` calls an app factory without arguments, as
    ``flask --app`` and ``uvicorn --factory`` do.
    """
    module_name, sep, attr = spec.partition(":")
    factory = attr.endswith("()")
    if factory:
        attr = attr[:-2]
    if not sep or not module_name or not attr:
        raise TargetError(f"{spec!r} is not a URL or module:attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of the audited app is bad input
        raise TargetError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        if not callable(obj):
            raise TargetError(f"{module_name}:{attr} is not callable")
        try:
            obj = obj()
        except Exception as exc:  # the audited app's factory failing is bad input
            raise TargetError(
                f"{module_name}:{attr}() failed: {type(exc).__name__}: {exc}"
            ) from None
    return obj


def _walk(app: Any, depth: int = 12) -> Any:
    """Yield ``app`` and every object it wraps, breadth-first."""
    seen: set[int] = set()
    current = [app]
    for _ in range(depth):
        following = []
        for obj in current:
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield obj
            for attr in _WRAPPER_ATTRS:
                try:
                    inner = getattr(obj, attr, None)
                except Exception:  # properties of odd apps
                    continue
                if inner is not None and inner is not obj:
                    following.append(inner)
        current = following
        if not current:
            break


def find_middleware(app: Any) -> Any:
    """The privguard middleware (WSGI or ASGI) wrapped somewhere inside ``app``, or ``None``."""
    from privguard.settings import Settings

    for obj in _walk(app):
        if isinstance(getattr(obj, "settings", None), Settings) and hasattr(obj, "runtime"):
            return obj
    return None


def find_settings(app: Any) -> Settings | None:
    """The ``Settings`` of the privguard middleware wrapped somewhere inside ``app``."""
    middleware = find_middleware(app)
    if middleware is not None:
        return middleware.settings  # type: ignore[no-any-return]
    for obj in _walk(app):
        for entry in getattr(obj, "user_middleware", None) or ():  # Starlette, stack unbuilt
            found = _from_middleware_entry(entry)
            if found is not None:
                return found
    return None


def _from_middleware_entry(entry: Any) -> Settings | None:
    from privguard.asgi import PrivacyMiddleware as ASGIMiddleware
    from privguard.runtime import build_settings
    from privguard.wsgi import PrivacyMiddleware as WSGIMiddleware

    cls = getattr(entry, "cls", None)
    if not isinstance(cls, type) or not issubclass(cls, (ASGIMiddleware, WSGIMiddleware)):
        return None
    kwargs = dict(getattr(entry, "kwargs", None) or {})
    args = tuple(getattr(entry, "args", None) or ())
    settings = kwargs.pop("settings", args[0] if args else None)
    return build_settings(settings, kwargs)


def _load_settings(spec: str) -> Settings:
    from privguard.settings import Settings

    obj = load_object(spec)
    if callable(obj) and not isinstance(obj, Settings):
        obj = obj()
    if not isinstance(obj, Settings):
        raise TargetError(f"--settings {spec!r} is not a privguard Settings")
    return obj


def open_target(spec: str, settings_spec: str | None = None) -> Target:
    """Open ``spec`` (URL or ``module:app``) for auditing.

    :raises TargetError: for anything that makes the target unauditable.
    """
    settings = _load_settings(settings_spec) if settings_spec else None
    if spec.startswith(("http://", "https://")):
        try:
            transport: Transport = HTTPTransport(spec)
        except TransportError as exc:
            raise TargetError(str(exc)) from None
        from urllib.parse import urlsplit

        parts = urlsplit(spec)
        start = parts.path or "/"
        if parts.query:
            start += "?" + parts.query
        return Target(spec, transport, start, settings, kind="url")
    if "://" in spec:
        raise TargetError(f"{spec!r}: only http and https URLs can be audited")
    app = load_object(spec)
    if not callable(app):
        raise TargetError(f"{spec!r} is not a WSGI or ASGI application")
    if settings is None:
        settings = find_settings(app)
    if is_asgi(app):
        return Target(spec, ASGITransport(app), "/", settings, app, kind="asgi")
    return Target(spec, WSGITransport(app), "/", settings, app, kind="wsgi")
