"""Runtime: the per-middleware objects built once from :class:`Settings`.

The WSGI and ASGI adapters each hold one :class:`Runtime`. It owns every
cache and outside resource (GeoIP reader, user-agent cache, consent-cookie
cache, ledger writer, rate limiter, banner renderer), so two apps or two test
cases in one process never share state.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from itsdangerous import BadData, TimestampSigner

from privguard.core.consent import CSRF_SALT, ConsentCodec
from privguard.core.decision import Decision, Lookups, decide
from privguard.core.request import RequestView
from privguard.settings import Settings

__all__ = ["Runtime", "build_settings", "no_receipts"]

log = logging.getLogger("privguard")

CSRF_MAX_AGE = 24 * 3600


def _host_digest(host: str) -> bytes:
    """What a CSRF token signs for ``host``: an ASCII digest, whatever bytes the host had.

    Signing the host itself put its bytes into the token, so a UTF-8 ``Host``
    made a token that is not ASCII (a 500 on every page); a digest is always
    URL-safe ASCII and of fixed size.
    """
    digest = hashlib.sha256(host.encode("utf-8", "surrogatepass")).digest()[:18]
    return base64.urlsafe_b64encode(digest)


def build_settings(settings: Settings | None, options: dict[str, Any]) -> Settings:
    """Accept either a ready Settings or keyword options (not both)."""
    if settings is not None:
        if options:
            return settings.replace(**options)
        return settings
    return Settings(**options)


class DecisionCache:
    """Bounded memo of decisions, keyed on exactly the inputs :func:`decide` reads.

    A returning visitor sends the same peer, cookies, user agent and signals
    on every request, so the whole decision can be reused: a hit costs a
    tuple hash instead of ~7 µs. The key holds every value the decision
    depends on (two visitors can only share an entry when their inputs are
    identical, i.e. when their decisions are too); an entry lives at most
    ``ttl`` seconds (GeoIP data may change) and never past the consent
    cookie's expiry. Bounded in entries and in key size.
    """

    MAX_KEY_CHARS = 4096  # x 4096 entries: at most ~16 MB of keys, typically ~2 MB

    def __init__(self, settings: Settings, size: int = 4096, ttl: float = 60.0) -> None:
        self._size = size
        self._ttl = ttl
        self._max_age = settings.consent_max_age
        self._header = settings.country_header
        self._gated = settings.age_gate_regex is not None
        self._cache: dict[tuple[str | None, ...], tuple[Decision, float, int]] = {}

    def key(self, view: RequestView) -> tuple[str | None, ...] | None:
        """The cache key of ``view``; ``None`` when it is too large to keep."""
        h = view.headers
        key = (
            view.peer,
            view.scheme,
            view.path if self._gated else None,
            h.get("cookie"),
            h.get("user-agent"),
            h.get("x-forwarded-for"),
            h.get("forwarded"),
            h.get("sec-gpc"),
            h.get("dnt"),
            h.get(self._header) if self._header else None,
        )
        if sum(len(part) for part in key if part) > self.MAX_KEY_CHARS:
            return None
        return key

    def get(self, key: tuple[str | None, ...], now: float, generation: int = 0) -> Decision | None:
        """A still-valid decision for ``key`` (same GeoIP ``generation``), or ``None``."""
        entry = self._cache.get(key)
        if entry is None or entry[1] <= now or entry[2] != generation:
            return None
        return entry[0]

    def put(
        self, key: tuple[str | None, ...], decision: Decision, now: float, generation: int = 0
    ) -> None:
        """Keep ``decision`` until the TTL or its consent cookie expires."""
        until = now + self._ttl
        state = decision.state
        if state is not None:
            until = min(until, state.timestamp + self._max_age)
        cache = self._cache
        if len(cache) >= self._size:
            cache.clear()  # cheap and bounded; a miss only costs one decide()
        cache[key] = (decision, until, generation)

    def __len__(self) -> int:
        return len(self._cache)


#: Set while ``privguard audit``/``cookies`` crawl an app in this process: a crawl's
#: choices are no visitor's consent, so no runtime writes (or even opens) a ledger.
_NO_RECEIPTS = threading.Event()


@contextlib.contextmanager
def no_receipts() -> Iterator[None]:
    """Within this block no runtime of this process writes consent receipts."""
    _NO_RECEIPTS.set()
    try:
        yield
    finally:
        _NO_RECEIPTS.clear()


def _join(*snippets: bytes | None) -> bytes | None:
    parts = [s for s in snippets if s]
    return b"".join(parts) if parts else None


class Runtime:
    """Everything an adapter needs besides the app; built once at start-up."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        from privguard.analytics import make_sink
        from privguard.banner import BannerRenderer
        from privguard.banner.autoblock import AutoBlocker
        from privguard.geo import open_geo
        from privguard.ratelimit import RateLimiter
        from privguard.useragent import UserAgents

        self.settings = settings
        self.clock = clock
        if settings.ledger is not None:
            from privguard.ledger.base import ledger_kind

            if ledger_kind(settings.ledger) == "sqlite":
                from privguard.ledger.sqlite import check_writable

                check_writable(settings.ledger)  # a bad path fails the start, not a consent
        self.codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
        self.lookups = Lookups(
            geo=open_geo(settings.geoip_db, settings.geoip_required),
            user_agents=UserAgents(),
            codec=self.codec,
        )
        self.decisions = DecisionCache(settings)
        #: set once compressed HTML has been reported (see ``_adapter.note_compressed_html``)
        self.compressed_html_noted = False
        # GeoIP answers change when the database is replaced: cached decisions follow
        self._geo_generation = getattr(self.lookups.geo, "generation", None)
        self.banner = BannerRenderer(settings)
        self.blocker = AutoBlocker(settings, self.banner.placeholder)
        self.analytics = make_sink(settings.analytics)
        self.rate_limiter = None
        self.ip_rate_limiter = None
        if settings.rate_limit:
            self.rate_limiter = RateLimiter(settings.rate_limit)
            # Every choice issues a new consent id, so a loop that keeps its cookie
            # would get a fresh key each time: the truncated IP alone is limited too,
            # at ten times the rate (visitors behind one NAT share a /24).
            count, _, unit = settings.rate_limit.partition("/")
            self.ip_rate_limiter = RateLimiter(f"{int(count) * 10}/{unit.strip()}")
        self._csrf = TimestampSigner(list(reversed(settings.secret_keys)), salt=CSRF_SALT)
        self._csrf_cache: dict[str, tuple[int, str]] = {}
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._report_lock = threading.Lock()
        self._withdrawals: OrderedDict[str, None] = OrderedDict()
        self._ledger: Any = None
        self._ledger_lock = threading.Lock()
        prefix = settings.endpoint_prefix
        self.prefix = prefix
        self.prefix_slash = prefix + "/"
        self._body_paths = frozenset(
            {prefix + "/consent", prefix + "/age", prefix + "/do-not-sell"}
        )

    # -- per request ------------------------------------------------------------------

    def decide(self, view: RequestView) -> Decision:
        """The decision for one request, now (memoised; see :class:`DecisionCache`)."""
        now = self.clock()
        cache = self.decisions
        key = cache.key(view)
        if key is None:
            return decide(view, self.settings, self.lookups, now)
        geo_generation = self._geo_generation
        generation = geo_generation() if geo_generation is not None else 0
        found = cache.get(key, now, generation)
        if found is not None:
            return found
        decision = decide(view, self.settings, self.lookups, now)
        cache.put(key, decision, now, generation)
        return decision

    def is_endpoint(self, path: str) -> bool:
        """Does ``path`` belong to privguard's own endpoints?"""
        return path.startswith(self.prefix_slash) or path == "/.well-known/gpc.json"

    def reads_body(self, view: RequestView) -> bool:
        """Does privguard read this request's body? Only a POST to ``consent``, ``age``
        or ``do-not-sell``.

        Every other request under the prefix (a shop route such as
        ``/privguard/feedback``, a POST to an asset path) reaches the app with
        its body unread.
        """
        return view.method == "POST" and view.path in self._body_paths

    def report_dropped(self, dropped: list[tuple[str, Any]], path: str) -> None:
        """Log each undeclared cookie name once per runtime (bounded)."""
        for name, category in dropped:
            if category is not None:
                continue
            if name in self._reported:
                continue
            with self._report_lock:
                if name in self._reported:
                    continue
                self._reported[name] = None
                if len(self._reported) > 10_000:
                    self._reported.popitem(last=False)
            log.warning(
                "privguard blocked undeclared cookie %r (first seen on %s); declare it in "
                "the `cookies` option",
                name,
                path,
            )

    @property
    def undeclared_cookies(self) -> list[str]:
        """Undeclared cookie names seen so far (the inventory's "unknown" list)."""
        return list(self._reported)

    def first_withdrawal(self, receipt_id: str) -> bool:
        """True the first time this process sees a signal-withdrawal receipt id (bounded)."""
        with self._report_lock:
            if receipt_id in self._withdrawals:
                return False
            self._withdrawals[receipt_id] = None
            if len(self._withdrawals) > 10_000:
                self._withdrawals.popitem(last=False)
            return True

    def on_minor(self, view: RequestView, decision: Decision) -> None:
        """Run the shop's ``on_minor`` hook; its errors are logged, never raised."""
        hook = self.settings.on_minor
        if hook is None:
            return
        from privguard.context import PrivacyContext

        try:
            hook(PrivacyContext(decision, self))
        except Exception:
            log.exception("privguard on_minor hook failed")

    def injector(self, decision: Decision, lang: str, view: RequestView, nonce: str | None) -> Any:
        """A fresh banner injector for one HTML response."""
        from privguard.banner import HtmlInjector

        banner = self.banner
        return HtmlInjector(
            body=banner.body_snippet(
                lang, decision, self.csrf_token(view.host), nonce, view.path, view.query
            ),
            head=_join(banner.guard_snippet(decision, nonce), banner.head_snippet(decision, nonce)),
            rewriter=self.blocker.for_response(decision.allowed, lang),
        )

    def age_gate_response(
        self, view: RequestView, decision: Decision, lang: str, nonce: str | None
    ) -> Any:
        """The answer on an age-gated path: the age form, or the minors' page (403)."""
        from privguard.endpoints import EndpointResponse, json_error

        accept = (view.header("accept") or "").lower()
        wants_html = "text/html" in accept or "application/xhtml+xml" in accept
        minor = decision.age_status == "minor"
        if not wants_html:
            message = (
                "this page is not available to visitors under the required age"
                if minor
                else f"age confirmation required: POST a birth date to {self.prefix}/age"
            )
            return json_error(403, message)
        if minor:
            body = self.banner.minor_page(lang, decision)
        else:
            query = view.path
            body = self.banner.age_form(lang, decision, self.csrf_token(view.host), query, nonce)
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Content-Language", lang),
        ]
        return EndpointResponse(403, headers, body)

    def page_view(self, view: RequestView, decision: Decision, content_type: str) -> None:
        """Send a page view to the analytics sink when performance is allowed."""
        sink = self.analytics
        if sink is None or view.method != "GET" or not content_type.startswith("text/html"):
            return
        if not decision.allows("performance") or decision.is_bot:
            return
        from privguard.analytics import page_view_from

        try:
            sink(page_view_from(decision, view.path, view.header("referer"), self.clock()))
        except Exception:
            log.exception("privguard analytics sink failed")

    # -- CSRF --------------------------------------------------------------------------

    def csrf_token(self, host: str) -> str:
        """A host-bound token for the banner form, minted at most once an hour per host."""
        hour = int(self.clock() // 3600)
        cached = self._csrf_cache.get(host)
        if cached is not None and cached[0] == hour:
            return cached[1]
        token = self._csrf.sign(_host_digest(host)).decode("ascii")
        if len(self._csrf_cache) > 1000:
            self._csrf_cache.clear()
        self._csrf_cache[host] = (hour, token)
        return token

    def check_csrf(self, token: str | None, host: str) -> bool:
        """Verify a banner token for ``host`` (timing-safe, never raises)."""
        if not token or len(token) > 512:
            return False
        try:
            value = self._csrf.unsign(token, max_age=CSRF_MAX_AGE)
        except (BadData, ValueError, TypeError, UnicodeError):
            return False
        return secrets.compare_digest(value, _host_digest(host))

    # -- ledger ------------------------------------------------------------------------

    @property
    def ledger(self) -> Any:
        """The ledger writer, opened on first use; ``None`` when disabled or crawling."""
        if self.settings.ledger is None or _NO_RECEIPTS.is_set():
            return None
        if self._ledger is None:
            with self._ledger_lock:
                if self._ledger is None:
                    from privguard.ledger import LedgerWriter

                    self._ledger = LedgerWriter(self.settings.ledger)
        return self._ledger

    def close(self) -> None:
        """Flush and close outside resources (ledger)."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
