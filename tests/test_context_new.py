"""``new_context`` (what the adapters call once per request) makes exactly the object
``PrivacyContext(...)`` makes: every slot alike, and the context behaves the same."""

from __future__ import annotations

from privguard.context import PrivacyContext, get_context, new_context
from privguard.core.request import RequestView
from privguard.runtime import Runtime
from privguard.settings import Settings


def _runtime() -> Runtime:
    return Runtime(Settings(secret_key="s" * 40, ledger=None, country_header="cf-ipcountry"))


def test_new_context_sets_every_slot_as_the_class_does() -> None:
    rt = _runtime()
    view = RequestView(
        method="GET",
        path="/",
        scheme="https",
        host="shop.example",
        peer="203.0.113.9",
        headers={"cf-ipcountry": "DE", "accept-language": "de-DE,de;q=0.9"},
        query="",
    )
    decision = rt.decide(view)
    made = new_context(decision, rt, "shop.example", "de-DE,de;q=0.9")
    called = PrivacyContext(decision, rt, None, "shop.example", "de-DE,de;q=0.9")
    assert type(made) is PrivacyContext
    for slot in PrivacyContext.__slots__:
        assert getattr(made, slot) == getattr(called, slot), slot
    assert made.language == called.language == "de"
    assert made.host == "shop.example"
    assert not made.consulted and not made.placed
    assert made.regime == "gdpr" and made.consulted  # reading a fact marks it, as before
    assert get_context({"privguard": made}) is made
