"""Django for the privguard.django tests: configured once per process, overridden per test.

``settings.configure`` and ``django.setup()`` run at most once (another test module
may have configured Django already); what these tests need is applied with
``override_settings`` around each test, so nothing leaks into other tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

SECRET = "d" * 50

BASE_PRIVGUARD: dict[str, Any] = {
    "ledger": None,
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1"],
    "age_gate_paths": ["/checkout/*"],
}

TEST_SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": SECRET,
    "ALLOWED_HOSTS": ["testserver", "localhost"],
    "INSTALLED_APPS": [
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "privguard.django",
    ],
    "MIDDLEWARE": [
        "privguard.django.PrivacyMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
    "TEMPLATES": [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": ["django.template.context_processors.request"],
            },
        }
    ],
    "USE_TZ": True,
    "PRIVGUARD": BASE_PRIVGUARD,
}

if not settings.configured:
    settings.configure(**TEST_SETTINGS)
    django.setup()


@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    """Every test here runs with TEST_SETTINGS (tests add their own overrides)."""
    from django.test.utils import override_settings

    overrides = {k: v for k, v in TEST_SETTINGS.items() if k != "INSTALLED_APPS"}
    if "privguard.django" not in settings.INSTALLED_APPS:  # Django set up by someone else
        overrides["INSTALLED_APPS"] = [*settings.INSTALLED_APPS, "privguard.django"]
    with override_settings(**overrides):
        yield
