"""Test visitors: the request headers and cookies of a visitor from somewhere.

:func:`make_visitor` builds a :class:`Visitor` -- where they come from, which
privacy signals their browser sends, their language, their age answer and
their earlier consent -- as the headers, cookies and WSGI environ keys a test
client sends.

How the region travels
    The country is sent in the app's ``country_header`` (``settings.country_header``,
    e.g. ``CF-IPCountry``), and privguard believes that header only from a
    trusted proxy. A visitor therefore comes from ``127.0.0.1``
    (:data:`VISITOR_PEER`, ``REMOTE_ADDR``), and the test settings must trust it::

        Settings(secret_key=..., country_header="CF-IPCountry", trusted_proxies=["127.0.0.1"])

    A US state (``state="CA"``) is recorded on the visitor (``US-CA``) but the
    header carries the country only (``US``): privguard reads subdivisions from
    GeoIP City data alone. All US states share the ``us-optout`` regime unless
    ``country_regimes`` says otherwise.

How failures name the visitor
    Every visitor also sends ``Privguard-Test-Visitor: <id>`` (e.g. ``DE-gpc``);
    the assertions read it back from the request a test client kept, so a
    failure names the visitor without ``visitor=``.

How earlier consent travels
    ``consent`` and ``age_status`` become a ``privguard_consent`` cookie signed
    with the app's own ``secret_key`` (the first key), exactly as privguard
    writes it after a choice, for ``policy_version`` (the settings' by default;
    pass an older one to test re-consent).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from privguard.core.categories import NON_ESSENTIAL, Category, parse_category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.core.request import environ_key
from privguard.errors import ConfigError
from privguard.testing.responses import SENT_COOKIES_KEY, VISITOR_HEADER

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = [
    "Visitor",
    "make_visitor",
    "visitor_signature",
    "visitor_id",
    "VISITOR_PEER",
    "BROWSER_USER_AGENT",
    "BOT_USER_AGENT",
    "STANDARD_VISITORS",
]

#: The address test visitors come from; the test settings must trust it.
VISITOR_PEER = "127.0.0.1"
#: A current desktop browser (not a bot).
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
#: A well-known crawler.
BOT_USER_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
_ACCEPT_HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_AGE_STATUSES = (None, "adult", "minor")


@dataclass(frozen=True, slots=True)
class Visitor:
    """A simulated visitor: what a test client sends on their behalf.

    The one pattern that works with every supported client is
    ``visitor.get(client, "/")`` (and :meth:`post`, :meth:`request`): it sends
    the visitor's headers, cookies and address the way that client needs --
    webtest's ``TestApp``, werkzeug's and Flask's test clients, Starlette's
    ``TestClient``, an ``httpx.Client`` and ``requests`` (against a live server on
    loopback; give the full URL) -- and refuses a client that cannot carry the
    visitor (Starlette's default ``testclient`` peer, which privguard cannot trust).

    By hand: webtest takes ``extra_environ=visitor.environ``; Starlette's
    ``TestClient(app, client=("127.0.0.1", 50000))`` and httpx's
    ``ASGITransport(app, client=("127.0.0.1", 50000))`` take
    ``headers=visitor.all_headers``. werkzeug's and Flask's test clients replace
    the ``Cookie`` header (of ``environ_overrides`` too) with their own jar, so a
    stored consent would silently vanish: the assertions refuse such a response
    (see :meth:`set_cookies_on`).

    ``headers`` hold everything but the ``Cookie`` header, ``cookies`` the
    cookies (name → value); ``all_headers`` joins both, ``environ`` is the
    same as WSGI environ keys.
    """

    country: str | None
    subdivision: str | None
    gpc: bool
    dnt: bool
    language: str
    age_status: str | None
    consent: frozenset[Category] | None
    consent_label: str | None
    policy_version: str | None
    bot: bool
    headers: Mapping[str, str]
    cookies: Mapping[str, str] = field(default_factory=dict)
    peer: str = VISITOR_PEER
    https: bool = False
    #: the settings the visitor was built for (assertions classify cookies with them)
    settings: Settings | None = field(default=None, repr=False, compare=False)

    @property
    def region(self) -> str:
        """``DE``, ``US-CA``, or ``unknown``."""
        return self.subdivision or self.country or "unknown"

    @property
    def cookie_header(self) -> str:
        """The ``Cookie`` request header ('' when the visitor has no cookies)."""
        return "; ".join(f"{n}={v}" for n, v in self.cookies.items())

    @property
    def all_headers(self) -> dict[str, str]:
        """``headers`` plus ``Cookie`` when there are cookies."""
        out = dict(self.headers)
        if self.cookies:
            out["Cookie"] = self.cookie_header
        return out

    @property
    def environ(self) -> dict[str, str]:
        """WSGI environ keys: ``HTTP_*`` for every header (cookies included) and ``REMOTE_ADDR``.

        It also records the cookies sent (``privguard.test_visitor_cookies``), so that
        the assertions notice a client that replaced the ``Cookie`` header.
        """
        out = {environ_key(n): v for n, v in self.all_headers.items()}
        out["REMOTE_ADDR"] = self.peer
        if self.cookies:
            out[SENT_COOKIES_KEY] = self.cookie_header
        return out

    def get(self, client: Any, path: str, **kwargs: Any) -> Any:
        """``GET path`` as this visitor with ``client``; see :meth:`request`."""
        return self.request(client, "GET", path, **kwargs)

    def post(self, client: Any, path: str, **kwargs: Any) -> Any:
        """``POST path`` as this visitor with ``client``; see :meth:`request`."""
        return self.request(client, "POST", path, **kwargs)

    def request(self, client: Any, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request as this visitor, the way ``client`` needs it; its response.

        ``client`` is a webtest ``TestApp``, a werkzeug/Flask test client, Starlette's
        ``TestClient`` or another ``httpx.Client``, or ``requests`` / a
        ``requests.Session`` (``path`` then is a full URL of a server on loopback).
        ``kwargs`` go to the client (``data=``, ``json=``, ``params=`` ...).

        :raises ValueError: for a client that cannot carry the visitor's region (a
            peer address the settings do not trust) or an async client.
        """
        kind = _client_kind(client)
        method = method.upper()
        if kind == "webtest":
            extra = {**self.environ, **kwargs.pop("extra_environ", {})}
            headers = kwargs.pop("headers", {})
            call = getattr(client, method.lower())
            return call(path, extra_environ=extra, headers=headers, **kwargs)
        if kind == "werkzeug":
            headers = {**self.headers, **kwargs.pop("headers", {})}
            overrides = {"REMOTE_ADDR": self.peer, **kwargs.pop("environ_overrides", {})}
            if getattr(client, "_cookies", None) is None:  # use_cookies=False: send the header
                if self.cookies:
                    headers["Cookie"] = self.cookie_header
            else:
                self.set_cookies_on(client)
            return client.open(
                path, method=method, headers=headers, environ_overrides=overrides, **kwargs
            )
        if kind == "httpx":
            peer = _httpx_peer(client)
            if peer is not None and peer != self.peer:
                raise ValueError(
                    f"this client presents itself as {peer!r}, so the app cannot trust the "
                    f"visitor's country header (trusted_proxies=['{self.peer}']); build it "
                    f"with TestClient(app, client=('{self.peer}', 50000)) or "
                    f"httpx.ASGITransport(app, client=('{self.peer}', 50000))"
                )
            headers = {**self.all_headers, **kwargs.pop("headers", {})}
            return client.request(method, path, headers=headers, **kwargs)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        cookies = {**self.cookies, **kwargs.pop("cookies", {})}
        return client.request(method, path, headers=headers, cookies=cookies, **kwargs)

    @property
    def id(self) -> str:
        """A short test id: ``DE``, ``DE-gpc``, ``US-CA-gpc``, ``DE-minor``, ``DE-consent_all``."""
        return _compose_id(
            self.region,
            self.gpc,
            self.dnt,
            self.bot,
            self.https,
            self.language,
            self.age_status,
            self.consent_label,
            self.policy_version,
        )

    def set_cookies_on(self, client: Any, domain: str = "localhost") -> None:
        """Put the visitor's cookies into a werkzeug/Flask test client's cookie jar.

        Those clients replace any ``Cookie`` header with their jar's content,
        so either call this and send ``headers``, or build the client with
        ``use_cookies=False`` and send ``all_headers``.
        """
        for name, value in self.cookies.items():
            client.set_cookie(name, value, domain=domain)

    def describe(self) -> str:
        """A phrase for failure messages: ``DE visitor, GPC, no consent choice yet``."""
        words = [f"{self.region} visitor"]
        if self.bot:
            words.append("bot")
        if self.gpc:
            words.append("GPC")
        if self.dnt:
            words.append("DNT")
        if self.age_status:
            words.append(self.age_status)
        if self.consent_label is None:
            words.append("no consent choice yet")
        elif self.consent_label == "all":
            words.append("accepted all")
        elif self.consent_label == "none":
            words.append("rejected all")
        else:
            words.append(f"accepted {self.consent_label.replace('+', ', ')}")
        if self.policy_version is not None:
            words.append(f"policy version {self.policy_version}")
        return ", ".join(words)

    def __str__(self) -> str:
        return self.describe()


def _client_kind(client: Any) -> str:
    """``webtest``, ``werkzeug``, ``httpx`` or ``requests``; ValueError otherwise."""
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(client).__mro__}
    if "webtest.app.TestApp" in names:
        return "webtest"
    if "werkzeug.test.Client" in names:
        return "werkzeug"
    if "httpx.AsyncClient" in names:
        raise ValueError(
            "visitor.request() drives synchronous clients; with httpx.AsyncClient send "
            "headers=visitor.all_headers from a client whose transport uses "
            f"client=('{VISITOR_PEER}', 50000)"
        )
    if "httpx.Client" in names:
        return "httpx"
    if "requests.sessions.Session" in names or getattr(client, "__name__", "") == "requests":
        return "requests"
    raise ValueError(
        f"privguard test visitors cannot drive a {type(client).__module__}."
        f"{type(client).__qualname__}: use webtest, a werkzeug/Flask test client, "
        "Starlette's TestClient / httpx.Client, or requests"
    )


