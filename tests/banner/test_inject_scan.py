"""The tag scan against an independent reference: any case, any attributes, any chunking.

The reference reads the whole document at once with case-insensitive regular expressions
(the plain, backtracking start-tag pattern) and asks the same rewriter about each tag;
the injector must give the same bytes whatever the chunking -- a ``<script`` or
``</body>`` split across chunks, upper and mixed case, ``>`` inside quoted attributes,
``<scripts>``-like names, a ``</script`` split at a boundary -- and whether the page was
seen before or not.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from privguard.banner import HtmlInjector
from privguard.banner.autoblock import HOLD, TagRewriter
from tests.banner.test_autoblock import NOTHING, RT, US_DEFAULT
from tests.banner.test_banner_inject import HEAD, reference

_OPEN = re.compile(rb"<(?:script|iframe)(?=[ \t\n\r\f/>])", re.IGNORECASE)
_TAG = re.compile(rb"""<(?:script|iframe)(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_END = re.compile(rb"</script", re.IGNORECASE)


def rewritten(doc: bytes, rewriter: TagRewriter) -> tuple[bytes, int]:
    """The document with every tracker tag rewritten, read in one piece (small documents:
    no tag or inline script reaches the injector's length limits), and how many changed."""
    out: list[bytes] = []
    pos = count = 0
    while True:
        m = _OPEN.search(doc, pos)
        tag = _TAG.match(doc, m.start()) if m is not None else None
        if m is None or tag is None:  # no more tags, or one never closed: the rest as is
            out.append(doc[pos:])
            return b"".join(out), count
        out.append(doc[pos : m.start()])
        raw = tag.group(0)
        pos = tag.end()
        if raw[1:2].lower() == b"i":
            new = rewriter.iframe(raw)
            out.append(new)
        else:
            mode, new = rewriter.script(raw)
            close = _END.search(doc, pos)
            end = close.end() if close is not None else len(doc)
            if mode == HOLD:
                new = rewriter.inline(raw, doc[pos : close.start() if close else len(doc)])
            out += [new, doc[pos:end]]  # the content is not read for tags
            pos = end
        count += new != raw


def cased(word: str) -> st.SearchStrategy[str]:
    """``word`` with each letter in either case."""
    return st.tuples(*(st.sampled_from(sorted({c.lower(), c.upper()})) for c in word)).map("".join)


_SRC = st.sampled_from(
    [
        "https://connect.facebook.net/en_US/fbevents.js",
        "//static.hotjar.com/c/hotjar-1.js",
        "https://www.youtube.com/embed/x",
        "/static/app.js",
        "https://cdn.example/x.js",
    ]
)
_ATTR = st.sampled_from(
    [
        "",
        " async",
        ' data-x="a>b"',
        " data-y='</body>'",
        ' type="module"',
        ' type="application/ld+json"',
        " hidden",
        ' width="1"',
        "\n",
        "/",
    ]
)


@st.composite
def start_tag(draw: st.DrawFn) -> str:
    name = draw(cased(draw(st.sampled_from(["script", "iframe"]))))
    src = draw(_SRC)
    quote = draw(st.sampled_from(['"', "'", ""]))
    before, after = draw(_ATTR), draw(_ATTR)
    return f"<{name}{before} {draw(cased('src'))}={quote}{src}{quote}{after}>"


_LOADER = "var s=document.createElement('script');s.src='https://connect.facebook.net/x.js';"
_PIECE = st.one_of(
    start_tag(),
    cased("</script>"),
    cased("</body>"),
    cased("<script>"),
    cased("</iframe>"),
    st.sampled_from(
        [
            _LOADER,
            "var a = 1;",
            "<scripts>",
            "<iframely>",
            "<head>",
            "<body>",
            "<p>text</p>",
            "<",
            ">",
            " ",
            "</scr",
            "ipt>",
            "</bo",
            "dy>",
            "<scri",
            "pt src=//bat.bing.com/bat.js>",
        ]
    ),
)


def chunked(doc: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(doc)) for c in cuts})
    return [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]


def stream(
    chunks: list[bytes], rewriter: TagRewriter, head: bytes | None
) -> tuple[bytes, HtmlInjector]:
    inj = HtmlInjector(body=b"<!--B-->", head=head, rewriter=rewriter)
    return b"".join(inj.feed(c) for c in chunks) + inj.finish(), inj


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(_PIECE, max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=900), max_size=10),
    with_head=st.booleans(),
    us=st.booleans(),
)
@example(["<SCRI", "PT src=//bat.bing.com/bat.js>", "</BODY>"], [3], False, False)
def test_any_chunking_rewrites_as_the_reference(
    parts: list[str], cuts: list[int], with_head: bool, us: bool
) -> None:
    doc = "".join(parts).encode()
    rewriter = RT.blocker.for_response(US_DEFAULT if us else NOTHING, "en")
    assert rewriter is not None
    page, count = rewritten(doc, rewriter)
    head = HEAD if with_head else None
    want, injected = reference(page, head)
    for chunks in (chunked(doc, cuts), [doc], [doc[i : i + 1] for i in range(len(doc))]):
        out, inj = stream(chunks, rewriter, head)
        assert out == want
        assert inj.rewritten == count and inj.injected is injected
    whole = HtmlInjector(body=b"<!--B-->", head=head, rewriter=rewriter)
    assert whole.whole(doc) == want and whole.rewritten == count
