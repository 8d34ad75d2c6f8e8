"""What the scan of a page chunk can reuse from a chunk seen before.

The same page is served again and again, and finding the tags of a chunk (a lower-cased
copy and a search of every byte) is most of the cost of streaming it. :class:`Seen`
keeps what the scan found, by the chunk's bytes; it is looked up by the length and both
ends of a chunk, and answers in two ways:

* **the same bytes** (one ``memcmp``): what was found is reused as it is;
* **the same page with other values in it.** A template rendered per request (a CSRF
  token in a form, a nonce in a data attribute, a cart count of the same width) differs
  from the last rendering only in a few short runs of bytes. When every such run is
  *inert*, a scan of the new chunk finds exactly what the old scan found — the same
  tags, decided the same, in the same places — so the old result is reused with the new
  chunk's own bytes. A run is inert when

  - neither chunk has a ``<`` in it, and no ``<`` in the :data:`REACH` bytes before it
    begins what may still become a word: every word the scan looks for (:data:`WORDS`:
    ``<script``, ``<iframe``, ``</script``, ``</body>``, and the byte after a tag name)
    begins with ``<`` and ends at most :data:`REACH` bytes later, so none can begin, end
    or change there (``<span>`` and ``value='`` before a token are fine, ``<scr`` is not);
  - it lies outside every *span* the scan judged byte by byte (the caller hands these
    over with the result), or inside one the caller can judge again and holds none of
    ``<>"'`` (old or new) -- nothing that could move where the span ends: a start tag
    read up to its ``>`` (a CSP nonce, a URL in ``src``), an inline script with its
    content (a token in a config script). :meth:`Seen.get` names those spans; the
    caller judges each again from the new bytes and scans the chunk when one comes out
    otherwise in how the scan goes on or in its length. A tag the scan could not
    finish or judge is never skipped.

  Where the runs are is learnt by comparing the two chunks (a bisection of ``memcmp``
  over the halves that differ, then byte by byte), once; a later rendering then costs
  one comparison per run between them and a ``<`` check of each run. A run grows over
  the letters, digits, ``-`` and ``_`` around it (a token of the same alphabet differs
  elsewhere next time), and runs a few bytes apart merge. A chunk that does not fit
  the runs learns again, its runs added to the old ones. A template outlives a few
  chunks that differ in markup (each is scanned alone); after :data:`FAILS` misses in
  a row the newest chunk takes its place and is learnt from. A key whose chunks keep
  differing in markup (more than :data:`FAILS` failed lessons in a row) tries again only
  every :data:`RETRY` misses, so such a page pays little more than its scans. Nothing
  is reused that a scan might see differently: a run that is not inert is never
  skipped.

Bounded in entries and in bytes kept (then the memo starts afresh: a miss only costs
the scan it would have saved); safe to share between threads (entries are replaced
whole, never changed in place).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Seen", "REACH", "WORDS", "fits", "fits_fast"]

#: the words the scan looks for, all ASCII case-insensitive (a start tag's name with
#: the byte after it: ``<script`` and one more)
WORDS = (b"<script", b"<iframe", b"</script", b"</body>")
#: how far after its ``<`` a word can reach (8 bytes: ``</script``, ``<script`` and one)
REACH = 8
#: misses in a row a template outlives, and failed lessons in a row before a key learns
#: only every :data:`RETRY` misses
FAILS = 3
RETRY = 64
#: a run grows over these bytes (a token's alphabet)
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
#: bytes kept for each learnt run (its slice, place and share of the tuples), for the
#: byte bound (the template's bytes between the runs are counted as they are)
_RUN_SIZE = 160

#: (start, end, what the caller needs to judge it again, or None: never skipped)
Span = tuple[int, int, Any]
#: (the template's bytes between the runs and after the last, where each of those stretches
#: starts, the runs, the spans a run lies in (judged again for every rendering), the runs
#: inside them, a getter of the runs' bytes out of a chunk: a tuple of them)
Form = tuple[
    tuple[bytes, ...],
    tuple[int, ...],
    tuple[slice, ...],
    tuple[Span, ...],
    tuple[slice, ...],
    Callable[[bytes], tuple[bytes, ...]],
]
#: ``<`` as a byte value: ``_LT in data`` is a ``memchr`` (``b"<" in data`` first tries
#: the needle as an integer and raises and clears a TypeError inside)
_LT = ord("<")
#: bytes a run inside a span may not hold: none can move where a tag or script ends
_SOFT_OUT = re.compile(rb"""[<>"']""")


def _differ(old: bytes, new: bytes, limit: int) -> list[list[int]] | None:
    """The runs ``[start, end)`` where ``new`` differs from ``old`` (same length), in
    order; None when there are more than ``limit``."""
    view = memoryview(old)
    startswith = new.startswith
    runs: list[list[int]] = []
    stack = [(0, len(old))]
    while stack:
        lo, hi = stack.pop()
        if startswith(view[lo:hi], lo):
            continue
        if hi - lo > 32:
            mid = (lo + hi) // 2
            stack.append((mid, hi))
            stack.append((lo, mid))  # taken first: the runs come out in order
            continue
        for i in range(lo, hi):
            if new[i] != old[i]:
                # a byte that happens to be the same inside a token does not cut its run
                if runs and _joins(old, runs[-1][1], i):
                    runs[-1][1] = i + 1
                elif len(runs) >= limit:
                    return None
                else:
                    runs.append([i, i + 1])
    return runs


