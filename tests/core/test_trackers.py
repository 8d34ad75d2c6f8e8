"""The tracker catalog: data/trackers.toml (each entry sourced) and URL matching."""

from __future__ import annotations

import importlib.resources
import tomllib
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard import ConfigError, Settings
from privguard.core.categories import Category
from privguard.core.trackers import Tracker, TrackerCatalog, split_url

SECRET = "t" * 40
DATA = tomllib.loads(
    importlib.resources.files("privguard.data").joinpath("trackers.toml").read_text("utf-8")
)


def catalog(**scripts: str) -> TrackerCatalog:
    return Settings(secret_key=SECRET, scripts=scripts).trackers


@pytest.mark.parametrize("entry", DATA["tracker"], ids=lambda e: e["name"])
def test_every_entry_is_complete_and_sourced(entry: dict[str, object]) -> None:
    assert set(entry) <= {"name", "category", "patterns", "source", "google"}
    assert Category(entry["category"]) is not Category.NECESSARY
    source = urlsplit(str(entry["source"]))
    assert source.scheme == "https" and source.netloc, entry["source"]
    patterns = entry["patterns"]
    assert isinstance(patterns, list) and patterns
    for pattern in patterns:
        assert pattern == pattern.strip() and "://" not in pattern and " " not in pattern


def test_no_pattern_is_listed_twice() -> None:
    seen = [p for entry in DATA["tracker"] for p in entry["patterns"]]
    assert len(seen) == len(set(seen))


# Real URLs from each vendor's own install instructions (the snippets shops paste).
@pytest.mark.parametrize(
    ("url", "name", "category"),
    [
        pytest.param(
            "https://www.googletagmanager.com/gtag/js?id=G-ABC123",
            "Google Analytics",
            "performance",
            id="gtag-ga4",
        ),
        pytest.param(
            "https://www.google-analytics.com/g/collect?v=2",
            "Google Analytics",
            "performance",
            id="ga-collect",
        ),
        pytest.param(
            "https://region1.google-analytics.com/g/collect",
            "Google Analytics",
            "performance",
            id="ga-region",
        ),
        pytest.param(
            "https://www.googletagmanager.com/gtag/js?id=AW-123456",
            "Google Ads",
            "marketing",
            id="gtag-ads",
        ),
        pytest.param(
            "https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js",
            "Google Ads",
            "marketing",
            id="adsense",
        ),
        pytest.param(
            "https://www.googletagmanager.com/gtm.js?id=GTM-XXXX",
            "Google Tag Manager",
            "marketing",
            id="gtm",
        ),
        pytest.param(
            "https://www.googletagmanager.com/ns.html?id=GTM-XXXX",
            "Google Tag Manager",
            "marketing",
            id="gtm-noscript",
        ),
        pytest.param(
            "https://ad.doubleclick.net/ddm/activity/src=1",
            "DoubleClick / Campaign Manager",
            "marketing",
            id="doubleclick",
        ),
        pytest.param(
            "https://connect.facebook.net/en_US/fbevents.js",
            "Meta Pixel",
            "marketing",
            id="meta-pixel",
        ),
        pytest.param(
            "https://www.facebook.com/tr?id=1&ev=PageView&noscript=1",
            "Meta Pixel",
            "marketing",
            id="meta-noscript",
        ),
        pytest.param(
            "https://analytics.tiktok.com/i18n/pixel/events.js",
            "TikTok Pixel",
            "marketing",
            id="tiktok",
        ),
        pytest.param(
            "https://snap.licdn.com/li.lms-analytics/insight.min.js",
            "LinkedIn Insight Tag",
            "marketing",
            id="linkedin",
        ),
        pytest.param(
            "https://www.clarity.ms/tag/abcdef", "Microsoft Clarity", "performance", id="clarity"
        ),
        pytest.param(
            "//bat.bing.com/bat.js", "Microsoft Advertising UET", "marketing", id="bing-uet"
        ),
        pytest.param(
            "https://static.hotjar.com/c/hotjar-1.js?sv=6", "Hotjar", "performance", id="hotjar"
        ),
        pytest.param(
            "https://s.pinimg.com/ct/core.js", "Pinterest Tag", "marketing", id="pinterest"
        ),
        pytest.param("https://sc-static.net/scevent.min.js", "Snap Pixel", "marketing", id="snap"),
        pytest.param(
            "https://cdn.segment.com/analytics.js/v1/KEY/analytics.min.js",
            "Segment",
            "performance",
            id="segment",
        ),
        pytest.param(
            "https://www.youtube.com/embed/dQw4w9WgXcQ", "YouTube", "marketing", id="youtube"
        ),
        pytest.param(
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
            "YouTube",
            "marketing",
            id="youtube-nocookie",
        ),
        pytest.param(
            "https://www.youtube.com/iframe_api", "YouTube", "marketing", id="youtube-api"
        ),
        pytest.param(
            "https://player.vimeo.com/video/76979871?dnt=1", "Vimeo", "performance", id="vimeo"
        ),
        pytest.param(
            "HTTPS://WWW.YouTube.COM:443/embed/x", "YouTube", "marketing", id="case-and-port"
        ),
    ],
)
def test_builtin_catalog_knows_the_real_urls(url: str, name: str, category: str) -> None:
    found = catalog().match(url)
    assert found is not None, url
    assert (found.name, found.category.value) == (name, category)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("/static/app.js", id="relative"),
        pytest.param("app.js", id="bare-relative"),
        pytest.param("https://cdn.jsdelivr.net/npm/alpinejs", id="plain-cdn"),
        pytest.param("https://www.google.com/recaptcha/api.js", id="recaptcha"),
        pytest.param("https://notyoutube.com/embed/x", id="suffix-is-not-a-subdomain"),
        pytest.param("https://youtube.com.evil.example/x", id="prefix-is-not-the-host"),
        pytest.param("data:text/javascript,1", id="data-url"),
        pytest.param("https://[::1]/x.js", id="ip-literal"),
        pytest.param("", id="empty"),
    ],
)
def test_unlisted_urls_do_not_match(url: str) -> None:
    assert catalog().match(url) is None


