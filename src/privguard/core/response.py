"""Apply a Decision to a response's header list.

WSGI and ASGI share this one filter, so each rule exists once. It runs over
``(name, value)`` pairs of ``str`` (WSGI, Django) or of latin-1 ``bytes``
(ASGI's native form, so the ASGI adapter does not translate every header
twice): :func:`filter_headers` and :func:`filter_raw_headers` are the same
function with a different vocabulary. ``Set-Cookie`` values are passed through
untouched or dropped, never re-serialised; pairs privguard does not look at
leave as the very objects that came in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AnyStr, Generic

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

__all__ = [
    "FilterResult",
    "filter_headers",
    "filter_raw_headers",
    "filter_raw_cookies",
    "is_document",
    "SKIP_HEADER",
]

SKIP_HEADER = "privguard-skip"


@dataclass(slots=True)
class FilterResult(Generic[AnyStr]):
    """The filtered headers and what the filter saw."""

    headers: list[tuple[AnyStr, AnyStr]]
    dropped: list[tuple[str, Category | None]] = field(default_factory=list)
    skip: bool = False  # the app asked privguard not to inject anything
    content_type: str = ""
    content_encoding: str = ""


@dataclass(frozen=True, slots=True)
class _Vocabulary(Generic[AnyStr]):
    """Header names in one string type, and the two conversions."""

    text: Callable[[AnyStr], str]  # a value as str
    raw: Callable[[str], AnyStr]  # a str in this type
    set_cookie: AnyStr
    skip: AnyStr
    permissions: AnyStr
    vary: AnyStr
    cache_control: AnyStr
    referrer: AnyStr
    content_type: AnyStr
    content_encoding: AnyStr
    out_set_cookie: AnyStr
    out_permissions: AnyStr
    out_referrer: AnyStr
    out_vary: AnyStr
    out_cache_control: AnyStr
    out_region: AnyStr
    out_regime: AnyStr


def _same(value: str) -> str:
    return value


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def _to_latin1(value: str) -> bytes:
    return value.encode("latin-1")


_STR: _Vocabulary[str] = _Vocabulary(
    _same, _same, "set-cookie", SKIP_HEADER, "permissions-policy", "vary", "cache-control",
    "referrer-policy", "content-type", "content-encoding", "Set-Cookie", "Permissions-Policy",
    "Referrer-Policy", "Vary", "Cache-Control", "Privguard-Region", "Privguard-Regime",
)  # fmt: skip
_BYTES: _Vocabulary[bytes] = _Vocabulary(
    _latin1, _to_latin1, b"set-cookie", SKIP_HEADER.encode(), b"permissions-policy", b"vary",
    b"cache-control", b"referrer-policy", b"content-type", b"content-encoding", b"set-cookie",
    b"permissions-policy", b"referrer-policy", b"vary", b"cache-control", b"privguard-region",
    b"privguard-regime",
)  # fmt: skip


def filter_headers(
    headers: Sequence[tuple[str, str]],
    decision: Decision,
    settings: Settings,
    extra_cookies: Sequence[str] = (),
    changed: bool = False,
    vary_extra: tuple[str, ...] = (),
    status: int = 200,
    consulted: bool = False,
) -> FilterResult[str]:
    """Filter the app's headers for ``decision`` and add privguard's own.

    ``extra_cookies`` are Set-Cookie values privguard adds (consent cookie);
    ``changed`` marks a body changed by privguard (banner), which makes the
    response ``Cache-Control: private`` as dropped or expired cookies do.
    ``status`` tells documents (HTML, not a redirect) from the rest;
    ``consulted`` says the app read the visitor's consent to build the body.

    A response privguard answers alike for every visitor -- no cookie whose
    fate depends on consent, nothing expired or added, not a document, the
    app never asked -- keeps its ``Vary``, ``Cache-Control`` and
    ``Permissions-Policy`` exactly as the app sent them (a CDN may share it).
    Everything else lists what the decision consulted in ``Vary``.
    """
    return _filter(
        _STR, headers, decision, settings, extra_cookies, changed, vary_extra, status, consulted
    )


def filter_raw_headers(
    headers: Sequence[tuple[bytes, bytes]],
    decision: Decision,
    settings: Settings,
    extra_cookies: Sequence[str] = (),
    changed: bool = False,
    vary_extra: tuple[str, ...] = (),
    status: int = 200,
    consulted: bool = False,
) -> FilterResult[bytes]:
    """:func:`filter_headers` for ASGI's latin-1 byte pairs (lower-case names out)."""
    return _filter(
        _BYTES, headers, decision, settings, extra_cookies, changed, vary_extra, status, consulted
    )


_KEEP_ALWAYS = "keep always"  # necessary, or unknown while unknown cookies are allowed
_DROP_ALWAYS = "drop always"  # the consent cookie, or unknown while they are blocked
_KEEP = "keep"  # non-essential and allowed for this visitor
_DROP = "drop"  # non-essential and not allowed


def _judge(
    cname: str,
    allowed: frozenset[Category],
    classify: Callable[[str], Category | None],
    block_unknown: bool,
    consent_name: str,
) -> tuple[str, Category | None]:
    """The one rule for an app's ``Set-Cookie``: its verdict and category."""
    if cname in (consent_name, "privguard_consent", "__Host-privguard_consent"):
        return _DROP_ALWAYS, Category.NECESSARY  # only privguard writes its own cookie
    category = classify(cname) if cname else None
    if category is None:
        return (_DROP_ALWAYS if block_unknown else _KEEP_ALWAYS), None
    if category is Category.NECESSARY:
        return _KEEP_ALWAYS, category
    return (_KEEP if category in allowed else _DROP), category


