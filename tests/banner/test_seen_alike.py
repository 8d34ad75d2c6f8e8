"""A page rendered per request: chunks alike but for a few values reuse the last scan.

A template that writes a CSRF token, a nonce or a count into a page makes its bytes
differ on every request. The injector reuses what the scan found in an earlier rendering
when the bytes that differ cannot change it (``privguard.banner.seen``). Whatever the
values — letters, quotes, ``<``, a tracker's URL, half a ``</body>`` — and wherever they
sit (text, an attribute of a script tag, an inline loader), the output must be byte for
byte what a fresh scan makes; and a token page must really be scanned only once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privguard.banner import HtmlInjector
from privguard.banner import inject as inject_module
from privguard.banner import seen as seen_module
from privguard.banner.seen import FAILS, RETRY, Seen
from privguard.core.categories import Category
from tests.banner.test_autoblock import _MIXED, EVERYTHING, NOTHING, RT, US_DEFAULT
from tests.banner.test_banner_inject import BODY, HEAD

PAD = "<div class='row'><a href='/p/1'>Product</a> <span>19,99 EUR</span></div>\n"
SLOT = "\x00"
#: where a template may write a value: in text, in attributes of tags the scan judges or
#: ignores, inside an inline loader, next to the words the scan looks for
_PARTS = [
    *_MIXED,
    PAD,
    SLOT,
    SLOT,
    SLOT,
    '<meta name="csrf-token" content="',
    '">',
    "<input type='hidden' name='csrf' value='",
    "'>",
    '<script nonce="',
    '<script src="https://',
    '" async>',
    "var u='//",
    "';var s=document.createElement('script');s.src=u;",
    "</script>",
    "<scr",
    "</bo",
    "<",
    # where the head snippet goes: a value before, inside or after the head tag, one
    # that completes a tag name, a ``<meta charset>`` after ``<head>``
    "<head>",
    "<head data-v='",
    "<hea",
    "</head>",
    '<meta charset="',
    '<meta charset="utf-8">',
    "<body>",
    '<body class="',
    # values inside tags the scan judges, and inside an inline loader
    '<script nonce="' + SLOT + '" src="/static/app.js">',
    '<script async src="https://' + SLOT + '/x.js">',
    "<iframe src='//" + SLOT + "/embed'>",
    '<script type="' + SLOT + '">',
    "<script>var t='" + SLOT + "';var s=document.createElement('script');s.src='//'+t;</script>",
]
_SPECIAL = [
    "connect.facebook.net/x.js",
    "www.youtube.com",
    "text/plain",
    "module",
    "static.hotjar.com/c/h.js",
    "cdn.example.com/app.js",
    "</body>",
    "<script src=//bat.bing.com/x>",
    "ipt>",
    "dy>",
    "'",
    '"',
    ">",
    "<",
    "d>",
    "d data-x='",
    "<head>",
    " charset=utf-8>",
]
_ALPHABET = "abzAZ09-_ ./:=;'\"<>"


def _value(length: int) -> st.SearchStrategy[str]:
    """A value of exactly ``length`` characters: random, or a special one cut or padded."""
    special = st.sampled_from(_SPECIAL).map(lambda s: (s + "x" * length)[:length])
    return st.one_of(st.text(_ALPHABET, min_size=length, max_size=length), special)


@st.composite
def _renders(draw: st.DrawFn) -> tuple[str, list[list[str]]]:
    parts = draw(st.lists(st.sampled_from(_PARTS), max_size=30))
    if SLOT not in parts:
        parts.insert(len(parts) // 2, SLOT)
    template = PAD * 2 + "".join(parts) + PAD * 2
    slots = template.count(SLOT)
    length = draw(st.integers(min_value=1, max_value=24))
    token = st.text("0123456789abcdef", min_size=length, max_size=length)
    renders = []
    for _ in range(draw(st.integers(min_value=2, max_value=5))):
        # most renders as a template makes them (a token), some with anything in it
        value = draw(st.one_of(token, token, _value(length)))
        renders.append([value if draw(st.booleans()) else draw(token) for _ in range(slots)])
    return template, renders


def _render(template: str, values: list[str]) -> bytes:
    pieces = template.split(SLOT)
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += [value, piece]
    return "".join(out).encode()


def _split(doc: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(doc)) for c in cuts})
    return [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]


def _feed(
    chunks: list[bytes], allowed: frozenset[Category], head: bytes | None
) -> tuple[bytes, int, bool]:
    rewriter = RT.blocker.for_response(allowed, "en")
    inj = HtmlInjector(body=BODY, head=head, rewriter=rewriter)
    if len(chunks) == 1:
        out = inj.whole(chunks[0])
    else:
        out = b"".join(inj.feed(c) for c in chunks) + inj.finish()
    return out, inj.rewritten, inj.injected


def _fresh(
    chunks: list[bytes], allowed: frozenset[Category], head: bytes | None
) -> tuple[bytes, int, bool]:
    """The same run with nothing remembered (the memo of the test left as it is)."""
    kept = inject_module._SEEN
    inject_module._SEEN = Seen()
    try:
        return _feed(chunks, allowed, head)
    finally:
        inject_module._SEEN = kept


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """A fresh memo for chunks of any length, with room for a run every 16 bytes."""
    monkeypatch.setattr(Seen, "MIN", 1)
    monkeypatch.setattr(Seen, "RUN_BYTES", 16)
    kept = Seen()
    monkeypatch.setattr(inject_module, "_SEEN", kept)
    yield kept


@settings(max_examples=800, deadline=None)
@example(  # a value that completes ``<scr`` into a tracker tag
    ("<p>" + PAD + "<scr" + SLOT + PAD, [["oll>" + " " * 21], ["ipt src=//bat.bing.com/x>"]]),
    [],
    NOTHING,
    False,
)
@example(  # a value right after a tag name: the byte that ends the name
    (PAD + "<script" + SLOT + PAD, [["x" * 22], [" src=//bat.bing.com/x>"]]),
    [],
    NOTHING,
    False,
)
@example(  # learnt from two tokens, then a value with a tag in it
    (
        PAD + "<p>" + SLOT + "</p>" + PAD,
        [["x" * 29], ["y" * 29], ["<script src=//bat.bing.com/x>"]],
    ),
    [100],
    NOTHING,
    False,
)
@example(  # learnt where the first two differ; the third differs elsewhere too
    (
        PAD + "<p>" + SLOT + "</p><p>" + SLOT + "</p>" + PAD,
        [["a" * 29, "x" * 29], ["b" * 29, "x" * 29], ["c" * 29, "<script src=//bat.bing.com/x>"]],
    ),
    [],
    NOTHING,
    False,
)
@example(  # a value that makes a script's content run (SKIP -> HOLD): scanned
    (
        PAD
        + '<script type="'
        + SLOT
        + "\">var s=document.createElement('script');s.src='//bat.bing.com/x';</script>"
        + PAD,
        [["text/plain"], ["text/html "], ["module    "]],
    ),
    [],
    NOTHING,
    False,
)
@example(  # learnt as a nonce, then a quote in it: where the tag ends moves
    (
        PAD
        + '<script nonce="'
        + SLOT
        + '" src="/a.js"></script><p>'
        + PAD
        + '<script src="https://connect.facebook.net/x.js"></script>'
        + PAD,
        [["aaaaaa"], ["bbbbbb"], ['x"xxxx']],
    ),
    [],
    NOTHING,
    False,
)
@example(  # a tag too long to judge (no ``>`` for 2 KB), until a value closes it
    (
        PAD + "<script src=https://connect.facebook.net/x.js data-x=" + SLOT + "y" * 2100,
        [["aaaaaaaa"], ["bbbbbbbb"], [" >      "]],
    ),
    [],
    NOTHING,
    False,
)
@example(  # a value inside an inline loader's URL
    (
        PAD
        + "<script>var u='//"
        + SLOT
        + "';var s=document.createElement('script');s.src=u;</script>"
        + PAD,
        [["cdn.example.com/a.js"], ["connect.facebook.net"]],
    ),
    [40, 200],
    NOTHING,
    True,
)
@example(  # a value in a script's URL
    (
        PAD + '<script src="https://' + SLOT + '/x.js"></script>' + PAD,
        [["cdn.example.com/abcd"], ["cdn.example.com/efgh"], ["connect.facebook.net"]],
    ),
    [],
    US_DEFAULT,
    False,
)
@given(
    page=_renders(),
    cuts=st.lists(st.integers(min_value=0, max_value=1500), max_size=6),
    allowed=st.sampled_from([NOTHING, US_DEFAULT, EVERYTHING]),
    with_head=st.booleans(),
)
def test_alike_renderings_come_out_as_a_fresh_scan(
    page: tuple[str, list[list[str]]],
    cuts: list[int],
    allowed: frozenset[Category],
    with_head: bool,
) -> None:
    template, renders = page
    kept = Seen()
    old = inject_module._SEEN
    inject_module._SEEN = kept
    mins = (Seen.MIN, Seen.RUN_BYTES)
    Seen.MIN, Seen.RUN_BYTES = 1, 16
    try:
        head = HEAD if with_head else None
        for values in renders:
            if len(values) != template.count(SLOT):
                values = values + ["x"] * (template.count(SLOT) - len(values))
            chunks = _split(_render(template, values), cuts)
            assert _feed(chunks, allowed, head) == _fresh(chunks, allowed, head)
    finally:
        Seen.MIN, Seen.RUN_BYTES = mins
        inject_module._SEEN = old


# --- a token page as a shop serves it --------------------------------------------------

_TRACKERS = (
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    "<script>var s=document.createElement('script');"
    "s.src='https://connect.facebook.net/en_US/fbevents.js';</script>"
)


def _token_page(token: str, scripts: str = _TRACKERS, where: str = "form") -> bytes:
    """A 48 KB product list with a CSRF token in the head and in a form every 20 rows."""
    head = f"<!doctype html><html><head><meta charset='utf-8'>{scripts}"
    if where == "nonce":  # the token in a script tag the scan judges
        head += f'<script nonce="{token}" src="/static/shop.js"></script>'
    head += f'<meta name="csrf-token" content="{token}"></head><body><main>'
    form = f"<form><input type='hidden' name='csrf' value='{token}'><button>Add</button></form>"
    rows = (form + PAD * 20) * 28
    return (head + rows + "</main></body></html>").encode()


_RANDOM = random.Random(5)


def _token() -> str:
    return f"{_RANDOM.getrandbits(128):032x}"


def _chunks(doc: bytes, count: int) -> list[bytes]:
    size = -(-len(doc) // count)
    return [doc[i : i + size] for i in range(0, len(doc), size)]


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A fresh memo (default sizes), and the length of every chunk the tag stage scans."""
    monkeypatch.setattr(inject_module, "_SEEN", Seen())
    calls: list[int] = []
    scan = HtmlInjector._scan

    def counted(self: HtmlInjector, buf: bytes, pos: int) -> bytes:
        calls.append(len(buf))
        return scan(self, buf, pos)

    monkeypatch.setattr(HtmlInjector, "_scan", counted)
    yield calls