def test_shop_scripts_merge_over_the_catalog() -> None:
    cat = catalog(
        **{
            "cdn.example-ads.com": "marketing",
            "*.example-stats.net": "performance",
            "shop.example/track/*": "marketing",
            "www.youtube-nocookie.com": "functionality",
        }
    )
    assert cat.match("https://cdn.example-ads.com/a.js").category is Category.MARKETING  # type: ignore[union-attr]
    assert cat.match("https://eu.example-stats.net/s.js").category is Category.PERFORMANCE  # type: ignore[union-attr]
    assert cat.match("https://shop.example/track/px.js").category is Category.MARKETING  # type: ignore[union-attr]
    assert cat.match("https://shop.example/app.js") is None
    # the shop's exact host beats the built-in "*.youtube-nocookie.com"
    nocookie = cat.match("https://www.youtube-nocookie.com/embed/x")
    assert nocookie is not None and nocookie.category is Category.FUNCTIONALITY
    # a shop may exempt a built-in host by calling it necessary
    exempt = catalog(**{"www.clarity.ms": "necessary"}).match("https://www.clarity.ms/tag/x")
    assert exempt is not None and exempt.category is Category.NECESSARY


def test_longest_pattern_wins() -> None:
    t1, t2, t3 = (Tracker(n, Category.PERFORMANCE) for n in "abc")
    cat = TrackerCatalog.build([("*.x.com", t1), ("a.x.com/p/*", t2), ("a.x.com/p/q*", t3)])
    assert cat.match("https://a.x.com/p/q1") is t3
    assert cat.match("https://a.x.com/p/z") is t2
    assert cat.match("https://a.x.com/other") is t1


@pytest.mark.parametrize(
    ("value", "option"),
    [
        pytest.param({"cdn.x.com": "tracking"}, "scripts", id="bad-category"),
        pytest.param({"/local/path.js": "marketing"}, "scripts", id="relative"),
        pytest.param({"a b.com": "marketing"}, "scripts", id="space"),
        pytest.param(["cdn.x.com"], "scripts", id="not-a-mapping"),
    ],
)
def test_bad_scripts_option_is_a_config_error(value: object, option: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(secret_key=SECRET, scripts=value)
    assert info.value.option == option


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param(False, False, id="off"),
        pytest.param(True, "basic", id="true-is-basic"),
        pytest.param("basic", "basic", id="basic"),
        pytest.param("advanced", "advanced", id="advanced"),
    ],
)
def test_consent_mode_values(value: object, stored: object) -> None:
    assert Settings(secret_key=SECRET, consent_mode=value).consent_mode == stored


def test_bad_consent_mode_names_the_option() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(secret_key=SECRET, consent_mode="full")
    assert info.value.option == "consent_mode"


def test_consent_mode_from_env() -> None:
    env = {"PRIVGUARD_SECRET_KEY": SECRET, "PRIVGUARD_CONSENT_MODE": "Advanced"}
    assert Settings.from_env(env).consent_mode == "advanced"


@given(st.text(max_size=80))
def test_split_url_never_raises(text: str) -> None:
    parts = split_url(text)
    if parts is not None:
        host, _rest = parts
        assert host == host.lower()
    catalog_ = TrackerCatalog.build([("*.x.com", Tracker("x", Category.MARKETING))])
    catalog_.match(text)
