"""``{% load privguard %}``: place the banner and ask about categories in Django templates.

* ``{% privguard_banner %}`` renders the banner here (and tells the middleware not to
  inject a second one); nothing when the middleware did not run for the request.
* ``{% privguard_allows "marketing" as ok %}`` -- is the category allowed now?

Both need the request in the template context
(``django.template.context_processors.request``).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from privguard.context import PrivacyContext, get_context

register = template.Library()


def _context(context: Any) -> tuple[Any, PrivacyContext | None]:
    request = context.get("request")
    return request, (get_context(request) if request is not None else None)


@register.simple_tag(takes_context=True)
def privguard_banner(context: Any, lang: str | None = None) -> SafeString:
    """The consent banner's markup (escaped by privguard's renderer), or ''."""
    request, ctx = _context(context)
    if ctx is None:
        return mark_safe("")
    request.META["privguard.skip"] = True  # placed by hand: no injected duplicate
    return mark_safe(str(ctx.banner(lang)))  # escaped by the renderer


@register.simple_tag(takes_context=True)
def privguard_allows(context: Any, category: str) -> bool:
    """Is ``category`` allowed for this request? False without privguard."""
    _, ctx = _context(context)
    return ctx is not None and ctx.allows(category)
