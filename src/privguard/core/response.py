"""Apply a Decision to a response's header list.

WSGI and ASGI share this one filter over ``(name, value)`` string pairs, so
each rule exists once. ``Set-Cookie`` values are passed through untouched or
dropped, never re-serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from privguard.core.categories import Category
from privguard.core.cookies import set_cookie_name
from privguard.core.decision import Decision
from privguard.core.headers import (
    DEFAULT_REFERRER_POLICY,
    make_private,
    merge_permissions_policy,
    merge_vary,
)

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = ["FilterResult", "filter_headers", "SKIP_HEADER"]

SKIP_HEADER = "privguard-skip"


@dataclass(slots=True)
class FilterResult:
    """The filtered headers and what the filter saw."""

    headers: list[tuple[str, str]]
    dropped: list[tuple[str, Category | None]] = field(default_factory=list)
    skip: bool = False  # the app asked privguard not to inject anything
    content_type: str = ""
    content_encoding: str = ""


def filter_headers(
    headers: list[tuple[str, str]],
    decision: Decision,
    settings: Settings,
    extra_cookies: list[str] | tuple[str, ...] = (),
    changed: bool = False,
    vary_extra: tuple[str, ...] = (),
) -> FilterResult:
    """Filter the app's headers for ``decision`` and add privguard's own.

    ``extra_cookies`` are Set-Cookie values privguard adds (consent cookie);
    ``changed`` marks a body changed by privguard (banner), which makes the
    response ``Cache-Control: private`` as dropped or expired cookies do.
    """
    out: list[tuple[str, str]] = []
    result = FilterResult(out)
    allowed = decision.allowed
    classify = settings.catalog.classify
    block_unknown = settings.unknown_cookies == "block"
    consent_name = decision.consent_cookie_name
    permissions = None
    referrer = False
    vary: list[str] = []
    cache_control = None
    for name, value in headers:
        lname = name.lower()
        if lname == "set-cookie":
            cname = set_cookie_name(value)
            if cname in (consent_name, "privguard_consent", "__Host-privguard_consent"):
                # only privguard writes its own cookie
                result.dropped.append((cname, Category.NECESSARY))
                changed = True
                continue
            category = classify(cname) if cname else None
            if category is None:
                if block_unknown:
                    result.dropped.append((cname, None))
                    changed = True
                    continue
            elif category not in allowed:
                result.dropped.append((cname, category))
                changed = True
                continue
            out.append((name, value))
        elif lname == SKIP_HEADER:
            result.skip = value.strip() not in ("", "0")
        elif lname == "permissions-policy":
            permissions = value if permissions is None else f"{permissions}, {value}"
        elif lname == "vary":
            vary.append(value)
        elif lname == "cache-control":
            cache_control = value if cache_control is None else f"{cache_control}, {value}"
        else:
            if lname == "referrer-policy":
                referrer = True
            elif lname == "content-type":
                result.content_type = value
            elif lname == "content-encoding":
                result.content_encoding = value
            out.append((name, value))
    if decision.expire:
        changed = True
        out.extend(("Set-Cookie", v) for v in decision.expire)
    if extra_cookies:
        changed = True
        out.extend(("Set-Cookie", v) for v in extra_cookies)
    if Category.MARKETING not in allowed:
        out.append(("Permissions-Policy", merge_permissions_policy(permissions)))
    elif permissions is not None:
        out.append(("Permissions-Policy", permissions))
    if not referrer:
        out.append(("Referrer-Policy", DEFAULT_REFERRER_POLICY))
    merged_vary = merge_vary(vary, decision.vary + vary_extra)
    if merged_vary:
        out.append(("Vary", merged_vary))
    if changed:
        out.append(("Cache-Control", make_private(cache_control)))
    elif cache_control is not None:
        out.append(("Cache-Control", cache_control))
    if settings.debug_headers:
        region = decision.subdivision or decision.country or "unknown"
        out.append(("Privguard-Region", region))
        out.append(("Privguard-Regime", decision.regime.name))
    return result
