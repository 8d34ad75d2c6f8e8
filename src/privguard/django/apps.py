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


def check_privguard_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: a bad PRIVGUARD option is an error naming it."""
    from django.conf import settings

    from privguard.django.middleware import settings_from_django
    from privguard.errors import ConfigError

    if "privguard.django.PrivacyMiddleware" not in getattr(settings, "MIDDLEWARE", ()):
        return []
    try:
        settings_from_django()
    except ConfigError as exc:
        return [checks.Error(str(exc), hint="fix settings.PRIVGUARD", id="privguard.E001")]
    except Exception as exc:  # ImproperlyConfigured and friends
        return [checks.Error(str(exc), id="privguard.E002")]
    return []
