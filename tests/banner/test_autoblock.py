"""Server-side auto-blocking: tracker tags rewritten in the streaming pass, any chunking."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privguard import Settings
from privguard.banner import HtmlInjector
from privguard.core.categories import Category
from privguard.runtime import Runtime
from tests.banner.test_banner_inject import BODY, HEAD, reference
from tests.snippets import GTAG, GTM_BODY, GTM_HEAD, META_PIXEL, PAGE, YOUTUBE

SECRET = "a" * 40
NOTHING = frozenset({Category.NECESSARY})
US_DEFAULT = frozenset({Category.NECESSARY, Category.FUNCTIONALITY, Category.PERFORMANCE})
EVERYTHING = frozenset(Category)


def runtime(**options: object) -> Runtime:
    return Runtime(Settings(secret_key=SECRET, ledger=None, rate_limit=None, **options))


RT = runtime()


def rewrite(
    page: str | bytes,
    allowed: frozenset[Category] = NOTHING,
    size: int | None = None,
    rt: Runtime = RT,
) -> tuple[bytes, HtmlInjector]:
    data = page.encode() if isinstance(page, str) else page
    inj = HtmlInjector(body=b"<!--B-->", rewriter=rt.blocker.for_response(allowed, "en"))
    if size is None:
        chunks = [data]
    else:
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(inj.feed(c) for c in chunks) + inj.finish(), inj


class Elements(HTMLParser):
    """What a browser's parser sees: every script and iframe with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe"):
            self.found.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def elements(html: bytes) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html.decode())
    return parser.found


def runnable(html: bytes) -> list[str]:
    """Script srcs (or "inline") and iframe srcs that a browser would load or run."""
    out = []
    for tag, attrs in elements(html):
        if tag == "script" and attrs.get("type") in (None, "", "text/javascript", "module"):
            out.append(attrs.get("src") or "inline")
        if tag == "iframe" and attrs.get("src"):
            out.append(attrs["src"] or "")
    return out


def test_real_snippets_are_all_held_for_a_first_time_gdpr_visitor() -> None:
    out, inj = rewrite(PAGE)
    assert runnable(out) == ["inline"]  # only gtag's `function gtag(){dataLayer.push...}`
    found = {
        a.get("data-privguard-tracker") or a.get("data-src"): a.get("data-privguard-category")
        for _, a in elements(out)
        if a.get("data-privguard-category")
    }
    assert found == {
        "Google Tag Manager": "marketing",
        "Google Analytics": "performance",
        "Meta Pixel": "marketing",
        "https://www.youtube.com/embed/dQw4w9WgXcQ": "marketing",
        "https://www.googletagmanager.com/ns.html?id=GTM-XXXXXXX": "marketing",
    }
    assert inj.rewritten == 5


def test_nothing_but_the_rewritten_tags_changes() -> None:
    out, _ = rewrite(PAGE)
    # undo the rewrite: the page is byte for byte what the shop sent
    undone = re.sub(
        rb' type="text/plain" data-privguard-category="\w+" data-privguard-tracker="[^"]+"',
        b"",
        out,
    )
    undone = re.sub(rb'<span class="privguard-held".*?</button></span>', b"", undone)
    undone = re.sub(
        rb' data-privguard-category="\w+"( hidden data-privguard-held="1")?', b"", undone
    )
    undone = undone.replace(b"data-src=", b"src=").replace(b"<!--B-->", b"")
    assert undone == PAGE.encode()


def test_script_attributes_are_kept_and_type_moves_aside() -> None:
    tag = (
        '<script type="module" nonce="n0nce" async defer integrity="sha384-x" '
        'src="https://cdn.segment.com/analytics.js"></script>'
    )
    out, _ = rewrite(tag)
    ((_, attrs),) = elements(out)
    assert attrs == {
        "type": "text/plain",
        "data-privguard-category": "performance",
        "data-privguard-tracker": "Segment",
        "data-privguard-type": "module",
        "nonce": "n0nce",
        "async": None,
        "defer": None,
        "integrity": "sha384-x",
        "src": "https://cdn.segment.com/analytics.js",
    }


@pytest.mark.parametrize(
    ("allowed", "held"),
    [
        pytest.param(NOTHING, 5, id="nothing-allowed"),
        pytest.param(US_DEFAULT, 4, id="us-optout-default"),
        pytest.param(EVERYTHING, 0, id="accepted-all"),
    ],
)
def test_only_categories_not_allowed_are_held(allowed: frozenset[Category], held: int) -> None:
    out, inj = rewrite(PAGE, allowed)
    assert inj.rewritten == held
    if Category.PERFORMANCE in allowed:
        assert "https://www.googletagmanager.com/gtag/js?id=G-XXXXXXXXXX" in runnable(out)


