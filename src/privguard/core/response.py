"""Apply a Decision to a response's header list.

WSGI and ASGI share this one filter, so each rule exists once. It runs over
``(name, value)`` pairs of ``str`` (WSGI, Django) or of latin-1 ``bytes``
(ASGI's native form, so the ASGI adapter does not translate every header
twice): :func:`filter_headers` and :func:`filter_raw_headers` are the same
function with a different vocabulary. ``Set-Cookie`` values are passed through
untouched or dropped, never re-serialised; pairs privguard does not look at
leave as the very objects that came in.

Everything that follows from the decision alone -- each cookie name's verdict,
the ``Vary`` value, privguard's constant pairs -- is worked out once per
decision (:class:`ResponsePlan`, kept on the memoised decision), so a
returning visitor's response costs one pass over the app's header list with
dictionary lookups, in the adapter's own string type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr, Generic

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
    "ResponsePlan",
    "plan_for",
    "filter_headers",
    "filter_raw_headers",
    "filter_raw_cookies",
    "quick_headers",
    "changed_headers",
    "without_length",
    "is_document",
    "is_html",
    "SKIP_HEADER",
]

SKIP_HEADER = "privguard-skip"


class FilterResult(Generic[AnyStr]):
    """The filtered headers and what the filter saw."""

    __slots__ = (
        "headers",
        "dropped",
        "undeclared",
        "skip",
        "content_type",
        "content_encoding",
        "document",
        "tail",
        "cased",
        "_vocabulary",
    )

    def __init__(self, headers: list[tuple[AnyStr, AnyStr]]) -> None:
        self.headers: list[tuple[AnyStr, AnyStr]] = headers
        #: cookies dropped from the response, with their category (``None``: undeclared)
        self.dropped: list[tuple[str, Category | None]] = _NONE_DROPPED
        #: an undeclared cookie was dropped (one the shop should be told about)
        self.undeclared = False
        self.skip = False  # the app asked privguard not to inject anything
        self.content_type = ""
        self.content_encoding = ""
        self.document = False  # HTML or XHTML, not a redirect (see :func:`is_document`)
        #: a document whose app sent no ``Vary``/``Cache-Control``: how many leading
        #: pairs stay the same once privguard changes its body (see :func:`changed_headers`)
        self.tail = -1
        #: a header name came in another case than the vocabulary's (``Content-Length``
        #: under ASGI, where names are lower case): look names up case-blind
        self.cased = False
        self._vocabulary: _Vocabulary[AnyStr]


#: The shared empty ``dropped`` list of a result that dropped nothing (never appended to).
_NONE_DROPPED: list[tuple[str, Category | None]] = []

# What the filter does with a response header, by its (lower-case) name.
_COOKIE, _SKIP, _PERMISSIONS, _VARY, _CACHE, _REFERRER, _CTYPE, _CENCODING = range(1, 9)
_KINDS = {
    "set-cookie": _COOKIE,
    SKIP_HEADER: _SKIP,
    "permissions-policy": _PERMISSIONS,
    "vary": _VARY,
    "cache-control": _CACHE,
    "referrer-policy": _REFERRER,
    "content-type": _CTYPE,
    "content-encoding": _CENCODING,
}


#: Headers apps send often that the filter passes on as they are (kind 0), so they
#: cost one lookup in the spellings apps use, not a lower-casing as well.
_PLAIN = (
    "content-length", "date", "server", "etag", "last-modified", "location", "x-frame-options",
    "x-content-type-options", "strict-transport-security", "content-security-policy",
    "content-language", "transfer-encoding", "connection", "expires", "access-control-allow-origin",
)  # fmt: skip


def _spellings(kinds: dict[str, int]) -> dict[str, int]:
    """Each name in lower case and in the capitalisation WSGI apps send (``Set-Cookie``)."""
    out = {name: 0 for name in _PLAIN} | kinds
    for name, kind in list(out.items()):
        out.setdefault("-".join(part.capitalize() for part in name.split("-")), kind)
    return out


@dataclass(frozen=True, slots=True)
class _Vocabulary(Generic[AnyStr]):
    """Header names in one string type, the conversions, and privguard's constant pairs."""

    text: Callable[[AnyStr], str]  # a value as str
    raw: Callable[[str], AnyStr]  # a str in this type
    kinds: dict[AnyStr, int]  # lower-case name -> what the filter does with it
    equals: AnyStr  # "=" (a Set-Cookie name ends at the first one)
    out_set_cookie: AnyStr
    out_permissions: AnyStr
    out_vary: AnyStr
    out_cache_control: AnyStr
    out_region: AnyStr
    out_regime: AnyStr
    referrer: tuple[AnyStr, AnyStr]  # the default Referrer-Policy pair
    private: tuple[AnyStr, AnyStr]  # Cache-Control: private
    topics: tuple[AnyStr, AnyStr]  # Permissions-Policy denying ad targeting