def _joins(old: bytes, end: int, start: int) -> bool:
    """Whether a run ending at ``end`` and one starting at ``start`` are one: at most
    :data:`REACH` bytes apart (or overlapping), no ``<`` between them. Joining only ever
    widens what is compared as a run."""
    return start - end <= REACH and (start <= end or old.find(b"<", end, start) < 0)


def _grow(old: bytes, runs: list[list[int]]) -> list[list[int]]:
    """Each run over the word bytes around it."""
    n = len(old)
    out: list[list[int]] = []
    for a, b in runs:
        while a > 0 and old[a - 1] in _WORD:
            a -= 1
        while b < n and old[b] in _WORD:
            b += 1
        out.append([a, b])
    return out


def _inert(
    old: bytes, new: bytes, runs: list[list[int]], spans: tuple[Span, ...]
) -> tuple[list[Span], list[slice]] | None:
    """The spans some run lies in and those runs, when no run can change what the scan
    finds but what judging those spans again tells (see the module docstring); None
    when one can."""
    hits: list[Span] = []
    inside: list[slice] = []
    k = 0
    for a, b in runs:
        if old.find(b"<", a, b) >= 0 or new.find(b"<", a, b) >= 0:
            return None
        # a ``<`` just before the run: the bytes from it up to the run may begin a word.
        # (An earlier run between them was checked against the same ``<``: if those bytes
        # cannot begin a word, no word from it reaches this run.)
        s = old.find(b"<", max(0, a - REACH), a)
        while s >= 0:
            if _may_begin(old[s:a]):
                return None
            s = old.find(b"<", s + 1, a)
        while k < len(spans) and spans[k][1] <= a:
            k += 1
        j = k
        soft = False
        while j < len(spans) and spans[j][0] < b:
            span = spans[j]
            if span[1] > a:  # the run lies in it
                if span[2] is None:
                    return None  # judged only as a whole here: never skipped
                if not soft and (_SOFT_OUT.search(old, a, b) or _SOFT_OUT.search(new, a, b)):
                    return None
                soft = True
                if not hits or hits[-1] is not span:
                    hits.append(span)
            j += 1
        if soft:
            inside.append(slice(a, b))
    return hits, inside


def _may_begin(text: bytes) -> bool:
    """Whether ``text`` (a ``<`` and at most :data:`REACH` - 1 bytes) may go on into a
    word the scan looks for (a tag name reaches one byte further: the byte after it)."""
    low = text.lower()
    return any(word.startswith(low) for word in WORDS)


def _form(old: bytes, runs: list[list[int]], hits: list[Span], inside: list[slice]) -> Form:
    starts = (0, *(b for _, b in runs))
    ends = [a for a, _ in runs] + [len(old)]
    stretches = tuple(old[a:b] for a, b in zip(starts, ends, strict=True))
    # the stretches are compared in place (one C loop of ``startswith`` at their starts:
    # no copy of the chunk), the runs taken out in one C call, as a tuple (the empty
    # slice last makes it one even for a single run)
    runs_at = tuple(slice(a, b) for a, b in runs)
    getter = operator.itemgetter(*runs_at, slice(0, 0))
    return stretches, starts, runs_at, tuple(hits), tuple(inside), getter


def fits(form: Form, new: bytes) -> bool:
    """Whether ``new`` (as long as the template) equals the template outside its runs,
    with no ``<`` in them (and none of ``>"'`` in those inside a span). The loops run
    in C: each stretch between the runs compared in place (``startswith`` at its start,
    a ``memcmp``), the runs taken out in one call, one ``memchr`` for all. In place, not
    taken out as copies and compared as a tuple: a few more instructions, but no second
    copy of each chunk through the caches (a per-request token page: about 40% fewer
    last-level cache misses under cachegrind)."""
    if not all(map(new.startswith, form[0], form[1])):
        return False
    if _LT in b"".join(form[5](new)):
        return False
    return not form[4] or _SOFT_OUT.search(b"".join(map(new.__getitem__, form[4]))) is None


def _load_fits() -> Callable[[Form, bytes], bool]:
    """:func:`fits` in C (``privguard.core._quickscan.fits``) when it was built, else
    :func:`fits` itself (the reference: ``tests/core/test_quickscan.py`` holds the two
    to the same answers). A chunk of a page seen before is checked once per request:
    about 0.9 µs in Python, 0.1 µs in C."""
    try:
        from privguard.core import _quickscan  # type: ignore[attr-defined]
    except ImportError:
        return fits
    return getattr(_quickscan, "fits", fits)


#: :func:`fits`, in C where it was built (see :func:`_load_fits`)
fits_fast = _load_fits()


