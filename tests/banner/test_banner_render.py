"""BannerRenderer: markup contract, languages, overrides, escaping, assets, contrast."""

from __future__ import annotations

import dataclasses
import html
import html.parser
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.banner import BannerRenderer
from privguard.banner.render import SHIPPED_LANGUAGES, TEXT_KEYS, load_builtin_texts
from privguard.core.categories import Category
from privguard.core.decision import Decision, Lookups, decide
from privguard.core.request import RequestView
from privguard.errors import ConfigError
from privguard.settings import Settings

SECRET = "s" * 32
LANGS = SHIPPED_LANGUAGES


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "secret_key": SECRET,
        "country_header": "CF-IPCountry",
        "trusted_proxies": ["127.0.0.1/32"],
        "ledger": None,
    }
    base.update(kw)
    return Settings(**base)


def decision(s: Settings, country: str = "DE", **changes: object) -> Decision:
    view = RequestView(
        "GET", "/", peer="127.0.0.1", headers={"cf-ipcountry": country, "user-agent": "x"}
    )
    return dataclasses.replace(decide(view, s, Lookups(), 1_700_000_000.0), **changes)


class Tree(html.parser.HTMLParser):
    """Elements as (tag, attrs, text-inside) for simple queries."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str | None]]:
        out = []
        for t, a in self.elements:
            if tag is not None and t != tag:
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(a)
        return out


def parse(data: bytes) -> Tree:
    tree = Tree()
    tree.feed(data.decode("utf-8"))
    return tree


@pytest.fixture(scope="module")
def renderer() -> BannerRenderer:
    return BannerRenderer(settings(policy_url="https://shop.example/privacy", consent_mode=True))


# --- markup contract -------------------------------------------------------------------


def test_root_and_buttons(renderer: BannerRenderer) -> None:
    s = renderer.settings
    tree = parse(renderer.body_snippet("en", decision(s), "tok", None))
    (root,) = tree.find("div", id="privguard-banner")
    assert root["role"] == "dialog"
    # not modal: nothing traps focus or blocks the page, and aria-modal says so
    assert root["aria-modal"] == "false"
    assert root["aria-labelledby"] == "privguard-banner-title"
    assert root["lang"] == "en"
    assert "hidden" not in root
    assert tree.find(id="privguard-banner-title")
    for action in ("accept-all", "reject-all", "settings", "save"):
        assert len(tree.find(data_privguard_action=action)) == 1, action
    accept = tree.find(data_privguard_action="accept-all")[0]
    reject = tree.find(data_privguard_action="reject-all")[0]
    # equally prominent: same element, same classes
    assert accept["class"] == reject["class"]
    assert (accept["name"], accept["value"]) == ("accept", "all")
    assert (reject["name"], reject["value"]) == ("accept", "none")
    forms = tree.find("form", action="/privguard/consent")
    assert forms and all(f["method"] == "post" for f in forms)
    assert tree.find("input", type="hidden", name="csrf_token", value="tok")
    # the page it was rendered on (the script refines it with the query)
    assert {n["value"] for n in tree.find("input", name="next")} == {"/"}
    assert tree.find("a", href="https://shop.example/privacy")


def test_checkboxes_unticked_necessary_always_on(renderer: BannerRenderer) -> None:
    tree = parse(renderer.body_snippet("en", decision(renderer.settings), "t", None))
    boxes = tree.find("input", type="checkbox", name="category")
    assert sorted(b["value"] or "" for b in boxes) == ["functionality", "marketing", "performance"]
    assert all("checked" not in b for b in boxes)
    (necessary,) = tree.find("input", id="privguard-cat-necessary")
    assert "checked" in necessary and "disabled" in necessary and "name" not in necessary


def test_category_descriptions_say_what_the_cookies_do(renderer: BannerRenderer) -> None:
    """The policy's own words ("anonymous data") understate a unique 2-year id."""
    text = renderer.body_snippet("en", decision(renderer.settings), "t", None).decode()
    assert "anonymous" not in text
    for words in (
        "shopping cart, login, security and remembering this privacy choice",
        "a unique identifier that recognises it on later visits, for up to 2 years",
        "such as language, currency or region",
        "recognise your browser across websites to show and measure personalised ads. "
        "Only active with your consent.",
    ):
        assert words in text