def _httpx_peer(client: Any) -> str | None:
    """The client address an in-process httpx transport presents to the app."""
    transport = getattr(client, "_transport", None)
    for attr in ("client", "remote_addr"):
        value = getattr(transport, attr, None)
        if isinstance(value, tuple) and value:
            return str(value[0])
        if isinstance(value, str):
            return value
    return None  # a real network transport: the server sees the socket's address


def _compose_id(
    region: str,
    gpc: bool,
    dnt: bool,
    bot: bool,
    https: bool,
    language: str,
    age_status: str | None,
    consent_label: str | None,
    policy_version: str | None,
) -> str:
    parts = [region]
    parts += [
        flag for flag, on in (("gpc", gpc), ("dnt", dnt), ("bot", bot), ("https", https)) if on
    ]
    if language != "en":
        parts.append(language)
    if age_status:
        parts.append(age_status)
    if consent_label is not None:
        parts.append(f"consent_{consent_label}")
    if policy_version is not None:
        parts.append(f"policy_{policy_version}")
    return "-".join(parts)


def visitor_id(
    country: str | None = "DE",
    state: str | None = None,
    gpc: bool = False,
    dnt: bool = False,
    language: str = "en",
    age_status: str | None = None,
    consent: str | Sequence[str] | None = None,
    policy_version: str | None = None,
    bot: bool = False,
    https: bool = False,
) -> str:
    """The :attr:`Visitor.id` of ``make_visitor(**same arguments)``, without settings."""
    if state:
        region = "US-" + state.strip().upper().removeprefix("US-")
    else:
        region = country.strip().upper() if country else "unknown"
    _, label = _parse_consent(consent)
    return _compose_id(region, gpc, dnt, bot, https, language, age_status, label, policy_version)