@pytest.mark.parametrize("pieces", [1, 8])
def test_a_token_page_is_scanned_once(scans: list[int], pieces: int) -> None:
    for render in range(6):
        chunks = _chunks(_token_page(_token()), pieces)
        if render == 1:
            first = len(scans)
        got = _feed(chunks, NOTHING, HEAD)
        assert got[1] == 2 and got[2]  # both trackers held, the banner in
        assert got == _fresh(chunks, NOTHING, HEAD)
    # scanned when first seen (the fresh runs above scan too: one per chunk per render)
    assert len(scans) == first + 5 * len(chunks)


def test_a_nonce_in_a_script_tag_is_judged_again_not_scanned(scans: list[int]) -> None:
    """A CSP nonce on a script tag (as the README's recipe writes it): the tag is
    judged again from this rendering's bytes, the page is not scanned, and the answer
    carries this request's nonce."""
    for render in range(6):
        token = _token()
        doc = _token_page(token, where="nonce")
        if render == 2:
            before = len(scans)
        got = _feed([doc], NOTHING, None)
        assert got[1] == 2 and got[0].count(f'nonce="{token}"'.encode()) == 1
        assert got == _fresh([doc], NOTHING, None)
    assert len(scans) - before == 4  # the fresh runs' scans alone


def test_a_value_that_turns_a_script_into_a_tracker_is_held(scans: list[int]) -> None:
    """The same tag, the same length, another host in its ``src``: judged again, held."""
    for host, held in (("cdn.example.com", 2), ("cdn.example.org", 2), ("bat.bing.com/x1", 3)):
        assert len(host) == 15
        doc = _token_page(_token()).replace(
            b"<main>", f'<main><script src="https://{host}/a.js"></script>'.encode()
        )
        got = _feed([doc], NOTHING, None)
        assert got == _fresh([doc], NOTHING, None)
        assert got[1] == held