def _same(value: str) -> str:
    return value


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def _to_latin1(value: str) -> bytes:
    return value.encode("latin-1")


_STR: _Vocabulary[str] = _Vocabulary(
    _same, _same, _spellings(_KINDS), "=", "Set-Cookie", "Permissions-Policy", "Vary",
    "Cache-Control", "Privguard-Region", "Privguard-Regime",
    ("Referrer-Policy", DEFAULT_REFERRER_POLICY), ("Cache-Control", "private"),
    ("Permissions-Policy", merge_permissions_policy(None)),
)  # fmt: skip
_BYTES: _Vocabulary[bytes] = _Vocabulary(
    _latin1, _to_latin1, {n.encode(): k for n, k in _spellings(_KINDS).items() if n.islower()},
    b"=", b"set-cookie", b"permissions-policy", b"vary", b"cache-control", b"privguard-region",
    b"privguard-regime", (b"referrer-policy", DEFAULT_REFERRER_POLICY.encode()),
    (b"cache-control", b"private"),
    (b"permissions-policy", merge_permissions_policy(None).encode()),
)  # fmt: skip


#: ``(verdict, category, cookie name, (cookie name, category))`` of a Set-Cookie value
Verdict = tuple[str, "Category | None", str, tuple[str, "Category | None"]]


