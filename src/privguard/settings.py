"""Settings: every privguard option, validated once at start-up.

Each option is declared once in :data:`OPTIONS` with its default, its
documentation and how it reads from the environment; the README's options
table is generated from there (``python -m privguard.settings``), and a test
fails when the two drift. A bad value raises :class:`~privguard.ConfigError`
naming the option; secrets are masked in every message and ``repr``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib.resources
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any, cast

from privguard.banner.languages import SHIPPED_LANGUAGES
from privguard.core.age import AgeRules
from privguard.core.categories import CATEGORIES, Category, CookieCatalog, parse_category
from privguard.core.clientip import HeaderFamily, TrustedProxies, parse_trusted_proxies
from privguard.core.declarations import CookieInfo, describe_cookie, parse_lifetime
from privguard.core.regions import Regime, RegionTable
from privguard.core.trackers import Tracker, TrackerCatalog
from privguard.errors import ConfigError

__all__ = ["Settings", "OPTIONS", "Option", "options_table", "parse_option_text"]

MIN_SECRET_BYTES = 32
DEFAULT_CONSENT_MAX_AGE = 180 * 24 * 3600
DEFAULT_LEDGER = "sqlite:///privguard-ledger.db"
DEFAULT_RATE_LIMIT = "30/minute"
#: Every shipped translation (the 24 official EU languages, nb, is, pt-BR), English first.
DEFAULT_LANGUAGES = SHIPPED_LANGUAGES
_LANG_RE = re.compile(r"\A[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")
_DOMAIN_RE = re.compile(
    r"\A(?=.{1,253}\Z)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}\Z"
)
_HEADER_NAME_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


@dataclass(frozen=True, slots=True)
class Option:
    """One option: its name, default, documentation and environment reading."""

    name: str
    default: Any
    doc: str
    env_kind: str  # str | optional-str | bool | int | list | mapping | proxies | duration


_REQUIRED = object()

OPTIONS: tuple[Option, ...] = (
    Option(
        "secret_key",
        _REQUIRED,
        "Signs the consent cookie and CSRF tokens. str/bytes, or a "
        "list for rotation: the first signs, all verify. Keys under 32 bytes are refused "
        "unless `debug=True`.",
        "list",
    ),
    Option(
        "policy_version",
        "1",
        "Version of the privacy policy. A consent given for another "
        "version counts as no choice, and the banner asks again.",
        "str",
    ),
    Option(
        "policy_url",
        None,
        "Link to the shop's privacy policy, shown in the banner.",
        "optional-str",
    ),
    Option(
        "contact_url",
        None,
        "How a visitor reaches the shop about privacy (an http(s) URL, a relative path "
        "or a `mailto:` address), shown on the minors' and opt-out pages; None uses "
        "`policy_url`.",
        "optional-str",
    ),
    Option(
        "us_optout_link",
        "do-not-sell",
        'The persistent US link: `do-not-sell` ("Do Not Sell or Share My Personal '
        'Information") or `privacy-choices` ("Your Privacy Choices" with the toggle icon).',
        "str",
    ),
    Option(
        "cookies",
        MappingProxyType({}),
        "Cookie name or glob -> category (`necessary`, "
        '`functionality`, `performance`, `marketing`), or -> `{"category": ..., "paths": '
        '[...], "provider": ..., "purpose": ..., "lifetime": "2 years"}`; merged over the '
        "built-in catalog. The banner's settings view lists the cookies declared here, "
        "with provider, purpose and lifetime from the catalog where not given.",
        "mapping",
    ),
    Option(
        "unknown_cookies",
        "block",
        "`block` drops undeclared cookies (each is logged once), `allow` lets them pass.",
        "str",
    ),
    Option(
        "cookie_domains",
        (),
        "Parent domains on which withdrawn cookies are also expired (e.g. `shop.example`).",
        "list",
    ),
    Option(
        "consent_max_age",
        DEFAULT_CONSENT_MAX_AGE,
        "Lifetime of the consent cookie in seconds (or a timedelta); 180 days by default.",
        "duration",
    ),
    Option(
        "regimes",
        MappingProxyType({}),
        'Overrides of the built-in regimes: name -> `{"opt_in": [...], "default_on": [...]}`.',
        "mapping",
    ),
    Option(
        "country_regimes",
        MappingProxyType({}),
        "Country (`BR`) or US state (`US-CA`) -> regime name, over the built-in table.",
        "mapping",
    ),
    Option(
        "trusted_proxies",
        0,
        "Proxies whose `X-Forwarded-For`/`Forwarded` are believed: a "
        "hop count, or a list of addresses/CIDRs. 0 trusts nobody.",
        "proxies",
    ),
    Option(
        "forwarded_header",
        "auto",
        "Which header family trusted proxies write: `auto` (X-Forwarded-For when "
        "present, else RFC 7239 Forwarded), `x-forwarded-for` or `forwarded`. Pin it "
        "when your proxy writes only one, so a client cannot smuggle the other.",
        "str",
    ),
    Option(
        "country_header",
        None,
        "Header carrying the visitor's country from a trusted CDN "
        "(e.g. `CF-IPCountry`); read only when the direct peer is a trusted proxy.",
        "optional-str",
    ),
    Option(
        "geoip_db",
        None,
        "MaxMind `.mmdb` path (Country or City edition) or a `geoip2.database.Reader`.",
        "optional-str",
    ),
    Option(
        "geoip_required",
        True,
        "When True a missing or unreadable `geoip_db` is a "
        "ConfigError; when False it is a logged warning and visitors get the strictest "
        "regime.",
        "bool",
    ),
    Option(
        "honor_gpc",
        True,
        "Treat `Sec-GPC: 1` as an opt-out of sale/sharing (marketing denied).",
        "bool",
    ),
    Option("honor_dnt", True, "Treat `DNT: 1` the same way.", "bool"),
    Option(
        "signal_overrides_consent",
        True,
        "A GPC/DNT signal denies marketing even over an "
        "earlier stored accept. False lets an explicit opt-in win.",
        "bool",
    ),
    Option(
        "age_rule",
        "policy",
        "`policy`: 16 in the EEA/UK/CH, 13 elsewhere. "
        "`member-state`: each country's GDPR Art. 8 age.",
        "str",
    ),
    Option(
        "age_overrides", MappingProxyType({}), "Country -> required age, over the rule.", "mapping"
    ),
    Option(
        "age_gate_paths", (), "Path globs (e.g. `/checkout*`) that require an age answer.", "list"
    ),
    Option(
        "ipv4_prefix",
        24,
        "Bits of an IPv4 address kept for analytics and logs (at most 24).",
        "int",
    ),
    Option(
        "ipv6_prefix",
        48,
        "Bits of an IPv6 address kept for analytics and logs (at most 64).",
        "int",
    ),
    Option(
        "analytics",
        None,
        "Page-view sink: a callable taking a `privguard.analytics.PageView` "
        "(`.as_dict()` for a dict), or a path for the built-in JSON-lines sink. Called "
        "only when `performance` is allowed, with a truncated IP.",
        "optional-str",
    ),
    Option(
        "languages",
        DEFAULT_LANGUAGES,
        "Banner languages offered, the first is the fallback. Default: every shipped "
        "translation (the 24 official EU languages, `nb`, `is`, `pt-BR`); a tag without "
        "its own file uses its primary language's (`de-AT` -> `de`, `no` -> `nb`), any "
        "other needs every text key in `texts`.",
        "list",
    ),
    Option(
        "texts",
        MappingProxyType({}),
        'Per-key overrides of the banner texts: `{"en": {"title": ...}}`.',
        "mapping",
    ),
    Option(
        "consent_mode",
        False,
        'Google Consent Mode v2: `False` off; `"basic"` (or `True`) emits '
        "`gtag('consent', ...)` defaults and updates and holds Google tags until "
        'consent; `"advanced"` lets Google tags load with denied defaults.',
        "consent-mode",
    ),
    Option(
        "csp_nonce",
        None,
        "Callable(environ or scope) -> the CSP nonce of this response, "
        "put on privguard's inline script.",
        "optional-str",
    ),
    Option("endpoint_prefix", "/privguard", "URL prefix of privguard's endpoints.", "str"),
    Option(
        "ledger",
        DEFAULT_LEDGER,
        "Consent ledger URL: `sqlite:///path`, `postgresql://...`, or None to disable.",
        "optional-str",
    ),
    Option(
        "ledger_key",
        None,
        "Keys the ledger's hash chain and signs its head (HMAC), so a database writer "
        "without it cannot rewrite or cut off receipts unnoticed. str/bytes of 32+ bytes, "
        "or a list: the first keys a new ledger, any continues one. None derives it from "
        "the first `secret_key`; set it to rotate `secret_key` freely.",
        "list",
    ),
    Option(
        "rate_limit",
        DEFAULT_RATE_LIMIT,
        "Consent/age posts allowed per visitor (page-view token, else address), e.g. "
        "`30/minute`; a network (/24, /48) gets 10x, fresh page views 100x; None disables.",
        "optional-str",
    ),
    Option(
        "rate_limit_storage",
        "memory://",
        "Where the rate limit counts: `memory://` (per process) or `redis://host:port/db` "
        "(shared by every worker and node; `pip install 'privguard[redis]'`).",
        "str",
    ),
    Option(
        "on_minor",
        None,
        "Callable(context) run when a visitor answers the age gate as a "
        "minor (e.g. flag an order for review).",
        "optional-str",
    ),
    Option(
        "block_scripts",
        True,
        "Neutralise `<script src>`, `<iframe src>` and loader snippets of catalogued "
        "trackers whose category is not allowed, and add the in-page guard.",
        "bool",
    ),
    Option(
        "scripts",
        MappingProxyType({}),
        'Host or URL glob -> category (`{"cdn.example-ads.com": "marketing"}`), '
        "merged over the built-in tracker catalog.",
        "mapping",
    ),
    Option(
        "debug_headers",
        False,
        "Add `Privguard-Region` and `Privguard-Regime` to responses.",
        "bool",
    ),
    Option("debug", False, "Development mode: allows short secret keys.", "bool"),
)
_OPTION_NAMES = frozenset(o.name for o in OPTIONS)
_UPPER_NAMES = frozenset(name.upper() for name in _OPTION_NAMES)


def _data(name: str) -> dict[str, Any]:
    text = importlib.resources.files("privguard.data").joinpath(name).read_text("utf-8")
    return tomllib.loads(text)


class _Secret:
    """Masks a secret in reprs and messages."""

    __slots__ = ("_n",)

    def __init__(self, n: int) -> None:
        self._n = n

    def __repr__(self) -> str:
        return f"[{self._n} secret key(s) hidden]"


class Settings:
    """All privguard options, validated once. See :data:`OPTIONS` for each one.

    >>> Settings(secret_key="x" * 32).policy_version
    '1'
    """

    # declared for type checkers; values set in __init__
    secret_keys: tuple[bytes, ...]
    ledger_keys: tuple[bytes, ...]
    policy_version: str
    policy_url: str | None
    contact_url: str | None
    us_optout_link: str
    catalog: CookieCatalog
    cookie_paths: Mapping[str, tuple[str, ...]]
    cookie_details: Mapping[str, CookieInfo]
    declared_cookies: tuple[str, ...]
    unknown_cookies: str
    cookie_domains: tuple[str, ...]
    consent_max_age: int
    regions: RegionTable
    trusted_proxies: TrustedProxies
    country_header: str | None
    country_header_name: str | None
    geoip_db: object
    geoip_required: bool
    honor_gpc: bool
    honor_dnt: bool
    signal_overrides_consent: bool
    age_rule: str
    age_rules: AgeRules
    age_gate_paths: tuple[str, ...]
    age_gate_regex: re.Pattern[str] | None
    ipv4_prefix: int
    ipv6_prefix: int
    analytics: object
    languages: tuple[str, ...]
    texts: Mapping[str, Mapping[str, str]]
    consent_mode: bool | str
    block_scripts: bool
    trackers: TrackerCatalog
    csp_nonce: Callable[[Any], str | None] | None
    endpoint_prefix: str
    ledger: str | None
    rate_limit: str | None
    rate_limit_storage: str
    on_minor: Callable[[Any], None] | None
    debug_headers: bool
    debug: bool
    raw: Mapping[str, Any]

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise ConfigError(unknown[0], unknown_option_message(unknown[0]))
        values = {o.name: options.get(o.name, o.default) for o in OPTIONS}
        if values["secret_key"] is _REQUIRED or values["secret_key"] in (None, "", b"", [], ()):
            raise ConfigError("secret_key", "is required (a random string of 32+ bytes)")
        s = object.__setattr__
        s(self, "debug", _bool("debug", values["debug"]))
        s(self, "secret_keys", _secret_keys(values["secret_key"], self.debug))
        s(self, "policy_version", _nonempty_str("policy_version", values["policy_version"]))
        s(self, "policy_url", _optional_str("policy_url", values["policy_url"]))
        s(self, "contact_url", _contact_url(values["contact_url"]))
        s(
            self,
            "us_optout_link",
            _choice("us_optout_link", values["us_optout_link"], ("do-not-sell", "privacy-choices")),
        )
        catalog, paths, details, declared = _catalog(values["cookies"])
        s(self, "catalog", catalog)
        s(self, "cookie_paths", MappingProxyType(paths))
        s(self, "cookie_details", MappingProxyType(details))
        s(self, "declared_cookies", tuple(declared))
        s(
            self,
            "unknown_cookies",
            _choice("unknown_cookies", values["unknown_cookies"], ("block", "allow")),
        )
        s(self, "cookie_domains", _domains(values["cookie_domains"]))
        s(self, "consent_max_age", _duration("consent_max_age", values["consent_max_age"]))
        s(self, "regions", _regions(values["regimes"], values["country_regimes"]))
        try:
            proxies = parse_trusted_proxies(values["trusted_proxies"])
        except ValueError as exc:
            raise ConfigError("trusted_proxies", str(exc)) from None
        family = _choice(
            "forwarded_header",
            values["forwarded_header"],
            ("auto", "x-forwarded-for", "forwarded"),
        )
        s(
            self,
            "trusted_proxies",
            dataclasses.replace(proxies, header=cast(HeaderFamily, family)),
        )
        header = _optional_str("country_header", values["country_header"])
        if header is not None and not _HEADER_NAME_RE.match(header):
            raise ConfigError("country_header", f"{header!r} is not a header name")
        s(self, "country_header", header.lower() if header else None)
        s(self, "country_header_name", header)  # as the shop wrote it, for Vary
        geoip = values["geoip_db"]
        if (
            geoip is not None
            and not isinstance(geoip, str | os.PathLike)
            and not hasattr(geoip, "metadata")
        ):
            raise ConfigError("geoip_db", "expected a path or a geoip2.database.Reader")
        s(self, "geoip_db", geoip)
        for name in (
            "geoip_required",
            "honor_gpc",
            "honor_dnt",
            "signal_overrides_consent",
            "block_scripts",
            "debug_headers",
        ):
            s(self, name, _bool(name, values[name]))
        s(self, "consent_mode", _consent_mode(values["consent_mode"]))
        s(self, "trackers", _trackers(values["scripts"]))
        s(self, "age_rule", _choice("age_rule", values["age_rule"], ("policy", "member-state")))
        s(self, "age_rules", _age_rules(self.age_rule, values["age_overrides"], self.regions))
        gates = _str_list("age_gate_paths", values["age_gate_paths"])
        for g in gates:
            if not g.startswith("/"):
                raise ConfigError("age_gate_paths", f"{g!r} must start with '/'")
        s(self, "age_gate_paths", gates)
        s(
            self,
            "age_gate_regex",
            re.compile("|".join(fnmatch.translate(g) for g in gates)) if gates else None,
        )
        # longer prefixes would keep (nearly) whole addresses: not truncation any more
        s(self, "ipv4_prefix", _int_range("ipv4_prefix", values["ipv4_prefix"], 0, 24))
        s(self, "ipv6_prefix", _int_range("ipv6_prefix", values["ipv6_prefix"], 0, 64))
        analytics = values["analytics"]
        if (
            analytics is not None
            and not callable(analytics)
            and not isinstance(analytics, str | os.PathLike)
        ):
            raise ConfigError("analytics", "expected None, a callable or a file path")
        s(self, "analytics", analytics)
        langs = _str_list("languages", values["languages"])
        if not langs:
            raise ConfigError("languages", "needs at least one language")
        for lang in langs:
            if not _LANG_RE.match(lang):
                raise ConfigError("languages", f"{lang!r} is not a language tag like 'en'")
        s(self, "languages", langs)
        s(self, "texts", _texts(values["texts"]))
        nonce = values["csp_nonce"]
        if nonce is not None and not callable(nonce):
            raise ConfigError("csp_nonce", "expected None or a callable returning the nonce")
        s(self, "csp_nonce", nonce)
        on_minor = values["on_minor"]
        if on_minor is not None and not callable(on_minor):
            raise ConfigError("on_minor", "expected None or a callable taking the context")
        s(self, "on_minor", on_minor)
        prefix = _nonempty_str("endpoint_prefix", values["endpoint_prefix"])
        if not prefix.startswith("/") or prefix.endswith("/") or "?" in prefix:
            raise ConfigError("endpoint_prefix", "must start with '/' and not end with '/'")
        s(self, "endpoint_prefix", prefix)
        ledger = _optional_str("ledger", values["ledger"])
        if ledger is not None:
            from privguard.ledger.factory import ledger_kind

            ledger_kind(ledger)  # raises ConfigError(option="ledger"), password masked
        s(self, "ledger", ledger)
        ledger_key = values["ledger_key"]
        if ledger_key in (None, "", b"", [], ()):
            s(self, "ledger_keys", self.secret_keys)
        else:
            try:
                s(self, "ledger_keys", _secret_keys(ledger_key, self.debug))
            except ConfigError as exc:
                raise ConfigError("ledger_key", str(exc).split(": ", 1)[-1]) from None
        rate = _optional_str("rate_limit", values["rate_limit"])
        if rate is not None:
            from privguard.ratelimit import parse_rate

            parse_rate(rate)  # raises ConfigError(option="rate_limit")
        s(self, "rate_limit", rate)
        from privguard.ratelimit import check_storage_url

        s(self, "rate_limit_storage", check_storage_url(values["rate_limit_storage"]))
        raw = dict(values)
        raw["secret_key"] = _Secret(len(self.secret_keys))
        if raw.get("ledger_key") not in (None, "", b"", [], ()):
            raw["ledger_key"] = _Secret(len(self.ledger_keys))
        if ledger is not None:
            from privguard.ledger.base import redact_url

            raw["ledger"] = redact_url(ledger)
        from privguard.ledger.base import redact_url as _redact

        raw["rate_limit_storage"] = _redact(self.rate_limit_storage)
        s(self, "raw", MappingProxyType(raw))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Settings are read-only; build a new Settings instead")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.raw.items() if v is not None)
        return f"Settings({shown})"

    def consent_cookie_name(self, https: bool) -> str:
        """``__Host-privguard_consent`` over https without parent domains, else the plain name."""
        if https and not self.cookie_domains:
            return "__Host-privguard_consent"
        return "privguard_consent"

    def replace(self, **changes: Any) -> Settings:
        """A new Settings with ``changes`` applied (validated again)."""
        values = self._given()
        values.update(changes)
        return Settings(**values)

    def _given(self) -> dict[str, Any]:
        out = dict(self.raw)
        out["secret_key"] = list(self.secret_keys)
        if self.ledger_keys is not self.secret_keys:
            out["ledger_key"] = list(self.ledger_keys)
        out["ledger"] = self.ledger
        out["rate_limit_storage"] = self.rate_limit_storage
        return out

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "PRIVGUARD_", **overrides: Any
    ) -> Settings:
        """Build from ``PRIVGUARD_<NAME>`` variables; keyword ``overrides`` win.

        Lists are comma-separated, mappings JSON, booleans ``true/false/1/0``,
        ``none`` or empty means ``None``.
        """
        env = os.environ if environ is None else environ
        check_prefixed_names(env, prefix, "environment variable")
        values: dict[str, Any] = {}
        for option in OPTIONS:
            key = prefix + option.name.upper()
            if key in env:
                values[option.name] = parse_option_text(option, env[key])
        values.update(overrides)
        return cls(**values)


# --- names ----------------------------------------------------------------------------

#: ``PRIVGUARD_*`` names that are not options: the Flask switch, the audit's browser,
#: and the project's own load-test and benchmark harness.
NON_OPTION_NAMES = frozenset({"ENABLED", "CHROMIUM", "LOAD_VISITORS", "BENCH_DIR"})


def unknown_option_message(name: str) -> str:
    """``unknown option; did you mean 'x'?`` (or the list of valid options)."""
    close = difflib.get_close_matches(name.lower(), sorted(_OPTION_NAMES), n=1, cutoff=0.6)
    if close:
        return f"unknown option; did you mean {close[0]!r}?"
    return f"unknown option; valid options: {', '.join(sorted(_OPTION_NAMES))}"


def check_prefixed_names(names: Iterable[str], prefix: str, where: str) -> None:
    """ConfigError for a ``PRIVGUARD_*`` name (env variable, config key) that is no option.

    A typo such as ``PRIVGUARD_UNKNOW_COOKIES`` would otherwise be ignored silently.
    """
    for key in names:
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if rest in NON_OPTION_NAMES or rest in _UPPER_NAMES:
            continue
        close = difflib.get_close_matches(rest.lower(), sorted(_OPTION_NAMES), n=1, cutoff=0.6)
        hint = f"did you mean {prefix}{close[0].upper()}?" if close else "no such option"
        raise ConfigError(key, f"unknown {where}; {hint}")


# --- validation helpers -------------------------------------------------------------


def parse_option_text(option: Option, text: str) -> Any:
    """An option's value from its text form (environment variable, Flask config string).

    Lists are comma-separated, mappings JSON, booleans ``true/false/1/0``,
    ``none`` or empty means ``None``; the result is validated by :class:`Settings`.
    """
    kind = option.env_kind
    stripped = text.strip()
    if stripped.lower() in ("none", ""):
        return [] if kind == "list" else None
    if kind in ("str", "optional-str"):
        return stripped
    if kind == "consent-mode":
        low = stripped.lower()
        if low in ("basic", "advanced"):
            return low
        kind = "bool"
    if kind == "bool":
        low = stripped.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(option.name, f"{text!r} is not a boolean (true/false/1/0)")
    if kind in ("int", "duration"):
        try:
            return int(stripped)
        except ValueError:
            raise ConfigError(option.name, f"{text!r} is not an integer") from None
    if kind == "list":
        return [p.strip() for p in stripped.split(",") if p.strip()]
    if kind == "proxies":
        return (
            int(stripped)
            if stripped.isdigit()
            else [p.strip() for p in stripped.split(",") if p.strip()]
        )
    if kind == "mapping":
        try:
            value = json.loads(stripped)
        except ValueError:
            raise ConfigError(option.name, "expected a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigError(option.name, "expected a JSON object")
        return value
    raise AssertionError(kind)  # pragma: no cover - table is fixed


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"expected True or False, got {value!r}")
    return value


def _consent_mode(value: Any) -> bool | str:
    """``False``, ``"basic"`` or ``"advanced"``; ``True`` means ``"basic"`` (the old switch)."""
    if value is True:
        return "basic"
    if value is False or value in ("basic", "advanced"):
        return cast("bool | str", value)
    raise ConfigError("consent_mode", f"{value!r} is not one of [False, True, 'basic', 'advanced']")


def _trackers(value: Any) -> TrackerCatalog:
    if not isinstance(value, Mapping):
        raise ConfigError("scripts", "expected a mapping of host or URL glob -> category")
    builtin: list[tuple[str, Tracker]] = []
    for entry in _data("trackers.toml")["tracker"]:
        tracker = Tracker(entry["name"], Category(entry["category"]), entry.get("google", False))
        builtin.extend((p, tracker) for p in entry["patterns"])
    shop: list[tuple[str, Tracker]] = []
    for pattern, spec in value.items():
        if (
            not isinstance(pattern, str)
            or not pattern.strip()
            or pattern.strip().startswith("/")
            or any(c in pattern for c in " \t\r\n\"'<>")
        ):
            raise ConfigError(
                "scripts", f"{pattern!r} is not a host or URL glob like 'cdn.example.com'"
            )
        category = parse_category(spec)
        if category is None:
            raise ConfigError(
                "scripts",
                f"unknown category {spec!r} for {pattern!r}; valid: "
                f"{[c.value for c in CATEGORIES]}",
            )
        host = pattern.strip().split("//", 1)[-1].split("/", 1)[0]
        shop.append((pattern, Tracker(host, category)))
    return TrackerCatalog.build(builtin, shop)


def _nonempty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(name, f"expected a non-empty string, got {value!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError(name, "must not contain control characters")
    return value


def _optional_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return _nonempty_str(name, value)


def _contact_url(value: Any) -> str | None:
    url = _optional_str("contact_url", value)
    if url is None:
        return None
    scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
    if scheme not in ("", "http", "https", "mailto") or any(c in url for c in "\r\n\t"):
        raise ConfigError(
            "contact_url", f"{url!r} must be an http(s) URL, a relative path or a mailto: address"
        )
    return url


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {list(choices)}")
    return str(value)


def _int_range(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(name, f"expected an integer from {low} to {high}, got {value!r}")
    return value


def _duration(name: str, value: Any) -> int:
    if isinstance(value, timedelta):
        value = int(value.total_seconds())
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(name, f"expected a positive number of seconds, got {value!r}")
    return value


def _str_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(value, list | tuple):
        raise ConfigError(name, f"expected a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(name, f"expected non-empty strings, got {item!r}")
    return tuple(value)


def _secret_keys(value: Any, debug: bool) -> tuple[bytes, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    keys = []
    for item in items:
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, bytes):
            raise ConfigError("secret_key", "expected str or bytes (or a list of them)")
        if len(item) < MIN_SECRET_BYTES and not debug:
            raise ConfigError(
                "secret_key",
                f"a key of {len(item)} bytes is too weak; use {MIN_SECRET_BYTES}+ random bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or set debug=True for development",
            )
        keys.append(item)
    if not keys:
        raise ConfigError("secret_key", "is required")
    return tuple(keys)


def _domains(value: Any) -> tuple[str, ...]:
    out = []
    for item in _str_list("cookie_domains", value):
        domain = item.strip().lstrip(".").lower()
        if not _DOMAIN_RE.match(domain):
            raise ConfigError("cookie_domains", f"{item!r} is not a domain name")
        out.append(domain)
    return tuple(out)


_COOKIE_FIELDS = frozenset({"category", "paths", "provider", "purpose", "lifetime", "reference"})


def builtin_cookies() -> list[tuple[str, Category]]:
    """The built-in catalog (``data/cookies.toml``): name or glob -> category."""
    builtin = _data("cookies.toml")
    base = [(n, Category(c)) for c in CATEGORIES if c in builtin for n in builtin[c]["names"]]
    base += [
        (n, Category(spec["category"]))
        for n, spec in builtin.get("cookie", {}).items()
        if "category" in spec
    ]
    return base


def builtin_cookie_sources() -> dict[str, str]:
    """Name -> who sets it, for the framework cookies of the built-in catalog."""
    cookies = _data("cookies.toml").get("cookie", {})
    return {n: spec["source"] for n, spec in cookies.items() if "source" in spec}


def _cookie_info(name: str, spec: Mapping[str, Any], base: CookieInfo | None) -> CookieInfo:
    """A declaration from ``spec`` (a ``[cookie.<name>]`` table or a ``cookies`` entry)."""
    base = base or CookieInfo()
    provider = spec.get("provider", base.provider)
    if not isinstance(provider, str):
        raise ConfigError("cookies", f"{name!r}: provider must be a string")
    purpose = spec.get("purpose", base.purpose)
    if isinstance(purpose, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in purpose.items()):
            raise ConfigError("cookies", f"{name!r}: purpose must map languages to texts")
        purpose = MappingProxyType(dict(purpose))
    elif not isinstance(purpose, str):
        raise ConfigError("cookies", f"{name!r}: purpose must be a text or language -> text")
    lifetime = base.lifetime
    if "lifetime" in spec:
        lifetime = parse_lifetime(spec["lifetime"])
        if lifetime is None:
            raise ConfigError(
                "cookies",
                f"{name!r}: lifetime {spec['lifetime']!r} must be 'session' or like "
                "'2 years', '90 days', '30 minutes'",
            )
    reference = spec.get("reference", base.source)
    return CookieInfo(str(provider), purpose, lifetime, str(reference))


def builtin_cookie_details() -> dict[str, CookieInfo]:
    """Name or glob -> what the built-in catalog declares about it (``data/cookies.toml``)."""
    cookies = _data("cookies.toml").get("cookie", {})
    return {
        n: _cookie_info(n, spec, None)
        for n, spec in cookies.items()
        if {"provider", "purpose", "lifetime"} & set(spec)
    }


def _catalog(
    value: Any,
) -> tuple[CookieCatalog, dict[str, tuple[str, ...]], dict[str, CookieInfo], list[str]]:
    """(catalog, paths, name -> declaration, the shop's declared names in order)."""
    if not isinstance(value, Mapping):
        raise ConfigError("cookies", "expected a mapping of cookie name or glob -> category")
    base = builtin_cookies()
    shop: list[tuple[str, Category]] = []
    paths: dict[str, tuple[str, ...]] = {}
    details = builtin_cookie_details()
    for name, spec in value.items():
        if not isinstance(name, str) or not name or any(c in name for c in ";,= \t\r\n"):
            raise ConfigError("cookies", f"{name!r} is not a cookie name or glob")
        cat_value: Any = spec
        cookie_paths: tuple[str, ...] = ()
        if isinstance(spec, Mapping):
            cat_value = spec.get("category")
            cookie_paths = _str_list("cookies", spec.get("paths", ()))
            unknown = sorted(set(spec) - _COOKIE_FIELDS)
            if unknown:
                raise ConfigError(
                    "cookies",
                    f"{name!r}: unknown field {unknown[0]!r}; valid: {sorted(_COOKIE_FIELDS)}",
                )
            if {"provider", "purpose", "lifetime", "reference"} & set(spec):
                details[name] = _cookie_info(name, spec, describe_cookie(name, details))
        category = parse_category(cat_value)
        if category is None:
            raise ConfigError(
                "cookies",
                f"unknown category {cat_value!r} for {name!r}; valid: "
                f"{[c.value for c in CATEGORIES]}",
            )
        shop.append((name, category))
        if cookie_paths:
            paths[name] = cookie_paths
    return CookieCatalog.build(base, shop), paths, details, [n for n, _ in shop]


def _categories(option: str, value: Any) -> frozenset[Category]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise ConfigError(option, f"expected a list of categories, got {value!r}")
    out = set()
    for item in value:
        cat = parse_category(item)
        if cat is None:
            raise ConfigError(option, f"unknown category {item!r}")
        out.add(cat)
    return frozenset(out) - {Category.NECESSARY}


def _regions(regimes: Any, country_regimes: Any) -> RegionTable:
    data = _data("regimes.toml")
    if not isinstance(regimes, Mapping):
        raise ConfigError("regimes", "expected a mapping of regime name -> rules")
    if not isinstance(country_regimes, Mapping):
        raise ConfigError("country_regimes", "expected a mapping of code -> regime name")
    table: dict[str, Regime] = {}
    specs = {
        **data["regimes"],
        **{
            k: {**data["regimes"].get(k, {}), **v} if isinstance(v, Mapping) else v
            for k, v in regimes.items()
        },
    }
    for name, spec in specs.items():
        if not isinstance(spec, Mapping):
            raise ConfigError("regimes", f"regime {name!r}: expected a mapping")
        opt_in = _categories("regimes", spec.get("opt_in", ()))
        default_on = _categories("regimes", spec.get("default_on", ()))
        if opt_in & default_on:
            raise ConfigError(
                "regimes", f"regime {name!r}: a category is both opt_in and default_on"
            )
        optout_link = spec.get("optout_link", False)
        if not isinstance(optout_link, bool):
            raise ConfigError("regimes", f"regime {name!r}: optout_link must be true or false")
        table[name] = Regime(
            str(name), opt_in, default_on, str(spec.get("description", "")), optout_link
        )
    by_code: dict[str, str] = {}
    for regime, codes in data["countries"].items():
        for code in codes:
            by_code[code] = regime
    for code, regime in country_regimes.items():
        if not isinstance(code, str) or not re.match(r"\A[A-Z]{2}(-[A-Z0-9]{1,3})?\Z", code):
            raise ConfigError("country_regimes", f"{code!r} is not like 'BR' or 'US-CA'")
        if regime not in table:
            raise ConfigError(
                "country_regimes", f"{code}: unknown regime {regime!r}; valid: {sorted(table)}"
            )
        by_code[code] = regime
    return RegionTable(
        MappingProxyType(table),
        MappingProxyType(by_code),
        data["default_regime"],
        data["unknown_regime"],
    )


def _age_rules(rule: str, overrides: Any, regions: RegionTable) -> AgeRules:
    if not isinstance(overrides, Mapping):
        raise ConfigError("age_overrides", "expected a mapping of country -> age")
    data = _data("ages.toml")
    by_country: dict[str, int] = {}
    if rule == "policy":
        default = data["policy"]["default"]
        for code in data["policy"]["strict_countries"]:
            by_country[code] = data["policy"]["strict"]
    else:
        ms = data["member_state"]
        default = ms["default"]
        for code, name in regions.by_code.items():
            if name == "gdpr" and len(code) == 2:
                by_country[code] = ms["gdpr_default"]
        by_country.update(ms["ages"])
    for code, age in overrides.items():
        if not isinstance(code, str) or not re.match(r"\A[A-Z]{2}\Z", code):
            raise ConfigError("age_overrides", f"{code!r} is not a country code like 'DE'")
        if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 21:
            raise ConfigError("age_overrides", f"{code}: {age!r} is not an age from 0 to 21")
        by_country[code] = age
    return AgeRules(MappingProxyType(by_country), default, data["unknown"]["age"])


def _texts(value: Any) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, Mapping):
        raise ConfigError("texts", "expected a mapping language -> {key: text}")
    out = {}
    for lang, table in value.items():
        if not isinstance(table, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in table.items()
        ):
            raise ConfigError("texts", f"{lang!r}: expected a mapping of key -> text")
        out[str(lang)] = MappingProxyType(dict(table))
    return MappingProxyType(out)


def options_table() -> str:
    """The README's options table, generated from :data:`OPTIONS`."""
    lines = ["| option | env | default | meaning |", "|---|---|---|---|"]
    for o in OPTIONS:
        if o.default is _REQUIRED:
            default = "required"
        elif isinstance(o.default, MappingProxyType):
            default = "`{}`"
        elif isinstance(o.default, tuple):
            default = f"`{list(o.default)}`"
        else:
            default = f"`{o.default!r}`"
        lines.append(f"| `{o.name}` | `PRIVGUARD_{o.name.upper()}` | {default} | {o.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(options_table(), end="")