def test_a_page_that_changes_for_good_is_learnt_again(scans: list[int]) -> None:
    """A template outlives FAILS chunks that differ in markup; then the new page is
    learnt from, and its renderings are no longer scanned."""
    for _ in range(3):
        _feed([_token_page(_token())], NOTHING, None)
    before = len(scans)
    for _ in range(FAILS + 3):  # the shop deploys: other text in every row
        token = _token()
        doc = _token_page(token).replace(b"Product", b"Produkt")
        out, rewritten, injected = _feed([doc], NOTHING, None)
        assert rewritten == 2 and injected and out.count(token.encode()) == 29
    assert len(scans) - before == FAILS


def test_a_page_that_keeps_changing_learns_only_now_and_then(
    memo: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    lessons: list[int] = []
    differ = seen_module._differ

    def counted(old: bytes, new: bytes, limit: int) -> list[list[int]] | None:
        lessons.append(1)
        return differ(old, new, limit)

    monkeypatch.setattr(seen_module, "_differ", counted)
    row = PAD.encode()
    for i in range(FAILS + RETRY + 1):  # new markup every time, same length and ends
        name = 97 + i % 26  # another element each time: a tag name is never inert
        doc = row * 3 + b"<%c>0</%c>" % (name, name) + row * 3
        assert _feed([doc], NOTHING, None) == _fresh([doc], NOTHING, None)
    assert len(lessons) == FAILS + 1  # FAILS in a row, then one at the RETRY-th miss


def test_a_value_that_brings_a_tracker_is_blocked(scans: list[int]) -> None:
    """The same page, the same length, a tracker tag where the token was: it is seen."""
    tag = '<script src="https://bat.bing.com/bat.js"></script>'
    token = _token()
    for value, gated in ((_token(), 2), (_token(), 2), (tag[:32], 2), (tag.ljust(64), 3)):
        page = _token_page(token, where="form").replace(token.encode(), b"T" * 64, 1)
        doc = page.replace(b"T" * 64, value.ljust(64).encode())
        got = _feed([doc], NOTHING, None)
        assert got == _fresh([doc], NOTHING, None)
        assert got[1] == gated


def test_runs_are_bounded(memo: Seen) -> None:
    """A chunk differing in more runs than RUN_BYTES allows is compared exactly."""
    base = (PAD * 8).encode()
    changed = bytearray(base)
    for at in range(40, len(base) - 40, 8):  # a changed letter every 8 bytes
        if changed[at : at + 1].isalpha():
            changed[at] ^= 0x20
    for doc in (base, bytes(changed), base):
        assert _feed([doc], NOTHING, None) == _fresh([doc], NOTHING, None)
    entry = next(iter(memo._items.values()))
    assert entry[3] is None and entry[4] >= 1  # no template learnt


def test_a_learnt_template_is_counted_in_the_bytes_kept(memo: Seen) -> None:
    template = PAD * 4 + SLOT + PAD * 4 + SLOT + PAD * 4
    _feed([_render(template, ["aaaa", "bbbb"])], NOTHING, None)
    size = memo._size
    _feed([_render(template, ["cccc", "dddd"])], NOTHING, None)
    entry = next(iter(memo._items.values()))
    assert entry[3] is not None and len(entry[3][2]) == 2
    # the template's bytes between the runs are kept as bytes of their own: counted
    assert sum(map(len, entry[3][0])) >= len(entry[0]) - 16
    assert memo._size >= size + sum(map(len, entry[3][0]))


@pytest.mark.parametrize(
    ("before", "old", "new", "inert"),
    [
        (b"<script", b"xxxx", b" src", False),  # the byte after a tag name
        (b"</scrip", b"xxxx", b"t>  ", False),
        (b"</bo", b"xxxx", b"dy> ", False),
        (b"<span>", b"1234", b"5678", True),  # no word begins with ``<span>``
        (b"value='", b"1234", b"5678", True),
        (b"<p>", b"1234", b"<scr", False),  # a ``<`` in the new bytes
        (b"<p>", b"12'4", b"5678", True),  # a quote: inert in text, not inside a tag
    ],
)
def test_inert_runs(before: bytes, old: bytes, new: bytes, inert: bool) -> None:
    """What a run may hold, and what may stand just before it (up to REACH bytes)."""
    at = len(before)
    run = [[at, at + len(old)]]
    assert (seen_module._inert(before + old, before + new, run, ()) is not None) is inert
    # inside a span judged only as a whole: never; inside one that can be judged again:
    # named for that, unless the run holds what could end the tag (``<>"'``)
    hard = ((0, at + 1, None),)
    assert seen_module._inert(before + old, before + new, run, hard) is None
    soft = ((0, at + len(old) + 1, "again"),)
    found = seen_module._inert(before + old, before + new, run, soft)
    if inert and not any(c in old + new for c in b"<>\"'"):
        assert found == ([soft[0]], [slice(at, at + len(old))])
    else:
        assert found is None


@pytest.mark.parametrize("cut", [b"<", b"<s", b"<i"])
@pytest.mark.parametrize("tokens", [False, True])
def test_chunks_cut_inside_a_tag_take_the_short_way(
    monkeypatch: pytest.MonkeyPatch, scans: list[int], cut: bytes, tokens: bool
) -> None:
    """A chunk that ends in what may begin a ``<script``/``<iframe`` (a stream cut at
    ``<s`` of ``<span>``, ``<i`` of ``<input``) holds those bytes for the next chunk.
    Served again, every chunk between the head and the ``</body>`` is still answered
    by what was kept, with the held bytes in front of it: no pass through the tag
    stage, and the same bytes as a fresh scan, a token in the page or not."""
    stages: list[int] = []
    stage = HtmlInjector._tag_stage

    def counted(self: HtmlInjector, data: bytes) -> bytes:
        stages.append(self._index)
        return stage(self, data)

    monkeypatch.setattr(HtmlInjector, "_tag_stage", counted)

    def render() -> list[bytes]:
        doc = _token_page(_token() if tokens else "0" * 32)
        marks = [m.start() for m in re.finditer(rb"<(?=span|input)", doc)]
        marks = [m for m in marks if doc.startswith(cut, m)]
        ends = [marks[len(marks) * i // 8] + len(cut) for i in range(1, 8)]
        return [doc[a:b] for a, b in zip([0, *ends], [*ends, len(doc)], strict=True)]

    for _ in range(3):  # first seen, the template learnt, then kept
        chunks = render()
        assert _feed(chunks, NOTHING, HEAD) == _fresh(chunks, NOTHING, HEAD)
    del stages[:]
    chunks = render()
    got = _feed(chunks, NOTHING, HEAD)
    assert got[1] == 2 and got[2]  # both trackers held, the banner in
    # the first chunk (the head snippet goes in) and the last (its ``</body>``) only
    assert stages == [0, 7]
    assert got == _fresh(chunks, NOTHING, HEAD)


_HEAD_PAGES = [
    # (template, values per rendering, head searches over all renderings, one body / 8)
    # a token after the head tag and what the search read after it: its place found once
    (
        PAD * 4 + "<head><title>Shop</title><meta name='csrf-token' content='" + SLOT + "'>"
        + PAD * 8 + "</head><body>" + PAD * 12 + "</body></html>",
        [["a" * 16], ["b" * 16], ["c" * 16]],
        1,
    ),
    (
        "<head><meta charset='utf-8'><title>Shop</title><meta name='csrf-token' content='"
        + SLOT + "'>" + PAD * 8 + "</head><body>" + PAD * 12 + "</body></html>",
        [["a" * 16], ["b" * 16], ["c" * 16]],
        1,
    ),
    # a token in the tag right after ``<head>``: read for a ``charset`` (it may be one)
    (
        PAD * 4 + "<head><meta name='csrf-token' content='" + SLOT + "'>" + PAD * 8
        + "</head><body>" + PAD * 12 + "</body></html>",
        [["a" * 16], ["charset=" * 2], ["c" * 16]],
        3,
    ),
    # a value in the head tag itself, or before it: searched on every rendering
    (
        PAD * 4 + "<head data-v='" + SLOT + "'>" + PAD * 8 + "</head><body>" + PAD * 12
        + "</body>",
        [["a" * 16], ["b" * 16], ["c" * 16]],
        3,
    ),
    (
        PAD * 2 + "<hea" + SLOT + PAD * 4 + "<head>" + PAD * 8 + "<body>" + PAD * 12 + "</body>",
        [["xx"], ["d>"], ["xx"]],
        3,
    ),
    # a value in the ``<meta charset>`` read after ``<head>``
    (
        PAD * 2 + '<head><meta charset="' + SLOT + '">' + PAD * 8 + "<body>" + PAD * 12
        + "</body>",
        [["utf-8"], ["abcde"], ["ascii"]],
        3,
    ),
]  # fmt: skip


@pytest.mark.parametrize("pieces", [1, 8])
@pytest.mark.parametrize(("template", "renders", "searches"), _HEAD_PAGES)
def test_the_head_place_of_a_rendering_is_found_again_only_when_it_may_move(
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    renders: list[list[str]],
    searches: int,
    pieces: int,
) -> None:
    monkeypatch.setattr(inject_module, "_SEEN", Seen())
    monkeypatch.setattr(Seen, "MIN", 1)
    monkeypatch.setattr(Seen, "RUN_BYTES", 16)
    found: list[int] = []
    head_at = inject_module._head_at

    def counted(buf: bytes) -> int:
        found.append(len(buf))
        return head_at(buf)

    for values in renders:
        chunks = _chunks(_render(template, values), pieces)
        monkeypatch.setattr(inject_module, "_head_at", counted)
        out = _feed(chunks, NOTHING, HEAD)
        monkeypatch.setattr(inject_module, "_head_at", head_at)
        assert out == _fresh(chunks, NOTHING, HEAD)
        assert out[0].count(HEAD) == 1
    if pieces == 1:  # (cut in 8, a head tag may fall across two chunks: searched then)
        assert len(found) == searches