def test_everything_allowed_costs_no_rewriter() -> None:
    assert RT.blocker.for_response(EVERYTHING, "en") is None
    assert runtime(block_scripts=False).blocker.for_response(NOTHING, "en") is None


def test_consent_mode_advanced_lets_google_tags_load() -> None:
    rt = runtime(consent_mode="advanced")
    out, _ = rewrite(PAGE, rt=rt)
    loads = runnable(out)
    assert "https://www.googletagmanager.com/gtag/js?id=G-XXXXXXXXXX" in loads
    assert loads.count("inline") == 2  # gtag config and the GTM container
    # basic keeps holding them
    out, _ = rewrite(PAGE, rt=runtime(consent_mode="basic"))
    assert runnable(out) == ["inline"]


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(
            '<script type="text/plain" data-privguard-category="marketing" '
            'src="https://connect.facebook.net/x.js"></script>',
            id="shop-marked-script",
        ),
        pytest.param(
            '<script data-privguard-category="necessary" '
            'src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>',
            id="shop-exempt-script",
        ),
        pytest.param(
            '<iframe data-privguard-category="marketing" data-src="https://www.youtube.com/embed/x">'
            "</iframe>",
            id="shop-marked-iframe",
        ),
        pytest.param(
            '<script type="application/ld+json">{"url": "https://www.youtube.com/x", '
            '"createElement": 1}</script>',
            id="json-ld",
        ),
        pytest.param(
            '<script>var channel = "https://www.youtube.com/@shop";</script>',
            id="inline-mentions-without-loading",
        ),
        pytest.param('<script src="/static/app.js"></script>', id="first-party"),
        pytest.param('<scripts src="https://connect.facebook.net/x.js">', id="not-a-script"),
        pytest.param('<iframe src="https://maps.example/embed"></iframe>', id="unknown-frame"),
        pytest.param("<p>no tags at all</p>", id="plain"),
    ],
)
def test_left_alone(page: str) -> None:
    out, inj = rewrite(page)
    assert out == page.encode() + b"<!--B-->" or out == page.encode()
    assert inj.rewritten == 0


def test_inline_script_body_is_not_scanned_for_tags() -> None:
    page = (
        "<script>document.write('<script src=\"https://connect.facebook.net/x.js\"></scr'+'ipt>')"
        "</script>"
    )
    out, inj = rewrite(page)
    assert inj.rewritten == 1  # the inline writer itself is gated, its string left intact
    assert b"<script src=\"https://connect.facebook.net/x.js\"></scr'+'ipt>" in out


def test_json_escaped_urls_in_loaders_are_found() -> None:
    page = (
        '<script>var u="https:\\/\\/static.hotjar.com\\/c\\/hotjar-1.js";'
        "var s=document.createElement('script');s.src=u;document.head.appendChild(s);</script>"
    )
    out, inj = rewrite(page)
    assert inj.rewritten == 1 and b'data-privguard-category="performance"' in out


def test_strictest_category_wins_in_an_inline_loader() -> None:
    page = (
        "<script>var a=document.createElement('script');a.src='https://www.clarity.ms/tag/1';"
        "var b=document.createElement('script');b.src='https://bat.bing.com/bat.js';</script>"
    )
    out, _ = rewrite(page, NOTHING)
    assert b'data-privguard-category="marketing"' in out


def test_hidden_tracking_frames_get_no_placeholder() -> None:
    out, _ = rewrite(GTM_BODY)
    assert b"data-privguard-placeholder" not in out and b"data-src=" in out
    out, _ = rewrite(YOUTUBE)
    assert out.count(b'data-privguard-placeholder="marketing"') == 1
    assert b'data-privguard-action="allow-category"' in out
    assert b'<button type="button"' in out


def test_placeholder_escapes_shop_names_and_texts() -> None:
    rt = runtime(
        scripts={"embed.example": "marketing"},
        texts={"en": {"held_content": "<b>{name}</b> & {category}"}},
    )
    out, _ = rewrite('<iframe src="https://embed.example/v"></iframe>', rt=rt)
    assert b"&lt;b&gt;embed.example&lt;/b&gt; &amp; Marketing" in out


