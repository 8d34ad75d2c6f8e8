"""Chunks seen before: what the scan kept about their bytes gives the same output as a scan.

The injector remembers, by a chunk's exact bytes, where
its last ``</body>`` is, and what the tag scan of one rewriter made of it. A page served
again must come out byte for byte as a fresh scan makes it, whatever the chunking, the
consent, the mode the chunk starts in; a page that differs anywhere must be scanned.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privguard.banner import HtmlInjector
from privguard.banner import inject as inject_module
from privguard.banner.seen import Seen as _Seen
from privguard.core.categories import Category
from tests.banner.test_autoblock import _MIXED, EVERYTHING, NOTHING, RT, US_DEFAULT
from tests.banner.test_banner_inject import BODY, HEAD
from tests.spy import spy

PAD = "<div class='row'><a href='/p/1'>Product</a> <span>19,99 EUR</span></div>\n"
TRACKER = b'<script src="https://connect.facebook.net/en_US/fbevents.js"></script>'
PLAIN = b'<script src="/static/app.js?v=000000000000000000000000000000000"></script>'


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Seen]:
    """A fresh memo that keeps chunks of any length (so short test chunks use it too)."""
    memo = _Seen()
    monkeypatch.setattr(inject_module, "_SEEN", memo)
    monkeypatch.setattr(_Seen, "MIN", 1)
    yield memo


def feed(
    chunks: list[bytes], allowed: frozenset[Category] = NOTHING, head: bytes | None = None
) -> tuple[bytes, int, bool]:
    rewriter = RT.blocker.for_response(allowed, "en")
    inj = HtmlInjector(body=BODY, head=head, rewriter=rewriter)
    out = b"".join(inj.feed(c) for c in chunks) + inj.finish()
    return out, inj.rewritten, inj.injected


def fresh(chunks: list[bytes], allowed: frozenset[Category], head: bytes | None) -> tuple:
    """The same run with nothing remembered (every chunk scanned)."""
    inject_module._SEEN.__init__()  # type: ignore[misc]
    found = feed(chunks, allowed, head)
    inject_module._SEEN.__init__()  # type: ignore[misc]
    return found


def split(doc: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(doc)) for c in cuts})
    return [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from([*_MIXED, PAD]), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=1500), max_size=8),
    again=st.lists(st.integers(min_value=0, max_value=1500), max_size=8),
    allowed=st.sampled_from([NOTHING, US_DEFAULT, EVERYTHING]),
    with_head=st.booleans(),
)
def test_a_page_seen_again_comes_out_as_a_fresh_scan(
    parts: list[str],
    cuts: list[int],
    again: list[int],
    allowed: frozenset[Category],
    with_head: bool,
) -> None:
    inject_module._SEEN.__init__()  # type: ignore[misc]
    _Seen.MIN = 1
    try:
        doc = "".join(parts).encode()
        head = HEAD if with_head else None
        want = fresh(split(doc, cuts), allowed, head)
        assert feed(split(doc, cuts), allowed, head) == want  # first time: kept
        assert feed(split(doc, cuts), allowed, head) == want  # seen: reused
        # the same bytes cut elsewhere, and under another consent, share what fits
        assert feed(split(doc, again), allowed, head) == want
        other = NOTHING if allowed is not NOTHING else US_DEFAULT
        assert feed(split(doc, cuts), other, head) == fresh(split(doc, cuts), other, head)
        assert feed(split(doc, cuts), allowed, head) == want
    finally:
        _Seen.MIN = 512
        inject_module._SEEN.__init__()  # type: ignore[misc]


def test_a_page_with_the_same_length_and_ends_but_a_tracker_inside_is_scanned(
    seen: _Seen,
) -> None:
    start = b"<html><head></head><body>" + PAD.encode() * 20
    end = PAD.encode() * 20 + b"</body></html>"
    clean = start + PLAIN + end
    tracked = start + TRACKER + b" " * (len(PLAIN) - len(TRACKER)) + end
    assert len(clean) == len(tracked) and clean[:32] == tracked[:32]
    out, rewritten, _ = feed([clean])
    assert rewritten == 0 and out == clean.replace(b"</body>", BODY + b"</body>")
    out, rewritten, _ = feed([tracked])
    assert rewritten == 1 and b'<script type="text/plain"' in out
    out, rewritten, _ = feed([clean])  # and the clean page is still left alone
    assert rewritten == 0 and b"text/plain" not in out


def test_a_remembered_tracker_page_is_rewritten_per_consent(seen: _Seen) -> None:
    page = b"<html><head></head><body>" + PAD.encode() * 10 + TRACKER + b"</body></html>"
    for _ in range(2):
        held, count, _ = feed([page], NOTHING)
        assert count == 1 and b'data-privguard-category="marketing"' in held
        assert feed([page], EVERYTHING) == (page.replace(b"</body>", BODY + b"</body>"), 0, True)


def test_a_chunk_ending_inside_an_inline_script_is_scanned_each_time(seen: _Seen) -> None:
    """A chunk that leaves a script held is not remembered: its end depends on the next."""
    loader = b"<script>var s=document.createElement('script');"
    first = b"<html><body>" + PAD.encode() * 10 + loader
    for tail, gated in (
        (b"s.src='//bat.bing.com/x';</script>", True),
        (b"var a=1;</script>", False),
    ):
        out, count, _ = feed([first, tail + b"</body></html>"])
        assert count == int(gated)
        assert (b'<script type="text/plain"' in out) is gated


def test_what_is_kept_is_bounded(seen: _Seen) -> None:
    row = PAD.encode()
    for i in range(3 * _Seen.ENTRIES):
        feed([b"<body>%d" % i + row * 50, row * 50 + b"</body>"])
        assert len(seen._items) <= _Seen.ENTRIES
        assert seen._size <= _Seen.BYTES
    big = row * (_Seen.MAX // len(row) + 1)
    before = len(seen._items)
    feed([b"<body>" + big + b"</body>"])
    assert len(seen._items) <= before  # a chunk longer than MAX is never kept


def test_the_same_chunk_inside_a_script_is_script_text(seen: _Seen) -> None:
    """Bytes seen as markup are script text when the chunk starts inside a script."""
    chunk = TRACKER + PAD.encode() * 10 + b"</body></html>"
    markup = b"<html><body>" + PAD.encode() * 10
    script = markup + b'<script src="/static/app.js">'
    for _ in range(2):
        out, count, _ = feed([markup, chunk])
        assert count == 1 and b'<script type="text/plain"' in out
        out, count, _ = feed([script, chunk])
        assert count == 0 and b"text/plain" not in out


# --- a body in one piece: HtmlInjector.whole is feed + finish with one copy ---------------

_WHOLE_PARTS = [
    *_MIXED,
    "<head>",
    "<HEAD lang=x>",
    "<head\n>",
    "</head>",
    "<Body class=a>",
    "<meta charset='utf-8'>",
    "<header>",
    "<hea",
    "<script>var a=1;",
    "<iframe",
    "x" * 40,
]


@settings(max_examples=500, deadline=None)
@example(["<p>", "</body>", "<head>", "x" * 40], True, None, 64 * 1024, 0)  # head after it
@example(["<head>", "</body>", "x" * 40], True, NOTHING, 8, 0)  # too much after </body>
@example(["<body>", "<script>var a=1;"], True, NOTHING, 64 * 1024, 0)  # ends in a script
@given(
    parts=st.lists(st.sampled_from(_WHOLE_PARTS), max_size=30),
    with_head=st.booleans(),
    allowed=st.sampled_from([None, NOTHING, EVERYTHING]),
    max_hold=st.sampled_from([0, 8, 30, 64 * 1024]),
    before=st.integers(min_value=0, max_value=3),
)
def test_whole_is_feed_and_finish(
    parts: list[str],
    with_head: bool,
    allowed: frozenset[Category] | None,
    max_hold: int,
    before: int,
) -> None:
    doc = "".join(parts).encode()
    head = HEAD if with_head else None

    def injector() -> HtmlInjector:
        rewriter = None if allowed is None else RT.blocker.for_response(allowed, "en")
        return HtmlInjector(body=BODY, head=head, max_hold=max_hold, rewriter=rewriter)

    # ``before`` bytes fed first: whole() then takes the rest of a started body
    streamed, whole = injector(), injector()
    want = streamed.feed(doc[:before]) + streamed.feed(doc[before:]) + streamed.finish()
    got = whole.feed(doc[:before]) + whole.whole(doc[before:])
    assert got == want
    assert whole.finish() == b""
    for flag in ("injected", "head_injected", "rewritten"):
        assert getattr(whole, flag) == getattr(streamed, flag), flag


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 6])
def test_a_seen_chunk_ending_in_part_of_body_close_is_held(seen: _Seen, cut: int) -> None:
    """A chunk served again whose last bytes begin a ``</body>`` keeps them back, so the
    banner still goes before the ``</body>`` the next chunk completes."""
    page = b"<html><head></head><body><main>" + PAD.encode() * 10 + b"</main></body></html>"
    at = page.index(b"</body>") + cut
    chunks = [page[:at], page[at:]]
    want = fresh(chunks, NOTHING, None)
    assert want[2] and want[0].index(BODY) < want[0].index(b"</body>")
    for _ in range(3):  # first seen, then remembered
        assert feed(chunks, NOTHING, None) == want


def test_a_page_seen_again_places_its_head_snippet_without_a_search(
    seen: _Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the head snippet goes is kept with a chunk's bytes: served again (the
    same bytes, whole or streamed), the head tag is not searched for, and the snippet
    lands where a fresh scan puts it (after ``<meta charset>``)."""
    page = b"<html><head><meta charset='utf-8'><title>t</title></head><body>"
    page += PAD.encode() * 20 + b"</body></html>"
    searched = spy(monkeypatch, inject_module, "_head_at", len)  # the buffers' lengths
    rewriter = RT.blocker.for_response(NOTHING, "en")

    def whole() -> bytes:
        return HtmlInjector(body=BODY, head=HEAD, rewriter=rewriter).whole(page)

    for chunks in ([page], [page[:300], page[300:900], page[900:]]):
        want = fresh(chunks, NOTHING, HEAD)
        assert want[0].index(HEAD) == page.index(b"<title>")
        del searched[:]
        assert feed(chunks, NOTHING, HEAD) == want  # first seen: searched, and kept
        # once, in the first chunk; the chunks after the head are not searched at all
        assert len(searched) == 1 and searched[0] <= len(chunks[0])
        del searched[:]
        assert feed(chunks, NOTHING, HEAD) == want
        assert searched == []
    want = fresh([page], NOTHING, HEAD)
    assert whole() == want[0]  # kept
    del searched[:]
    assert whole() == want[0]
    assert searched == []
