"""A signed consent cookie, and the decision for a kind of visitor, for tests that build
requests by hand."""

from __future__ import annotations

from dataclasses import replace

from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.core.decision import Decision
from privguard.core.request import RequestView
from privguard.runtime import Runtime
from privguard.settings import Settings


def consent_cookie(settings: Settings, https: bool) -> str:
    """``name=value`` of a valid consent cookie granting performance (gdpr, the current
    policy version)."""
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    state = ConsentState(
        version=settings.policy_version,
        granted=frozenset({Category.NECESSARY, Category.PERFORMANCE}),
        receipt_id=None,
        regime="gdpr",
    )
    return f"{settings.consent_cookie_name(https)}={codec.dump(state)}"


def visitor_decision(rt: Runtime, visitor: str) -> Decision:
    """The decision for a German visitor to ``http://shop.example/`` who is ``first``
    (no cookie), ``first-with-ga`` (an old ``_ga``), ``returning`` (consent to
    performance), ``gpc`` (Sec-GPC: 1) or ``withdrawn`` (a first visitor with a cookie
    to expire, as a withdrawal leaves)."""
    headers = {"accept-language": "de"}
    if visitor == "returning":
        headers["cookie"] = consent_cookie(rt.settings, https=False)
    elif visitor == "first-with-ga":
        headers["cookie"] = "_ga=GA1.1.old"
    elif visitor == "gpc":
        headers["sec-gpc"] = "1"
    view = RequestView("GET", "/", "http", "shop.example", "203.0.113.7", headers, "")
    decision = rt.decide(view)
    if visitor == "withdrawn":
        decision = replace(decision, expire=("_ga=; Max-Age=0; Path=/",))
    return decision
