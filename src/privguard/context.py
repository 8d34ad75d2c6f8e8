"""PrivacyContext: what the app sees of privguard's decision for this request."""

from __future__ import annotations

from typing import Any, Protocol

from privguard.core.categories import Category
from privguard.core.decision import Decision

__all__ = ["PrivacyContext", "get_context", "CONTEXT_KEY", "new_context"]

#: Key under which adapters store the context in the WSGI environ / ASGI scope.
CONTEXT_KEY = "privguard"


class _Runtime(Protocol):
    """What the context asks of the middleware's runtime (``privguard.runtime.Runtime``).

    A protocol, so this module stays below the runtime that builds contexts.
    """

    @property
    def banner(self) -> Any: ...

    def csrf_token(self, host: str) -> str: ...


def _fact(name: str) -> Any:
    """A read-only property of the decision that marks the context as consulted."""

    def read(self: PrivacyContext) -> Any:
        self.consulted = True
        return getattr(self.decision, name)

    return property(read, doc=f"The decision's ``{name}``.")


class PrivacyContext:
    """The request's privacy facts: region, signals, age and consent.

    ``consent`` is the set of granted category names or ``None`` when no
    choice (for the current policy version) has been made.
    """

    __slots__ = ("decision", "_runtime", "_lang", "_host", "_accept", "consulted", "placed")

    def __init__(
        self,
        decision: Decision,
        runtime: _Runtime,
        lang: str | None = None,
        host: str = "",
        accept_language: str | None = None,
    ) -> None:
        self.decision = decision
        self._accept = accept_language  # negotiated only if banner() is called
        self._runtime = runtime
        self._lang = lang
        self._host = host
        #: True once the app read a consent, region or signal fact: its response may
        #: then differ between visitors, and the middleware lists ``Vary`` for it.
        self.consulted = False
        #: True once banner() placed the markup: the middleware injects no second one.
        #: (A flag on the context, not a mark in the environ/scope: the context is
        #: stored there, and holding it back would make a reference cycle per request.)
        self.placed = False

    country = _fact("country")
    subdivision = _fact("subdivision")
    gpc = _fact("gpc")
    dnt = _fact("dnt")
    is_bot = property(lambda self: self.decision.is_bot)
    analytics_ip = property(lambda self: self.decision.analytics_ip)
    age_status = _fact("age_status")
    required_age = _fact("required_age")
    needs_banner = _fact("needs_banner")

    @property
    def regime(self) -> str:
        """``gdpr``, ``us-optout`` or ``notice``."""
        self.consulted = True
        return self.decision.regime.name

    @property
    def consent(self) -> frozenset[str] | None:
        """Granted category names, or ``None`` when no choice has been made."""
        self.consulted = True
        choice = self.decision.choice
        return None if choice is None else frozenset(c.value for c in choice)

    @property
    def allowed(self) -> frozenset[str]:
        """Category names allowed now (after regime, signals and age)."""
        self.consulted = True
        return frozenset(c.value for c in self.decision.allowed)

    def allows(self, category: str | Category) -> bool:
        """Is ``category`` allowed for this request?"""
        self.consulted = True
        return category in self.decision.allowed

    @property
    def host(self) -> str:
        """The request's host (``Host``, else the server's name)."""
        return self._host

    @property
    def language(self) -> str:
        """The banner's language for this request (negotiated from ``Accept-Language``)."""
        lang = self._lang
        if lang is None:
            lang = self._lang = self._runtime.banner.negotiate(self._accept)
        return lang

    def banner(self, lang: str | None = None) -> str:
        """The banner markup, for templates that place it themselves.

        Calling it tells the middleware not to inject the banner again.
        """
        from markupsafe import Markup  # werkzeug depends on markupsafe

        rt = self._runtime
        self.consulted = True
        self.placed = True
        body = rt.banner.body_snippet(
            lang or self.language,
            self.decision,
            rt.csrf_token(self._host),
            None,
        )
        return Markup(body.decode("utf-8"))

    def __repr__(self) -> str:
        d = self.decision
        return (
            f"<PrivacyContext country={d.country!r} regime={d.regime.name!r} "
            f"consent={sorted(c.value for c in d.choice) if d.choice is not None else None} "
            f"age={d.age_status!r}>"
        )


_new = object.__new__


def new_context(
    decision: Decision, runtime: _Runtime, host: str, accept_language: str | None
) -> PrivacyContext:
    """``PrivacyContext(decision, runtime, None, host, accept_language)``, for the adapters.

    The same object, made without calling the class: an adapter makes one per request,
    and in CPython 3.11 a class call runs a Python ``__init__`` in an interpreter entry
    of its own (a plain function's body runs in the caller's).
    """
    ctx = _new(PrivacyContext)
    ctx.decision = decision
    ctx._accept = accept_language
    ctx._runtime = runtime
    ctx._lang = None
    ctx._host = host
    ctx.consulted = False
    ctx.placed = False
    return ctx


def get_context(obj: Any) -> PrivacyContext | None:
    """The context of a WSGI environ, ASGI scope, or a werkzeug/Flask/Starlette/Django request."""
    if isinstance(obj, dict):
        ctx = obj.get(CONTEXT_KEY)
        return ctx if isinstance(ctx, PrivacyContext) else None
    for attr in ("environ", "scope", "META"):
        holder = getattr(obj, attr, None)
        if isinstance(holder, dict):
            ctx = holder.get(CONTEXT_KEY)
            if isinstance(ctx, PrivacyContext):
                return ctx
    ctx = getattr(obj, CONTEXT_KEY, None)
    return ctx if isinstance(ctx, PrivacyContext) else None
