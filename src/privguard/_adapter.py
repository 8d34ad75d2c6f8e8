"""What the WSGI and ASGI adapters share: view building and the injection choice."""

from __future__ import annotations

import logging
from typing import Any

from privguard.core.decision import Decision
from privguard.core.response import FilterResult
from privguard.runtime import Runtime

__all__ = [
    "CONSULTED",
    "HTML_VARY",
    "should_inject",
    "html_vary",
    "body_changed",
    "note_compressed_html",
    "MAX_BUFFER",
    "csp_nonce",
]

log = logging.getLogger("privguard")

#: Request headers privguard reads (lower case); everything else is not copied.
CONSULTED = frozenset(
    {
        "cookie",
        "sec-gpc",
        "dnt",
        "x-forwarded-for",
        "forwarded",
        "accept-language",
        "user-agent",
        "origin",
        "referer",
        "content-type",
        "accept",
        "x-privguard-csrf",
        "sec-fetch-site",
    }
)
#: What a body privguard changed (the banner) depends on besides the decision's inputs.
HTML_VARY = ("Accept-Language", "User-Agent")
#: Largest body with a Content-Length that is buffered to recompute it when injecting.
MAX_BUFFER = 4 * 1024 * 1024


def consulted_names(runtime: Runtime) -> frozenset[str]:
    """CONSULTED plus the configured country header."""
    header = runtime.settings.country_header
    return CONSULTED | {header} if header else CONSULTED


def should_inject(
    method: str, status: int, result: FilterResult[Any], decision: Decision, skip_flag: bool
) -> bool:
    """Does this response get the banner? HTML, uncompressed, not HEAD/1xx/204/3xx/bot/skip."""
    # a redirect's body is never shown; ``document``: HTML/XHTML, not a redirect
    if method == "HEAD" or status == 204 or not 200 <= status < 300 or skip_flag or result.skip:
        return False
    if decision.is_bot or not result.document:
        return False
    encoding = result.content_encoding.strip().lower()
    return encoding in ("", "identity")


def html_vary(
    inject: bool, result: FilterResult[Any], decision: Decision
) -> tuple[str, ...] | None:
    """Extra ``Vary`` names when the body depended on more request headers, else ``None``.

    ``inject`` means the body was changed (see :func:`body_changed`). A changed
    body depends on ``Accept-Language`` (the banner's language) and on
    ``User-Agent`` (bots get none); an HTML page left alone because the visitor
    is a bot depends on ``User-Agent``, so a shared cache never serves that
    banner-less copy to a browser.
    """
    if inject:
        return HTML_VARY
    if decision.is_bot and result.document:
        return ("User-Agent",)
    return None


def body_changed(injector: Any) -> bool:
    """Did ``injector`` change anything in the body so far (snippet or tracker tag)?"""
    return bool(injector.injected or injector.head_injected or injector.rewritten)


def note_compressed_html(runtime: Runtime, result: FilterResult[Any]) -> None:
    """Log once per runtime that compressed HTML is left without a banner.

    privguard never decompresses a body; put it before the compression
    middleware (or let the server compress) so HTML reaches it uncompressed.
    """
    encoding = result.content_encoding.strip().lower()
    if encoding in ("", "identity") or runtime.compressed_html_noted:
        return
    if not result.document:
        return
    runtime.compressed_html_noted = True
    log.warning(
        "privguard leaves %s-compressed HTML untouched (no banner injected); place it "
        "before the compression middleware",
        encoding,
    )


def csp_nonce(runtime: Runtime, holder: Any) -> str | None:
    """The shop's CSP nonce for this response (``csp_nonce`` hook), never raising."""
    hook = runtime.settings.csp_nonce
    if hook is None:
        return None
    try:
        value = hook(holder)
    except Exception:
        log.exception("privguard csp_nonce hook failed")
        return None
    return value if isinstance(value, str) and value else None
