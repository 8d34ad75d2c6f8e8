"""Assertions on responses: which cookies were set, whether the banner shows.

Every function takes a webtest, werkzeug/Flask, Starlette/httpx or requests
response (see :mod:`privguard.testing.responses`) and raises
:class:`AssertionError` naming the cookie, its category and the visitor. The
visitor is taken from ``visitor=`` or, for requests made with a
:class:`~privguard.testing.Visitor`'s headers, from the request itself.

Banner contract (``DESIGN.md``, "Cookie and markup hooks"): the banner's
root element has ``id="privguard-banner"`` and carries ``hidden`` when no
choice is needed. "Shown" means that root is present without ``hidden``.
"""

from __future__ import annotations

import time
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from privguard.core.categories import Category
from privguard.testing.responses import (
    VISITOR_HEADER,
    ResponseData,
    SetCookie,
    parse_set_cookie,
    read_response,
)

if TYPE_CHECKING:
    from privguard.settings import Settings
    from privguard.testing.visitors import Visitor

__all__ = [
    "assert_no_nonessential_cookies",
    "assert_cookie_allowed",
    "assert_cookie_blocked",
    "assert_cookie_expired",
    "assert_banner_shown",
    "assert_banner_hidden",
    "banner_state",
    "cookies_set",
    "category_label",
    "builtin_settings",
]

BANNER_ID = "privguard-banner"


def builtin_settings() -> Settings:
    """Settings with only the built-in cookie catalog (for classifying without the app's)."""
    from privguard.settings import Settings

    return Settings(secret_key="x" * 32, debug=True, ledger=None)


def _catalog_settings(settings: Settings | None, visitor: object = None) -> Settings:
    if settings is None:
        settings = getattr(visitor, "settings", None)
    return settings if settings is not None else builtin_settings()


def category_label(name: str, settings: Settings | None = None, visitor: object = None) -> str:
    """The category of cookie ``name`` (``"undeclared"`` when the catalog lacks it)."""
    category = _catalog_settings(settings, visitor).catalog.classify(name)
    return "undeclared" if category is None else category.value


def _who(data: ResponseData, visitor: Visitor | str | None) -> str:
    if visitor is not None:
        describe = getattr(visitor, "describe", None)
        return describe() if callable(describe) else str(visitor)
    sent = data.request_headers.get(VISITOR_HEADER.lower())
    return f"visitor {sent}" if sent else "an unspecified visitor (pass visitor=)"


def _where(data: ResponseData) -> str:
    return f" at {data.url}" if data.url else ""


def cookies_set(response: Any, now: float | None = None) -> list[SetCookie]:
    """Cookies the response sets (``Set-Cookie`` that do not delete), in order."""
    data = read_response(response)
    now = time.time() if now is None else now
    out = []
    for value in data.set_cookies:
        cookie = parse_set_cookie(value)
        if cookie is not None and not cookie.is_expiry(now):
            out.append(cookie)
    return out


def _all_cookies(data: ResponseData) -> list[SetCookie]:
    return [c for c in (parse_set_cookie(v) for v in data.set_cookies) if c is not None]


def assert_no_nonessential_cookies(
    response: Any, settings: Settings | None = None, visitor: Visitor | str | None = None
) -> None:
    """No cookie but ``necessary`` ones is set (undeclared cookies count as non-essential).

    Cookies are classified with ``settings`` (the app's catalog), else the
    settings ``visitor`` was built for, else privguard's built-in catalog.
    Deleting a cookie is not setting it.
    """
    data = read_response(response)
    cat_settings = _catalog_settings(settings, visitor)
    offending = []
    for cookie in cookies_set(data):
        category = cat_settings.catalog.classify(cookie.name)
        if category is not Category.NECESSARY:
            label = "undeclared" if category is None else category.value
            offending.append(f"{cookie.name!r} ({label}): Set-Cookie: {cookie.raw}")
    if offending:
        raise AssertionError(
            f"non-essential cookie(s) set for {_who(data, visitor)}{_where(data)}:\n  "
            + "\n  ".join(offending)
        )


