"""HtmlInjector: the banner goes before the last </body>, whatever the chunking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privguard.banner import HtmlInjector

BODY = b"<!--B-->"
HEAD = b"<!--H-->"

PAGE = (
    b"<!DOCTYPE html><html><head lang=en><title>t</title></head><body><p>hello</p></body></html>\n"
)


def run(
    chunks: list[bytes], body: bytes = BODY, head: bytes | None = None, **kw: int
) -> tuple[bytes, HtmlInjector]:
    inj = HtmlInjector(body=body, head=head, **kw)
    out = b"".join(inj.feed(c) for c in chunks) + inj.finish()
    return out, inj


def expected(page: bytes, head: bool = False) -> bytes:
    lower = page.lower()
    pos = lower.rfind(b"</body>")
    out = page[:pos] + BODY + page[pos:]
    if head:
        hpos = out.lower().find(b">", out.lower().find(b"<head")) + 1
        out = out[:hpos] + HEAD + out[hpos:]
    return out


@pytest.mark.parametrize("split", range(len(PAGE) + 1))
def test_every_two_chunk_split(split: int) -> None:
    out, inj = run([PAGE[:split], PAGE[split:]])
    assert out == expected(PAGE)
    assert inj.injected


@pytest.mark.parametrize("split", range(len(PAGE) + 1))
def test_every_split_with_head(split: int) -> None:
    out, inj = run([PAGE[:split], PAGE[split:]], head=HEAD)
    assert out == expected(PAGE, head=True)
    assert inj.injected and inj.head_injected


def test_byte_by_byte_with_empty_chunks() -> None:
    chunks = []
    for i in range(len(PAGE)):
        chunks += [PAGE[i : i + 1], b""]
    out, inj = run(chunks, head=HEAD)
    assert out == expected(PAGE, head=True)


@pytest.mark.parametrize(
    "a,b",
    [
        pytest.param(1, 3, id="</|bo|dy>"),
        pytest.param(4, 6, id="</bo|dy|>"),
        pytest.param(2, 7, id="</|body>|"),
        pytest.param(0, 5, id="|</bod|y>"),
    ],
)
def test_three_chunks_inside_the_tag(a: int, b: int) -> None:
    page = b"<html><body>x" + b"</body>" + b"</html>"
    start = page.index(b"</body>")
    chunks = [page[: start + a], page[start + a : start + b], page[start + b :]]
    out, inj = run(chunks)
    assert out == b"<html><body>x" + BODY + b"</body></html>"
    assert inj.injected


@pytest.mark.parametrize("tag", [b"</BODY>", b"</Body>", b"</bOdY>"])
@pytest.mark.parametrize("split", [0, 2, 4, 7])
def test_upper_and_mixed_case(tag: bytes, split: int) -> None:
    page = b"<HTML><BODY>x" + tag + b"</HTML>"
    out, _ = run([page[: 13 + split], page[13 + split :]])
    assert out == b"<HTML><BODY>x" + BODY + tag + b"</HTML>"


def test_last_body_close_wins() -> None:
    page = b'<body><script>document.write("</body>")</script><p>more</p></body></html>'
    for split in range(len(page) + 1):
        out, inj = run([page[:split], page[split:]])
        assert out == page.replace(b"<p>more</p></body>", b"<p>more</p>" + BODY + b"</body>")
        assert inj.injected


@pytest.mark.parametrize("split", [0, 5, 10, 21])
def test_fragment_without_body_is_left_alone(split: int) -> None:
    fragment = b"<div>partial update</d"
    out, inj = run([fragment[:split], fragment[split:]], head=HEAD)
    assert out == fragment
    assert not inj.injected
    assert not inj.head_injected


def test_fragment_ending_in_a_partial_tag_is_returned_by_finish() -> None:
    inj = HtmlInjector(body=BODY)
    sent = inj.feed(b"<p>x</p></bo")
    assert sent == b"<p>x</p>"  # only the tail that may become </body> is held
    assert inj.finish() == b"</bo"
    assert not inj.injected


def test_only_a_short_tail_is_held() -> None:
    inj = HtmlInjector(body=BODY)
    assert inj.feed(b"<html><body>" + b"a" * 1000) == b"<html><body>" + b"a" * 1000
    assert inj.feed(b"<") == b""
    assert inj.feed(b"p>") == b"<p>"


def test_long_tail_after_body_close_is_released_and_snippet_appended() -> None:
    page = [b"<body>x</body>", b"<!--" + b"y" * 200 + b"-->"]
    out, inj = run(page, max_hold=50)
    assert out == b"<body>x</body><!--" + b"y" * 200 + b"-->" + BODY
    assert inj.injected


def test_empty_body() -> None:
    out, inj = run([])
    assert out == b""
    assert not inj.injected


def test_head_fallbacks() -> None:
    # no <head> tag: before <body
    out, _ = run([b"<html><body>x</body></html>"], head=HEAD)
    assert out == b"<html>" + HEAD + b"<body>x" + BODY + b"</body></html>"
    # <header> is not <head>
    out, _ = run([b"<body><header>h</header></body>"], head=HEAD)
    assert out == HEAD + b"<body><header>h</header>" + BODY + b"</body>"
    # neither head nor body start tag: head goes with the body snippet
    out, inj = run([b"<p>x</p></body>"], head=HEAD)
    assert out == b"<p>x</p>" + HEAD + BODY + b"</body>"
    assert inj.head_injected


@pytest.mark.parametrize("split", range(1, 30))
def test_head_with_attributes_split(split: int) -> None:
    page = b'<html><HEAD data-x="1">t</HEAD><body></body>'
    out, _ = run([page[:split], page[split:]], head=HEAD)
    assert out == b'<html><HEAD data-x="1">' + HEAD + b"t</HEAD><body>" + BODY + b"</body>"


def test_injects_once() -> None:
    inj = HtmlInjector(body=BODY, head=HEAD)
    first = inj.feed(PAGE) + inj.finish()
    assert first.count(BODY) == 1 and first.count(HEAD) == 1


# --- property: streaming equals whole-document processing ------------------------------

_TOKENS = [
    "<head>",
    "<HEAD lang=x>",
    "<head\n>",
    "</head>",
    "<body>",
    "<Body class=a>",
    "</body>",
    "</BODY>",
    "</bo",
    "dy>",
    "<",
    ">",
    "a",
    " ",
    "<header>",
    "<b>",
    "</",
    "<!-- x -->",
]


def reference(doc: bytes, head: bytes | None) -> tuple[bytes, bool]:
    """What the injector must produce when it sees the whole document at once."""
    if head is not None:
        m = re.search(rb"<head(?=[\s/>])[^>]*>|</head\s*>|<body(?=[\s/>])", doc, re.I)
        if m is not None:
            pos = m.end() if m.group(0)[:5].lower() == b"<head" else m.start()
            doc = doc[:pos] + head + doc[pos:]
            head = None
    pos = doc.lower().rfind(b"</body>")
    if pos < 0:
        return doc, False
    return doc[:pos] + (head or b"") + BODY + doc[pos:], True


@given(
    parts=st.lists(st.sampled_from(_TOKENS), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    with_head=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_any_chunking_matches_the_whole_document(
    parts: list[str], cuts: list[int], with_head: bool
) -> None:
    doc = "".join(parts).encode()
    points = sorted({min(c, len(doc)) for c in cuts})
    chunks = [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]
    head = HEAD if with_head else None
    out, inj = run(chunks, head=head)
    want, injected = reference(doc, head)
    assert out == want
    assert inj.injected is injected


def _hold_cost(chunks: int) -> float:
    """CPU seconds (best of 3) to stream ``chunks`` 16-byte chunks after an early </body>."""
    import time

    best = float("inf")
    for _ in range(3):
        inj = HtmlInjector(body=BODY, max_hold=1 << 30)
        start = time.process_time()
        inj.feed(b"<html><body><p>x</p></body>")
        for _ in range(chunks):
            inj.feed(b"<p>later text</p")
        inj.finish()
        best = min(best, time.process_time() - start)
    return best


def test_text_held_after_an_early_body_close_costs_linear_time() -> None:
    """10x the chunks must cost about 10x, not 100x (the held text is not re-scanned)."""
    small = _hold_cost(1_000)
    large = _hold_cost(10_000)
    assert large < 30 * max(small, 1e-4), (small, large)


def test_held_text_after_body_close_is_searched_only_where_new() -> None:
    inj = HtmlInjector(body=BODY, max_hold=1 << 30)
    out = [inj.feed(b"<body></body>")]
    out += [inj.feed(b"</bo"), inj.feed(b"dy>"), inj.feed(b"tail</BODY"), inj.feed(b">end")]
    out.append(inj.finish())
    assert b"".join(out) == b"<body></body></body>tail" + BODY + b"</BODY>end"