SNIPPETS = [GTAG, META_PIXEL, GTM_HEAD, GTM_BODY, YOUTUBE]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 13, 64, 100])
def test_any_chunk_size_gives_the_same_bytes(size: int) -> None:
    whole, _ = rewrite(PAGE)
    out, inj = rewrite(PAGE, size=size)
    assert out == whole
    assert inj.rewritten == 5


@pytest.mark.parametrize("snippet", SNIPPETS, ids=["gtag", "meta", "gtm", "gtm-ns", "youtube"])
def test_every_two_chunk_split_of_each_snippet(snippet: str) -> None:
    page = ("<html><head></head><body>" + snippet + "</body></html>").encode()
    whole, _ = rewrite(page)
    assert whole != page + b"<!--B-->"
    for split in range(len(page) + 1):
        inj = HtmlInjector(body=b"<!--B-->", rewriter=RT.blocker.for_response(NOTHING, "en"))
        out = inj.feed(page[:split]) + inj.feed(page[split:]) + inj.finish()
        assert out == whole, split


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(PAGE)), max_size=12))
def test_random_chunking_matches_the_whole_document(cuts: list[int]) -> None:
    data = PAGE.encode()
    edges = sorted({0, len(data), *cuts})
    chunks = [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    inj = HtmlInjector(body=b"<!--B-->", rewriter=RT.blocker.for_response(NOTHING, "en"))
    out = b"".join(inj.feed(c) for c in chunks) + inj.finish()
    assert out == rewrite(PAGE)[0]


def test_streaming_holds_nothing_but_an_unfinished_tag_or_inline_script() -> None:
    """Text streams: what is held back is at most the open tag or inline script."""
    inj = HtmlInjector(body=b"", rewriter=RT.blocker.for_response(NOTHING, "en"))
    text = b"<p>" + b"x" * 5000 + b"</p>"
    assert inj.feed(text) == text
    assert inj.feed(b'<script src="https://connect.facebook') == b""  # unfinished start tag
    out = inj.feed(b'.net/x.js"></script><p>after</p>')
    assert out.startswith(b'<script type="text/plain"') and out.endswith(b"<p>after</p>")
    assert inj.feed(b"<script>var a = 1;") == b""  # inline: decided at its </script>
    assert inj.feed(b"</script><p>z</p>") == b"<script>var a = 1;</script><p>z</p>"


def test_an_endless_inline_script_is_released_unchanged() -> None:
    inj = HtmlInjector(body=b"", rewriter=RT.blocker.for_response(NOTHING, "en"))
    out = [inj.feed(b"<script>")]
    for _ in range(100):
        out.append(inj.feed(b"x" * 1024))
    assert sum(map(len, out)) > 30 * 1024  # released after the 64 KiB cap, then streamed
    out.append(inj.feed(b"</script>") + inj.finish())
    assert b"".join(out) == b"<script>" + b"x" * 102400 + b"</script>"


def test_eof_inside_an_inline_loader_still_gates_it() -> None:
    out, inj = rewrite("<script>var s=document.createElement('script');s.src='//bat.bing.com/x'")
    assert inj.rewritten == 1 and out.startswith(b'<script type="text/plain"')


# --- the in-page guard ----------------------------------------------------------------


def served(page: str, **options: object) -> bytes:
    """``page`` through the real WSGI middleware as a first-time gdpr visitor."""
    import webtest

    import privguard

    def app(environ: object, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])  # type: ignore[operator]
        return [page.encode()]

    options = {"ledger": None, "rate_limit": None, "secret_key": SECRET, **options}
    from privguard.testing.visitors import BROWSER_USER_AGENT

    client = webtest.TestApp(privguard.protect(app, **options))
    return client.get("/", headers={"User-Agent": BROWSER_USER_AGENT}).body  # type: ignore[no-any-return]


def test_guard_is_the_first_script_in_head_with_the_nonce() -> None:
    body = served(PAGE, csp_nonce=lambda environ: "n0nce")
    head = body[: body.index(b"</head>")]
    first = head.index(b"<script")
    assert head.index(b'<meta charset="utf-8">') < first  # the charset stays in front
    assert head[first:].startswith(b'<script nonce="n0nce">(function (C) {')
    assert b"privguardGuard" in head[first : head.index(b"</script>", first)]


def test_guard_is_off_with_block_scripts_false() -> None:
    body = served(PAGE, block_scripts=False)
    assert b"privguardGuard" not in body
    assert b"text/plain" not in body  # and nothing was rewritten