def assert_cookie_allowed(
    response: Any,
    name: str,
    settings: Settings | None = None,
    visitor: Visitor | str | None = None,
) -> None:
    """The response sets cookie ``name`` (a non-deleting ``Set-Cookie`` is present)."""
    data = read_response(response)
    if any(c.name == name for c in cookies_set(data)):
        return
    seen = [c.raw for c in _all_cookies(data)] or ["none"]
    raise AssertionError(
        f"cookie {name!r} ({category_label(name, settings, visitor)}) was not set for "
        f"{_who(data, visitor)}{_where(data)}; Set-Cookie headers: {seen}"
    )


def assert_cookie_blocked(
    response: Any,
    name: str,
    settings: Settings | None = None,
    visitor: Visitor | str | None = None,
) -> None:
    """The response does not set cookie ``name`` (expiring it is fine)."""
    data = read_response(response)
    for cookie in cookies_set(data):
        if cookie.name == name:
            raise AssertionError(
                f"cookie {name!r} ({category_label(name, settings, visitor)}) was set for "
                f"{_who(data, visitor)}{_where(data)} but should be blocked: "
                f"Set-Cookie: {cookie.raw}"
            )


def assert_cookie_expired(
    response: Any,
    name: str,
    settings: Settings | None = None,
    visitor: Visitor | str | None = None,
) -> None:
    """The response deletes cookie ``name`` (``Max-Age=0`` or an ``Expires`` in the past)."""
    data = read_response(response)
    now = time.time()
    if any(c.name == name and c.is_expiry(now) for c in _all_cookies(data)):
        return
    same = [c.raw for c in _all_cookies(data) if c.name == name]
    detail = f"its Set-Cookie does not delete it: {same}" if same else "no Set-Cookie names it"
    raise AssertionError(
        f"cookie {name!r} ({category_label(name, settings, visitor)}) was not expired for "
        f"{_who(data, visitor)}{_where(data)}; {detail}"
    )


class _BannerFinder(HTMLParser):
    """Finds the first element with ``id="privguard-banner"`` and its ``hidden`` attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = False
        self.hidden = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found:
            return
        names = dict(attrs)
        if names.get("id") == BANNER_ID:
            self.found = True
            self.hidden = "hidden" in names

    handle_startendtag = handle_starttag


def banner_state(response: Any) -> bool | None:
    """``True`` when the banner is shown, ``False`` when absent or hidden.

    ``None`` for responses that are not HTML (no banner can be judged there).
    """
    data = read_response(response)
    ctype = data.content_type.split(";", 1)[0].strip().lower()
    if ctype not in ("text/html", "application/xhtml+xml"):
        return None
    finder = _BannerFinder()
    finder.feed(data.text)
    finder.close()
    return finder.found and not finder.hidden


def _banner_problem(data: ResponseData) -> str:
    return f"(status {data.status}, Content-Type {data.content_type or 'none'!r})"


def assert_banner_shown(response: Any, visitor: Visitor | str | None = None) -> None:
    """The consent banner is on the page and not ``hidden``."""
    data = read_response(response)
    state = banner_state(data)
    if state:
        return
    if state is None:
        reason = "the response is not HTML"
    else:
        finder = _BannerFinder()
        finder.feed(data.text)
        reason = (
            "the banner is present but hidden"
            if finder.found
            else f'no element with id="{BANNER_ID}"'
        )
    raise AssertionError(
        f"expected the consent banner for {_who(data, visitor)}{_where(data)}, but {reason} "
        f"{_banner_problem(data)}"
    )


def assert_banner_hidden(response: Any, visitor: Visitor | str | None = None) -> None:
    """The consent banner is absent or carries ``hidden``."""
    data = read_response(response)
    if banner_state(data):
        raise AssertionError(
            f"the consent banner is shown to {_who(data, visitor)}{_where(data)}, which needs "
            f"no choice {_banner_problem(data)}"
        )
