"""Crawl a site as a first-time visitor from each region and judge every cookie it sets.

The crawl starts at ``/`` (or the URL's path), follows same-origin ``<a href>``
links breadth-first (``max_pages``, ``max_depth``), follows same-origin
redirects itself and keeps the cookies the site sets, as a browser would.

Judgement, per region (the region's regime comes from the audited app's
settings, or the built-in tables):

* ``before-consent`` -- a cookie of a category the regime makes opt-in was set
  before any choice: in ``gdpr`` regions every non-essential category, in
  opt-out regions (``us-optout``, ``notice``) marketing.
* ``gpc-ignored`` -- a marketing cookie was set for a visitor sending ``Sec-GPC: 1``.
* ``undeclared`` -- a cookie the catalog does not know.

How the region travels: the country goes in ``country_header`` (default
``CF-IPCountry``; ``US`` for ``US-CA``), and GPC in ``Sec-GPC: 1``. The
audited app must believe that header from the auditor -- in-process the
auditor is ``127.0.0.1``, so ``trusted_proxies`` must include it -- or be
audited through a geo-aware proxy. The crawler asks privguard's
``GET /privguard/consent`` which country the app saw and warns when it differs.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit

from privguard.audit.target import Target, TargetError
from privguard.audit.transport import TransportError
from privguard.core.categories import Category
from privguard.core.regions import Regime, normalise_country
from privguard.testing.responses import ResponseData, SetCookie, parse_set_cookie
from privguard.testing.visitors import BROWSER_USER_AGENT

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = [
    "AuditVisitor",
    "CookieRecord",
    "Finding",
    "PageResult",
    "RegionResult",
    "AuditResult",
    "Crawler",
    "parse_regions",
    "judge",
    "judge_request",
    "TrackerRequest",
    "regime_of",
    "DEFAULT_REGIONS",
]

DEFAULT_REGIONS = ("DE", "US-CA+gpc", "BR")
MAX_REDIRECTS = 10
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True, slots=True)
class AuditVisitor:
    """A first-time visitor: region (``DE``, ``US-CA``) and whether they send GPC."""

    country: str
    subdivision: str | None = None
    gpc: bool = False

    @property
    def region(self) -> str:
        """``DE`` or ``US-CA``."""
        return self.subdivision or self.country

    @property
    def label(self) -> str:
        """``DE`` or ``US-CA+gpc``."""
        return self.region + ("+gpc" if self.gpc else "")


def parse_regions(values: list[str], gpc: bool = False) -> list[AuditVisitor]:
    """``["DE,US-CA+gpc", "BR"]`` → visitors; ``gpc`` adds GPC to every one.

    :raises TargetError: for a code that is not like ``DE`` or ``US-CA``.
    """
    out: list[AuditVisitor] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            code, plus, flag = item.partition("+")
            if plus and flag.lower() != "gpc":
                raise TargetError(f"--region {item!r}: the only suffix is '+gpc'")
            code = code.upper()
            country, dash, sub = code.partition("-")
            if len(country) != 2 or not country.isalpha() or (dash and not sub.isalnum()):
                raise TargetError(f"--region {item!r} is not like 'DE' or 'US-CA'")
            visitor = AuditVisitor(country, code if dash else None, gpc or bool(plus))
            if visitor not in out:
                out.append(visitor)
    if not out:
        raise TargetError("--region: no region given")
    return out


@dataclass(frozen=True, slots=True)
class CookieRecord:
    """A cookie seen during the crawl."""

    name: str
    category: str  # necessary | functionality | performance | marketing | undeclared
    region: str  # the visitor's label
    page: str  # the path whose response (or script) set it
    source: str = "server"  # server | script
    domain: str = ""
    path: str = ""
    lifetime: str = "session"
    flags: tuple[str, ...] = ()
    raw: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "name": self.name,
            "category": self.category,
            "region": self.region,
            "page": self.page,
            "source": self.source,
            "domain": self.domain,
            "path": self.path,
            "lifetime": self.lifetime,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class TrackerRequest:
    """A request to a catalogued tracker host (``--browser`` crawls only)."""

    url: str
    host: str
    tracker: str  # the catalog entry's name
    category: str
    region: str
    page: str

    def as_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "url": self.url,
            "host": self.host,
            "tracker": self.tracker,
            "category": self.category,
            "region": self.region,
            "page": self.page,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: a cookie set, or a tracker called, that this visitor did not allow."""

    kind: str  # before-consent | gpc-ignored | undeclared | tracker-before-consent | tracker-gpc
    cookie: CookieRecord | None = None
    request: TrackerRequest | None = None

    @property
    def name(self) -> str:
        """The cookie's name or the tracker host."""
        if self.request is not None:
            return self.request.host
        return self.cookie.name if self.cookie is not None else ""

    @property
    def message(self) -> str:
        """One line naming the cookie (or tracker), its category, the visitor and the page."""
        r = self.request
        if r is not None:
            why = (
                "although the visitor sent GPC" if self.kind == "tracker-gpc" else "before consent"
            )
            return (
                f"request to {r.host} ({r.tracker}, {r.category}) {why} for {r.region} on "
                f"{r.page}: {r.url}"
            )
        c = self.cookie
        assert c is not None
        what = {
            "before-consent": "set before consent",
            "gpc-ignored": "set although the visitor sent GPC",
            "undeclared": "is not declared in the cookie catalog",
        }[self.kind]
        via = " by a script" if c.source == "script" else ""
        return f"{c.name} ({c.category}) {what}{via} for {c.region} on {c.page}"

    def as_dict(self) -> dict[str, object]:
        """JSON-able form."""
        subject = self.request if self.request is not None else self.cookie
        return {
            "kind": self.kind,
            "message": self.message,
            **(subject.as_dict() if subject is not None else {}),
        }


