"""privguard's endpoints for a URLconf; mount them at ``endpoint_prefix`` (``/privguard``)::

    path("privguard/", include("privguard.django.urls")),

``/.well-known/gpc.json`` is answered by the middleware itself.
"""

from __future__ import annotations

from django.urls import path, re_path

from privguard.django import views

app_name = "privguard"

urlpatterns = [
    path("consent", views.consent, name="consent"),
    path("age", views.age, name="age"),
    re_path(r"^(?P<name>banner(?:\.[0-9a-f]+)?\.(?:js|css))\Z", views.asset, name="asset"),
]
