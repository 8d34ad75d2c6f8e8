"""HtmlInjector: insert the banner into a streamed HTML body, chunk by chunk.

Where the snippets go:

* ``head`` (Consent Mode defaults) right after the first ``<head ...>`` tag; when
  the page has no ``<head>`` tag, before ``</head>`` or ``<body``; when it has none
  of them, just before the body snippet.
* ``body`` before the **last** ``</body>`` (ASCII case-insensitive). The last one,
  because an earlier ``</body>`` may sit in a script string or a comment, while text
  after the real one is rare and short (``</html>``). From a ``</body>`` on, the rest
  is held until a later ``</body>`` or :meth:`HtmlInjector.finish`; if more than
  ``max_hold`` bytes follow it, the held text is released and the snippet is appended
  at the very end instead (an HTML parser puts anything after ``</html>`` back into
  the body).
* A body without any ``</body>`` is a fragment: nothing is inserted,
  :meth:`HtmlInjector.finish` returns the tail unchanged and ``injected`` stays
  False.

* With a ``rewriter`` (auto-blocking, :mod:`privguard.banner.autoblock`), every
  ``<script ...>`` and ``<iframe ...>`` start tag is handed to it before anything else
  sees the bytes. A start tag split across chunks is held until its ``>`` (at most
  ``_MAX_TAG`` bytes); an inline script's content is held until its ``</script`` (at
  most ``_MAX_INLINE`` bytes, then it is released unchanged) because its start tag can
  only be decided once the content is known. The content of other scripts streams.

Otherwise only a short tail that could begin a tag being looked for is held back
across chunk boundaries (at most 6 bytes for ``</body>``, up to ``_MAX_TAG`` for an
unfinished ``<head ...`` tag).

Every byte is looked at a bounded number of times: the held text after a ``</body>``
is kept as a list of chunks and only each new chunk (with the last 6 held bytes) is
searched, so the cost stays linear in the body size whatever the chunking. A chunk
whose bytes equal one seen a moment ago (the same page served again) is not searched
again: what was found in it, and what the tag stage made of it under the same
rewriter, is kept in a small bounded memo (:mod:`privguard.banner.seen`). So is a chunk
that differs from one seen before only in values the scan cannot see differently (a
per-request CSRF token in a form): it comes out as the old one did, with its own bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from privguard.banner.autoblock import HOLD, SKIP
from privguard.banner.seen import Seen, fits_fast

if TYPE_CHECKING:
    from privguard.banner.autoblock import TagRewriter

__all__ = ["HtmlInjector"]

_BODY_CLOSE_LEN = len(b"</body>")
_HEAD = re.compile(rb"<head(?=[\s/>])[^>]*>|</head\s*>|<body(?=[\s/>])", re.IGNORECASE)
_HEAD_WORDS = (b"<head", b"</head", b"<body")
_MAX_TAG = 2048
_MAX_INLINE = 64 * 1024
_DEFAULT_MAX_HOLD = 64 * 1024
#: ``<meta charset>`` right after ``<head>`` stays first: browsers look for it in the
#: first 1024 bytes.
_META_CHARSET = re.compile(rb"\s*<meta\s[^>]*charset[^>]*>", re.IGNORECASE)
_TEXT = 0
_SCRIPT_END = b"</script"
#: a start tag of interest: the name then quoted or plain attribute text up to ``>``
#: (possessive: each character has one way to be read, so nothing is ever given back)
_START_TAG = re.compile(rb"""<(?:script|iframe)(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""", re.IGNORECASE)
_NAME_END = frozenset(b" \t\n\r\f/>")
_BODY_CLOSE = b"</body>"
#: byte values: ``_LT in data`` is a ``memchr`` (``b"<" in data`` tries the needle as an
#: integer first, raising and clearing a TypeError inside)
_LT, _GT = ord("<"), ord(">")
#: a kept chunk's head position when nobody looked for it (the head snippet was in)
_UNSEARCHED = -2


_SCRIPT = b"<script"
_IFRAME = b"<iframe"
#: what a span the scan judged was (see :meth:`HtmlInjector._judge_again`)
_AN_IFRAME, _A_SCRIPT, _AN_INLINE = 0, 1, 2


def _openers(low: bytes) -> list[int]:
    """Every start of ``<script`` and ``<iframe`` in the lower-cased chunk ``low``, in order.

    Backward ``rfind`` walks: in a page, where ``<`` is frequent, they are several times
    faster than forward ``find`` (and than a regular expression or a case-folding
    ``translate``); ``<iframe`` costs one search when there is none.
    """
    rfind = low.rfind
    found: list[int] = []
    i = rfind(_SCRIPT)
    while i >= 0:
        found.append(i)
        i = rfind(_SCRIPT, 0, i)
    i = rfind(_IFRAME)
    if i < 0:
        found.reverse()
        return found
    while i >= 0:
        found.append(i)
        i = rfind(_IFRAME, 0, i)
    found.sort()
    return found


_SEEN = Seen()
#: kind of the :class:`~privguard.banner.seen.Seen` entries of the body stage alone:
#: where a chunk's last ``</body>`` starts, or -1
_CLOSE = 1


def _rewritten(data: bytes, rewrites: tuple[tuple[int, int, bytes], ...], upto: int) -> bytes:
    """``data[:upto]`` with the tags ``rewrites`` names replaced (start, end, new tag)."""
    parts = []
    at = 0
    for i, end, new in rewrites:
        parts.append(data[at:i])
        parts.append(new)
        at = end
    parts.append(data[at:upto])
    return b"".join(parts)


def _opener_at_end(low: bytes, pos: int) -> int:
    """Where a ``<script`` or ``<iframe`` begun in the last bytes of ``low[pos:]`` starts
    (it may go on in the next chunk, so it is held), or -1."""
    at = low.rfind(b"<", max(pos, len(low) - 6))
    if at >= 0 and (_SCRIPT.startswith(low[at:]) or _IFRAME.startswith(low[at:])):
        return at
    return -1


def _last_in_output(low: bytes, rewrites: list[tuple[int, int, bytes]], upto: int) -> int:
    """Where the last ``</body>`` of ``low[:upto]`` with ``rewrites`` made starts, or -1.

    ``low`` is the chunk lower-cased; a ``</body>`` inside a rewritten tag is looked for
    in the new tag (an attribute value the rewrite escaped may have lost it).
    """
    c = low.rfind(_BODY_CLOSE, 0, upto)
    while c >= 0:
        shift = 0
        for i, end, new in rewrites:
            if c < i:
                return c + shift
            if c < end:  # inside a rewritten tag: where is it in the new one?
                inner = new.lower().rfind(_BODY_CLOSE)
                if inner >= 0:
                    return i + shift + inner
                break  # gone with an attribute value the rewrite escaped
            shift += len(new) - (end - i)
        else:
            return c + shift
        c = low.rfind(_BODY_CLOSE, 0, c)
    return -1


def _last_close(data: bytes, index: int) -> int:
    """The last ``</body>`` (any case) in ``data``, or -1.

    A page's own ``</body>`` is near its end and usually lower case: looked for
    there first, so only the bytes after it are lower-cased. A chunk without one
    there is lower-cased whole, unless its bytes were seen before.
    """
    n = len(data)
    at = data.rfind(_BODY_CLOSE, max(0, n - 512))
    if at < 0:
        key, seen, _, _, _ = _SEEN.get((_CLOSE, index), data)
        if seen is not None:  # ``</body>`` begins with ``<``: where it is holds for alike bytes
            return seen  # type: ignore[no-any-return]
        at = data.lower().rfind(_BODY_CLOSE)
        if key is not None:
            _SEEN.put(key, data, at, 0, ())
        return at
    after = data[at + 7 :]
    later = after.lower().rfind(_BODY_CLOSE) if _LT in after else -1
    return at if later < 0 else at + 7 + later


def _partial_body_close(buf: bytes) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``</body>``."""
    at = buf.rfind(b"<", max(0, len(buf) - _BODY_CLOSE_LEN + 1))
    if at < 0:
        return 0
    return len(buf) - at if _BODY_CLOSE.startswith(buf[at:].lower()) else 0


def _partial_head_tag(buf: bytes) -> int:
    """Length of a suffix of ``buf`` that may still grow into a tag ``_HEAD`` matches."""
    start = buf.rfind(b"<", max(0, len(buf) - _MAX_TAG))
    if start < 0:
        return 0
    tail = buf[start:].lower()
    if _GT in tail:
        return 0
    for word in _HEAD_WORDS:
        if word.startswith(tail):
            return len(tail)
        if tail.startswith(word) and tail[len(word) : len(word) + 1] in (
            b" ",
            b"\t",
            b"\n",
            b"\r",
            b"\f",
            b"/",
        ):
            return len(tail)
    return 0


def _head_at(buf: bytes) -> int:
    """Where the head snippet goes in ``buf``, or -1 when no tag ``_HEAD`` matches is in it."""
    match = _HEAD.search(buf)
    if match is None:
        return -1
    if match.group(0)[:5].lower() != b"<head":
        return match.start()
    pos = match.end()
    charset = _META_CHARSET.match(buf, pos)
    return pos if charset is None else charset.end()


def _head_reach(text: bytes, pos: int) -> int:
    """The last byte of ``text`` whose value :func:`_head_at` (which found ``pos``) may
    have depended on: the first ``>`` from ``pos`` on (the end without one).

    Every attempt of ``_HEAD`` before its match fails or ends within the match (each
    alternative reads on to a ``>`` or stops short of the next ``<``), the match ends at
    its ``>`` or one byte after ``<body``, and the ``<meta charset>`` look after
    ``<head>`` reads at most up to the next ``>``; with no match at all the whole text
    was read."""
    if pos < 0:
        return len(text)
    at = text.find(_GT, pos)
    return len(text) if at < 0 else at


class HtmlInjector:
    """Streams one HTML response body, inserting ``head`` and ``body`` snippets.

    Create one per response; call :meth:`feed` for each chunk and send what it
    returns, then send what :meth:`finish` returns. ``injected`` tells whether the
    body snippet went in (False for fragments without ``</body>``); ``rewritten``
    counts the tracker tags the ``rewriter`` changed.
    """

    __slots__ = (
        "_body",
        "_head",
        "_head_done",
        "_head_buf",
        "_pending",
        "_held",
        "_parts",
        "_hold_len",
        "_tail",
        "_seen_close",
        "_done",
        "_max_hold",
        "_rewriter",
        "_mode",
        "_tag_buf",
        "_script_tag",
        "_script_parts",
        "_script_len",
        "_script_tail",
        "_close",
        "_head_hint",
        "_spans",
        "_rewrites",
        "_index",
        "_quiet",
        "injected",
        "head_injected",
        "rewritten",
    )

    def __init__(
        self,
        body: bytes,
        head: bytes | None = None,
        *,
        max_hold: int = _DEFAULT_MAX_HOLD,
        rewriter: TagRewriter | None = None,
    ):
        self._body = body
        self._head = head
        self._head_done = head is None
        self._head_buf = b""
        self._pending = b""  # a possible start of ``</body>`` (not held)
        self._held = False  # ``_parts`` start with a ``</body>`` candidate
        self._parts: list[bytes] = []
        self._hold_len = 0
        self._tail = b""  # the last (up to 6) held bytes, lower-cased
        self._seen_close = False
        self._done = False
        self._max_hold = max_hold
        self._rewriter = rewriter
        self._mode = _TEXT
        self._tag_buf = b""
        self._script_tag = b""
        self._script_parts: list[bytes] = []
        self._script_len = 0
        self._script_tail = b""
        #: (bytes the tag stage returned, where its last ``</body>`` starts or -1)
        self._close: tuple[bytes, int] | None = None
        #: (bytes the tag stage returned, where the head snippet goes in them or -1): kept
        #: with a chunk seen before, so the head stage need not search it again
        self._head_hint: tuple[bytes, int] | None = None
        #: while a kept chunk is scanned: the spans it judges byte by byte, then the
        #: tags it rewrote (start, end, new tag)
        self._spans: list[tuple[int, int, Any]] | None = None
        self._rewrites: list[tuple[int, int, bytes]] = []
        #: which chunk of the body this is (0 for the first): part of what the memo keys
        #: on, so the like chunks of a long page keep their own entries
        self._index = -1
        #: nothing held or begun: a chunk seen before may take the short way in feed
        #: (set after each chunk that took the long way)
        self._quiet = False
        #: True once the body snippet is in the output.
        self.injected = False
        #: True once the head snippet is in the output.
        self.head_injected = False
        #: tracker start tags changed by the rewriter
        self.rewritten = 0

    # --- tag stage (auto-blocking) --------------------------------------------------

    def _tag_stage(self, data: bytes) -> bytes:
        mode = self._mode
        if mode == HOLD:
            return self._hold_more(data)
        if self._tag_buf:
            data = self._tag_buf + data
            self._tag_buf = b""
        # the same chunk scanned in the same mode by the same rewriter comes out the same;
        # one alike but for inert bytes (see privguard.banner.seen) too, with its own bytes
        key, seen, exact, again, alike = _SEEN.get((self._rewriter, mode, self._index), data)
        if seen is not None and again:  # values inside tags the scan judged: judge them
            judged = self._judge_again(data, again, seen[5], seen[3])
            if judged is None:
                _SEEN.missed(key)
                seen = None  # they come out otherwise now: scanned below
            else:
                seen = (seen[0], None, seen[2], judged[1], seen[4], judged[0], *seen[6:])
        if seen is not None:
            upto, new, self._mode, count, close, rewrites = seen[:6]
            if not exact:  # this chunk's own bytes, with the tags as they were rewritten
                new = _rewritten(data, rewrites, upto) if rewrites else None
            if upto < len(data):
                self._tag_buf = data[upto:]
                text = new if new is not None else data[:upto]
            else:
                text = new if new is not None else data
            if count:
                self.rewritten += count
            self._close = (text, close)
            if not self._head_done and seen[8] != _UNSEARCHED:
                # where the head goes is a fact of the bytes the search read (up to the
                # first ``>`` from that place on: see _head_reach), and of the tags
                # rewritten before them: the same here when they are (no tag judged
                # again, whose rewrite may differ from the kept one)
                reach = seen[9]
                if exact or (
                    reach < alike and not again and (not rewrites or rewrites[0][0] > reach)
                ):
                    self._head_hint = (text, seen[8])
            return text
        if key is None:
            return self._scan(data, 0)
        before = self.rewritten
        spans: list[tuple[int, int, Any]] = []
        self._spans = spans
        try:
            text = self._scan(data, 0)
        finally:
            self._spans = None
        if self._mode != HOLD:  # a held script is not kept
            count = self.rewritten - before
            upto = len(data) - len(self._tag_buf)
            close = self._close[1] if self._close is not None else -1
            # "plain": in the text mode, all of it out but a tag begun at its end (held for
            # the next chunk), no ``</body>`` in it or begun at its end (the same for an
            # alike chunk: its last 32 bytes are the same)
            plain = self._mode == _TEXT and close < 0 and not _partial_body_close(text)
            rewrites = tuple(self._rewrites) if count else ()
            held = self._tag_buf
            head = reach = _UNSEARCHED  # the head snippet is in already: not looked for
            if not self._head_done:  # looked for once, for the head stage of this pass too
                head = _head_at(text)
                reach = _head_reach(text, head)
                self._head_hint = (text, head)
            value = (upto, text, self._mode, count, close, rewrites, plain, held, head, reach)
            size = (0 if text is data else len(text)) + len(held)
            _SEEN.put(key, data, value, size, tuple(spans))
        return text

    def _judge_again(
        self,
        data: bytes,
        spans: tuple[tuple[int, int, Any], ...],
        rewrites: tuple[tuple[int, int, bytes], ...],
        count: int,
    ) -> tuple[tuple[tuple[int, int, bytes], ...], int] | None:
        """The rewrites and their count for a chunk alike but in ``spans`` (start tags the
        scan judged, with an inline script's content): each judged again from ``data``.
        None when one comes out otherwise than before in how the scan goes on or in its
        length (then the chunk is scanned)."""
        rewriter = self._rewriter
        assert rewriter is not None
        table = {i: (end, new) for i, end, new in rewrites}
        for start, end, (kind, tag_end, size, was) in spans:
            tag = data[start:tag_end]
            if kind == _AN_IFRAME:
                new = rewriter.iframe(tag)
            else:
                mode, new = rewriter.script(tag)
                if mode != (SKIP if kind == _A_SCRIPT else HOLD):
                    return None
                if kind == _AN_INLINE:
                    new = rewriter.inline(tag, data[tag_end:end])
            if len(new) != size:
                return None
            now = new is not tag
            if was:
                del table[start]
            if now:
                table[start] = (tag_end, new)
            count += now - was
        return tuple((i, end, new) for i, (end, new) in sorted(table.items())), count

    def _scan(self, buf: bytes, pos: int) -> bytes:
        # One lower-cased copy of the chunk and one backward walk of it per word for
        # every ``<script`` and ``<iframe`` (exact candidates: ``lower`` folds ASCII
        # only), then the candidates are taken in order. Only changed tags cut the
        # chunk: ``out`` holds the text up to ``flushed`` with the rewritten tags in it
        # (each also in ``rewrites``), and a chunk without any change is returned as it is.
        rewriter = self._rewriter
        assert rewriter is not None
        spans = self._spans  # where the scan judges bytes one by one (when kept)
        out: list[bytes] = []
        rewrites: list[tuple[int, int, bytes]] = []
        flushed = 0
        low = buf.lower()
        cands = _openers(low)
        if not cands and self._mode == _TEXT:  # most chunks: no tag here, nothing to change
            at = _opener_at_end(low, pos)  # unless a ``<script``/``<iframe`` begins at the end
            if at >= 0:
                self._tag_buf = buf[at:]
                buf = buf[:at]
                self._close = (buf, low.rfind(_BODY_CLOSE, 0, at))
            else:
                self._close = (buf, low.rfind(_BODY_CLOSE))
            return buf
        n = len(buf)
        k = 0
        upto = n
        while True:
            if self._mode == SKIP:
                end = low.find(_SCRIPT_END, pos)
                if end < 0:  # a ``</script`` begun at the end is held
                    at = low.rfind(b"<", max(pos, n - 7))
                    if at >= 0 and _SCRIPT_END.startswith(low[at:]):
                        upto = at
                    break
                pos = end + 8
                self._mode = _TEXT
                continue
            while k < len(cands) and cands[k] < pos:
                k += 1
            if k == len(cands):  # a ``<script`` or ``<iframe`` begun at the end is held
                at = _opener_at_end(low, pos)
                if at >= 0:
                    upto = at
                break
            i = cands[k]
            k += 1
            if i + 7 >= n:  # the name may go on in the next chunk
                upto = i
                break
            if buf[i + 7] not in _NAME_END:  # ``<scripts``, ``<iframely``: not ours
                pos = i + 1
                continue
            m = _START_TAG.match(buf, i)
            if m is None:
                if spans is not None:
                    spans.append((i, n, None))  # read to the end: judged only as a whole
                if n - i < _MAX_TAG:  # unfinished: wait for its ``>``
                    upto = i
                    break
                pos = i + 1  # too long to be a tag we can judge
                continue
            tag = m.group(0)
            pos = tag_end = m.end()
            if low[i + 1] == 0x69:  # "i": iframe
                new = rewriter.iframe(tag)
                kind = _AN_IFRAME
            else:
                mode, new = rewriter.script(tag)
                if mode == HOLD:
                    end = low.find(_SCRIPT_END, pos)
                    if end < 0:
                        self._mode = HOLD
                        self._script_tag = tag
                        self._script_parts = [buf[pos:]]
                        self._script_len = n - pos
                        self._script_tail = low[max(pos, n - 7) :]
                        text = self._emit(buf, low, rewrites, out, flushed, i)
                        self._tag_buf = b""  # the tag and its content are held above
                        return text
                    # the whole inline script is here: decide now
                    new = rewriter.inline(tag, buf[pos:end])
                    kind = _AN_INLINE
                    pos = end  # the span: the tag and its content
                else:
                    kind = _A_SCRIPT
                self._mode = SKIP
            if spans is not None:
                spans.append((i, pos, (kind, tag_end, len(new), new is not tag)))
            if new is not tag:
                self.rewritten += 1
                out.append(buf[flushed:i])
                out.append(new)
                flushed = tag_end
                rewrites.append((i, flushed, new))
        return self._emit(buf, low, rewrites, out, flushed, upto)

    def _emit(
        self,
        buf: bytes,
        low: bytes,
        rewrites: list[tuple[int, int, bytes]],
        out: list[bytes],
        flushed: int,
        upto: int,
    ) -> bytes:
        """The scanned text up to ``upto`` (the rest is held in ``_tag_buf``).

        Where the last ``</body>`` of that text starts is handed on to the body stage,
        so it need not search the chunk again (a held tail begins with its only ``<``:
        no ``</body>`` is cut).
        """
        n = len(buf)
        self._tag_buf = buf[upto:] if upto < n else b""
        self._rewrites = rewrites
        if out:
            out.append(buf[flushed:upto])
            text = b"".join(out)
        elif upto == n:
            text = buf
        else:
            text = buf[:upto]
        self._close = (text, _last_in_output(low, rewrites, upto))
        return text

    def _inline(self, tag: bytes, content: bytes) -> bytes:
        assert self._rewriter is not None
        new = self._rewriter.inline(tag, content)
        if new is not tag:
            self.rewritten += 1
        return new

    def _hold_more(self, data: bytes) -> bytes:
        """An inline script's content goes on in ``data``: look for its end."""
        tail = self._script_tail
        search = (tail + data).lower()
        end = search.find(_SCRIPT_END)
        if end < 0:
            self._script_parts.append(data)
            self._script_len += len(data)
            self._script_tail = search[-7:]
            if self._script_len <= _MAX_INLINE:
                return b""
            # too long to judge: release it unchanged and stream the rest
            content = b"".join(self._script_parts)
            tag, self._script_tag, self._script_parts = self._script_tag, b"", []
            self._mode = SKIP
            return tag + self._scan(content, 0)
        content = b"".join(self._script_parts) + data
        at = self._script_len - len(tail) + end
        tag, self._script_tag, self._script_parts = self._script_tag, b"", []
        self._mode = SKIP
        return self._inline(tag, content[:at]) + self._scan(content, 0)

    def _tag_flush(self) -> bytes:
        if self._rewriter is None:
            return b""
        if self._mode == HOLD:  # EOF inside a script: the browser runs what it got
            content = b"".join(self._script_parts)
            tag, self._script_tag, self._script_parts = self._script_tag, b"", []
            self._mode = _TEXT
            return self._inline(tag, content) + content + self._tag_buf
        out, self._tag_buf = self._tag_buf, b""
        return out

    # --- head stage -----------------------------------------------------------------

    def _head_stage(self, chunk: bytes) -> bytes:
        if self._head_done or not chunk:
            return chunk
        buf = self._head_buf + chunk
        hint, self._head_hint = self._head_hint, None
        pos = hint[1] if hint is not None and hint[0] is buf else _head_at(buf)
        if pos >= 0:
            self._head_done = True
            self.head_injected = True
            self._head_buf = b""
            head = self._head or b""
            out = b"".join((buf[:pos], head, memoryview(buf)[pos:]))
            hint = self._close
            if hint is not None and hint[0] is buf:  # the snippet holds no "</body>"
                self._close = (out, hint[1] + len(head) if hint[1] >= pos else hint[1])
            return out
        keep = _partial_head_tag(buf)
        self._head_buf = buf[len(buf) - keep :] if keep else b""
        return buf[: len(buf) - keep]

    def _head_flush(self) -> bytes:
        out, self._head_buf = self._head_buf, b""
        return out

    def _body_snippet(self) -> bytes:
        if self._head is not None and not self.head_injected:
            self.head_injected = True
            return self._head + self._body
        return self._body

    # --- body stage -----------------------------------------------------------------

    def _find_close(self, data: bytes) -> int:
        """Where the last ``</body>`` (any case) in ``data`` starts, or -1."""
        hint, self._close = self._close, None
        if hint is not None and hint[0] is data:
            return hint[1]
        return _last_close(data, self._index)

    def _body_stage(self, data: bytes) -> bytes:
        if self._done or not data:
            return data
        if self._held:
            return self._body_held(data)
        hint, self._close = self._close, None
        pos = hint[1] if hint is not None and hint[0] is data else _last_close(data, self._index)
        pending = self._pending
        if pending:
            buf = pending + data
            if pos >= 0:
                pos += len(pending)
            else:  # a ``</body>`` begun in the previous chunk
                pos = (pending + data[:6]).lower().rfind(_BODY_CLOSE)
        else:
            buf = data
        if pos < 0:
            # what may begin a ``</body>`` is held (``_partial_body_close``, inlined)
            at = buf.rfind(b"<", 1 - _BODY_CLOSE_LEN)
            if at < 0 or not _BODY_CLOSE.startswith(buf[at:].lower()):
                if pending:
                    self._pending = b""
                return buf
            self._pending = buf[at:]
            return buf[:at]
        self._pending = b""
        self._seen_close = True
        self._hold(buf[pos:])
        return buf[:pos] + self._overflow()

    def _hold(self, candidate: bytes) -> None:
        """Start holding at a ``</body>`` candidate."""
        self._held = True
        self._parts = [candidate]
        self._hold_len = len(candidate)
        self._tail = candidate[-6:].lower()

    def _body_held(self, data: bytes) -> bytes:
        """Held text goes on: only ``data`` and the last held bytes are searched."""
        tail = self._tail
        pos = self._find_close(data)
        if pos >= 0:
            pos += len(tail)
        else:  # a ``</body>`` begun in the held bytes
            pos = (tail + data[:6].lower()).rfind(_BODY_CLOSE)
        if pos >= 0:  # a later candidate: release everything before it
            held = b"".join(self._parts) + data
            at = self._hold_len - len(tail) + pos
            self._hold(held[at:])
            return held[:at] + self._overflow()
        self._parts.append(data)
        self._hold_len += len(data)
        self._tail = (tail + data[-6:].lower())[-6:]
        return self._overflow()

    def _overflow(self) -> bytes:
        """Release the held text when too much follows its ``</body>``."""
        if self._hold_len - _BODY_CLOSE_LEN <= self._max_hold:
            return b""
        # too much after this ``</body>``: release it, append at the end later
        held = b"".join(self._parts)
        keep = _partial_body_close(held)
        self._parts, self._hold_len, self._held, self._tail = [], 0, False, b""
        self._pending = held[len(held) - keep :]
        return held[: len(held) - keep]

    # --- public ---------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Take the next body chunk; return the bytes that are safe to send now."""
        if not chunk:
            return b""
        index = self._index = self._index + 1
        rewriter = self._rewriter
        if self._quiet:
            # the common chunk of a page streamed again: seen before (its tags as they
            # came out then), "plain": it all goes out in the text mode but for a tag
            # begun at its end (held for the next chunk, as the scan holds it), no
            # ``</body>`` in it or begun at its very end (_SEEN.get inlined: a chunk it
            # would not keep is never found). What the last chunk held comes first.
            data = self._tag_buf + chunk if self._tag_buf else chunk
            entry = _SEEN._items.get(((rewriter, _TEXT, index), len(data), data[:32], data[-32:]))
            # (upto, text out, mode, rewritten, close, rewrites, plain, bytes held, head at)
            if entry is not None and entry[1][6]:
                seen: Any = entry[1]
                if entry[0] == data:  # the same bytes: the same text out, the same held
                    self._tag_buf = seen[7]
                    if seen[3]:
                        self.rewritten += seen[3]
                    return seen[1]  # type: ignore[no-any-return]
                # or alike but for inert bytes, by the template learnt (banner.seen)
                if entry[3] and not entry[4] and not entry[3][3] and fits_fast(entry[3], data):
                    upto = seen[0]
                    self._tag_buf = data[upto:]
                    if seen[3]:
                        self.rewritten += seen[3]
                        return _rewritten(data, seen[5], upto)
                    return data[:upto]
        if rewriter is not None:
            chunk = self._tag_stage(chunk)
        if not self._head_done:
            chunk = self._head_stage(chunk)
        out = self._body_stage(chunk)
        self._quiet = (
            rewriter is not None
            and self._mode == _TEXT
            and self._head_done
            and not (self._held or self._pending or self._done)
        )
        return out

    def whole(self, body: bytes) -> bytes:
        """``feed(body) + finish()`` for a body that comes in one piece (the common case).

        The same bytes, with one copy of the page instead of one per stage: the
        snippets' places are found first, then the page is joined around them once.
        Only on a fresh injector; a body whose end leaves a tag, an inline script or a
        possible ``<head`` open, or that has no place for the head snippet, takes the
        streaming path.
        """
        self._quiet = False
        if not body:
            return self.finish()
        self._index += 1
        text = self._tag_stage(body) if self._rewriter is not None else body
        head = self._head
        hpos = -1
        fresh = not (self._tag_buf or self._mode == HOLD or self._head_buf or self._pending)
        if fresh and not (self._held or self._seen_close or self._done):
            if self._head_done:
                hpos = 0
            else:
                hint, self._head_hint = self._head_hint, None
                hpos = hint[1] if hint is not None and hint[0] is text else _head_at(text)
        if hpos < 0:  # the general path
            if not self._head_done:
                text = self._head_stage(text)
            return self._body_stage(text) + self.finish()
        hint, self._close = self._close, None
        close = hint[1] if hint is not None and hint[0] is text else _last_close(text, self._index)
        self._done = True
        view = memoryview(text)
        if head is not None and not self._head_done:
            self._head_done = self.head_injected = True
        else:
            head = None
        if close < 0:  # a fragment: no body snippet
            return text if head is None else b"".join((view[:hpos], head, view[hpos:]))
        self.injected = True
        self._seen_close = True
        body_snippet = self._body
        after = len(text) - close + (len(head) if head is not None and hpos > close else 0)
        if after - _BODY_CLOSE_LEN > self._max_hold:  # too much after it: at the very end
            if head is None:
                return b"".join((view, body_snippet))
            return b"".join((view[:hpos], head, view[hpos:], body_snippet))
        if head is None:
            return b"".join((view[:close], body_snippet, view[close:]))
        if hpos <= close:
            parts = (view[:hpos], head, view[hpos:close], body_snippet, view[close:])
        else:
            parts = (view[:close], body_snippet, view[close:hpos], head, view[hpos:])
        return b"".join(parts)

    def finish(self) -> bytes:
        """End of body: return the rest, with the body snippet when a ``</body>`` was seen."""
        self._quiet = False
        if self._tag_buf or self._mode == HOLD or self._head_buf:
            out = self._body_stage(self._head_stage(self._tag_flush()) + self._head_flush())
        else:  # nothing left in the stages (the usual end): what they would give, b""
            out = b""
        if self._done:
            return out
        self._done = True
        if self._held:
            held = b"".join(self._parts)
            self._parts, self._held = [], False
            self.injected = True
            return out + self._body_snippet() + held
        buf, self._pending = self._pending, b""
        if self._seen_close:
            self.injected = True
            return out + buf + self._body_snippet()
        return out + buf