def test_guard_knows_the_visitors_categories_and_both_catalogs() -> None:
    import json as _json

    body = served(PAGE, cookies={"promo_*": "marketing"}, scripts={"ads.example": "marketing"})
    start = body.index(b"(function (C) {")
    end = body.index(b");</script>", start)
    config = body[body.rindex(b"})(", start, end) + 3 : end]
    data = _json.loads(config)
    assert data["a"] == ["necessary"]
    assert data["te"]["ads.example"] == "m" and data["te"]["connect.facebook.net"] == "m"
    assert ["^promo_.*$", "m"] in data["cg"] and data["ce"]["_fbp"] == "m"
    assert data["ts"]["google-analytics.com"] == "P"  # a Google tag, performance


# --- XHTML: still well-formed XML after injection ------------------------------------

XHTML_PAGE = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8" />'
    "<title>XHTML shop</title>"
    '<script async="async" src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    "<script>//<![CDATA[\nvar s=document.createElement('script');"
    "s.src='https://connect.facebook.net/en_US/fbevents.js';document.head.appendChild(s);\n//]]>"
    "</script></head><body><p>tea &amp; cake</p>"
    '<iframe width="560" height="315" src="https://www.youtube.com/embed/x" title="v"></iframe>'
    "</body></html>"
)


def _xhtml_app_wsgi(environ: object, start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/xhtml+xml; charset=utf-8")])  # type: ignore[operator]
    return [XHTML_PAGE.encode()]


@pytest.mark.parametrize("country", ["DE", "US"])
@pytest.mark.parametrize("consent_mode", [False, "basic"])
def test_xhtml_stays_well_formed_xml_wsgi(country: str, consent_mode: object) -> None:
    import xml.dom.minidom

    import webtest

    import privguard
    from privguard.testing.visitors import BROWSER_USER_AGENT

    app = privguard.protect(
        _xhtml_app_wsgi,
        secret_key=SECRET,
        ledger=None,
        rate_limit=None,
        consent_mode=consent_mode,
        country_header="CF-IPCountry",
        trusted_proxies=["127.0.0.1"],
        csp_nonce=lambda environ: "n0nce",
    )
    page = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"}).get(
        "/", headers={"User-Agent": BROWSER_USER_AGENT, "CF-IPCountry": country}
    )
    body = page.body
    assert b'id="privguard-banner"' in body and b"privguardGuard" in body
    dom = xml.dom.minidom.parseString(body)  # raises on anything not well-formed
    iframes = dom.getElementsByTagName("iframe")
    assert iframes[0].getAttribute("data-src") == "https://www.youtube.com/embed/x"
    assert not iframes[0].hasAttribute("src")
    scripts = dom.getElementsByTagName("script")
    assert any(s.getAttribute("data-privguard-tracker") == "Meta Pixel" for s in scripts)


def test_xhtml_stays_well_formed_xml_asgi() -> None:
    import xml.dom.minidom

    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from privguard.asgi import PrivacyMiddleware
    from privguard.testing.visitors import BROWSER_USER_AGENT

    async def page(request: object) -> Response:
        return Response(XHTML_PAGE, media_type="application/xhtml+xml")

    app = PrivacyMiddleware(
        Starlette(routes=[Route("/", page)]), secret_key=SECRET, ledger=None, rate_limit=None
    )
    with TestClient(app) as client:
        body = client.get("/", headers={"User-Agent": BROWSER_USER_AGENT}).content
    assert b'id="privguard-banner"' in body
    xml.dom.minidom.parseString(body)


def test_html_pages_keep_html_markup() -> None:
    body = served(PAGE)
    assert (
        b"//<![CDATA[" not in body
        and b" />" not in body.split(b"privguard consent banner")[1][:400]
    )


def test_remembered_decisions_match_fresh_ones_under_every_consent() -> None:
    """Tag decisions are remembered per consent; a repeat answers exactly as the first."""
    page = PAGE
    rt = runtime()
    sets = (NOTHING, US_DEFAULT, EVERYTHING, frozenset({Category.NECESSARY, Category.MARKETING}))
    for _ in range(3):
        for allowed in sets:
            for size in (None, 7):
                out, inj = rewrite(page, allowed, size, rt=rt)
                fresh, fresh_inj = rewrite(page, allowed, size, rt=runtime())
                assert out == fresh
                assert inj.rewritten == fresh_inj.rewritten
    blocked, inj = rewrite(page, NOTHING, rt=rt)
    assert inj.rewritten >= 3 and b'type="text/plain"' in blocked
    allowed, inj = rewrite(page, EVERYTHING, rt=rt)
    assert inj.rewritten == 0 and b'type="text/plain"' not in allowed


