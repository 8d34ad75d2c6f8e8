"""Django integration: ``privguard.django.PrivacyMiddleware`` with a ``PRIVGUARD`` setting.

settings.py::

    INSTALLED_APPS = [..., "privguard.django"]          # template tags, system check
    MIDDLEWARE = ["privguard.django.PrivacyMiddleware", ...]   # first: it must see the
                                                               # cookies of all the others
    PRIVGUARD = {"secret_key": "...", "age_gate_paths": ["/checkout/*"]}

urls.py::

    path("privguard/", include("privguard.django.urls")),   # at ``endpoint_prefix``

templates::

    {% load privguard %}{% privguard_banner %}

``PRIVGUARD`` holds the options of :class:`privguard.Settings` (or is a ready
``Settings``); ``secret_key`` falls back to Django's ``SECRET_KEY`` and
``"enabled": False`` removes the middleware. Views read the
:class:`~privguard.PrivacyContext` as ``request.privguard`` (also
``request.META["privguard"]`` and ``privguard.get_context(request)``).
"""

from __future__ import annotations

from privguard.django.middleware import PrivacyMiddleware as PrivacyMiddleware
from privguard.django.middleware import settings_from_django as settings_from_django

__all__ = ["PrivacyMiddleware", "settings_from_django"]