class ResponsePlan:
    """What follows from one decision for every response it filters, worked out once.

    A returning visitor's decision is memoised, and so is its plan: the verdict
    per ``Set-Cookie`` name and the ``Vary`` value privguard adds, in both
    string types. Per response, what is left is one pass over the app's header
    list with dictionary lookups. Bounded: at most :attr:`MAX_NAMES` cookie
    names of at most :attr:`MAX_NAME` characters are remembered.
    """

    MAX_NAMES = 256
    MAX_NAME = 128

    __slots__ = ("settings", "decision", "verdicts", "actions", "vary", "debug", "tails", "quick")

    def __init__(self, decision: Decision, settings: Settings) -> None:
        self.settings = settings
        self.decision = decision
        #: name part of a Set-Cookie value (text before its first "=") -> verdict
        self.verdicts: dict[object, Verdict] = {}
        #: the same names -> what :func:`quick_headers` does with the cookie (see _ACTIONS);
        #: an undeclared cookie's name is not in it (the filter reports it)
        self.actions: dict[object, int] = {}
        self.vary: dict[tuple[object, tuple[str, ...]], object] = {}
        #: (vocabulary, Referrer-Policy sent, changed, document, vary_extra) -> the pairs
        #: privguard appends to a response that sent no Vary/Cache-Control/policy of its own
        self.tails: dict[tuple[object, ...], tuple[tuple[Any, ...], int]] = {}
        self.debug = settings.debug_headers
        #: the tails :func:`quick_headers` appends, by ``2 * raw + changed`` (made on first use)
        self.quick: list[tuple[tuple[Any, Any], ...] | None] = [None, None, None, None]

    def verdict(self, v: _Vocabulary[AnyStr], value: AnyStr) -> Verdict:
        """``(verdict, category, cookie name, (cookie name, category))`` of one
        ``Set-Cookie`` value (the last: what a dropped cookie adds to ``dropped``)."""
        head, sep, _ = value.partition(v.equals)
        memo = self.verdicts
        found = memo.get(head) if sep else None
        if found is not None:
            return found
        decision = self.decision
        settings = self.settings
        cname = set_cookie_name(v.text(value))
        verdict, category = _judge(
            cname,
            decision.allowed,
            settings.catalog.classify,
            settings.unknown_cookies == "block",
            decision.consent_cookie_name,
        )
        found = (verdict, category, cname, (cname, category))
        if sep and len(head) <= self.MAX_NAME:
            actions = self.actions
            if len(memo) >= self.MAX_NAMES:
                memo.clear()
                actions.clear()
            memo[head] = found
            if category is not None or verdict is _KEEP_ALWAYS:
                actions[head] = _ACTIONS[verdict]
        return found

    def vary_pair(
        self, v: _Vocabulary[AnyStr], extra: tuple[str, ...]
    ) -> tuple[AnyStr, AnyStr] | None:
        """The ``Vary`` privguard sends when the app sent none (``None``: nothing to vary on)."""
        key = (v.out_vary, extra)
        found = self.vary.get(key, _MISSING)
        if found is _MISSING:
            merged = merge_vary((), self.decision.vary + extra)
            found = None if merged is None else (v.out_vary, v.raw(merged))
            self.vary[key] = found
        return found  # type: ignore[return-value]

    def tail(
        self,
        v: _Vocabulary[AnyStr],
        referrer: bool,
        changed: bool,
        document: bool,
        vary_extra: tuple[str, ...],
    ) -> tuple[tuple[tuple[AnyStr, AnyStr], ...], int]:
        """What :func:`_filter` appends to a response whose app sent no ``Vary``,
        ``Cache-Control`` or (for a document) ``Permissions-Policy``, and no cookie of
        privguard's own goes with it: the pairs, and where in them the ``Vary`` goes
        (what :func:`changed_headers` keeps of a document; ``-1`` for the rest).

        The same pairs as the general path builds, worked out once per shape:
        a decision filters few shapes (JSON, pages, redirects).
        """
        key = (v.out_vary, referrer, changed, document, vary_extra)
        found = self.tails.get(key)
        if found is not None:
            return found
        decision = self.decision
        pairs: list[tuple[AnyStr, AnyStr]] = [] if referrer else [v.referrer]
        pairs.extend((v.out_set_cookie, v.raw(value)) for value in decision.expire)
        if document and Category.MARKETING not in decision.allowed:
            pairs.append(v.topics)
        at = len(pairs) if document else -1
        pair = self.vary_pair(v, vary_extra)
        if pair is not None:
            pairs.append(pair)
        if changed:
            pairs.append(v.private)
        if self.debug:
            pairs.extend(_debug_pairs(v, decision))
        found = (tuple(pairs), at)
        if len(self.tails) >= 64:  # a handful of shapes in practice; bounded all the same
            self.tails.clear()
        self.tails[key] = found
        return found


_MISSING = object()


def plan_for(decision: Decision, settings: Settings) -> ResponsePlan:
    """The decision's plan for ``settings`` (made on first use, then kept on the decision)."""
    plan = decision.plan
    if plan is None or plan.settings is not settings:
        plan = ResponsePlan(decision, settings)
        decision.plan = plan
    return plan  # type: ignore[no-any-return]


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


def quick_headers(
    headers: Sequence[tuple[AnyStr, AnyStr]],
    decision: Decision,
    settings: Settings,
    status: int,
    consulted: bool,
    raw: bool = False,
) -> list[tuple[AnyStr, AnyStr]] | None:
    """:func:`filter_headers`' answer for the usual response that is not a document,
    or ``None`` when the response needs the whole filter.

    The usual answer (JSON, an asset, a redirect) carries only headers the filter
    passes on, ``Set-Cookie`` lines of names the decision's plan judged before and a
    ``Content-Type`` seen before; privguard adds no cookie of its own. For those the
    answer is the very list :func:`filter_headers` would build, found in one short
    pass and with no :class:`FilterResult`: a server calls this on every response,
    and inside a framework a small function is much cheaper than the general one
    (fewer of its bytes to fetch back into the CPU caches). Anything else -- the
    app's own ``Vary``, ``Cache-Control``, ``Referrer-Policy``, ``Permissions-Policy``,
    ``Content-Encoding`` or ``privguard-skip``, a cookie name not judged yet or
    undeclared (to be reported), an HTML or XHTML page -- answers ``None``.
    ``raw``: the pairs are ASGI's latin-1 bytes (else WSGI's ``str``).
    """
    plan = decision.plan
    if plan is None or plan.settings is not settings:
        return None  # the first response of a decision: the filter makes its plan
    v: _Vocabulary[Any] = _BYTES if raw else _STR
    scanned = _scan(headers, v.kinds, plan.actions, _MEDIA, status)
    if scanned is None:
        return None
    out, kept, dropped = scanned
    if decision.expire:
        dropped = True
    elif not (kept or dropped or consulted or plan.debug):
        out.append(v.referrer)
        return out  # alike for everyone (see filter_headers)
    at = raw + raw + dropped
    tail = plan.quick[at]
    if tail is None:
        tail = plan.quick[at] = plan.tail(v, False, dropped, False, ())[0]
    out += tail
    return out


