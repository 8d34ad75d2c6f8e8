"""A signed consent cookie for tests that build requests by hand."""

from __future__ import annotations

from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
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
