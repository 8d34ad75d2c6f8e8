import time

import pytest

from privguard.core.categories import Category
from privguard.core.consent import ConsentCodec, ConsentState
from privguard.core.decision import Lookups, allowed_categories, decide
from privguard.core.request import RequestView
from privguard.settings import Settings

N, F, P, M = (Category.NECESSARY, Category.FUNCTIONALITY, Category.PERFORMANCE, Category.MARKETING)
NOW = time.time()


@pytest.fixture(autouse=True)
def _now() -> None:
    # a cookie signed after NOW is "from the future" and rightly rejected: in a long
    # run the module is imported minutes before its tests sign their cookies
    global NOW
    NOW = time.time()


class FixedGeo:
    def __init__(self, table):
        self.table = table

    def lookup(self, ip):
        return self.table.get(ip, (None, None))


def make(**options):
    options.setdefault("secret_key", "k" * 32)
    settings = Settings(**options)
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    geo = FixedGeo(
        {
            "81.0.0.1": ("DE", None),
            "8.8.8.8": ("US", "US-CA"),
            "200.1.1.1": ("BR", None),
            "9.9.9.9": ("US", "US-TX"),
        }
    )
    return settings, Lookups(geo=geo, codec=codec), codec


def view(peer="81.0.0.1", path="/", **headers):
    return RequestView(
        "GET", path, "http", "shop.test", peer, {k.replace("_", "-"): v for k, v in headers.items()}
    )


def consent_cookie(codec, granted, version="1", **kw):
    kw.setdefault("regime", "gdpr")  # a choice made where the test visitor is (DE)
    return "privguard_consent=" + codec.dump(ConsentState(version, granted, "r", **kw))


@pytest.mark.parametrize(
    ("peer", "regime", "allowed", "banner"),
    [
        pytest.param("81.0.0.1", "gdpr", {N}, True, id="DE-gdpr-nothing-before-consent"),
        pytest.param("8.8.8.8", "us-optout", {N, F, P}, True, id="US-CA-optout-defaults"),
        pytest.param("200.1.1.1", "notice", {N, F, P}, True, id="BR-notice"),
        pytest.param("10.0.0.1", "gdpr", {N}, True, id="unknown-strictest"),
    ],
)
def test_first_visit_per_regime(peer, regime, allowed, banner):
    settings, lookups, _ = make()
    d = decide(view(peer), settings, lookups, NOW)
    assert d.regime.name == regime
    assert d.allowed == frozenset(allowed)
    assert d.needs_banner is banner
    assert d.choice is None


def test_gpc_on_first_request_denies_marketing_and_can_remove_banner():
    settings, lookups, _ = make()
    d = decide(view("8.8.8.8", sec_gpc="1"), settings, lookups, NOW)
    assert d.gpc and M not in d.allowed and F in d.allowed
    assert d.needs_banner is False  # the only opt-in category is already denied


@pytest.mark.parametrize("value", ["0", "", "yes", "true", " 2", "11"])
def test_non_signal_values(value):
    settings, lookups, _ = make()
    assert decide(view(sec_gpc=value, dnt=value), settings, lookups, NOW).gpc is False


def test_signal_overrides_stored_marketing_consent_by_default():
    settings, lookups, codec = make()
    cookie = consent_cookie(codec, frozenset({N, F, P, M}))
    d = decide(view(cookie=cookie, sec_gpc="1"), settings, lookups, NOW)
    assert M not in d.allowed and P in d.allowed
    settings2, lookups2, codec2 = make(signal_overrides_consent=False)
    cookie2 = consent_cookie(codec2, frozenset({N, F, P, M}))
    d2 = decide(view(cookie=cookie2, dnt="1"), settings2, lookups2, NOW)
    assert M in d2.allowed


def test_honour_flags_off_ignore_signals_and_vary():
    settings, lookups, _ = make(honor_gpc=False, honor_dnt=False)
    d = decide(view("8.8.8.8", sec_gpc="1", dnt="1"), settings, lookups, NOW)
    assert M not in d.allowed  # marketing is opt-in in the US anyway
    assert not d.gpc and "Sec-GPC" not in d.vary and "DNT" not in d.vary


def test_stored_choice_applies_and_old_version_is_no_choice():
    settings, lookups, codec = make(policy_version="2")
    good = consent_cookie(codec, frozenset({N, P}), version="2")
    d = decide(view(cookie=good), settings, lookups, NOW)
    assert d.allowed == {N, P} and not d.needs_banner and not d.reconsent
    old = consent_cookie(codec, frozenset({N, F, P, M}), version="1")
    d_old = decide(view(cookie=old), settings, lookups, NOW)
    assert d_old.choice is None and d_old.allowed == {N} and d_old.reconsent and d_old.needs_banner