def _scan_headers(
    headers: Sequence[tuple[Any, Any]],
    kinds: dict[Any, int],
    actions: dict[Any, int],
    media: dict[object, tuple[str, bool]],
    status: int,
) -> tuple[list[tuple[Any, Any]], bool, bool] | None:
    """The quick pass's loop: ``(pairs passed on, a cookie kept as the visitor's consent
    allows, one dropped as it denies)``, or ``None`` when the list needs the whole filter.

    ``privguard.core._quickscan.scan`` is the same loop in C, used when it was built
    (``tests/core/test_quickscan.py`` holds the two to the same answers).
    """
    kept = dropped = False
    ctype: Any = None
    out: list[tuple[Any, Any]] = []
    for pair in headers:
        kind = kinds.get(pair[0])
        if not kind:
            if kind is None and not pair[0].islower() and kinds.get(pair[0].lower()):
                return None  # a header the filter looks at, spelt another way
            out.append(pair)
            continue
        if kind == _COOKIE:
            head, sep, _ = pair[1].partition(b"=" if type(pair[1]) is bytes else "=")
            action = actions.get(head) if sep else None
            if action is None:
                return None  # not judged yet, or undeclared (the filter reports it)
            if action:
                if action == _A_KEEP:
                    kept = True
                else:  # dropped
                    if action == _A_DROP:
                        dropped = True
                    continue
        elif kind == _CTYPE and ctype is None:
            ctype = media.get(pair[1])
            if ctype is None or (ctype[1] and not 300 <= status < 400):
                return None  # a type not seen yet, or a document (before the rest)
        else:  # a header the filter changes, or a second Content-Type
            return None
        out.append(pair)
    return out, kept, dropped


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
# the same verdicts as quick_headers acts on them: passed on alike for everyone, passed
# on as this visitor's consent allows, dropped as it denies, dropped for everyone
_A_PASS, _A_KEEP, _A_DROP, _A_DROP_ALWAYS = range(4)
_ACTIONS = {_KEEP_ALWAYS: _A_PASS, _KEEP: _A_KEEP, _DROP: _A_DROP, _DROP_ALWAYS: _A_DROP_ALWAYS}


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
    plan = plan_for(decision, settings)
    for pair in headers:
        if pair[0].lower() == b"set-cookie":
            found = plan.verdict(_BYTES, pair[1])
            if found[0] is _DROP_ALWAYS or found[0] is _DROP:
                dropped.append(found[3])
                continue
        kept.append(pair)
    return kept, dropped


#: Content-Type value (either string type) -> (its text, is it HTML/XHTML); bounded.
_MEDIA: dict[object, tuple[str, bool]] = {}


def _load_scan() -> Callable[..., tuple[list[Any], bool, bool] | None]:
    """The quick pass's loop: the C one when it was built (and speaks these numbers),
    else :func:`_scan_headers`."""
    try:
        from privguard.core import _quickscan  # type: ignore[attr-defined]
    except ImportError:
        return _scan_headers
    names = ("KIND_COOKIE", "KIND_CTYPE", "ACTION_PASS", "ACTION_KEEP", "ACTION_DROP")
    spoken = tuple(getattr(_quickscan, name, None) for name in (*names, "ACTION_DROP_ALWAYS"))
    if spoken != (_COOKIE, _CTYPE, _A_PASS, _A_KEEP, _A_DROP, _A_DROP_ALWAYS):
        return _scan_headers  # a stale build: the Python loop is the reference
    return _quickscan.scan  # type: ignore[no-any-return]