def test_hidden_when_no_banner_needed(renderer: BannerRenderer) -> None:
    d = decision(renderer.settings, needs_banner=False)
    tree = parse(renderer.body_snippet("en", d, "t", None))
    (root,) = tree.find("div", id="privguard-banner")
    assert "hidden" in root
    assert tree.find(id="privguard-reopen")


def test_reconsent_notice(renderer: BannerRenderer) -> None:
    s = renderer.settings
    plain = renderer.body_snippet("en", decision(s), "t", None)
    again = renderer.body_snippet("en", decision(s, reconsent=True), "t", None)
    assert b"Our privacy policy changed" in again
    assert b"Our privacy policy changed" not in plain


def test_us_visitor_gets_do_not_sell_and_gpc_notice(renderer: BannerRenderer) -> None:
    s = renderer.settings
    d = decision(s, "US")
    assert d.regime.name == "us-optout"
    plain = renderer.body_snippet("en", d, "t", None)
    assert b"Do Not Sell or Share My Personal Information" in plain
    assert b"Opt-Out Request Honored" not in plain
    tree = parse(plain)
    (dns,) = tree.find(data_privguard_action="do-not-sell")
    # a link outside the dialog, to the same-origin opt-out page, back to this page
    assert dns["href"] == "/privguard/do-not-sell?next=%2F"
    assert dns["id"] == "privguard-do-not-sell"
    after = parse(
        renderer.body_snippet("en", dataclasses.replace(d, needs_banner=False), "t", None)
    )
    assert len(after.find("a", data_privguard_action="do-not-sell")) == 1
    gpc = renderer.body_snippet("en", dataclasses.replace(d, gpc=True), "t", None)
    assert b"Opt-Out Request Honored" in gpc
    quiet = dataclasses.replace(d, gpc=True, needs_banner=False)
    tree = parse(renderer.body_snippet("en", quiet, "t", None))
    assert len(tree.find("span", data_privguard_notice="gpc-honored")) == 1
    eu = renderer.body_snippet("en", decision(s), "t", None)
    assert b"Do Not Sell" not in eu


def test_cache_safe_bytes(renderer: BannerRenderer) -> None:
    s = renderer.settings
    a = renderer.body_snippet("de", decision(s, client_ip="10.0.0.1"), "tok", "n")
    b = renderer.body_snippet("de", decision(s, client_ip="10.9.9.9", country="AT"), "tok", "n")
    assert a == b


# --- languages ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_each_language(renderer: BannerRenderer, lang: str) -> None:
    texts = load_builtin_texts(lang)
    data = renderer.body_snippet(lang, decision(renderer.settings), "t", None)
    tree = parse(data)
    assert tree.find("div", id="privguard-banner")[0]["lang"] == lang
    text = data.decode()
    for key in ("accept_all", "reject_all", "settings", "save", "title"):
        assert texts[key] in text, key


def test_translations_are_complete_and_distinct() -> None:
    en = load_builtin_texts("en")
    for lang in LANGS:
        texts = load_builtin_texts(lang)
        # completeness (every key, or one pending translation) is tests/banner/test_languages
        assert set(texts) <= TEXT_KEYS, lang
        assert "{age}" in texts["age_intro"]
        if lang != "en":
            assert texts["accept_all"] != en["accept_all"]
            assert texts["reject_all"] != en["reject_all"]


@pytest.mark.parametrize(
    "header,lang",
    [
        pytest.param(None, "en", id="absent"),
        pytest.param("", "en", id="empty"),
        pytest.param("de-DE,de;q=0.9,en;q=0.8", "de", id="de-DE"),
        pytest.param("fr-CH, fr;q=0.9", "fr", id="fr-CH"),
        pytest.param("es-419", "es", id="es-419"),
        pytest.param("ja,fr;q=0.5", "fr", id="second-choice"),
        pytest.param("en;q=0.1,de;q=0.9", "de", id="quality"),
        pytest.param("*", "en", id="star"),
        pytest.param("zz", "en", id="unsupported"),
        pytest.param(";;;,,q=x", "en", id="garbage"),
        pytest.param("de" * 500, "en", id="huge"),
    ],
)
def test_negotiate(renderer: BannerRenderer, header: str | None, lang: str) -> None:
    assert renderer.negotiate(header) == lang
    assert renderer.negotiate(header) == lang  # cached answer is the same


