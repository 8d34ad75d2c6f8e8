"""Every shipped language: complete, not English, short enough, valid HTML, negotiated.

The HTML checks parse with html5lib in strict mode (the WHATWG parsing algorithm,
every parse error an exception), so a translation that breaks the markup fails here.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
from collections.abc import Mapping
from xml.etree import ElementTree

import html5lib
import pytest

from privguard.banner import BannerRenderer
from privguard.banner.languages import (
    LANGUAGE_ALIASES,
    SHIPPED_LANGUAGES,
    builtin_for,
    load_builtin_texts,
    negotiate,
)
from privguard.core.decision import Decision, Lookups, decide
from privguard.core.request import RequestView
from privguard.settings import DEFAULT_LANGUAGES, Settings

EU_OFFICIAL = "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv".split()
NON_ENGLISH = [lang for lang in SHIPPED_LANGUAGES if lang != "en"]
#: Labels that must fit a button or a short link. Ratio = characters / English characters.
BUTTON_KEYS = (
    "accept_all",
    "reject_all",
    "settings",
    "save",
    "close",
    "privacy_settings",
    "privacy_choices",
    "held_allow",
    "age_submit",
    "optout_button",
    "optout_back",
    "minor_home",
    "contact_link",
    "rate_limited_back",
)
MAX_BUTTON_RATIO = 2.5
#: "Reject all" as plain as "Accept all": neither label much longer than the other.
PARITY = (0.67, 1.5)
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
ENGLISH = load_builtin_texts("en")
#: Shipped translations (English excluded) kept complete by the translation pass.
TRANSLATED = [lang for lang in NON_ENGLISH if lang not in ("de", "fr", "es")]


def waiting_for_translation() -> frozenset[str]:
    """English keys no translated file has yet: added since the last translation pass.

    They read in English meanwhile; a key is translated in every file at once.
    """
    have: set[str] = set()
    for lang in TRANSLATED:
        have |= set(load_builtin_texts(lang))
    return frozenset(set(ENGLISH) - have)


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "secret_key": "s" * 32,
        "country_header": "CF-IPCountry",
        "trusted_proxies": ["127.0.0.1/32"],
        "ledger": None,
        "policy_url": "https://shop.example/privacy?a=1&b=2",
    }
    base.update(kw)
    return Settings(**base)


def decision(s: Settings, country: str = "DE", **changes: object) -> Decision:
    view = RequestView(
        "GET", "/", peer="127.0.0.1", headers={"cf-ipcountry": country, "user-agent": "x"}
    )
    return dataclasses.replace(decide(view, s, Lookups(), 1_700_000_000.0), **changes)


@pytest.fixture(scope="module")
def renderer() -> BannerRenderer:
    return BannerRenderer(settings())


def strict_fragment(data: bytes) -> None:
    html5lib.HTMLParser(strict=True).parseFragment(data.decode("utf-8"))


def strict_document(data: bytes) -> ElementTree.Element:
    root: ElementTree.Element = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(
        data.decode("utf-8")
    )
    return root


# --- the set of languages ----------------------------------------------------------------


def test_every_official_eu_language_and_nb_is_pt_br_ship() -> None:
    assert set(SHIPPED_LANGUAGES) == {*EU_OFFICIAL, "nb", "is", "pt-BR"}
    assert len(SHIPPED_LANGUAGES) == 27 == len(set(SHIPPED_LANGUAGES))
    assert SHIPPED_LANGUAGES[0] == "en"  # the fallback


def test_the_files_are_exactly_the_shipped_languages() -> None:
    folder = importlib.resources.files("privguard.banner").joinpath("i18n")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert names == sorted(f"{lang}.json" for lang in SHIPPED_LANGUAGES)


def test_default_languages_offer_every_shipped_language() -> None:
    assert DEFAULT_LANGUAGES == SHIPPED_LANGUAGES
    assert settings().languages == SHIPPED_LANGUAGES
    assert BannerRenderer(settings()).languages == SHIPPED_LANGUAGES


def test_a_shop_may_narrow_the_languages() -> None:
    r = BannerRenderer(settings(languages=["de", "pt-BR"]))
    assert r.negotiate("pl") == "de"
    assert r.negotiate("pt") == "pt-BR"
    assert r.negotiate(None) == "de"


# --- completeness and content ------------------------------------------------------------


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_every_language_has_every_key_of_english(lang: str) -> None:
    ref = importlib.resources.files("privguard.banner").joinpath("i18n", f"{lang}.json")
    raw = json.loads(ref.read_text("utf-8"))
    assert isinstance(raw, dict)
    assert not set(raw) - set(ENGLISH), f"{lang}.json has keys en.json lacks"
    untranslated = set(ENGLISH) - set(raw)
    # a key is translated everywhere or (just added to en.json) nowhere yet
    assert untranslated <= waiting_for_translation(), f"{lang}.json misses {sorted(untranslated)}"
    assert all(isinstance(v, str) and v.strip() == v and v for v in raw.values()), lang


def test_no_key_waits_for_translation() -> None:
    """Every key of en.json is translated in every shipped language (release gate)."""
    assert not waiting_for_translation(), sorted(waiting_for_translation())
    for lang in SHIPPED_LANGUAGES:
        missing = set(ENGLISH) - set(load_builtin_texts(lang))
        assert not missing, f"{lang}.json misses {sorted(missing)}"


@pytest.mark.parametrize("lang", NON_ENGLISH)
def test_no_english_text_passes_for_a_translation(lang: str) -> None:
    texts = load_builtin_texts(lang)
    for key, english in ENGLISH.items():
        # a single word may be the same loanword ("Marketing", "1 minute")
        if key in texts and len(re.findall(r"[^\W\d_]+", PLACEHOLDER.sub("", english))) > 1:
            assert texts[key] != english, f"{lang}.{key} is the English text"


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_placeholders_survive(lang: str) -> None:
    texts = load_builtin_texts(lang)
    for key, english in ENGLISH.items():
        if key not in texts:
            continue
        assert sorted(PLACEHOLDER.findall(texts[key])) == sorted(PLACEHOLDER.findall(english)), (
            f"{lang}.{key}"
        )


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_texts_name_the_privacy_settings_link_as_it_is_labelled(lang: str) -> None:
    texts = load_builtin_texts(lang)
    label = texts["privacy_settings"]
    for key, english in ENGLISH.items():
        if key != "privacy_settings" and ENGLISH["privacy_settings"] in english and key in texts:
            assert label in texts[key], f"{lang}.{key} does not say {label!r}"


def button_ratios(lang: str) -> dict[str, float]:
    texts = load_builtin_texts(lang)
    return {k: len(texts[k]) / len(ENGLISH[k]) for k in BUTTON_KEYS}


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_button_labels_stay_within_a_ratio_of_english(lang: str) -> None:
    ratios = button_ratios(lang)
    too_long = {k: round(r, 2) for k, r in ratios.items() if r > MAX_BUTTON_RATIO}
    assert not too_long, f"{lang}: labels longer than {MAX_BUTTON_RATIO}x English: {too_long}"


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_reject_is_as_plain_as_accept(lang: str) -> None:
    texts = load_builtin_texts(lang)
    accept, reject = texts["accept_all"], texts["reject_all"]
    ratio = len(reject) / len(accept)
    assert PARITY[0] <= ratio <= PARITY[1], (lang, accept, reject)
    # the same shape: as many words, give or take one, no punctuation or pleading
    assert abs(len(reject.split()) - len(accept.split())) <= 1, (lang, accept, reject)
    assert not re.search(r"[!?.…()]", accept + reject), (lang, accept, reject)


# --- rendered HTML -----------------------------------------------------------------------


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
@pytest.mark.parametrize(
    "country,changes",
    [
        pytest.param("DE", {}, id="gdpr"),
        pytest.param("DE", {"reconsent": True}, id="gdpr-reconsent"),
        pytest.param("US", {"gpc": True}, id="us-gpc"),
        pytest.param("US", {"needs_banner": False}, id="us-hidden"),
    ],
)
def test_banner_html_is_valid_in_every_language(
    renderer: BannerRenderer, lang: str, country: str, changes: Mapping[str, object]
) -> None:
    d = decision(renderer.settings, country, **changes)
    data = renderer.body_snippet(lang, d, "tok&<", "n\"'")
    strict_fragment(data)
    text = data.decode()
    assert 'id="privguard-banner" class="privguard" role="dialog"' in text
    langs = re.findall(r'\slang="([^"]*)"', text)
    assert len(langs) >= 2 and set(langs) == {lang}, langs  # dialog, reopen (and US) link
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "duplicate ids"
    texts = load_builtin_texts(lang)
    for key in ("accept_all", "reject_all", "settings", "save", "privacy_settings"):
        assert html_escape(texts[key]) in text, (lang, key)


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_age_and_minor_pages_are_valid_documents(renderer: BannerRenderer, lang: str) -> None:
    s = renderer.settings
    for data in (
        renderer.age_form(lang, decision(s, age_status="unknown"), "tok", "/checkout", "n"),
        renderer.minor_page(lang, decision(s, age_status="minor")),
    ):
        root = strict_document(data)
        assert root.tag == "html"
        assert root.get("lang") == lang
    assert html_escape(load_builtin_texts(lang)["age_submit"]).encode() in renderer.age_form(
        lang, decision(s), "tok", None, None
    )


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_optout_and_rate_limit_pages_are_valid_documents(
    renderer: BannerRenderer, lang: str
) -> None:
    s = renderer.settings
    texts = load_builtin_texts(lang)
    pages = {
        "optout": renderer.optout_page(lang, decision(s, "US"), "tok", "/shoes?a=1&b=2"),
        "optout-gpc": renderer.optout_page(lang, decision(s, "US", gpc=True), "tok", None),
        "rate-limited": renderer.rate_limited_page(lang, "/cart"),
    }
    for name, data in pages.items():
        root = strict_document(data)
        assert root.get("lang") == lang, name
    assert html_escape(texts["optout_button"]).encode() in pages["optout"]
    assert html_escape(texts["optout_gpc_honored"]).encode() in pages["optout-gpc"]
    assert html_escape(texts["rate_limited_title"]).encode() in pages["rate-limited"]


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_held_content_placeholder_is_valid_in_every_language(
    renderer: BannerRenderer, lang: str
) -> None:
    from privguard.core.categories import Category
    from privguard.core.trackers import Tracker

    data = renderer.placeholder(lang, Tracker("YouTube <video>", Category.MARKETING))
    strict_fragment(data)
    text = data.decode()
    assert f'lang="{lang}"' in text
    assert "YouTube &lt;video&gt;" in text and "{name}" not in text and "{category}" not in text
    assert html_escape(load_builtin_texts(lang)["cat_marketing"]) in text
    ElementTree.fromstring(renderer.placeholder(lang, Tracker("Vimeo", Category.MARKETING), True))


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


# --- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,lang",
    [
        pytest.param("pt-BR,pt;q=0.9,en;q=0.8", "pt-BR", id="pt-BR"),
        pytest.param("pt-br", "pt-BR", id="pt-br-lowercase"),
        pytest.param("pt-PT,pt;q=0.9", "pt", id="pt-PT"),
        pytest.param("pt", "pt", id="pt"),
        pytest.param("pt-AO", "pt", id="pt-AO"),
        pytest.param("nb-NO,nb;q=0.9,no;q=0.8,en;q=0.5", "nb", id="nb-NO"),
        pytest.param("no", "nb", id="no"),
        pytest.param("no-NO", "nb", id="no-NO"),
        pytest.param("nn-NO,en;q=0.5", "nb", id="nn"),
        pytest.param("de-AT", "de", id="de-AT"),
        pytest.param("de-AT, en;q=0.5", "de", id="de-AT-before-exact-en"),
        pytest.param("de-CH,de;q=0.9", "de", id="de-CH"),
        pytest.param("en-GB,en;q=0.9", "en", id="en-GB"),
        pytest.param("fr-BE", "fr", id="fr-BE"),
        pytest.param("nl-BE", "nl", id="nl-BE"),
        pytest.param("sv-FI", "sv", id="sv-FI"),
        pytest.param("el-CY", "el", id="el-CY"),
        pytest.param("ga-IE", "ga", id="ga-IE"),
        pytest.param("mt-MT", "mt", id="mt-MT"),
        pytest.param("is-IS", "is", id="is-IS"),
        pytest.param("hr-HR,hr;q=0.9,en-US;q=0.8", "hr", id="hr-HR"),
        pytest.param("ja,pl;q=0.3", "pl", id="first-served-choice"),
        pytest.param("pl;q=0,cs", "cs", id="q-zero-is-refused"),
        pytest.param("ru,*;q=0.1", "en", id="star-means-fallback"),
        pytest.param("zh-Hant-TW", "en", id="unserved"),
        pytest.param("", "en", id="empty"),
        pytest.param(";;q=,,-", "en", id="garbage"),
    ],
)
def test_negotiate_every_shipped_language(header: str, lang: str) -> None:
    assert negotiate(header, SHIPPED_LANGUAGES) == lang
    assert BannerRenderer(settings()).negotiate(header) == lang


def test_each_shipped_language_negotiates_to_itself() -> None:
    for lang in SHIPPED_LANGUAGES:
        assert negotiate(lang, SHIPPED_LANGUAGES) == lang
        assert negotiate(f"{lang};q=0.8, xx", SHIPPED_LANGUAGES) == lang


@pytest.mark.parametrize(
    "offered,header,lang",
    [
        pytest.param(["en", "pt-BR"], "pt-PT", "pt-BR", id="pt-PT-reads-pt-BR-without-pt"),
        pytest.param(["en", "pt"], "pt-BR", "pt", id="pt-BR-reads-pt-without-pt-BR"),
        pytest.param(["en", "no"], "nb-NO", "no", id="offered-no-serves-nb"),
        pytest.param(["en", "de-AT"], "de", "de-AT", id="offered-region-serves-primary"),
        pytest.param(["fr", "en"], "it", "fr", id="fallback-is-first"),
    ],
)
def test_negotiate_narrowed(offered: list[str], header: str, lang: str) -> None:
    assert negotiate(header, offered) == lang


@pytest.mark.parametrize(
    "configured,shipped",
    [("de-AT", "de"), ("pt-PT", "pt"), ("pt-br", "pt-BR"), ("no", "nb"), ("nn-NO", "nb")],
)
def test_a_regional_or_alias_tag_uses_the_shipped_file(configured: str, shipped: str) -> None:
    assert builtin_for(configured) == shipped
    r = BannerRenderer(settings(languages=["en", configured]))
    data = r.body_snippet(configured, decision(r.settings), "t", None).decode()
    assert f'lang="{configured}"' in data
    assert html_escape(load_builtin_texts(shipped)["reject_all"]) in data


def test_aliases_point_at_shipped_files() -> None:
    assert set(LANGUAGE_ALIASES.values()) <= set(SHIPPED_LANGUAGES)
