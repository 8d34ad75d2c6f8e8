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

Otherwise only a short tail that could begin a tag being looked for is held back
across chunk boundaries (at most 6 bytes for ``</body>``, up to ``_MAX_TAG`` for an
unfinished ``<head ...`` tag).
"""

from __future__ import annotations

import re

__all__ = ["HtmlInjector"]

_BODY_CLOSE_LEN = len(b"</body>")
_HEAD = re.compile(rb"<head(?=[\s/>])[^>]*>|</head\s*>|<body(?=[\s/>])", re.IGNORECASE)
_HEAD_WORDS = (b"<head", b"</head", b"<body")
_MAX_TAG = 2048
_DEFAULT_MAX_HOLD = 64 * 1024


def _partial_body_close(buf: bytes) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``</body>``."""
    tail = buf[-(_BODY_CLOSE_LEN - 1) :].lower()
    for k in range(len(tail), 0, -1):
        if b"</body>".startswith(tail[-k:]):
            return k
    return 0


def _partial_head_tag(buf: bytes) -> int:
    """Length of a suffix of ``buf`` that may still grow into a tag ``_HEAD`` matches."""
    start = buf.rfind(b"<", max(0, len(buf) - _MAX_TAG))
    if start < 0:
        return 0
    tail = buf[start:].lower()
    if b">" in tail:
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


class HtmlInjector:
    """Streams one HTML response body, inserting ``head`` and ``body`` snippets.

    Create one per response; call :meth:`feed` for each chunk and send what it
    returns, then send what :meth:`finish` returns. ``injected`` tells whether the
    body snippet went in (False for fragments without ``</body>``).
    """

    __slots__ = (
        "_body",
        "_head",
        "_head_done",
        "_head_buf",
        "_buf",
        "_held",
        "_seen_close",
        "_done",
        "_max_hold",
        "injected",
        "head_injected",
    )

    def __init__(
        self, body: bytes, head: bytes | None = None, *, max_hold: int = _DEFAULT_MAX_HOLD
    ):
        self._body = body
        self._head = head
        self._head_done = head is None
        self._head_buf = b""
        self._buf = b""  # bytes not yet released by the body stage
        self._held = False  # ``_buf`` starts with a ``</body>`` candidate
        self._seen_close = False
        self._done = False
        self._max_hold = max_hold
        #: True once the body snippet is in the output.
        self.injected = False
        #: True once the head snippet is in the output.
        self.head_injected = False

    # --- head stage -----------------------------------------------------------------

    def _head_stage(self, chunk: bytes) -> bytes:
        if self._head_done:
            return chunk
        buf = self._head_buf + chunk
        match = _HEAD.search(buf)
        if match is not None:
            opening = match.group(0)[:5].lower() == b"<head"
            pos = match.end() if opening else match.start()
            self._head_done = True
            self.head_injected = True
            self._head_buf = b""
            return buf[:pos] + (self._head or b"") + buf[pos:]
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

    def _body_stage(self, data: bytes) -> bytes:
        if self._done:
            return data
        buf = self._buf + data
        out: list[bytes] = []
        # the last complete ``</body>`` after any held candidate's own tag
        start = 1 if self._held else 0
        pos = buf.lower().rfind(b"</body>", start)
        if pos >= 0:
            out.append(buf[:pos])
            buf = buf[pos:]
            self._held = True
            self._seen_close = True
        if self._held:
            if len(buf) - _BODY_CLOSE_LEN > self._max_hold:
                # too much after this ``</body>``: release it, append at the end later
                keep = _partial_body_close(buf)
                out.append(buf[: len(buf) - keep])
                buf = buf[len(buf) - keep :]
                self._held = False
        else:
            keep = _partial_body_close(buf)
            out.append(buf[: len(buf) - keep])
            buf = buf[len(buf) - keep :]
        self._buf = buf
        return b"".join(out)

    # --- public ---------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Take the next body chunk; return the bytes that are safe to send now."""
        if not chunk:
            return b""
        return self._body_stage(self._head_stage(chunk))

    def finish(self) -> bytes:
        """End of body: return the rest, with the body snippet when a ``</body>`` was seen."""
        out = self._body_stage(self._head_flush())
        if self._done:
            return out
        self._done = True
        buf, self._buf = self._buf, b""
        if self._held:
            self.injected = True
            return out + self._body_snippet() + buf
        if self._seen_close:
            self.injected = True
            return out + buf + self._body_snippet()
        return out + buf
