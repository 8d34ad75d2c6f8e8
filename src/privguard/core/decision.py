"""decide(): compose every rule into one Decision for one request.

This module adds no rule of its own: it asks ``clientip``, ``regions``,
``signals``, ``consent`` and ``age`` in turn and records what it consulted
(the ``Vary`` list). Time and outside answers (GeoIP, user agents) come in as
arguments, so a decision is reproducible in a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from privguard.core.age import carry_age_status
from privguard.core.categories import NON_ESSENTIAL, Category
from privguard.core.clientip import resolve_client_ip, truncate_ip
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.core.cookies import (
    MAX_CLASSIFIED,
    MAX_EXPIRY_BYTES,
    expiry_headers,
    request_cookies,
)
from privguard.core.regions import Regime, normalise_country
from privguard.core.request import RequestView
from privguard.core.signals import is_signal

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = [
    "Decision",
    "GeoLookup",
    "UserAgentLookup",
    "Lookups",
    "decide",
    "allowed_categories",
]

_NECESSARY = frozenset({Category.NECESSARY})


class GeoLookup(Protocol):
    """Country (ISO alpha-2) and ISO 3166-2 subdivision of an IP address."""

    def lookup(self, ip: str) -> tuple[str | None, str | None]: ...


class UserAgentLookup(Protocol):
    """Browser family and bot verdict of a User-Agent string."""

    def parse(self, user_agent: str) -> tuple[str | None, bool]: ...


@dataclass(frozen=True, slots=True)
class Lookups:
    """The outside answers :func:`decide` may ask for."""

    geo: GeoLookup | None = None
    user_agents: UserAgentLookup | None = None
    codec: ConsentCodec | None = None


@dataclass(slots=True, eq=False)
class Decision:
    """Everything privguard decided about one request.

    Read-only by convention, not ``frozen``: a frozen dataclass sets each of
    these fields through ``object.__setattr__``, which measured 2.4 µs per
    request against 0.7 µs here -- half of privguard's budget. Change one with
    :func:`dataclasses.replace`, never in place.
    """

    client_ip: str | None
    analytics_ip: str | None
    country: str | None
    subdivision: str | None
    regime: Regime
    gpc: bool
    dnt: bool
    is_bot: bool
    ua_family: str | None
    state: ConsentState | None  # the valid consent cookie (any version), or None
    choice: frozenset[Category] | None  # granted categories of a current-version choice
    reconsent: bool  # a choice exists but for another policy version
    allowed: frozenset[Category]
    age_status: str
    required_age: int
    age_gated: bool  # the path is age-gated and the visitor has no age answer / is a minor
    needs_banner: bool
    expire: tuple[str, ...]  # Set-Cookie values that delete now-denied request cookies
    vary: tuple[str, ...]
    consent_cookie_name: str
    is_https: bool
    signal_withdrawal: bool = False  # a GPC/DNT signal overrode a stored marketing consent
    #: the stored choice was made under a regime whose grants are no opt-in here
    #: (DESIGN §13): ``choice`` is ``None``, its refusals still hold
    regime_reask: bool = False
    #: what follows from this decision for its responses (``core.response.ResponsePlan``),
    #: made on first use; not an input: :func:`dataclasses.replace` starts without it
    plan: Any = field(default=None, init=False, repr=False, compare=False)

    def allows(self, category: Category | str) -> bool:
        """Is ``category`` allowed for this request?"""
        return category in self.allowed

    @property
    def denied(self) -> frozenset[Category]:
        """Categories not allowed now."""
        return NON_ESSENTIAL - self.allowed


def allowed_categories(
    regime: Regime,
    choice: frozenset[Category] | None,
    signal: bool,
    age_status: str,
    signal_overrides_consent: bool,
    carried: frozenset[Category] = frozenset(),
    refused: frozenset[Category] = frozenset(),
) -> frozenset[Category]:
    """Allowed categories after regime defaults, the stored choice, signals and age.

    Without a ``choice`` here, ``carried`` (grants of a choice made elsewhere
    that still count here) are added to the regime defaults and ``refused``
    (that choice's refusals, honoured everywhere) are taken away.
    """
    if age_status == "minor":
        return _NECESSARY
    if choice is not None:
        allowed = choice | _NECESSARY
    else:
        allowed = ((regime.default_on | carried) - refused) | _NECESSARY
    if signal and Category.MARKETING in allowed:
        explicit = choice is not None and Category.MARKETING in choice
        if signal_overrides_consent or not explicit:
            allowed = allowed - {Category.MARKETING}
    return allowed


def decide(view: RequestView, settings: Settings, lookups: Lookups, now: float) -> Decision:
    """The privacy decision for ``view`` under ``settings`` at time ``now``."""
    vary: list[str] = ["Cookie"]
    # 1. who is asking
    peer = view.peer
    trusted = settings.trusted_proxies
    xff = view.header("x-forwarded-for")
    fwd = view.header("forwarded")
    client_ip = resolve_client_ip(peer, xff, fwd, trusted)
    analytics_ip = truncate_ip(client_ip, settings.ipv4_prefix, settings.ipv6_prefix)
    country: str | None = None
    subdivision: str | None = None
    header = settings.country_header
    if header is not None and trusted.trusts(peer):
        vary.append(settings.country_header_name or header)
        country = normalise_country(view.header(header))
    elif lookups.geo is not None and client_ip is not None:
        country, subdivision = lookups.geo.lookup(client_ip)
        country = normalise_country(country)
        if country is None:
            subdivision = None
    # 2. which rules apply
    regime = settings.regions.regime_for(country, subdivision)
    # 3. signals
    gpc = dnt = False
    if settings.honor_gpc:
        vary.append("Sec-GPC")
        gpc = is_signal(view.header("sec-gpc"))
    if settings.honor_dnt:
        vary.append("DNT")
        dnt = is_signal(view.header("dnt"))
    # 4. stored consent
    https = view.is_https
    cookie_name = settings.consent_cookie_name(https)
    cookies = request_cookies(view.header("cookie"))
    state = None
    if lookups.codec is not None:
        state = lookups.codec.load(cookies.get(cookie_name), now)
    choice = None
    reconsent = False
    regime_reask = False
    carried = refused = frozenset[Category]()
    if state is not None and state.granted is not None:
        if state.version == settings.policy_version:
            choice = state.granted
            # DESIGN §13: a choice stands where every category this regime makes
            # opt-in was opt-in where it was made too. Otherwise (an opt-out
            # default, a "Do Not Sell" form's "keep the rest", an unrecorded
            # regime) the visitor is asked again before any opt-in category is
            # granted; grants of the rest carry over, refusals hold everywhere.
            if regime.opt_in - settings.regions.opt_in_of(state.regime):
                regime_reask = True
                carried = choice - regime.opt_in
                refused = NON_ESSENTIAL - choice
                choice = None
        else:
            reconsent = True
    # 5. age
    required_age = settings.age_rules.required_age(country)
    age_status = "unknown"
    if state is not None:
        age_status = carry_age_status(state.age_status, state.age_threshold, required_age)
    gate = settings.age_gate_regex
    age_gated = gate is not None and age_status != "adult" and gate.match(view.path) is not None
    # 6. compose
    signal = gpc or dnt
    allowed = allowed_categories(
        regime, choice, signal, age_status, settings.signal_overrides_consent, carried, refused
    )
    denied_by_signal = frozenset({Category.MARKETING}) if signal else frozenset()
    open_choices = regime.opt_in - denied_by_signal - refused - carried
    needs_banner = choice is None and age_status != "minor" and bool(open_choices)
    # 7. withdrawal: expire every request cookie of a category not allowed now
    expire: tuple[str, ...] = ()
    if cookies:
        classify = settings.catalog.classify
        doomed = [
            name
            for name in islice(cookies, MAX_CLASSIFIED)
            if name != cookie_name and (cat := classify(name)) is not None and cat not in allowed
        ]
        if doomed:
            expire = tuple(_expire(doomed, settings, https))
    family: str | None = None
    is_bot = False
    ua = view.header("user-agent")
    if lookups.user_agents is not None and ua:
        family, is_bot = lookups.user_agents.parse(ua)
    elif not ua:
        is_bot = True  # no user agent at all: a script, never a person's browser
    return Decision(
        client_ip=client_ip,
        analytics_ip=analytics_ip,
        country=country,
        subdivision=subdivision,
        regime=regime,
        gpc=gpc,
        dnt=dnt,
        is_bot=is_bot,
        ua_family=family,
        state=state,
        choice=choice,
        reconsent=reconsent,
        allowed=allowed,
        age_status=age_status,
        required_age=required_age,
        age_gated=age_gated,
        needs_banner=needs_banner,
        expire=expire,
        vary=tuple(vary),
        consent_cookie_name=cookie_name,
        is_https=https,
        signal_withdrawal=signal
        and settings.signal_overrides_consent
        and choice is not None
        and Category.MARKETING in choice,
        regime_reask=regime_reask,
    )


def _expire(names: list[str], settings: Settings, https: bool) -> list[str]:
    """Expiry lines for ``names``, whole names only, within :data:`MAX_EXPIRY_BYTES`.

    What does not fit is expired on the next requests (the browser drops
    what this response deleted, so each request deletes the next batch).
    """
    out: list[str] = []
    size = 0
    paths = settings.cookie_paths
    by_paths: dict[tuple[str, ...], list[str]] = {}
    for name in names:
        entry = settings.catalog.pattern(name) if paths else None  # "trk_*" for "trk_a"
        declared = paths.get(entry, ()) if entry is not None else ()
        # ~100 bytes per line: estimate first, so no line is built that cannot be sent
        count = (1 + len(settings.cookie_domains)) * (1 + len(declared))
        size += count * (len(name) + 100)
        if by_paths and size > MAX_EXPIRY_BYTES:
            break
        by_paths.setdefault(("/", *declared), []).append(name)
    for path_set, group in by_paths.items():
        out.extend(expiry_headers(group, settings.cookie_domains, path_set, https))
    return out