def _parse_consent(
    consent: str | Sequence[str] | None,
) -> tuple[frozenset[Category] | None, str | None]:
    if consent is None:
        return None, None
    if consent == "all":
        return NON_ESSENTIAL | {Category.NECESSARY}, "all"
    if consent == "none":
        return frozenset({Category.NECESSARY}), "none"
    if isinstance(consent, str):
        consent = [consent]
    cats = set()
    for item in consent:
        cat = parse_category(item)
        if cat is None:
            raise ValueError(
                f"privguard_visitor: unknown consent category {item!r}; use 'all', 'none' or "
                f"a list of {[c.value for c in NON_ESSENTIAL]}"
            )
        cats.add(cat)
    granted = frozenset(cats) | {Category.NECESSARY}
    label = "+".join(sorted(c.value for c in granted - {Category.NECESSARY})) or "none"
    return granted, label


def make_visitor(
    country: str | None = "DE",
    state: str | None = None,
    gpc: bool = False,
    dnt: bool = False,
    language: str = "en",
    age_status: str | None = None,
    consent: str | Sequence[str] | None = None,
    policy_version: str | None = None,
    bot: bool = False,
    settings: Settings | None = None,
    https: bool = False,
) -> Visitor:
    """Build a :class:`Visitor`.

    :param country: ISO country code (``"DE"``), or ``None`` for an unknown origin.
    :param state: a US state (``"CA"`` → ``US-CA``; implies ``country="US"``).
    :param gpc: send ``Sec-GPC: 1``.
    :param dnt: send ``DNT: 1``.
    :param language: ``Accept-Language``.
    :param age_status: ``None`` (not asked), ``"adult"`` or ``"minor"`` -- stored in the
        consent cookie as privguard stores an age answer.
    :param consent: ``None`` (no choice yet), ``"all"``, ``"none"`` or a list of
        categories -- a signed consent cookie as after that choice.
    :param policy_version: version the stored choice was made for (default: the settings').
    :param bot: send a crawler's User-Agent instead of a browser's.
    :param settings: the app's :class:`~privguard.Settings` (its ``country_header``
        carries the country; its secret signs the consent cookie).
    :param https: the visitor browses over https (the consent cookie is then
        ``__Host-privguard_consent`` unless ``cookie_domains`` are set).
    :raises ConfigError: when ``settings`` cannot carry the visitor's region.
    """
    if settings is None:
        raise ConfigError(
            "settings",
            "privguard_visitor needs the app's Settings: pass settings=..., or define a "
            "`privguard_settings` fixture in conftest.py that returns them",
        )
    settings = _as_settings(settings)
    if state is not None:
        state = state.strip().upper().removeprefix("US-")
        if country not in (None, "DE", "US"):  # DE is only the default
            raise ValueError(f"privguard_visitor: state={state!r} needs country='US'")
        country = "US"
    if country is not None:
        country = country.strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise ValueError(f"privguard_visitor: {country!r} is not a country code like 'DE'")
    if age_status not in _AGE_STATUSES:
        raise ValueError(f"privguard_visitor: age_status must be one of {_AGE_STATUSES}")
    granted, label = _parse_consent(consent)
    headers: dict[str, str] = {
        "User-Agent": BOT_USER_AGENT if bot else BROWSER_USER_AGENT,
        "Accept": _ACCEPT_HTML,
        "Accept-Language": language,
    }
    header = settings.country_header
    if header is None:
        raise ConfigError(
            "country_header",
            "test visitors send their country in the app's country header; set "
            "country_header='CF-IPCountry' and trusted_proxies=['127.0.0.1'] in the test "
            "settings",
        )
    if not settings.trusted_proxies.trusts(VISITOR_PEER):
        raise ConfigError(
            "trusted_proxies",
            f"test visitors come from {VISITOR_PEER}, which must be trusted for the "
            f"{header!r} header to count; add trusted_proxies=['{VISITOR_PEER}'] to the "
            "test settings",
        )
    headers[_header_case(header)] = country or "XX"
    if gpc:
        headers["Sec-GPC"] = "1"
    if dnt:
        headers["DNT"] = "1"
    cookies: dict[str, str] = {}
    if granted is not None or age_status is not None:
        threshold = None
        if age_status is not None:
            threshold = settings.age_rules.required_age(country)
        codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
        cookie_state = ConsentState(
            version=policy_version or settings.policy_version,
            granted=granted,
            receipt_id="privguard-test-visitor",
            age_status=age_status or "unknown",
            age_threshold=threshold,
            age_country=country if age_status is not None else None,
            # prior consent was given where the visitor is (DESIGN §13)
            regime=settings.regions.regime_for(country, f"US-{state}" if state else None).name,
        )
        cookies[settings.consent_cookie_name(https)] = codec.dump(cookie_state)
    visitor = Visitor(
        country=country,
        subdivision=f"US-{state}" if state else None,
        gpc=gpc,
        dnt=dnt,
        language=language,
        age_status=age_status,
        consent=granted,
        consent_label=label,
        policy_version=policy_version,
        bot=bot,
        headers=MappingProxyType(headers),
        cookies=MappingProxyType(cookies),
        settings=settings,
        https=https,
    )
    headers[VISITOR_HEADER] = visitor.id
    return visitor


