"""The C accelerator answers as its Python references: the quick pass's header loop,
and the page memo's template check (``privguard.banner.seen.fits``, at the end).

``privguard.core._quickscan.scan`` is built by ``hatch_build.py`` at install; the
loop it replaces, ``privguard.core.response._scan_headers``, is the reference. On any
list of pairs of one string type the two give the same answer; on anything odder the
C loop declines (the whole filter then decides), which is never wrong. Under CI the C
loop must have been built: the benchmarks and the served runs measure it.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from privguard.banner import seen as seen_module
from privguard.banner.seen import Seen, _form, fits
from privguard.core import response
from privguard.core.response import _scan_headers
from tests.needs import quickscan_fits, quickscan_loop


@pytest.fixture(scope="module")
def scan() -> Any:
    return quickscan_loop()


def test_the_adapters_use_the_c_loop_when_it_is_built(scan: Any) -> None:
    assert response._scan is scan


KINDS = {"set-cookie": 1, "Set-Cookie": 1, "content-type": 7, "Content-Type": 7}
KINDS |= {"vary": 4, "Vary": 4, "content-length": 0, "Content-Length": 0}
ACTIONS = {"sid": 0, "_ga": 1, "_fbp": 2, "privguard_consent": 3, "": 0}
MEDIA: dict[object, tuple[str, bool]] = {
    "application/json": ("application/json", False),
    "text/html": ("text/html", True),
}

_NAMES = st.sampled_from(
    ["set-cookie", "Set-Cookie", "SET-COOKIE", "content-type", "Content-Type", "vary", "VARY",
     "content-length", "Content-Length", "x-custom", "X-Custom", "ETag", "ß-x", "İ"]
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        ["sid=1; Path=/", "_ga=GA1", "_fbp=x", "privguard_consent=forged", "=bare",
         "mystery=1", "no-equals", "", "application/json", "text/html", "image/png"]
    ),
    st.text(max_size=12),
)  # fmt: skip


def _both_types(pairs: list[tuple[str, str]], raw: bool) -> list[Any]:
    if not raw:
        return pairs
    return [(n.encode("utf-8"), v.encode("utf-8")) for n, v in pairs]


def _tables(raw: bool) -> tuple[dict[Any, int], dict[Any, int], dict[object, Any]]:
    if not raw:
        return KINDS, ACTIONS, MEDIA
    return (
        {n.encode(): k for n, k in KINDS.items()},
        {n.encode(): a for n, a in ACTIONS.items()},
        {t.encode(): m for t, m in MEDIA.items() if isinstance(t, str)},
    )


@hypothesis_settings(max_examples=1500, deadline=None)
@given(
    pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=8),
    raw=st.booleans(),
    lists=st.booleans(),
    status=st.sampled_from([200, 204, 301, 302, 399, 400, 404, 500]),
)
def test_the_c_loop_answers_as_the_python_loop(
    scan: Any, pairs: list[tuple[str, str]], raw: bool, lists: bool, status: int
) -> None:
    app = _both_types(pairs, raw)
    if lists:  # the ASGI spec allows [name, value] lists as well
        app = [list(pair) for pair in app]
    kinds, actions, media = _tables(raw)
    assert scan(app, kinds, actions, media, status) == _scan_headers(
        app, kinds, actions, media, status
    )


def test_the_answer_holds_the_apps_own_pairs_in_order(scan: Any) -> None:
    pairs = [("Content-Type", "application/json"), ("Set-Cookie", "_fbp=x"), ("X-A", "1")]
    out, kept, dropped = scan(pairs, KINDS, ACTIONS, MEDIA, 200)
    assert out == [pairs[0], pairs[2]] and out[0] is pairs[0]
    assert (kept, dropped) == (False, True)
    out, kept, dropped = scan((("set-cookie", "_ga=1"),), KINDS, ACTIONS, MEDIA, 200)
    assert (len(out), kept, dropped) == (1, True, False)


@pytest.mark.parametrize(
    "pairs",
    [
        [("Content-Type", "application/json", "extra")],  # not a pair
        [("Content-Type",)],
        ["Content-Type: application/json"],
        [(7, "x")],  # a name neither str nor bytes
        [("Set-Cookie", 7)],  # a cookie value neither str nor bytes
        [("Set-Cookie", b"sid=1")],  # a bytes value under str names: not judged
        [("Content-Type", "application/json"), ("Content-Type", "application/json")],
        [("Content-Type", "text/html")],  # a document at 200
        [("Vary", "Accept")],  # a header the filter changes
        [("Set-Cookie", "no-equals")],
    ],
)
def test_odd_lists_are_declined_never_answered_otherwise(scan: Any, pairs: list[Any]) -> None:
    assert scan(pairs, KINDS, ACTIONS, MEDIA, 200) is None


def test_bad_arguments_are_type_errors_not_crashes(scan: Any) -> None:
    with pytest.raises(TypeError):
        scan([], KINDS, ACTIONS, MEDIA)
    with pytest.raises(TypeError):
        scan(None, KINDS, ACTIONS, MEDIA, 200)
    with pytest.raises(TypeError):
        scan([], list(KINDS), ACTIONS, MEDIA, 200)
    with pytest.raises(TypeError):
        scan([], KINDS, ACTIONS, MEDIA, "200")
    assert scan([([], "x")], KINDS, ACTIONS, MEDIA, 200) is None  # a name of no string type


def test_the_c_loop_keeps_no_reference_it_should_not(scan: Any) -> None:
    """Reference counts of every object handed in are the same after 20,000 calls."""
    pairs = [
        ("Content-Type", "application/json"),
        ("Content-Length", "2"),
        ("Set-Cookie", "sid=1"),
        ("Set-Cookie", "_ga=1"),
        ("Set-Cookie", "_fbp=1"),
        ("X-Custom", "1"),
    ]
    watched = [pairs, *pairs, *(v for p in pairs for v in p), KINDS, ACTIONS, MEDIA]
    declined = [("Set-Cookie", "mystery=1")]
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(20_000):
        scan(pairs, KINDS, ACTIONS, MEDIA, 200)
        scan(declined, KINDS, ACTIONS, MEDIA, 200)
    assert [sys.getrefcount(o) for o in watched] == before


# -- the page memo's template check ------------------------------------------------------


@pytest.fixture(scope="module")
def c_fits() -> Any:
    return quickscan_fits()


def test_the_page_memo_uses_the_c_check_when_it_is_built(c_fits: Any) -> None:
    assert seen_module.fits_fast is c_fits


_PAGE_BYTES = st.sampled_from(list(b"ab<>\"' =-_9"))


@hypothesis_settings(max_examples=1500, deadline=None)
@given(
    old=st.binary(min_size=1, max_size=80).map(lambda b: bytes(x % 128 for x in b)),
    cuts=st.lists(st.integers(0, 90), max_size=8),
    inside_picks=st.lists(st.booleans(), max_size=8),
    edits=st.lists(st.tuples(st.integers(0, 90), _PAGE_BYTES), max_size=6),
    grow=st.integers(-8, 8),
)
def test_the_c_check_answers_as_the_python_check(
    c_fits: Any,
    old: bytes,
    cuts: list[int],
    inside_picks: list[bool],
    edits: list[tuple[int, int]],
    grow: int,
) -> None:
    # a form over ``old`` with runs at the cuts (some reaching past its end), then a new
    # chunk: old with bytes changed anywhere, longer or shorter
    points = sorted({min(c, len(old)) for c in cuts})
    runs = [[a, b] for a, b in zip(points[::2], points[1::2], strict=False)]
    inside = [slice(a, b) for (a, b), pick in zip(runs, inside_picks, strict=False) if pick]
    form = _form(old, runs, [], inside)
    new = bytearray(old)
    for at, byte in edits:
        if at < len(new):
            new[at] = byte
    new = new[: len(new) + grow] if grow < 0 else new + b"x" * grow
    assert c_fits(form, bytes(new)) is fits(form, bytes(new))


def test_the_c_check_takes_a_learnt_template_as_the_python_one(c_fits: Any) -> None:
    template = [
        b"<main>" + b"<p>shop</p>" * 10 + b"<form><input value='",
        b"'></form>" + b"<p>shop</p>" * 300,
        b"</main>" * 10,
    ]
    first = b"A" * 32
    memo = Seen()
    key, _, _, _, _ = memo.get("k", first.join(template))
    memo.put(key, first.join(template), "value", 0, ())
    assert memo.get("k", (b"B" * 32).join(template))[1] == "value"  # learnt
    form = memo._items[key][3]
    assert form is not None
    for token, expected in ((b"C" * 32, True), (b"<" + b"C" * 31, False), (b"C" * 31, False)):
        page = token.join(template)
        assert c_fits(form, page) is fits(form, page) is expected


def test_the_c_check_refuses_what_is_not_a_form(c_fits: Any) -> None:
    for args in ((), ((), b""), ("form", b""), (((), (), (), (), ()), "text")):
        with pytest.raises(TypeError):
            c_fits(*args)
    with pytest.raises(TypeError):
        c_fits(((b"x",), (), (), (), ()), b"x")  # stretches without their starts