def test_negotiate_fallback_is_first_language() -> None:
    r = BannerRenderer(settings(languages=["de", "en"]))
    assert r.negotiate(None) == "de"
    assert r.negotiate("ja") == "de"
    assert r.negotiate("en-US") == "en"


def test_negotiation_cache_is_bounded(renderer: BannerRenderer) -> None:
    for i in range(1000):
        renderer.negotiate(f"x{i}")
    assert len(renderer._negotiated) <= 256


# --- overrides and escaping ------------------------------------------------------------


def test_texts_override_per_key() -> None:
    r = BannerRenderer(settings(texts={"de": {"accept_all": "Ja, gerne"}}))
    de = r.body_snippet("de", decision(r.settings), "t", None)
    en = r.body_snippet("en", decision(r.settings), "t", None)
    assert b"Ja, gerne" in de
    assert b"Alle ablehnen" in de  # other keys keep the translation
    assert b"Accept all" in en


@pytest.mark.parametrize(
    "texts,match",
    [
        pytest.param({"en": {"nope": "x"}}, "unknown text key", id="unknown-key"),
        pytest.param({"ja": {"title": "x"}}, "not in languages", id="unknown-language"),
    ],
)
def test_bad_texts_are_config_errors(texts: dict[str, dict[str, str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        BannerRenderer(settings(texts=texts))
    assert info.value.option == "texts"


def test_language_without_translation_needs_every_key() -> None:
    with pytest.raises(ConfigError, match="missing"):
        BannerRenderer(settings(languages=["en", "ja"], texts={"ja": {"title": "Privacy"}}))
    full = {k: f"ja:{k}" for k in TEXT_KEYS}
    r = BannerRenderer(settings(languages=["en", "ja"], texts={"ja": full}))
    assert b"ja:accept_all" in r.body_snippet("ja", decision(r.settings), "t", None)


def test_policy_url_must_be_http() -> None:
    with pytest.raises(ConfigError) as info:
        BannerRenderer(settings(policy_url="javascript:alert(1)"))
    assert info.value.option == "policy_url"


EVIL = '<script>alert("x")</script>&$csrf_token${nonce_attr}'


def test_shop_texts_and_policy_url_are_escaped() -> None:
    texts = {k: EVIL for k in ("title", "accept_all", "cat_marketing_desc", "intro")}
    r = BannerRenderer(
        settings(texts={"en": texts}, policy_url='/privacy?a=1&b="><script>alert(2)</script>')
    )
    data = r.body_snippet("en", decision(r.settings), "tok", "n").decode()
    assert "<script>alert" not in data
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;$csrf_token${nonce_attr}" in data
    assert 'href="/privacy?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"' in data
    scripts = re.findall(r"<script[^>]*>", data)
    assert scripts == [
        '<script type="application/json" id="privguard-config">',
        f'<script src="{r.js_url}" defer nonce="n">',
    ]


def test_texts_cannot_forge_slots() -> None:
    r = BannerRenderer(settings(texts={"en": {"title": "a\x00csrf_token\x00b\x00nonce_attr\x00"}}))
    data = r.body_snippet("en", decision(r.settings), "SECRET-TOKEN", "N")
    assert b"acsrf_tokenbnonce_attr" in data
    assert data.count(b"SECRET-TOKEN") == 2  # the two forms' hidden fields only


def test_token_and_nonce_are_escaped(renderer: BannerRenderer) -> None:
    data = renderer.body_snippet("en", decision(renderer.settings), '"><x', '"><y').decode()
    assert '"><x' not in data and '"><y' not in data
    assert 'value="&quot;&gt;&lt;x"' in data and 'nonce="&quot;&gt;&lt;y"' in data


def test_config_json_is_escaped_for_script() -> None:
    r = BannerRenderer(settings(endpoint_prefix="/p</script><b>&"))
    data = r.body_snippet("en", decision(r.settings), "t", None).decode()
    config = re.search(r'id="privguard-config">(.*?)</script>', data)
    assert config is not None
    raw = config.group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    assert json.loads(raw)["prefix"] == "/p</script><b>&"


def test_nonce_on_every_script_and_stylesheet(renderer: BannerRenderer) -> None:
    data = renderer.body_snippet("en", decision(renderer.settings), "t", "abc").decode()
    assert 'rel="stylesheet"' in data
    for tag in re.findall(r"<(?:script src|link)[^>]*>", data):
        assert 'nonce="abc"' in tag
    bare = renderer.body_snippet("en", decision(renderer.settings), "t", None).decode()
    assert "nonce" not in bare


def test_no_inline_handlers_or_third_party_urls(renderer: BannerRenderer) -> None:
    for lang in LANGS:
        data = renderer.body_snippet(lang, decision(renderer.settings, "US"), "t", None).decode()
        assert not re.search(r"\son[a-z]+=", data)
        assert " style=" not in data  # nothing a strict style-src CSP would block
        assert not re.search(r"""(?:src|href)="(?!/privguard/|https://shop\.example/|#)""", data)
    js = renderer.assets["banner.js"][1].decode()
    css = renderer.assets["banner.css"][1].decode()
    assert "http://" not in js + css and "https://" not in js + css
    assert "url(" not in css and "@import" not in css


# --- Consent Mode ---------------------------------------------------------------------


def test_head_snippet_only_with_consent_mode() -> None:
    r = BannerRenderer(settings())
    assert r.head_snippet(decision(r.settings), "n") is None


def test_head_snippet_defaults_follow_server_state(renderer: BannerRenderer) -> None:
    s = renderer.settings
    d = decision(s)
    data = renderer.head_snippet(d, "n0").decode()
    assert data.startswith('<script nonce="n0">')
    defaults = json.loads(re.search(r"'default',(\{.*?\})\)", data).group(1))  # type: ignore[union-attr]
    assert defaults == {
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "analytics_storage": "denied",
        "functionality_storage": "denied",
        "personalization_storage": "denied",
        "security_storage": "granted",
        "wait_for_update": 500,
    }
    assert "ads_data_redaction" in data
    everything = frozenset(Category)
    granted = renderer.head_snippet(
        dataclasses.replace(d, allowed=everything, needs_banner=False), None
    ).decode()  # type: ignore[union-attr]
    defaults = json.loads(re.search(r"'default',(\{.*?\})\)", granted).group(1))  # type: ignore[union-attr]
    assert set(defaults.values()) == {"granted"}
    assert "wait_for_update" not in defaults and "ads_data_redaction" not in granted
    assert granted.startswith("<script>")
    us = renderer.head_snippet(decision(s, "US"), None).decode()  # type: ignore[union-attr]
    assert '"analytics_storage":"granted"' in us and '"ad_storage":"denied"' in us


# --- assets ---------------------------------------------------------------------------


def test_assets_hashed_and_stable(renderer: BannerRenderer) -> None:
    names = set(renderer.assets)
    hashed = {n for n in names if re.fullmatch(r"banner\.[0-9a-f]{10}\.(js|css)", n)}
    assert len(hashed) == 2 and {"banner.js", "banner.css"} <= names
    again = BannerRenderer(settings())
    assert set(again.assets) == names
    for name in hashed:
        ext = name.rsplit(".", 1)[1]
        assert renderer.assets[name] == renderer.assets[f"banner.{ext}"]
        assert renderer.assets[name][0].startswith("text/javascript" if ext == "js" else "text/css")
        assert renderer.is_immutable_asset(name)
    assert not renderer.is_immutable_asset("banner.js")
    data = renderer.body_snippet("en", decision(renderer.settings), "t", None).decode()
    assert renderer.js_url in data and renderer.css_url in data
    assert renderer.js_url.startswith("/privguard/banner.")


def test_prefix_is_used() -> None:
    r = BannerRenderer(settings(endpoint_prefix="/_p"))
    data = r.body_snippet("en", decision(r.settings), "t", None).decode()
    assert 'action="/_p/consent"' in data and r.js_url.startswith("/_p/banner.")
    assert '"prefix":"/_p"' in data


# --- age pages ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_age_form(renderer: BannerRenderer, lang: str) -> None:
    d = decision(renderer.settings)
    data = renderer.age_form(lang, d, "tok", "/checkout?step=1", "n")
    tree = parse(data)
    assert data.startswith(b"<!DOCTYPE html>")
    assert tree.find("html")[0]["lang"] == lang
    assert tree.find(id="privguard-age-gate")
    (form,) = tree.find("form")
    assert form["action"] == "/privguard/age" and form["method"] == "post"
    (field,) = tree.find("input", name="birth_date")
    assert field["type"] == "date" and "required" in field
    assert tree.find("label", **{"for": "privguard-birth-date"})
    assert tree.find("input", name="next", value="/checkout?step=1")
    assert tree.find("input", name="csrf_token", value="tok")
    assert b"16" in data  # the required age
    assert load_builtin_texts(lang)["age_submit"].encode() in data


@pytest.mark.parametrize("nxt", ["//evil.example/", "https://evil.example/", "\\\\x", None, ""])
def test_age_form_next_is_same_origin(renderer: BannerRenderer, nxt: str | None) -> None:
    tree = parse(renderer.age_form("en", decision(renderer.settings), "t", nxt, None))
    assert tree.find("input", name="next", value="/")


def test_age_form_escapes(renderer: BannerRenderer) -> None:
    data = renderer.age_form("en", decision(renderer.settings), '"><s', '/"><script>', '"><n')
    assert b"<script>" not in data and b'"><s' not in data and b'"><n' not in data


@pytest.mark.parametrize("lang", LANGS)
def test_minor_page(renderer: BannerRenderer, lang: str) -> None:
    data = renderer.minor_page(lang, decision(renderer.settings, age_status="minor"))
    tree = parse(data)
    assert tree.find("html")[0]["lang"] == lang
    assert load_builtin_texts(lang)["minor_title"].encode() in data
    assert tree.find("a", href="/")


# --- contrast -------------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_formula() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_css_colours_meet_wcag_aa(renderer: BannerRenderer) -> None:
    css = renderer.assets["banner.css"][1].decode()
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    variables = dict(re.findall(r"(--pg-[a-z-]+):\s*(#[0-9a-fA-F]{3,6})\s*;", css))
    assert len(variables) >= 8

    def resolve(value: str) -> str:
        value = value.strip()
        m = re.fullmatch(r"var\((--pg-[a-z-]+)\)", value)
        return variables[m.group(1)] if m else value

    checked = 0
    panel_bg = variables["--pg-bg"]
    for selector, block in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = dict(
            (k.strip(), v.strip())
            for k, v in (d.split(":", 1) for d in block.split(";") if ":" in d)
        )
        fg = decls.get("color")
        if fg is None:
            continue
        bg = decls.get("background") or decls.get("background-color") or "var(--pg-bg)"
        fg_hex, bg_hex = resolve(fg), resolve(bg)
        if not fg_hex.startswith("#") or not bg_hex.startswith("#"):
            continue
        ratio = contrast(fg_hex, bg_hex)
        assert ratio >= 4.5, f"{selector.strip()}: {fg_hex} on {bg_hex} is {ratio:.2f}:1"
        checked += 1
    assert checked >= 10
    # focus outline and borders (non-text) against the panel: >= 3:1
    assert contrast(variables["--pg-focus"], panel_bg) >= 3
    assert contrast(variables["--pg-focus"], variables["--pg-accent"]) >= 1  # visible offset
    assert contrast(variables["--pg-border"], panel_bg) >= 3
    # the primary buttons: white on accent
    assert contrast(variables["--pg-accent-fg"], variables["--pg-accent"]) >= 4.5


def test_accept_and_reject_share_one_style(renderer: BannerRenderer) -> None:
    tree = parse(renderer.body_snippet("en", decision(renderer.settings), "t", None))
    accept = tree.find(data_privguard_action="accept-all")[0]
    reject = tree.find(data_privguard_action="reject-all")[0]
    assert accept["class"] == reject["class"] == "privguard__button"


# --- the US link, the page path, the settings' truth -----------------------------------------


def test_do_not_sell_link_outside_the_dialog_on_every_us_page(renderer: BannerRenderer) -> None:
    s = renderer.settings
    d = decision(s, "US")
    for variant in (
        d,
        dataclasses.replace(d, needs_banner=False),
        dataclasses.replace(d, gpc=True),
        dataclasses.replace(d, needs_banner=False, gpc=True),
    ):
        text = renderer.body_snippet("en", variant, "t", None, "/shoes").decode()
        dialog_end = text.index('id="privguard-reopen"')
        link = text.index('data-privguard-action="do-not-sell"')
        assert link > dialog_end  # after the dialog, so hiding the dialog keeps it
        assert 'href="/privguard/do-not-sell?next=%2Fshoes"' in text
    notice = renderer.body_snippet("en", decision(s, "BR"), "t", None)
    assert decision(s, "BR").regime.name == "notice"
    assert b"do-not-sell" not in notice


def test_privacy_choices_variant_has_the_toggle_icon() -> None:
    r = BannerRenderer(settings(us_optout_link="privacy-choices"))
    tree = parse(r.body_snippet("en", decision(r.settings, "US"), "t", None))
    assert len(tree.find("a", data_privguard_action="do-not-sell")) == 1
    assert len(tree.find("svg", **{"class": "privguard-optout-link__icon"})) == 1
    assert "Your Privacy Choices" in "".join(tree.text)
    with pytest.raises(ConfigError) as err:
        settings(us_optout_link="hide")
    assert err.value.option == "us_optout_link"


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        pytest.param("/shoes", "", "/shoes", id="plain"),
        pytest.param("/search", "q=red+shoes&p=2", "/search?q=red+shoes&p=2", id="query"),
        pytest.param("/caf\u00c3\u00a9", "", "/caf%C3%A9", id="wsgi-latin1-bytes"),
        pytest.param("/caf\u00e9", "", "/caf%C3%A9", id="asgi-text"),
        pytest.param("//evil.example/x", "", "/", id="scheme-relative"),
        pytest.param('/"><script>', "", "/%22%3E%3Cscript%3E", id="markup"),
        pytest.param("/a", "x=<b>", "/a?x=%3Cb%3E", id="query-markup"),
    ],
)
def test_no_js_forms_return_to_the_page(
    renderer: BannerRenderer, path: str, query: str, expected: str
) -> None:
    data = renderer.body_snippet("en", decision(renderer.settings), "t", None, path, query)
    tree = parse(data)
    forms = tree.find("form")
    nexts = tree.find("input", name="next")
    assert len(nexts) == len(forms) >= 2  # every banner form carries it
    assert {n["value"] for n in nexts} == {expected}


@pytest.mark.parametrize(
    ("country", "choice", "ticked"),
    [
        pytest.param("DE", None, set(), id="gdpr-first-visit-unticked"),
        pytest.param("US", None, {"functionality", "performance"}, id="us-defaults-on"),
        pytest.param("BR", None, {"functionality", "performance"}, id="notice-defaults-on"),
        pytest.param("DE", {"performance"}, {"performance"}, id="gdpr-stored"),
        pytest.param("US", {"functionality"}, {"functionality"}, id="us-stored"),
    ],
)
def test_boxes_show_what_is_allowed_now(
    renderer: BannerRenderer, country: str, choice: set[str] | None, ticked: set[str]
) -> None:
    s = renderer.settings
    d = decision(s, country)
    if choice is not None:
        cats = frozenset(Category(c) for c in choice) | {Category.NECESSARY}
        d = dataclasses.replace(d, choice=cats, allowed=cats, needs_banner=False)
    tree = parse(renderer.body_snippet("en", d, "t", None))
    boxes = tree.find("input", type="checkbox", name="category")
    assert {b["value"] for b in boxes if "checked" in b} == ticked


def test_gpc_unticks_marketing_even_after_accept(renderer: BannerRenderer) -> None:
    d = decision(renderer.settings, "US")
    every = frozenset(Category)
    d = dataclasses.replace(d, choice=every, allowed=every - {Category.MARKETING}, gpc=True)
    tree = parse(renderer.body_snippet("en", d, "t", None))
    boxes = tree.find("input", type="checkbox", name="category")
    ticked = {b["value"] for b in boxes if "checked" in b}
    assert ticked == {"functionality", "performance"}


def test_close_button_present_and_labelled(renderer: BannerRenderer) -> None:
    tree = parse(renderer.body_snippet("de", decision(renderer.settings), "t", None))
    (close,) = tree.find("a", data_privguard_action="close")
    assert close["href"] == "#"
    assert "Schließen" in tree.text


@pytest.mark.parametrize("lang", LANGS)
def test_descriptions_do_not_understate(lang: str) -> None:
    texts = load_builtin_texts(lang)
    perf = texts["cat_performance_desc"].lower()
    assert "anonym" not in perf and "anónim" not in perf
    assert "2" in perf  # says how long the identifier lives
    assert "google" in texts["cat_marketing_desc"].lower()


# --- declared cookies in the settings view --------------------------------------------------


def _rows(data: bytes) -> dict[str, list[str]]:
    """category -> table rows ("name | provider | purpose | lifetime") of the settings view."""
    text = data.decode()
    out: dict[str, list[str]] = {}
    for part in text.split('data-privguard-cookies="')[1:]:
        category, rest = part.split('"', 1)
        body = rest.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        rows = []
        for row in body.split("<tr>")[1:]:
            cells = [re.sub("<[^>]+>", "", c) for c in row.split("<td>")[1:]]
            rows.append(" | ".join(html.unescape(c) for c in cells))
        out[category] = rows
    return out


def test_settings_list_declared_cookies_per_category() -> None:
    s = settings(
        cookies={"_ga": "performance", "_fbp": "marketing", "lang": "functionality"},
        consent_max_age=90 * 86400,
    )
    r = BannerRenderer(s)
    rows = _rows(r.body_snippet("en", decision(s), "t", None))
    assert rows["performance"] == [
        "_ga | Google Analytics (Google) | Distinguishes visitors with a unique identifier | "
        "2 years"
    ]
    assert rows["marketing"][0].startswith("_fbp | Meta (Facebook Pixel) | ")
    assert rows["marketing"][0].endswith(" | 90 days")
    # privguard's own cookie, with the configured lifetime
    assert rows["necessary"] == [
        "privguard_consent | This shop | Stores your privacy choice | 90 days"
    ]
    assert rows["functionality"] == ["lang | — | — | —"]  # declared without facts
    de = _rows(r.body_snippet("de", decision(s), "t", None))
    assert de["performance"] == [
        "_ga | Google Analytics (Google) | Unterscheidet Besucher anhand einer eindeutigen "
        "Kennung | 2 Jahre"
    ]


def test_shop_declarations_are_escaped_and_localised() -> None:
    s = settings(
        cookies={
            "x<y": {
                "category": "marketing",
                "provider": "<script>alert(1)</script>",
                "purpose": {"en": "Ads & more", "fr": "Pubs"},
                "lifetime": "1 day",
            }
        }
    )
    r = BannerRenderer(s)
    data = r.body_snippet("fr", decision(s), "t", None)
    assert b"<script>alert" not in data
    assert _rows(data)["marketing"] == ["x<y | <script>alert(1)</script> | Pubs | 1 jour"]
    assert _rows(r.body_snippet("en", decision(s), "t", None))["marketing"][0].endswith(
        "Ads & more | 1 day"
    )


@given(st.text(max_size=40), st.text(max_size=40))
def test_return_path_fast_path_equals_quoting(path: str, query: str) -> None:
    from urllib.parse import quote

    from privguard.banner.render import _query_value, return_path

    path = "/" + path
    got = return_path(path, query)
    assert got == "/" or got.startswith("/")
    assert all(0x20 < ord(c) < 0x7F and c not in '<>"\\' for c in got)
    if not path.startswith("//") and "\\" not in path:
        try:
            text = path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            text = path
        slow = quote(text, safe="/:@!$&'()*+,;=-._~")
        if query and len(slow) <= 2048:
            with_query = slow + "?" + quote(query, safe="/:@!$&'()*+,;=-._~%?")
            slow = with_query if len(with_query) <= 2048 else slow
        assert got == slow
    assert _query_value(got) == quote(got, safe="")


# --- the per-page cache of filled banners ----------------------------------------------


def _fresh(renderer: BannerRenderer, *args: object, **kw: object) -> bytes:
    """The same banner rendered without the per-page cache."""
    renderer._filled.clear()
    renderer._filled_bytes = 0
    return renderer.body_snippet(*args, **kw)  # type: ignore[arg-type]


@given(
    path=st.text(min_size=0, max_size=30).map(lambda t: "/" + t),
    query=st.text(max_size=20),
    nonce=st.none() | st.text(min_size=1, max_size=12),
    xhtml=st.booleans(),
    granted=st.sets(st.sampled_from(["functionality", "performance", "marketing"])),
    lang=st.sampled_from(["en", "de", "fr"]),
)
def test_cached_banner_equals_a_fresh_render(
    path: str, query: str, nonce: str | None, xhtml: bool, granted: set[str], lang: str
) -> None:
    r = _RENDERER
    d = decision(_SETTINGS, allowed=frozenset({Category.NECESSARY, *map(Category, granted)}))
    first = r.body_snippet(lang, d, "tok<1>", nonce, path, query, xhtml)
    again = r.body_snippet(lang, d, "tok<1>", nonce, path, query, xhtml)  # from the cache
    assert first == again == _fresh(r, lang, d, "tok<1>", nonce, path, query, xhtml)


_SETTINGS = settings(languages=["en", "de", "fr"])
_RENDERER = BannerRenderer(_SETTINGS)


def test_visitors_never_get_each_others_token_nonce_language_or_boxes() -> None:
    r = BannerRenderer(settings(languages=["en", "de"]))
    none = decision(r.settings)
    some = dataclasses.replace(none, allowed=frozenset({Category.NECESSARY, Category.MARKETING}))
    a = r.body_snippet("en", none, "token-a", "nonce-a", "/p/1")
    b = r.body_snippet("en", none, "token-b", "nonce-b", "/p/1")
    assert b"token-a" in a and b"token-a" not in b and b"token-b" in b
    assert b"nonce-a" in a and b"nonce-a" not in b and b'nonce="nonce-b"' in b
    assert a.replace(b"token-a", b"token-b").replace(b"nonce-a", b"nonce-b") == b
    assert b"token-" not in r.body_snippet("en", none, "", None, "/p/1")
    german = r.body_snippet("de", none, "token-c", None, "/p/1")
    assert b'lang="de"' in german and b'lang="de"' not in a
    ticked = parse(r.body_snippet("en", some, "t", None, "/p/1"))
    assert "checked" in ticked.find("input", id="privguard-cat-marketing")[0]
    unticked = parse(r.body_snippet("en", none, "t", None, "/p/1"))
    assert "checked" not in unticked.find("input", id="privguard-cat-marketing")[0]
    other_page = r.body_snippet("en", none, "token-a", "nonce-a", "/p/2")
    assert b'value="/p/2"' in other_page and b'value="/p/1"' not in other_page


def test_filled_banner_cache_is_bounded_by_bytes() -> None:
    from privguard.banner.render import _FILLED_MAX_BYTES

    r = BannerRenderer(settings())
    d = decision(r.settings)
    size = len(r.body_snippet("en", d, "t", None, "/p/0"))
    for i in range(3 * _FILLED_MAX_BYTES // size):
        r.body_snippet("en", d, "t", None, f"/p/{i}")
        assert r._filled_bytes <= _FILLED_MAX_BYTES
    assert 0 < len(r._filled) <= _FILLED_MAX_BYTES // size
    r.body_snippet("en", d, "t", None, "/" + "x" * 9000)  # too long a path is not kept
    assert all(len(key[2]) < 9000 for key in r._filled)


def test_head_snippets_cached_without_a_nonce_only() -> None:
    r = BannerRenderer(settings(consent_mode="basic"))
    d = decision(r.settings)
    plain = r.head_snippets(d, None)
    assert plain == (r.guard_snippet(d, None) or b"") + (r.head_snippet(d, None) or b"")
    with_nonce = r.head_snippets(d, "n1")
    assert with_nonce is not None and with_nonce.count(b'nonce="n1"') == 2
    assert b"n1" not in (r.head_snippets(d, "n2") or b"") and b"nonce" not in (plain or b"")
    assert BannerRenderer(settings(block_scripts=False)).head_snippets(d, None) is None