def _as_settings(settings: Any) -> Settings:
    """The Settings a fixture returned: a ready ``Settings``, or a dict of its options."""
    from privguard.settings import Settings

    if isinstance(settings, Settings):
        return settings
    if isinstance(settings, Mapping):
        return Settings(**settings)  # the same options as privguard.protect(app, **options)
    raise ConfigError(
        "settings",
        f"privguard_settings returned a {type(settings).__name__}; return the app's "
        "privguard.Settings (or a dict of its options)",
    )


def _header_case(name: str) -> str:
    """``cf-ipcountry`` → ``Cf-Ipcountry`` (header names are case-insensitive)."""
    special = {"cf-ipcountry": "CF-IPCountry"}
    return special.get(name, "-".join(p.capitalize() for p in name.split("-")))


def visitor_signature() -> inspect.Signature:
    """The marker's signature: :func:`make_visitor`'s, without ``settings``."""
    sig = inspect.signature(make_visitor)
    return sig.replace(parameters=[p for n, p in sig.parameters.items() if n != "settings"])


#: The visitor set of :func:`~privguard.testing.visitor_matrix`: label → make_visitor keywords.
STANDARD_VISITORS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "EEA, no choice": {"country": "DE"},
        "EEA, rejected": {"country": "DE", "consent": "none"},
        "EEA, accepted": {"country": "DE", "consent": "all"},
        "California, GPC": {"state": "CA", "gpc": True},
        "rest of world": {"country": "BR"},
        "EEA, minor": {"country": "DE", "age_status": "minor"},
    }
)