# --- the body stage uses what the tag scan found ---------------------------------------

_MIXED = [
    '<script src="https://connect.facebook.net/x.js">',
    "</script>",
    "<SCRIPT>",
    "<Script async src=//static.hotjar.com/c/h.js>",
    'var s="</body>";',
    "var s=document.createElement('script');s.src='//bat.bing.com/x';",
    '<iframe src="https://www.youtube.com/embed/x">',
    "</iframe>",
    '<script data-x="</body>">',
    '<script type="text/javascript; x=</body>" src="https://connect.facebook.net/x.js">',
    "<IFRAME data-a='</BODY>' src=//www.youtube.com/embed/y>",
    "<iframe hidden data-b=\"</body>\" src='https://www.googletagmanager.com/ns.html'>",
    "</body>",
    "</BODY>",
    "</Bo",
    "dy>",
    "</scr",
    "ipt>",
    "<head>",
    "<body>",
    "<p>text</p>",
    "<",
    ">",
    " ",
]


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(st.sampled_from(_MIXED), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8),
    with_head=st.booleans(),
)
def test_body_snippet_before_the_last_body_close_of_the_rewritten_page(
    parts: list[str], cuts: list[int], with_head: bool
) -> None:
    """Where the tag scan says the last ``</body>`` is, whatever the chunking: inside
    tags, script strings, rewritten tags, any case, split across chunks."""
    doc = "".join(parts).encode()
    rewritten = HtmlInjector(body=b"", rewriter=RT.blocker.for_response(NOTHING, "en"))
    plain = rewritten.feed(doc) + rewritten.finish()
    points = sorted({min(c, len(doc)) for c in cuts})
    chunks = [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]
    head = HEAD if with_head else None
    inj = HtmlInjector(body=BODY, head=head, rewriter=RT.blocker.for_response(NOTHING, "en"))
    out = b"".join(inj.feed(c) for c in chunks) + inj.finish()
    want, injected = reference(plain, head)
    assert out == want
    assert inj.injected is injected


@pytest.mark.parametrize("size", [None, 1, 5, 25])
def test_eof_inside_an_inline_script_sends_it_once(size: int | None) -> None:
    """The held tag and content were also kept as an unfinished tag: sent twice at EOF."""
    page = "<p>x</p><script>var s=document.createElement('script');s.src='//bat.bing.com/x'"
    out, inj = rewrite(page, size=size)
    assert out.count(b"createElement") == 1 and out.count(b"<script") == 1
    assert inj.rewritten == 1 and out.startswith(b'<p>x</p><script type="text/plain"')
    plain = "<script>var a = 1;"
    assert rewrite(plain, size=size)[0] == plain.encode()


def test_rewriters_are_kept_per_consent_language_and_xhtml() -> None:
    rt = runtime(languages=["en", "de"])
    en = rt.blocker.for_response(NOTHING, "en")
    assert en is rt.blocker.for_response(NOTHING, "en")
    de = rt.blocker.for_response(NOTHING, "de")
    xhtml = rt.blocker.for_response(NOTHING, "en", xhtml=True)
    us = rt.blocker.for_response(US_DEFAULT, "en")
    assert len({id(en), id(de), id(xhtml), id(us)}) == 4
    frame = b'<iframe src="https://www.youtube.com/embed/x"></iframe>'
    for rewriter, lang, hidden in ((en, b"en", b" hidden "), (de, b"de", b" hidden "),
                                   (xhtml, b"en", b' hidden="hidden"')):  # fmt: skip
        inj = HtmlInjector(body=b"", rewriter=rewriter)
        out = inj.feed(frame) + inj.finish()
        assert b'lang="' + lang + b'"' in out and hidden in out
    assert rt.blocker.for_response(EVERYTHING, "en") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="<>\"' =ab/\n", max_size=40), st.sampled_from(["<script", "<IFRAME"]))
def test_start_tag_pattern_reads_tags_as_the_backtracking_one(rest: str, name: str) -> None:
    from privguard.banner.inject import _START_TAG

    plain = re.compile(rb"""<(?:script|iframe)(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
    data = (name + rest).encode()
    want, got = plain.match(data), _START_TAG.match(data)
    assert (want and want.group(0)) == (got and got.group(0))