def filter_raw_cookies(
    headers: Sequence[tuple[bytes, bytes]], decision: Decision, settings: Settings
) -> tuple[list[tuple[bytes, bytes]], list[tuple[str, Category | None]]]:
    """Only the ``Set-Cookie`` rule, for headers that are not an HTTP response's.

    A websocket handshake (``websocket.accept``) carries headers a browser
    stores cookies from, but Vary, caching and document policies mean nothing
    there. Returns the kept pairs and the dropped names.
    """
    kept: list[tuple[bytes, bytes]] = []
    dropped: list[tuple[str, Category | None]] = []
    allowed = decision.allowed
    classify = settings.catalog.classify
    block_unknown = settings.unknown_cookies == "block"
    for pair in headers:
        if pair[0].lower() == b"set-cookie":
            cname = set_cookie_name(pair[1].decode("latin-1"))
            verdict, category = _judge(
                cname, allowed, classify, block_unknown, decision.consent_cookie_name
            )
            if verdict is _DROP_ALWAYS or verdict is _DROP:
                dropped.append((cname, category))
                continue
        kept.append(pair)
    return kept, dropped


def is_document(content_type: str, status: int) -> bool:
    """Is this response a page a browser renders (HTML or XHTML, not a redirect)?

    Document-only headers (Permissions-Policy) and the banner concern these alone.
    """
    if 300 <= status < 400:
        return False
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype in ("text/html", "application/xhtml+xml")


def _filter(
    v: _Vocabulary[AnyStr],
    headers: Sequence[tuple[AnyStr, AnyStr]],
    decision: Decision,
    settings: Settings,
    extra_cookies: Sequence[str],
    changed: bool,
    vary_extra: tuple[str, ...],
    status: int,
    consulted: bool,
) -> FilterResult[AnyStr]:
    out: list[tuple[AnyStr, AnyStr]] = []
    result = FilterResult(out)
    allowed = decision.allowed
    classify = settings.catalog.classify
    block_unknown = settings.unknown_cookies == "block"
    consent_name = decision.consent_cookie_name
    text = v.text
    # ``depends``: privguard's answer differs between visitors (consent, region,
    # signals), so Vary must say on what. ``changed`` (private): it differs now.
    depends = consulted or changed or settings.debug_headers
    permissions: str | None = None
    referrer = False
    vary: list[str] = []
    cache_control: str | None = None
    for pair in headers:
        lname = pair[0].lower()
        if lname == v.set_cookie:
            cname = set_cookie_name(text(pair[1]))
            verdict, category = _judge(cname, allowed, classify, block_unknown, consent_name)
            if verdict is not _KEEP_ALWAYS:
                if verdict is _DROP_ALWAYS:
                    result.dropped.append((cname, category))
                    continue
                depends = True  # its fate depends on consent
                if verdict is _DROP:
                    result.dropped.append((cname, category))
                    changed = True
                    continue
            out.append(pair)
        elif lname == v.skip:
            result.skip = text(pair[1]).strip() not in ("", "0")
        elif lname == v.permissions:
            value = text(pair[1])
            permissions = value if permissions is None else f"{permissions}, {value}"
            out.append(pair)
        elif lname == v.vary:
            vary.append(text(pair[1]))
            out.append(pair)
        elif lname == v.cache_control:
            value = text(pair[1])
            cache_control = value if cache_control is None else f"{cache_control}, {value}"
            out.append(pair)
        else:
            if lname == v.referrer:
                referrer = True
            elif lname == v.content_type:
                result.content_type = text(pair[1])
            elif lname == v.content_encoding:
                result.content_encoding = text(pair[1])
            out.append(pair)
    raw = v.raw
    if not referrer:
        out.append((v.out_referrer, raw(DEFAULT_REFERRER_POLICY)))
    document = is_document(result.content_type, status)
    if decision.expire or extra_cookies:
        changed = True
    if not (depends or changed or document):
        return result  # alike for everyone: the app's headers as they came (+ Referrer-Policy)
    # rebuild the merged headers at the end (rare path: documents and cookie responses)
    rewritten = (v.vary, v.cache_control, v.permissions) if document else (v.vary, v.cache_control)
    out[:] = [pair for pair in out if pair[0].lower() not in rewritten]
    if decision.expire:
        out.extend((v.out_set_cookie, raw(value)) for value in decision.expire)
    if extra_cookies:
        out.extend((v.out_set_cookie, raw(value)) for value in extra_cookies)
    if document:
        if Category.MARKETING not in allowed:
            out.append((v.out_permissions, raw(merge_permissions_policy(permissions))))
        elif permissions is not None:
            out.append((v.out_permissions, raw(permissions)))
    merged_vary = merge_vary(vary, decision.vary + vary_extra)
    if merged_vary:
        out.append((v.out_vary, raw(merged_vary)))
    if changed:
        out.append((v.out_cache_control, raw(make_private(cache_control))))
    elif cache_control is not None:
        out.append((v.out_cache_control, raw(cache_control)))
    if settings.debug_headers:
        region = decision.subdivision or decision.country or "unknown"
        out.append((v.out_region, raw(region)))
        out.append((v.out_regime, raw(decision.regime.name)))
    return result