def _runs(form: Form | None) -> list[list[int]]:
    return [] if form is None else [[run.start, run.stop] for run in form[2]]


def _merge(old: bytes, runs: list[list[int]]) -> list[list[int]]:
    """``runs`` in order, those that join (:func:`_joins`) made one."""
    out: list[list[int]] = []
    for a, b in sorted(runs):
        if out and _joins(old, out[-1][1], a):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


class Seen:
    """What the scan learnt about recently seen chunks; see the module docstring.

    An entry is ``(bytes, value, spans or None, form or None, fails)``; ``value`` is the
    caller's, ``spans`` the places it judged byte by byte (None: the value holds for
    these exact bytes only).
    """

    __slots__ = ("_items", "_size")

    #: chunks shorter than this are scanned in about a microsecond: not worth an entry
    MIN = 512
    #: longest chunk kept, most entries, most bytes kept (chunks and what they became)
    MAX = 128 * 1024
    ENTRIES = 64
    BYTES = 4 * 1024 * 1024
    #: most runs a chunk may differ in: one per this many bytes (past that a scan costs
    #: about as much as the comparisons)
    RUN_BYTES = 1024

    def __init__(self) -> None:
        self._items: dict[tuple[object, int, bytes, bytes], tuple[Any, ...]] = {}
        self._size = 0

    def get(self, kind: object, buf: bytes) -> tuple[object, Any, bool, tuple[Span, ...], int]:
        """``(key, what was kept, exact, spans to judge again, alike up to)`` for ``kind``
        about a chunk like ``buf``.

        The key is None for a chunk not worth keeping, the value None when nothing
        applies; ``exact`` is False when the value was kept for other bytes that differ
        from ``buf`` only where the scan would not see it, or in the spans named next
        (the caller takes the bytes from ``buf`` and judges those spans again). The
        last item: how many leading bytes of ``buf`` are those the value was kept for
        (all of them when exact, up to the first run otherwise, 0 without a value).
        """
        n = len(buf)
        if n < self.MIN or n > self.MAX:
            return None, None, False, (), 0
        key = (kind, n, buf[:32], buf[-32:])
        entry = self._items.get(key)
        if entry is None:
            return key, None, False, (), 0
        old, value, spans, form, fails = entry
        if old == buf:
            return key, value, True, (), n
        if spans is None:
            return key, None, False, (), 0
        if form is not None and fits_fast(form, buf):
            if fails:
                self._items[key] = (old, value, spans, form, 0)
            return key, value, False, form[3], form[2][0].start
        if fails >= FAILS and fails % RETRY:
            learnt = None  # this key keeps differing in markup: no lesson this time
        else:
            learnt = self._learn(old, buf, spans, form)
        if learnt is None:
            self._items[key] = (old, value, spans, form, fails + 1)
            return key, None, False, (), 0
        self._items[key] = (old, value, spans, learnt, 0)
        return key, value, False, learnt[3], learnt[2][0].start

    def _learn(
        self, old: bytes, new: bytes, spans: tuple[Span, ...], form: Form | None
    ) -> Form | None:
        """``form`` with the runs where ``new`` differs from ``old`` added, or None when
        they are too many or one is not inert."""
        limit = max(1, len(old) // self.RUN_BYTES)
        runs = _differ(old, new, limit)
        if runs is None:
            return None
        before = _runs(form)
        runs = _merge(old, before + _grow(old, runs))
        if len(runs) > limit:
            return None
        found = _inert(old, new, runs, spans)
        if found is None:
            return None
        # the runs, and the template's bytes between them (once: a lesson replaces them)
        self._size += _RUN_SIZE * (len(runs) - len(before)) + (len(old) if form is None else 0)
        return _form(old, runs, *found)

    def missed(self, key: object) -> None:
        """A chunk that fit under ``key`` came out otherwise when judged again: a miss."""
        entry = self._items.get(key)  # type: ignore[call-overload]
        if entry is not None:
            self._items[key] = (*entry[:4], entry[4] + 1)  # type: ignore[index]

    def put(
        self, key: object, buf: bytes, value: object, size: int, spans: tuple[Span, ...] | None
    ) -> None:
        """Keep ``value`` under ``key`` (from :meth:`get`) about ``buf`` (``size``: bytes
        it holds besides ``buf``; ``spans``: see the class docstring).

        A template with fewer than :data:`FAILS` misses in a row is kept: one chunk that
        differs in markup is scanned alone. Otherwise ``buf`` takes the entry's place,
        with the count of failed lessons when there was no template to lose.
        """
        items = self._items
        entry = items.get(key)  # type: ignore[call-overload]
        fails = 0
        if entry is not None:
            if entry[3] is not None:
                if entry[4] < FAILS:
                    return
            else:
                fails = entry[4]
        n = len(buf)
        if len(items) >= self.ENTRIES or self._size + n + size > self.BYTES:
            items.clear()  # cheap and bounded; a miss only costs the scan it saves
            self._size = 0
            fails = 0
        items[key] = (buf, value, spans, None, fails)  # type: ignore[index]
        self._size += n + size