_scan = _load_scan()


def _media(content_type: AnyStr, text: Callable[[AnyStr], str]) -> tuple[str, bool]:
    """``content_type`` as text, and whether it is HTML/XHTML (remembered in ``_MEDIA``)."""
    value = text(content_type)
    known = (value, is_html(value))
    if len(_MEDIA) >= 256:
        _MEDIA.clear()
    _MEDIA[content_type] = known
    return known


def is_html(content_type: str) -> bool:
    """Is ``content_type`` an HTML or XHTML page (parameters and case ignored)?"""
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype in ("text/html", "application/xhtml+xml")


def is_document(content_type: str, status: int) -> bool:
    """Is this response a page a browser renders (HTML or XHTML, not a redirect)?

    Document-only headers (Permissions-Policy) and the banner concern these alone;
    :attr:`FilterResult.document` is this answer for a filtered response.
    """
    return not 300 <= status < 400 and is_html(content_type)


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
    plan = decision.plan
    if plan is None or plan.settings is not settings:
        plan = plan_for(decision, settings)
    out: list[tuple[AnyStr, AnyStr]] = []
    result: FilterResult[AnyStr] = FilterResult(out)
    kinds = v.kinds
    equals = v.equals
    memo = plan.verdicts
    # ``depends``: privguard's answer differs between visitors (consent, region,
    # signals), so Vary must say on what. ``changed`` (private): it differs now.
    depends = consulted or changed or plan.debug
    permissions: str | None = None
    referrer = False
    vary: list[str] | None = None
    cache_control: str | None = None
    dropped: list[tuple[str, Category | None]] | None = None
    ctype: AnyStr | None = None
    for pair in headers:
        kind = kinds.get(pair[0])
        if not kind:
            if kind is None and not pair[0].islower():
                kind = kinds.get(pair[0].lower())
                result.cased = True
            if not kind:
                out.append(pair)
                continue
        if kind == _COOKIE:
            head, sep, _ = pair[1].partition(equals)
            found = memo.get(head) if sep else None
            if found is None:
                found = plan.verdict(v, pair[1])
            verdict = found[0]
            if verdict is not _KEEP_ALWAYS:
                if verdict is _KEEP:
                    depends = True  # its fate depends on consent
                else:
                    if dropped is None:
                        dropped = result.dropped = []
                    dropped.append(found[3])
                    if verdict is _DROP:
                        depends = changed = True
                    elif found[1] is None:
                        result.undeclared = True
                    continue
        elif kind == _CTYPE:
            ctype = pair[1]
        elif kind == _VARY:
            if vary is None:
                vary = []
            vary.append(v.text(pair[1]))
        elif kind == _CACHE:
            value = v.text(pair[1])
            cache_control = value if cache_control is None else f"{cache_control}, {value}"
        elif kind == _REFERRER:
            referrer = True
        elif kind == _PERMISSIONS:
            value = v.text(pair[1])
            permissions = value if permissions is None else f"{permissions}, {value}"
        elif kind == _CENCODING:
            result.content_encoding = v.text(pair[1])
        elif kind == _SKIP:  # privguard's own instruction: never sent on
            result.skip = v.text(pair[1]).strip() not in ("", "0")
            continue
        out.append(pair)
    document = False
    if ctype is not None:
        known = _MEDIA.get(ctype) or _media(ctype, v.text)
        result.content_type = known[0]
        if known[1] and not 300 <= status < 400:
            document = result.document = True
    if decision.expire or extra_cookies:
        changed = True
    if not (depends or changed or document):
        if not referrer:
            out.append(v.referrer)
        return result  # alike for everyone: the app's headers as they came (+ Referrer-Policy)
    if (
        vary is None
        and cache_control is None
        and not extra_cookies
        and (permissions is None or not document)
    ):  # the usual response: what privguard appends is the same every time (ResponsePlan.tail)
        found = plan.tails.get((v.out_vary, referrer, changed, document, vary_extra))
        adds, at = found or plan.tail(v, referrer, changed, document, vary_extra)
        if at >= 0:
            result.tail = len(out) + at
            result._vocabulary = v
        out += adds
        return result
    if not referrer:
        out.append(v.referrer)
    raw = v.raw
    if vary is not None or cache_control is not None or (document and permissions is not None):
        # merged anew below (rare: the app sent its own Vary / Cache-Control / policy)
        rewritten = (_VARY, _CACHE, _PERMISSIONS) if document else (_VARY, _CACHE)
        out[:] = [pair for pair in out if kinds.get(pair[0].lower(), 0) not in rewritten]
    if decision.expire:
        out.extend((v.out_set_cookie, raw(value)) for value in decision.expire)
    if extra_cookies:
        out.extend((v.out_set_cookie, raw(value)) for value in extra_cookies)
    if document:
        if Category.MARKETING not in decision.allowed:
            if permissions is None:
                out.append(v.topics)
            else:
                out.append((v.out_permissions, raw(merge_permissions_policy(permissions))))
        elif permissions is not None:
            out.append((v.out_permissions, raw(permissions)))
    if vary is None:
        if document and cache_control is None:  # what changed_headers() keeps
            result.tail = len(out)
            result._vocabulary = v
        pair = plan.vary_pair(v, vary_extra)
        if pair is not None:
            out.append(pair)
    else:
        merged_vary = merge_vary(vary, decision.vary + vary_extra)
        if merged_vary:
            out.append((v.out_vary, raw(merged_vary)))
    if changed:
        if cache_control is None:
            out.append(v.private)
        else:
            out.append((v.out_cache_control, raw(make_private(cache_control))))
    elif cache_control is not None:
        out.append((v.out_cache_control, raw(cache_control)))
    if plan.debug:
        out.extend(_debug_pairs(v, decision))
    return result