def test_withdrawal_expires_request_cookies_of_denied_categories():
    settings, lookups, codec = make(cookie_domains=["shop.test"])
    cookie = consent_cookie(codec, frozenset({N, P})) + "; _ga=1; _fbp=2; sessionid=3; lang=de"
    d = decide(view(cookie=cookie), settings, lookups, NOW)
    names = sorted({v.split("=", 1)[0] for v in d.expire})
    assert names == ["_fbp", "lang"]
    assert any("Domain=shop.test" in v for v in d.expire)
    assert all("Max-Age=0" in v for v in d.expire)


def test_minor_gets_necessary_only_and_no_banner():
    settings, lookups, codec = make()
    cookie = consent_cookie(codec, frozenset({N, F, P, M}), age_status="minor", age_threshold=16)
    d = decide(view("8.8.8.8", cookie=cookie), settings, lookups, NOW)
    assert d.allowed == {N} and d.age_status == "minor" and not d.needs_banner


def test_adult_judged_at_13_is_unknown_in_a_16_country():
    settings, lookups, codec = make(age_gate_paths=["/checkout*"])
    cookie = consent_cookie(codec, None, age_status="adult", age_threshold=13, age_country="US")
    us = decide(view("8.8.8.8", path="/checkout", cookie=cookie), settings, lookups, NOW)
    de = decide(view("81.0.0.1", path="/checkout", cookie=cookie), settings, lookups, NOW)
    assert (us.age_status, us.age_gated) == ("adult", False)
    assert (de.age_status, de.age_gated) == ("unknown", True)


def test_country_header_only_from_trusted_proxy():
    settings, lookups, _ = make(country_header="CF-IPCountry", trusted_proxies=["10.0.0.0/8"])
    trusted = decide(view("10.1.2.3", cf_ipcountry="US"), settings, lookups, NOW)
    spoofed = decide(view("200.1.1.1", cf_ipcountry="US"), settings, lookups, NOW)
    assert trusted.country == "US" and "CF-IPCountry" in trusted.vary
    assert spoofed.country == "BR"  # from GeoIP, the header was ignored


@pytest.mark.parametrize("value", ["XX", "T1", "ZZ", "", "??", "d"])
def test_unknown_country_codes_are_strictest(value):
    settings, lookups, _ = make(country_header="CF-IPCountry", trusted_proxies=1)
    d = decide(view("10.0.0.1", cf_ipcountry=value), settings, lookups, NOW)
    assert d.country is None and d.regime.name == "gdpr" and d.required_age == 16


def test_country_regime_override_by_state():
    settings, lookups, _ = make(country_regimes={"US-CA": "gdpr"})
    assert decide(view("8.8.8.8"), settings, lookups, NOW).regime.name == "gdpr"
    assert decide(view("9.9.9.9"), settings, lookups, NOW).regime.name == "us-optout"


def test_analytics_ip_is_truncated():
    settings, lookups, _ = make()
    d = decide(view("81.0.0.77"), settings, lookups, NOW)
    assert d.client_ip == "81.0.0.77" and d.analytics_ip == "81.0.0.0"


def test_https_reads_only_the_host_prefixed_cookie():
    settings, lookups, codec = make()
    token = codec.dump(ConsentState("1", frozenset({N, M}), "r", regime="gdpr"))
    tossed = RequestView(
        "GET", "/", "https", "shop.test", "81.0.0.1", {"cookie": f"privguard_consent={token}"}
    )
    host = RequestView(
        "GET",
        "/",
        "https",
        "shop.test",
        "81.0.0.1",
        {"cookie": f"__Host-privguard_consent={token}"},
    )
    assert decide(tossed, settings, lookups, NOW).choice is None
    assert decide(host, settings, lookups, NOW).choice == {N, M}


def test_allowed_categories_table():
    settings, _, _ = make()
    gdpr = settings.regions.regimes["gdpr"]
    assert allowed_categories(gdpr, None, False, "unknown", True) == {N}
    assert allowed_categories(gdpr, frozenset({N, M}), True, "adult", True) == {N}
    assert allowed_categories(gdpr, frozenset({N, M}), True, "adult", False) == {N, M}
    assert allowed_categories(gdpr, frozenset({N, M}), False, "minor", True) == {N}


@pytest.mark.parametrize(
    ("family", "expected"),
    [("auto", "81.0.0.9"), ("x-forwarded-for", "81.0.0.9"), ("forwarded", "8.8.8.8")],
)
def test_forwarded_header_option_pins_one_family(family, expected):
    settings, lookups, _ = make(trusted_proxies=1, forwarded_header=family)
    d = decide(
        view("10.0.0.1", x_forwarded_for="81.0.0.9", forwarded="for=8.8.8.8"),
        settings,
        lookups,
        NOW,
    )
    assert d.client_ip == expected
