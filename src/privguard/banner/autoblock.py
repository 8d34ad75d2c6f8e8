"""Auto-blocking on the server: rewrite tracker tags whose category is not allowed now.

:class:`AutoBlocker` is built once per :class:`~privguard.Settings`;
:meth:`AutoBlocker.for_response` gives the per-response :class:`TagRewriter` that
:class:`~privguard.banner.HtmlInjector` calls for every ``<script ...>`` and
``<iframe ...>`` start tag it streams past (``None`` when nothing could be blocked:
every catalogued category is allowed, or ``block_scripts=False``).

What a rewrite does (DESIGN.md §11):

* ``<script src>`` of a catalogued URL becomes ``type="text/plain"`` with
  ``data-privguard-category``; its own ``type`` moves to ``data-privguard-type``, every
  other attribute (``async``, ``defer``, ``nonce``, ``integrity`` ...) stays as it was.
* an inline script is gated the same way when it loads a catalogued URL: it names one
  (``https://``, ``//`` or JSON-escaped ``https:\\/\\/``) *and* has a loader
  (``createElement``, ``document.write``, ``.src``, ``import(``, ``fetch(``,
  ``sendBeacon``, ``Image(``, ``XMLHttpRequest``). A script that merely mentions a
  tracker URL in a string keeps running.
* ``<iframe src>`` keeps its URL only in ``data-src``, is ``hidden`` and gets a small
  placeholder before it that says what was held back and offers to allow it (none for
  a frame nobody sees: ``hidden``, zero or one pixel wide or high, ``display:none``).
* Tags the shop marked itself (``data-privguard-category``) and scripts of a type that
  does not run (``application/ld+json``, ``text/template``, ``text/plain`` ...) are
  left exactly as they are.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from privguard.core.categories import Category
from privguard.core.trackers import Tracker

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = ["AutoBlocker", "TagRewriter", "SKIP", "HOLD"]

#: What the injector does after a script start tag: stream its content (SKIP), or hold
#: it until ``</script`` to look for a loader (HOLD).
SKIP = 1
HOLD = 2

_SRC = re.compile(rb"""[\s/]src\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_ATTR = re.compile(rb"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
#: Script types a browser runs (lower case, parameters dropped).
_JS_TYPES = frozenset(
    {
        b"",
        b"module",
        b"text/javascript",
        b"application/javascript",
        b"application/x-javascript",
        b"text/ecmascript",
        b"application/ecmascript",
        b"text/jscript",
        b"text/x-javascript",
        b"text/livescript",
    }
)
_URL = re.compile(
    rb"""(?:https?:)?//([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,})([^\s'"`<>()\\,;]*)"""
)
_LOADERS = (
    b"createelement",
    b"document.write",
    b".src",
    b"import(",
    b"fetch(",
    b"sendbeacon",
    b"image(",
    b"xmlhttprequest",
)
#: Decisions remembered per set of allowed categories: the same page is served again and
#: again, so its tags repeat. Only short tags and inline scripts are kept, at most
#: ``_MEMO_SIZE`` of each per set (then the memo starts afresh).
_MEMO_TAG = 1024
_MEMO_INLINE = 4096
_MEMO_SIZE = 2048
#: (start tag -> (SKIP or HOLD, new tag or None when unchanged),
#: (start tag, inline content) -> new tag or None when unchanged)
Memo = tuple[dict[bytes, tuple[int, bytes | None]], dict[tuple[bytes, bytes], bytes | None]]
#: Stricter categories win when an inline script loads several trackers.
_RANK = {
    Category.MARKETING: 3,
    Category.PERFORMANCE: 2,
    Category.FUNCTIONALITY: 1,
    Category.NECESSARY: 0,
}


def _attrs(tag: bytes) -> list[tuple[bytes, bytes | None, int, int]]:
    """(lower-case name, raw value or None, start, end) of each attribute of a start tag."""
    out = []
    for m in _ATTR.finditer(tag, 7, len(tag) - 1):
        raw = m.group(2)
        value = None
        if raw is not None:
            value = raw[1:-1] if raw[:1] in (b'"', b"'") and len(raw) >= 2 else raw
        out.append((m.group(1).lower(), value, m.start(), m.end()))
    return out


def _first(attrs: list[tuple[bytes, bytes | None, int, int]], name: bytes) -> int:
    for i, attr in enumerate(attrs):
        if attr[0] == name:
            return i
    return -1


def _invisible(attrs: list[tuple[bytes, bytes | None, int, int]]) -> bool:
    """A frame nobody sees (a tracking frame): it needs no placeholder."""
    for name, value, _, _ in attrs:
        if name == b"hidden":
            return True
        if name in (b"width", b"height") and (value or b"").strip() in (b"0", b"0px", b"1"):
            return True
        if name == b"style" and value:
            style = value.lower().replace(b" ", b"")
            if style.find(b"display:none") >= 0 or style.find(b"visibility:hidden") >= 0:
                return True
    return False


def _url(value: bytes | None) -> str:
    if not value:
        return ""
    text = value.decode("utf-8", "replace")
    return html.unescape(text) if "&" in text else text


def _attr_text(value: str) -> bytes:
    return html.escape(value, quote=True).encode("utf-8")


def _gate(tracker: Tracker) -> bytes:
    return (
        b' type="text/plain" data-privguard-category="'
        + tracker.category.value.encode("ascii")
        + b'" data-privguard-tracker="'
        + _attr_text(tracker.name)
        + b'"'
    )


class TagRewriter:
    """Rewrites the start tags of one response; see the module docstring."""

    __slots__ = ("_match", "_allowed", "_advanced", "_placeholder", "_hidden", "_memo")

    def __init__(
        self,
        match: Callable[[str], Tracker | None],
        allowed: frozenset[Category],
        advanced: bool,
        placeholder: Callable[[Tracker], bytes],
        xhtml: bool = False,
        memo: Memo | None = None,
    ) -> None:
        self._memo: Memo = memo if memo is not None else ({}, {})
        self._match = match
        self._allowed = allowed
        self._advanced = advanced
        self._placeholder = placeholder
        self._hidden = b' hidden="hidden"' if xhtml else b" hidden"

    def blocked(self, url: str) -> Tracker | None:
        """The catalogued tracker ``url`` loads when its category is not allowed now."""
        tracker = self._match(url)
        if tracker is None or tracker.category in self._allowed:
            return None
        if tracker.category is Category.NECESSARY or (self._advanced and tracker.google):
            return None
        return tracker

    def _gate(self, tracker: Tracker) -> bytes:
        return _gate(tracker)

    def script(self, tag: bytes) -> tuple[int, bytes]:
        """What to do with a ``<script ...>`` start tag: (SKIP or HOLD, bytes to send)."""
        memo = self._memo[0]
        hit = memo.get(tag)
        if hit is not None:
            return hit[0], tag if hit[1] is None else hit[1]
        mode, new = self._script(tag)
        if len(tag) <= _MEMO_TAG:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()  # cheap and bounded; a miss only costs the full decision
            memo[tag] = (mode, None if new is tag else new)
        return mode, new

    def _script(self, tag: bytes) -> tuple[int, bytes]:
        # (``find``, not ``in``: a bytes needle ``in`` bytes raises and clears a TypeError
        # inside CPython 3.11 first, trying it as an integer)
        low = tag.lower()
        if low.find(b"data-privguard-category") >= 0:
            return SKIP, tag
        attrs = None
        t = -1
        if low.find(b"type") >= 0:  # the full parse only where a type may be given
            attrs = _attrs(tag)
            t = _first(attrs, b"type")
            if t >= 0:
                kind = (attrs[t][1] or b"").split(b";", 1)[0].strip().lower()
                if kind not in _JS_TYPES:
                    return SKIP, tag
        src = _SRC.search(tag) if low.find(b"src") >= 0 else None
        if src is None:
            return HOLD, tag
        tracker = self.blocked(_url(src.group(1) or src.group(2) or src.group(3)))
        if tracker is None:
            return SKIP, tag
        if attrs is None:
            attrs = _attrs(tag)
        return SKIP, self._rewrite_script(tag, attrs, t, tracker)

    def inline(self, tag: bytes, content: bytes) -> bytes:
        """The start tag of an inline script, gated when ``content`` loads a tracker."""
        if content.find(b"//") < 0 and content.find(b"\\/\\/") < 0:
            return tag
        if len(content) > _MEMO_INLINE or len(tag) > _MEMO_TAG:
            return self._inline(tag, content)
        memo = self._memo[1]
        key = (tag, content)
        if key in memo:
            hit = memo[key]
            return tag if hit is None else hit
        new = self._inline(tag, content)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = None if new is tag else new
        return new

    def _inline(self, tag: bytes, content: bytes) -> bytes:
        low = content.lower()
        if not any(low.find(loader) >= 0 for loader in _LOADERS):
            return tag
        text = content.replace(b"\\/", b"/")
        worst: Tracker | None = None
        for m in _URL.finditer(text):
            tracker = self.blocked("//" + m.group(1).decode("ascii") + _url(m.group(2)))
            if tracker is not None and (
                worst is None or _RANK[tracker.category] > _RANK[worst.category]
            ):
                worst = tracker
        if worst is None:
            return tag
        attrs = _attrs(tag)
        return self._rewrite_script(tag, attrs, _first(attrs, b"type"), worst)

    def _rewrite_script(
        self,
        tag: bytes,
        attrs: list[tuple[bytes, bytes | None, int, int]],
        t: int,
        tracker: Tracker,
    ) -> bytes:
        rest = tag[7:]
        extra = b""
        if t >= 0:
            _, value, start, end = attrs[t]
            if value:
                extra = b' data-privguard-type="' + _attr_text(_url(value)) + b'"'
            rest = tag[7:start] + tag[end:]
        return b"<script" + self._gate(tracker) + extra + rest

    def iframe(self, tag: bytes) -> bytes:
        """An ``<iframe ...>`` start tag: held (placeholder first) when it loads a tracker."""
        low = tag.lower()
        if low.find(b"data-privguard-category") >= 0 or low.find(b"src") < 0:
            return tag
        src = _SRC.search(tag)
        if src is None:
            return tag
        tracker = self.blocked(_url(src.group(1) or src.group(2) or src.group(3)))
        if tracker is None:
            return tag
        attrs = _attrs(tag)
        s = _first(attrs, b"src")
        if s < 0:
            return tag
        _, _, start, _ = attrs[s]
        hidden = (
            b"" if _first(attrs, b"hidden") >= 0 else self._hidden + b' data-privguard-held="1"'
        )
        return (
            (b"" if _invisible(attrs) else self._placeholder(tracker))
            + b'<iframe data-privguard-category="'
            + tracker.category.value.encode("ascii")
            + b'"'
            + hidden
            + tag[7:start]
            + b"data-"
            + tag[start:]
        )


class AutoBlocker:
    """The tracker rewriting of one :class:`~privguard.Settings`, built at start-up.

    :param placeholder: ``(lang, tracker, xhtml) -> bytes``, the placeholder markup.
    """

    __slots__ = (
        "_catalog",
        "_advanced",
        "_placeholder",
        "_categories",
        "_seen",
        "_memos",
        "_rewriters",
        "enabled",
    )

    def __init__(
        self, settings: Settings, placeholder: Callable[[str, Tracker, bool], bytes]
    ) -> None:
        self._catalog = settings.trackers
        self._advanced = settings.consent_mode == "advanced"
        self._placeholder = placeholder
        #: categories some catalogued tracker has (others never need a rewrite)
        self._categories = frozenset(t.category for _, t in settings.trackers.patterns()) - {
            Category.NECESSARY
        }
        self.enabled = settings.block_scripts
        #: URL -> its tracker (or None): pages repeat the same few URLs
        self._seen: dict[str, Tracker | None] = {}
        #: allowed categories -> the tag decisions under them (at most 2**4 sets)
        self._memos: dict[frozenset[Category], Memo] = {}
        #: (allowed, lang, xhtml) -> its rewriter (it keeps no per-response state);
        #: at most 2**4 x languages x 2
        self._rewriters: dict[tuple[frozenset[Category], str, bool], TagRewriter] = {}

    def match(self, url: str) -> Tracker | None:
        """The catalog's answer for ``url``, remembered (at most 4096 URLs)."""
        seen = self._seen
        if url in seen:
            return seen[url]
        found = self._catalog.match(url)
        if len(url) <= 512:
            if len(seen) >= 4096:
                seen.clear()  # cheap and bounded; a miss costs one catalog lookup
            seen[url] = found
        return found

    def for_response(
        self, allowed: frozenset[Category], lang: str, xhtml: bool = False
    ) -> TagRewriter | None:
        """The rewriter for a response under ``allowed``; None when nothing can be blocked."""
        if not self.enabled or self._categories <= allowed:
            return None
        found = self._rewriters.get((allowed, lang, xhtml))
        if found is not None:
            return found
        placeholder = self._placeholder
        memo = self._memos.get(allowed)
        if memo is None:
            memo = self._memos.setdefault(allowed, ({}, {}))
        rewriter = TagRewriter(
            self.match,
            allowed,
            self._advanced,
            lambda tracker: placeholder(lang, tracker, xhtml),
            xhtml,
            memo,
        )
        if len(self._rewriters) < 1024:  # lang is one of the configured languages
            self._rewriters[(allowed, lang, xhtml)] = rewriter
        return rewriter
