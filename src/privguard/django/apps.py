"""The ``privguard.django`` app: template tags, and the PRIVGUARD setting checked at start-up."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class PrivguardConfig(AppConfig):
    """``INSTALLED_APPS = [..., "privguard.django"]``."""

    name = "privguard.django"
    label = "privguard"
    verbose_name = "privguard"

    def ready(self) -> None:
        checks.register(check_privguard_setting, checks.Tags.security)
        checks.register(check_middleware_order, checks.Tags.security)


#: Django middleware that set cookies: privguard must be listed before them (so it
#: runs after them on the way out) or their cookies never pass its filter.
COOKIE_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


def check_middleware_order(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: privguard must come before the middleware that set cookies."""
    from django.conf import settings

    from privguard.django.middleware import MIDDLEWARE_PATH

    middleware = list(getattr(settings, "MIDDLEWARE", ()))
    if MIDDLEWARE_PATH not in middleware:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH!r} is not in MIDDLEWARE: no response is filtered",
                hint="add it near the top of MIDDLEWARE (after SecurityMiddleware)",
                id="privguard.W002",
            )
        ]
    mine = middleware.index(MIDDLEWARE_PATH)
    early = [m for m in middleware[:mine] if m in COOKIE_MIDDLEWARE]
    if not early:
        return []
    return [
        checks.Warning(
            f"{', '.join(early)} listed before {MIDDLEWARE_PATH}: the cookies it sets leave "
            "after privguard's filter ran",
            hint="move privguard.django.PrivacyMiddleware above it (after SecurityMiddleware)",
            id="privguard.W001",
        )
    ]


def check_privguard_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: a bad PRIVGUARD option is an error naming it."""
    from django.conf import settings

    from privguard.django.middleware import MIDDLEWARE_PATH, settings_from_django
    from privguard.errors import ConfigError

    if MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", ()):
        return []
    try:
        settings_from_django()
    except ConfigError as exc:
        return [checks.Error(str(exc), hint="fix settings.PRIVGUARD", id="privguard.E001")]
    except Exception as exc:  # ImproperlyConfigured and friends
        return [checks.Error(str(exc), id="privguard.E002")]
    return []