@dataclass(slots=True)
class PageResult:
    """One crawled page for one visitor."""

    path: str
    depth: int
    status: int = 0
    content_type: str = ""
    cookies: list[CookieRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    #: requests to catalogued tracker hosts while this page loaded (``--browser``)
    requests: list[TrackerRequest] = field(default_factory=list)
    #: other hosts the page called (not in the tracker catalog: review them)
    third_party: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RegionResult:
    """The crawl for one visitor."""

    visitor: AuditVisitor
    regime: str
    pages: list[PageResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: findings about the region itself: the audit could not put the app into it
    problems: list[str] = field(default_factory=list)
    #: undeclared cookies the app set and privguard blocked (in-process targets)
    blocked: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """Every finding on every page."""
        return [f for p in self.pages for f in p.findings]

    @property
    def cookies(self) -> list[CookieRecord]:
        """Every cookie seen."""
        return [c for p in self.pages for c in p.cookies]


@dataclass(slots=True)
class AuditResult:
    """The whole audit: one :class:`RegionResult` per visitor."""

    target: str
    regions: list[RegionResult] = field(default_factory=list)
    catalog: str = "built-in"  # where the categories came from

    @property
    def findings(self) -> list[Finding]:
        """Every finding."""
        return [f for r in self.regions for f in r.findings]

    @property
    def problems(self) -> list[str]:
        """Every region the audit could not simulate."""
        return [p for r in self.regions for p in r.problems]

    @property
    def clean(self) -> bool:
        """No finding and every region simulated."""
        return not self.findings and not self.problems

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a finding (a cookie, or a region the app was not put into)."""
        return 0 if self.clean else 1


def regime_of(visitor: AuditVisitor, settings: Settings) -> Regime:
    """The regime the app applies to ``visitor`` (``XX`` and other unknowns: the strictest)."""
    country = normalise_country(visitor.country)
    return settings.regions.regime_for(country, visitor.subdivision if country else None)


def judge(cookie: CookieRecord, visitor: AuditVisitor, settings: Settings) -> Finding | None:
    """The finding for ``cookie`` set for first-time ``visitor``, or ``None``."""
    if cookie.category == "undeclared":
        return Finding("undeclared", cookie)
    category = Category(cookie.category)
    if category is Category.NECESSARY:
        return None
    if visitor.gpc and category is Category.MARKETING:
        return Finding("gpc-ignored", cookie)
    regime = regime_of(visitor, settings)
    if category in regime.opt_in or category not in regime.default_on:
        return Finding("before-consent", cookie)
    return None


def judge_request(
    request: TrackerRequest, visitor: AuditVisitor, settings: Settings, google: bool
) -> Finding | None:
    """The finding for a tracker request made for first-time ``visitor``, or ``None``.

    ``google``: a Google tag under Consent Mode "advanced", which loads with denied
    defaults on purpose.
    """
    category = Category(request.category)
    if category is Category.NECESSARY or google:
        return None
    if visitor.gpc and category is Category.MARKETING:
        return Finding("tracker-gpc", request=request)
    regime = regime_of(visitor, settings)
    if category in regime.opt_in or category not in regime.default_on:
        return Finding("tracker-before-consent", request=request)
    return None


def record_from(
    cookie: SetCookie, settings: Settings, region: str, page: str, source: str = "server"
) -> CookieRecord:
    """A :class:`CookieRecord` for a parsed ``Set-Cookie``."""
    category = settings.catalog.classify(cookie.name)
    return CookieRecord(
        name=cookie.name,
        category="undeclared" if category is None else category.value,
        region=region,
        page=page,
        source=source,
        domain=cookie.attributes.get("domain", "").lstrip(".") or "(host)",
        path=cookie.attributes.get("path", "") or "/",
        lifetime=cookie.lifetime,
        flags=cookie.flags,
        raw=cookie.raw,
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


def extract_links(html: str, page_url: str, origin: str) -> list[str]:
    """Same-origin link targets (path + query) of a page, in document order."""
    parser = _Links()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; never let a page stop the crawl
        pass
    base = urljoin(page_url, parser.base) if parser.base else page_url
    origin_parts = urlsplit(origin)
    out: list[str] = []
    for href in parser.hrefs:
        url, _ = urldefrag(urljoin(base, href.strip()))
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (origin_parts.scheme, origin_parts.netloc):
            continue
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if target not in out:
            out.append(target)
    return out


def is_html(response: ResponseData) -> bool:
    """Is the response an HTML page?"""
    return response.content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


class Crawler:
    """Crawls one :class:`Target` for each visitor; no state is shared between visitors."""

    def __init__(
        self,
        target: Target,
        settings: Settings,
        country_header: str = "CF-IPCountry",
        max_pages: int = 50,
        max_depth: int = 3,
        timeout: float = 10,
        progress: Progress | None = None,
    ) -> None:
        self.target = target
        self.settings = settings
        self.country_header = country_header
        self.max_pages = max_pages
        self.max_depth = max_depth
        self.timeout = timeout
        self.progress = progress
        self.prefix = settings.endpoint_prefix

    # -- requests ------------------------------------------------------------------------

    def headers(self, visitor: AuditVisitor, jar: dict[str, str]) -> list[tuple[str, str]]:
        """The request headers of ``visitor`` carrying the cookies in ``jar``."""
        out = [
            ("User-Agent", BROWSER_USER_AGENT),
            ("Accept", _ACCEPT),
            ("Accept-Language", "en"),
            (self.country_header, visitor.country),
        ]
        if visitor.gpc:
            out.append(("Sec-GPC", "1"))
        if jar:
            out.append(("Cookie", "; ".join(f"{n}={v}" for n, v in jar.items())))
        return out

    def fetch(
        self, visitor: AuditVisitor, target: str, jar: dict[str, str]
    ) -> tuple[ResponseData, list[SetCookie], str]:
        """GET ``target``, following same-origin redirects; returns the last response, every
        cookie set on the way (the jar is updated) and the final path.

        :raises TransportError: unreachable or too slow.
        :raises TargetError: a redirect loop or too many redirects.
        """
        chain = [target]
        cookies: list[SetCookie] = []
        origin = self.target.transport.origin
        while True:
            response = self.target.transport.request(
                "GET", target, self.headers(visitor, jar), timeout=self.timeout
            )
            for value in response.set_cookies:
                cookie = parse_set_cookie(value)
                if cookie is None:
                    continue
                cookies.append(cookie)
                if cookie.is_expiry():
                    jar.pop(cookie.name, None)
                else:
                    jar[cookie.name] = cookie.value
            location = response.header("location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response, cookies, target
            url = urljoin(origin + target, location)
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != origin:
                return response, cookies, target  # leaves the site: stop here
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if target in chain:
                raise TargetError(f"redirect loop: {' -> '.join([*chain, target])}")
            chain.append(target)
            if len(chain) > MAX_REDIRECTS:
                raise TargetError(f"more than {MAX_REDIRECTS} redirects from {chain[0]}")

    def accept_all(self, visitor: AuditVisitor, jar: dict[str, str]) -> ResponseData:
        """POST ``accept=all`` to privguard's consent endpoint, as the banner's form does."""
        origin = self.target.transport.origin
        headers = [
            *self.headers(visitor, jar),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", origin),
        ]
        response = self.target.transport.request(
            "POST", f"{self.prefix}/consent", headers, b"accept=all", timeout=self.timeout
        )
        for value in response.set_cookies:
            cookie = parse_set_cookie(value)
            if cookie is not None and not cookie.is_expiry():
                jar[cookie.name] = cookie.value
        return response

    def seen_country(self, visitor: AuditVisitor, jar: dict[str, str]) -> str | None:
        """A finding when privguard's state endpoint reports another country than sent.

        The audit then judged the app for a region it never showed the app: the
        cookies it saw are those of the region the app believed in (often the
        strictest), so passing would be a false "clean".
        """
        try:
            response = self.target.transport.request(
                "GET",
                f"{self.prefix}/consent",
                [*self.headers(visitor, jar), ("Accept", "application/json")],
                timeout=self.timeout,
            )
        except TransportError:
            return None
        if response.status != 200 or "json" not in response.content_type:
            return None  # not privguard-protected (or elsewhere): nothing to check
        try:
            country = json.loads(response.body).get("country")
        except (ValueError, AttributeError):
            return None
        expected = normalise_country(visitor.country)
        if country != expected:
            return (
                f"{visitor.label}: region not simulated -- the app saw country {country!r}, "
                f"not {expected!r}. Fix: let the app read the country from the header the "
                f"audit sends ({self.country_header}; country_header={self.country_header!r}) "
                "and trust the auditor's address (trusted_proxies=['127.0.0.1'] for "
                "module:app and local servers), or pass --country-header with the header "
                "the app reads"
            )
        return None

    # -- crawl ---------------------------------------------------------------------------

    def crawl(
        self, visitor: AuditVisitor, jar: dict[str, str] | None = None, judge_cookies: bool = True
    ) -> RegionResult:
        """Crawl the site as ``visitor`` (a first-time visitor unless ``jar`` holds cookies).

        :raises TargetError: when the start page is unreachable, not HTML, or loops.
        """
        settings = self.settings
        regime = regime_of(visitor, settings).name
        result = RegionResult(visitor, regime)
        jar = {} if jar is None else jar
        origin = self.target.transport.origin
        start = self.target.start_path
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        queued = {start}
        while queue and len(result.pages) < self.max_pages:
            path, depth = queue.popleft()
            page = PageResult(path, depth)
            result.pages.append(page)
            if self.progress is not None:
                self.progress(visitor.label, len(result.pages), self.max_pages, path)
            try:
                response, cookies, final = self.fetch(visitor, path, jar)
            except (TransportError, TargetError) as exc:
                if path == start:
                    raise TargetError(f"start page {origin}{path}: {exc}") from None
                page.error = str(exc)
                continue
            page.status = response.status
            page.content_type = response.content_type
            for cookie in cookies:
                if cookie.is_expiry():
                    continue
                record = record_from(cookie, settings, visitor.label, path)
                page.cookies.append(record)
                if judge_cookies:
                    finding = judge(record, visitor, settings)
                    if finding is not None:
                        page.findings.append(finding)
            if not is_html(response):
                if path == start:
                    raise TargetError(
                        f"start page {origin}{final} is not HTML (status {response.status}, "
                        f"Content-Type {response.content_type or 'none'!r})"
                    )
                continue
            if path == start and response.status >= 400:
                raise TargetError(f"start page {origin}{final} answered {response.status}")
            if depth >= self.max_depth:
                continue
            for link in extract_links(response.text, origin + final, origin):
                if link in queued or link.startswith(self.prefix + "/"):
                    continue
                queued.add(link)
                queue.append((link, depth + 1))
        problem = self.seen_country(visitor, {})
        if problem:
            result.problems.append(problem)
        return result