def _debug_pairs(v: _Vocabulary[AnyStr], decision: Decision) -> list[tuple[AnyStr, AnyStr]]:
    """``Privguard-Region`` and ``Privguard-Regime`` (the ``debug_headers`` option)."""
    region = decision.subdivision or decision.country or "unknown"
    return [(v.out_region, v.raw(region)), (v.out_regime, v.raw(decision.regime.name))]


def changed_headers(
    result: FilterResult[AnyStr],
    decision: Decision,
    settings: Settings,
    vary_extra: tuple[str, ...],
    drop_length: bool = False,
) -> list[tuple[AnyStr, AnyStr]] | None:
    """The headers of a filtered document once privguard changed its body (the banner).

    The same as filtering the app's headers again with ``changed=True`` and
    ``vary_extra``, without a second pass over them: only the ``Vary`` and
    ``Cache-Control`` privguard adds at the end differ. ``drop_length`` leaves out
    ``Content-Length`` (the body's length changed). ``None`` when ``result`` cannot be
    reused that way (the app sent its own ``Vary`` or ``Cache-Control``): filter again.
    """
    tail = result.tail
    if tail < 0:
        return None
    v = result._vocabulary
    out = without_length(result.headers[:tail]) if drop_length else result.headers[:tail]
    # what a changed page appends after that place (Vary, private, debug) is the usual
    # page's tail from its Vary on, whatever went before it
    adds, at = plan_for(decision, settings).tail(v, True, True, True, vary_extra)
    out += adds[at:]
    return out


def without_length(headers: list[tuple[AnyStr, AnyStr]]) -> list[tuple[AnyStr, AnyStr]]:
    """``headers`` without ``Content-Length`` (any case): a body privguard changed has
    another length, given anew or left to the server's chunked framing."""
    if not headers:
        return headers
    length: object = b"content-length" if isinstance(headers[0][0], bytes) else "content-length"
    # a name of another length is not it: lower-cased only when it may be
    return [pair for pair in headers if len(pair[0]) != 14 or pair[0].lower() != length]


def content_length(headers: Sequence[tuple[AnyStr, AnyStr]]) -> AnyStr | None:
    """The first ``Content-Length`` value in ``headers`` (any case), or ``None``."""
    if not headers:
        return None
    length: object = b"content-length" if isinstance(headers[0][0], bytes) else "content-length"
    for name, value in headers:
        if len(name) == 14 and name.lower() == length:
            return value
    return None
