"""Runtime: the per-middleware objects built once from :class:`Settings`.

The WSGI and ASGI adapters each hold one :class:`Runtime`. It owns every
cache and outside resource (GeoIP reader, user-agent cache, consent-cookie
cache, ledger writer, rate limiter, banner renderer), so two apps or two test
cases in one process never share state.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from privguard.core.consent import ConsentCodec
from privguard.core.decision import Decision, Lookups, decide
from privguard.core.request import RequestView
from privguard.ratelimit import Rate, RateLimiter, parse_rate
from privguard.settings import Settings

if TYPE_CHECKING:
    from privguard.context import PrivacyContext

__all__ = ["Runtime", "build_settings", "no_receipts"]

log = logging.getLogger("privguard")

CSRF_MAX_AGE = 24 * 3600
#: the Global Privacy Control support resource, answered beside the endpoints
GPC_PATH = "/.well-known/gpc.json"
#: Domain separation of the per-page-view token's MAC.
VIEW_TOKEN_SALT = b"privguard.view.v1|"
_NONCE_BYTES = 11  # + 4 bytes of time + 12 bytes of MAC = 27 bytes, 36 characters
_MAC_BYTES = 12
_TOKEN_BYTES = _NONCE_BYTES + 4 + _MAC_BYTES


class _Nonces:
    """Random nonces for page tokens, from the OS's CSPRNG a few hundred at a time.

    One ``getrandom`` system call per HTML page cost several microseconds behind a
    framework (the kernel round trip evicts what the CPU had cached); one read of
    :attr:`BATCH` nonces costs about the same as one. Each nonce is handed out once
    (``deque.popleft`` is atomic), and a forked child starts with none of its parent's.
    """

    BATCH = 256

    def __init__(self, size: int) -> None:
        self._size = size
        self._ready: deque[bytes] = deque()
        os.register_at_fork(after_in_child=self._ready.clear)

    def take(self) -> bytes:
        """A fresh nonce of ``size`` random bytes."""
        try:
            return self._ready.popleft()
        except IndexError:
            size = self._size
            data = os.urandom(size * self.BATCH)
            self._ready.extend(data[i : i + size] for i in range(size, len(data), size))
            return data[:size]


_NONCES = _Nonces(_NONCE_BYTES)
#: standard base64 to its URL-safe alphabet (what ``base64.urlsafe_b64encode`` does)
_URLSAFE = bytes.maketrans(b"+/", b"-_")


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


#: ``(peer, scheme, path or None, header values)``: see :meth:`DecisionCache.key`
DecisionKey = tuple[Any, ...]


#: seconds between two looks at the GeoIP generation on the short way (Runtime.usual):
#: as often as the database file is looked at (``privguard.geo.RECHECK_SECONDS``)
GEO_EVERY = 1.0


def _no_generation() -> int:
    """The GeoIP generation without a database: answers never change."""
    return 0


class DecisionCache:
    """Bounded memo of decisions, keyed on exactly the inputs :func:`decide` reads.

    A returning visitor sends the same peer, cookies, user agent and signals
    on every request, so the whole decision can be reused: a hit costs a
    tuple hash instead of ~7 µs. The key holds every value the decision
    depends on (two visitors can only share an entry when their inputs are
    identical, i.e. when their decisions are too); an entry lives at most
    ``ttl`` seconds (GeoIP data may change) and never past the consent
    cookie's expiry. Bounded in entries, in key size, and in the characters
    of keys and stored expiry lines together (:attr:`MAX_CHARS`).
    """

    MAX_KEY_CHARS = 4096  # x 4096 entries: at most ~16 MB of keys, typically ~2 MB
    #: keys plus stored expiry lines, all entries together (about 8 MB of text)
    MAX_CHARS = 8 * 1024 * 1024

    def __init__(self, settings: Settings, size: int = 4096, ttl: float = 60.0) -> None:
        self._size = size
        self._ttl = ttl
        self._max_age = settings.consent_max_age
        #: whether the path is an input (an age gate on some paths)
        self.gated = settings.age_gate_regex is not None
        #: the request headers a decision reads, in key order (lower case)
        self.headers: tuple[str, ...] = (
            "cookie", "user-agent", "x-forwarded-for", "forwarded", "sec-gpc", "dnt",
        ) + ((settings.country_header,) if settings.country_header else ())  # fmt: skip
        self._chars = 0  # characters of keys and expiry lines held
        self._cache: dict[DecisionKey, tuple[Decision, float, int]] = {}

    def key(self, view: RequestView) -> DecisionKey:
        """The cache key of ``view`` (its size is checked when it is stored: :meth:`put`).

        ``(peer, scheme, path or None, header values)``, the header values a tuple
        in the order of :attr:`headers`. An adapter may build the same tuple from its own request
        form (latin-1 bytes under ASGI, the environ's strings under WSGI) without a
        view: any tuple of exactly these inputs is a valid key, since equal inputs
        give equal decisions.
        """
        return (
            view.peer,
            view.scheme,
            view.path if self.gated else None,
            tuple(map(view.headers.get, self.headers)),
        )

    def get(self, key: DecisionKey, now: float, generation: int = 0) -> Decision | None:
        """A still-valid decision for ``key`` (same GeoIP ``generation``), or ``None``."""
        entry = self._cache.get(key)
        if entry is None or entry[1] <= now or entry[2] != generation:
            return None
        return entry[0]

    def put(self, key: DecisionKey, decision: Decision, now: float, generation: int = 0) -> None:
        """Keep ``decision`` until the TTL or its consent cookie expires."""
        until = now + self._ttl
        state = decision.state
        if state is not None:
            until = min(until, state.timestamp + self._max_age)
        peer, scheme, path, values = key
        key_chars = sum(len(v) for v in (peer, scheme, path) if v) + sum(
            len(v) for v in values if v
        )
        if key_chars > self.MAX_KEY_CHARS:
            return  # too large to keep; a lookup of it simply misses
        cache = self._cache
        chars = key_chars + sum(len(e) for e in decision.expire)
        if len(cache) >= self._size or self._chars + chars > self.MAX_CHARS:
            cache.clear()  # cheap and bounded; a miss only costs one decide()
            self._chars = 0
        if key not in cache:
            self._chars += chars
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


class Runtime:
    """Everything an adapter needs besides the app; built once at start-up."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        from privguard.analytics import make_sink
        from privguard.banner import BannerRenderer, HtmlInjector
        from privguard.banner.autoblock import AutoBlocker
        from privguard.geo import open_geo
        from privguard.useragent import UserAgents

        self.settings = settings
        self.clock = clock
        if settings.ledger is not None:
            from privguard.ledger.factory import ledger_kind

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
        self._geo_generation: Callable[[], int] = (
            getattr(self.lookups.geo, "generation", None) or _no_generation
        )
        self._geo_seen = self._geo_generation()  # as :meth:`usual` last asked it
        self._geo_due = float("-inf")
        self.banner = BannerRenderer(settings)
        self._html_injector = HtmlInjector
        self.blocker = AutoBlocker(settings, self.banner.placeholder)
        self.analytics = make_sink(settings.analytics)
        self.rate_limiter: RateLimiter | None = None
        self.choice_rate: Rate | None = None
        if settings.rate_limit:
            self.choice_rate = parse_rate(settings.rate_limit)
            self.rate_limiter = RateLimiter(settings.rate_limit_storage)
        first = settings.secret_keys[0]
        self._key_hash = hmac.new(first, b"privguard.ratelimit.v1|", hashlib.sha256)
        # keyed BLAKE2b (a MAC in one pass): a fresh token costs about a microsecond
        # (the keyed states, set up once and copied per MAC)
        self._view_macs = tuple(
            hashlib.blake2b(
                key=hashlib.sha256(VIEW_TOKEN_SALT + key).digest(), digest_size=_MAC_BYTES
            )
            for key in settings.secret_keys
        )
        self._host_digests: dict[str, bytes] = {}
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._report_lock = threading.Lock()
        self._withdrawals: OrderedDict[str, None] = OrderedDict()
        self._ledger: Any = None
        self._ledger_lock = threading.Lock()
        prefix = settings.endpoint_prefix
        self.prefix = prefix
        self.prefix_slash = prefix + "/"
        self.replay_spool()
        self._body_paths = frozenset(
            {prefix + "/consent", prefix + "/age", prefix + "/do-not-sell"}
        )

    # -- per request ------------------------------------------------------------------

    def cached(self, key: DecisionKey) -> Decision | None:
        """The memoised decision for ``key`` (see :meth:`DecisionCache.key`), or ``None``."""
        entry = self.decisions._cache.get(key)  # DecisionCache.get, inlined: once per request
        if entry is None or entry[1] <= self.clock() or entry[2] != self._geo_generation():
            return None
        return entry[0]

    def usual(self, key: DecisionKey, path: str) -> Decision | None:
        """The memoised decision for ``key`` when the request takes the adapters' short
        way -- a memo hit (:meth:`cached`), not on an age-gated answer, no withdrawal
        signal to send, ``path`` (the request path) not privguard's own
        (:meth:`is_endpoint`) -- else ``None`` (the adapter takes its general path).

        One call for the three questions: inside a framework each Python call of
        privguard's on a request costs a few tenths of a µs in CPU cache misses. The
        GeoIP generation is asked at most once per :data:`GEO_EVERY` seconds here (the
        database file is looked at no more often, ``privguard.geo``), and at once when
        the clock went back.
        """
        entry = self.decisions._cache.get(key)  # DecisionCache.get, inlined
        if entry is None:
            return None
        now = self.clock()
        due = self._geo_due
        if now >= due or now < due - GEO_EVERY:
            self._geo_seen = self._geo_generation()
            self._geo_due = now + GEO_EVERY
        decision = entry[0]
        if (
            entry[1] <= now
            or entry[2] != self._geo_seen
            or decision.age_gated
            or decision.signal_withdrawal
            or path.startswith(self.prefix_slash)  # is_endpoint, inlined
            or path == GPC_PATH
        ):
            return None
        return decision

    def decide(self, view: RequestView, key: DecisionKey | None = None) -> Decision:
        """The decision for one request, now (memoised; see :class:`DecisionCache`).

        ``key``: the request's cache key when the adapter built it already.
        """
        cache = self.decisions
        if key is None:
            key = cache.key(view)
            found = self.cached(key)
            if found is not None:
                return found
        now = self.clock()
        generation = self._geo_generation()
        decision = decide(view, self.settings, self.lookups, now)
        cache.put(key, decision, now, generation)
        return decision

    def is_endpoint(self, path: str) -> bool:
        """Does ``path`` belong to privguard's own endpoints?"""
        return path.startswith(self.prefix_slash) or path == GPC_PATH

    def negotiate(self, view: RequestView) -> str:
        """The banner language for ``view`` (only asked when a banner or page text is made)."""
        return self.banner.negotiate(view.header("accept-language"))

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

    def injector(
        self,
        ctx: PrivacyContext,
        path: str,
        query: str,
        nonce: str | None,
        content_type: str = "text/html",
    ) -> Any:
        """A fresh banner injector for one HTML response (``ctx``: the request's context;
        ``path`` and ``query``: where the banner's no-JS forms return to).

        An XHTML page (``application/xhtml+xml``) gets the same markup as well-formed
        XML, so it still parses after injection.
        """
        banner = self.banner
        decision = ctx.decision
        lang = ctx.language
        x = not content_type.startswith("text/html") and (
            content_type.split(";", 1)[0].strip().lower() == "application/xhtml+xml"
        )
        return self._html_injector(
            body=banner.body_snippet(
                lang, decision, self.csrf_token_bytes(ctx.host), nonce, path, query, x
            ),
            head=banner.head_snippets(decision, nonce, x),
            rewriter=self.blocker.for_response(decision.allowed, lang, x),
        )

    def age_gate_response(
        self, view: RequestView, decision: Decision, lang: str, nonce: str | None
    ) -> Any:
        """The answer on an age-gated path: the age form (200), or the minors' page (403).

        Being asked one's age is not "forbidden": the form is a 200, with
        ``Cache-Control: no-store`` so no cache keeps it in place of the page it
        stands for. A minor's answer does close the path: 403. Non-HTML clients
        get 403 JSON either way (they cannot fill in a form).
        """
        from privguard.banner.render import return_path
        from privguard.responses import EndpointResponse, json_error

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
            body = self.banner.minor_page(lang, decision, nonce)
        else:
            back = return_path(view.path, view.query)
            body = self.banner.age_form(lang, decision, self.csrf_token(view.host), back, nonce)
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Content-Length", str(len(body))),
            ("Content-Language", lang),
        ]
        return EndpointResponse(403 if minor else 200, headers, body)

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

    # -- CSRF and per-page-view tokens --------------------------------------------------

    def csrf_token(self, host: str) -> str:
        """A fresh token for one rendered page: host-bound, signed, valid for a day.

        It is the CSRF token of the banner and age forms, and, being unique to
        the page view, the key the rate limit counts that visitor's choices
        under (visitors behind one address each get their own). 11 random
        bytes, the second it was made, and a 96-bit keyed BLAKE2b MAC of both and the host.
        """
        return self.csrf_token_bytes(host).decode("ascii")

    def csrf_token_bytes(self, host: str) -> bytes:
        """:meth:`csrf_token` as ASCII bytes: URL-safe base64, so safe in an HTML
        attribute as it is (the banner's markup takes it without escaping)."""
        raw = _NONCES.take() + int(self.clock()).to_bytes(4, "big")
        digest = self._host_digests.get(host)  # _host_digest and _view_mac, inlined: once
        if digest is None:  # per page, where each call of privguard's costs cache misses
            digest = self._host_digest(host)
        mac = self._view_macs[0].copy()
        mac.update(digest + b"|" + raw)
        return binascii.b2a_base64(raw + mac.digest(), newline=False).translate(_URLSAFE)

    @staticmethod
    def _view_mac(keyed: Any, host_digest: bytes, raw: bytes) -> bytes:
        """The MAC of ``raw`` for a host under one key (``keyed``: its BLAKE2b state)."""
        mac = keyed.copy()
        mac.update(host_digest + b"|" + raw)
        return mac.digest()  # type: ignore[no-any-return]

    def _host_digest(self, host: str) -> bytes:
        found = self._host_digests.get(host)
        if found is None:
            found = _host_digest(host)
            if len(self._host_digests) >= 1024:
                self._host_digests.clear()  # bounded; a miss costs one SHA-256
            self._host_digests[host] = found
        return found

    def view_token(self, token: object, host: str) -> tuple[str, float] | None:
        """``(token id, age in seconds)`` of a valid token for ``host``, else ``None``.

        Timing-safe against every configured key; never raises.
        """
        if not isinstance(token, str) or len(token) != 36:
            return None
        try:
            data = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, binascii.Error, UnicodeError):
            return None
        if len(data) != _TOKEN_BYTES:
            return None
        raw, given = data[: _NONCE_BYTES + 4], data[_NONCE_BYTES + 4 :]
        digest = self._host_digest(host)
        good = False
        for keyed in self._view_macs:
            good |= hmac.compare_digest(self._view_mac(keyed, digest, raw), given)
        if not good:
            return None
        age = self.clock() - int.from_bytes(raw[_NONCE_BYTES:], "big")
        if not -300 <= age <= CSRF_MAX_AGE:
            return None
        return base64.urlsafe_b64encode(raw[:_NONCE_BYTES]).decode("ascii"), max(age, 0.0)

    def check_csrf(self, token: str | None, host: str) -> bool:
        """Verify a banner token for ``host`` (timing-safe, never raises)."""
        return self.view_token(token, host) is not None

    def key_hash(self, value: str) -> str:
        """A keyed, truncated hash of ``value`` for rate-limit keys (never the value itself)."""
        mac = self._key_hash.copy()
        mac.update(value.encode("utf-8", "replace"))
        return base64.urlsafe_b64encode(mac.digest()[:12]).decode("ascii")

    # -- ledger ------------------------------------------------------------------------

    @property
    def ledger(self) -> Any:
        """The ledger writer, opened on first use; ``None`` when disabled or crawling."""
        if self.settings.ledger is None or _NO_RECEIPTS.is_set():
            return None
        if self._ledger is None:
            with self._ledger_lock:
                if self._ledger is None:
                    from privguard.ledger import LedgerWriter, derive_ledger_keys, open_ledger

                    keys = derive_ledger_keys(self.settings.ledger_keys)
                    self._ledger = LedgerWriter(
                        self.settings.ledger, opener=functools.partial(open_ledger, keys=keys)
                    )
        return self._ledger

    def replay_spool(self) -> None:
        """Start the ledger writer now when a previous run left receipts in the spool.

        Called at start-up (and on ASGI lifespan start-up): the journals of
        processes that ended before storing their receipts are moved into the
        spool first; the writer thread replays the spool in the background,
        exactly once across workers (the spool is locked while it is replayed;
        the ledger skips stored ids).
        """
        try:
            writer = self.ledger
            if writer is not None:
                writer.recover()  # journals of processes that ended before storing
                if writer.spool.pending():
                    writer.start()
        except Exception:  # never fail the start of the shop over the ledger
            log.exception("privguard ledger: could not start replaying the spool")

    def close(self, timeout: float | None = None) -> None:
        """Store what the ledger writer holds (at most ``timeout`` s, then spool) and close it."""
        writer, self._ledger = self._ledger, None
        if writer is not None:
            from privguard.ledger.writer import SHUTDOWN_TIMEOUT

            writer.close(SHUTDOWN_TIMEOUT if timeout is None else timeout)
