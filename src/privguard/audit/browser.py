"""``--browser``: crawl with headless Chromium, so cookies set by scripts count too.

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's sync
API -- never a downloaded browser build. Each visitor gets a fresh browser
context (no cookies) whose requests carry the country header and, for GPC
visitors, ``Sec-GPC: 1``. After each page has loaded, the context's cookie
jar is compared with what the server's ``Set-Cookie`` headers set: the rest
was set by scripts (``document.cookie``). Every request to another host is
recorded too: one to a catalogued tracker (the ``scripts`` catalog) whose
category the visitor did not allow is a finding, other hosts are listed for
review. ``offline=True`` (``--offline``) answers off-site requests in the
browser with an empty 204, so nothing leaves the machine (they are still
reported). ``module:app`` targets are served on a free ``127.0.0.1`` port.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urlsplit

from privguard.audit.crawl import (
    AuditVisitor,
    CookieRecord,
    PageResult,
    Progress,
    RegionResult,
    TrackerRequest,
    judge,
    judge_request,
    record_from,
    regime_of,
)
from privguard.audit.target import Target, TargetError
from privguard.testing.responses import describe_seconds, parse_set_cookie
from privguard.testing.visitors import BROWSER_USER_AGENT

if TYPE_CHECKING:
    from privguard.settings import Settings

__all__ = ["BrowserError", "browser_crawl", "CHROMIUM", "LAUNCH_ARGS"]

#: Debian's Chromium; override with ``PRIVGUARD_CHROMIUM``.
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


#: Records every ``document.cookie`` write, so a write the browser's cookie store has not
#: taken in yet (or dropped) still counts.
_RECORD_WRITES = """
(() => {
  const desc = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (!desc || !desc.set || window.__privguardCookieWrites) return;
  const writes = [];
  Object.defineProperty(window, "__privguardCookieWrites", { value: writes });
  Object.defineProperty(Document.prototype, "cookie", {
    configurable: true,
    enumerable: desc.enumerable,
    get() { return desc.get.call(this); },
    set(value) { writes.push(String(value)); desc.set.call(this, value); },
  });
})();
"""


class BrowserError(Exception):
    """Chromium or Playwright is not available (bad input: exit 2)."""


def chromium_path() -> str:
    """The Chromium executable to drive."""
    return os.environ.get("PRIVGUARD_CHROMIUM") or CHROMIUM


def _record(
    cookie: dict[str, Any], settings: Settings, region: str, page: str, source: str
) -> CookieRecord:
    category = settings.catalog.classify(cookie["name"])
    expires = cookie.get("expires", -1)
    lifetime = (
        "session"
        if expires is None or expires < 0
        else describe_seconds(max(0, int(expires - time.time())))
    )
    flags = []
    if cookie.get("secure"):
        flags.append("Secure")
    if cookie.get("httpOnly"):
        flags.append("HttpOnly")
    if cookie.get("sameSite"):
        flags.append(f"SameSite={cookie['sameSite']}")
    return CookieRecord(
        name=cookie["name"],
        category="undeclared" if category is None else category.value,
        region=region,
        page=page,
        source=source,
        domain=str(cookie.get("domain", "")).lstrip(".") or "(host)",
        path=cookie.get("path") or "/",
        lifetime=lifetime,
        flags=tuple(flags),
    )


def _settled_cookies(page: Any, context: Any) -> list[dict[str, Any]]:
    """The context's cookies once every cookie the page's scripts can see has reached it.

    A ``document.cookie`` write travels to the browser's cookie store
    asynchronously; reading the store right after ``load`` may miss it.
    """
    visible = {
        part.split("=", 1)[0].strip()
        for part in str(page.evaluate("() => document.cookie")).split(";")
        if part.strip()
    }
    cookies: list[dict[str, Any]] = context.cookies()
    for _ in range(40):
        if visible <= {c["name"] for c in cookies}:
            break
        page.wait_for_timeout(25)
        cookies = context.cookies()
    return cookies


def _crawl_one(
    browser: Any,
    base_url: str,
    start: str,
    settings: Settings,
    visitor: AuditVisitor,
    header: str,
    max_pages: int,
    max_depth: int,
    timeout: float,
    progress: Progress | None,
    accept_all: bool,
    offline: bool = False,
) -> RegionResult:
    from playwright.sync_api import Error as PlaywrightError

    headers = {header: visitor.country}
    if visitor.gpc:
        headers["Sec-GPC"] = "1"
    context = browser.new_context(
        user_agent=BROWSER_USER_AGENT, locale="en-US", extra_http_headers=headers
    )
    context.set_default_timeout(timeout * 1000)
    context.add_init_script(_RECORD_WRITES)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
    regime = regime_of(visitor, settings).name
    result = RegionResult(visitor, regime)
    try:
        known: set[tuple[str, str, str]] = set()
        if accept_all:
            answer = context.request.post(
                f"{origin}{settings.endpoint_prefix}/consent",
                form={"accept": "all"},
                headers={"Origin": origin},
                max_redirects=0,
            )
            answer.dispose()
        page = context.new_page()
        server_names: set[str] = set()

        def on_response(response: Any) -> None:
            try:
                for item in response.headers_array():
                    if item["name"].lower() == "set-cookie":
                        for line in item["value"].split("\n"):
                            parsed = parse_set_cookie(line)
                            if parsed is not None:
                                server_names.add(parsed.name)
            except PlaywrightError:
                pass

        page.on("response", on_response)
        host = urlsplit(base_url).hostname or ""
        calls: list[str] = []  # off-site URLs requested while the current page loads

        def on_request(request: Any) -> None:
            url = str(request.url)
            if urlsplit(url).scheme in ("http", "https", "ws", "wss"):
                if urlsplit(url).hostname != host:
                    calls.append(url)

        context.on("request", on_request)
        if offline:
            # answer every off-site request here (it is still reported): nothing leaves
            def answer(route: Any) -> None:
                if urlsplit(route.request.url).hostname == host:
                    route.continue_()
                else:
                    route.fulfill(status=204, body="")

            context.route("**/*", answer)
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        queued = {start}
        while queue and len(result.pages) < max_pages:
            path, depth = queue.popleft()
            record = PageResult(path, depth)
            result.pages.append(record)
            if progress is not None:
                progress(visitor.label, len(result.pages), max_pages, path)
            server_names.clear()
            calls.clear()
            try:
                response = page.goto(origin + path, wait_until="load")
            except PlaywrightError as exc:
                message = str(exc).splitlines()[0]
                if path == start:
                    raise TargetError(f"start page {origin}{path}: {message}") from None
                record.error = message
                continue
            ctype = (response.headers.get("content-type", "") if response else "").lower()
            record.status = response.status if response else 0
            record.content_type = ctype
            if path == start and not ctype.startswith(("text/html", "application/xhtml+xml")):
                raise TargetError(
                    f"start page {origin}{path} is not HTML (Content-Type {ctype or 'none'!r})"
                )
            for cookie in _settled_cookies(page, context):
                key = (cookie["name"], cookie.get("domain", ""), cookie.get("path", ""))
                if key in known or (cookie["name"], "", "") in known:
                    continue
                known.add(key)
                source = "server" if cookie["name"] in server_names else "script"
                if accept_all and path == start and cookie["name"].endswith("privguard_consent"):
                    source = "server"
                rec = _record(cookie, settings, visitor.label, path, source)
                record.cookies.append(rec)
                if not accept_all:
                    finding = judge(rec, visitor, settings)
                    if finding is not None:
                        record.findings.append(finding)
            page.wait_for_timeout(300)  # async loaders and frames
            _record_requests(calls, record, settings, visitor, accept_all)
            seen_names = {name for name, _, _ in known}
            for write in page.evaluate("() => window.__privguardCookieWrites || []"):
                parsed = parse_set_cookie(str(write))
                if parsed is None or parsed.is_expiry() or parsed.name in seen_names:
                    continue
                seen_names.add(parsed.name)
                known.add((parsed.name, "", ""))
                rec = record_from(parsed, settings, visitor.label, path, "script")
                record.cookies.append(rec)
                if not accept_all:
                    finding = judge(rec, visitor, settings)
                    if finding is not None:
                        record.findings.append(finding)
            if depth >= max_depth or not ctype.startswith("text/html"):
                continue
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            for href in hrefs:
                url, _ = urldefrag(str(href))
                parts = urlsplit(url)
                if f"{parts.scheme}://{parts.netloc}" != origin:
                    continue
                link = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                if link in queued or link.startswith(settings.endpoint_prefix + "/"):
                    continue
                queued.add(link)
                queue.append((link, depth + 1))
    finally:
        context.close()
    return result


def _record_requests(
    calls: list[str], record: PageResult, settings: Settings, visitor: AuditVisitor, accepted: bool
) -> None:
    """File the off-site requests of one page: catalogued trackers, and the rest by host."""
    advanced = settings.consent_mode == "advanced"
    seen: set[str] = set()
    for url in calls:
        if url in seen:
            continue
        seen.add(url)
        parts = urlsplit(url)
        tracker = settings.trackers.match(url)
        if tracker is None:
            if parts.hostname and parts.hostname not in record.third_party:
                record.third_party.append(parts.hostname)
            continue
        req = TrackerRequest(
            url=url[:300],
            host=parts.hostname or "",
            tracker=tracker.name,
            category=tracker.category.value,
            region=visitor.label,
            page=record.path,
        )
        record.requests.append(req)
        if not accepted:
            finding = judge_request(req, visitor, settings, advanced and tracker.google)
            if finding is not None:
                record.findings.append(finding)


def _warm_up(browser: Any, base_url: str, timeout: float) -> None:
    """Write one cookie from a script in a throwaway context before the crawl.

    With Debian's Chromium under Playwright the very first ``document.cookie``
    write of a browser process is lost; without this, the first visitor would
    miss the cookies that scripts set.
    """
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context()
    context.set_default_timeout(timeout * 1000)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/.well-known/gpc.json")
        page.evaluate("() => { document.cookie = 'privguard_audit_warm_up=1'; }")
    except PlaywrightError:
        pass  # the crawl itself reports an unreachable site
    finally:
        context.close()


def browser_crawl(
    target: Target,
    settings: Settings,
    visitors: Sequence[AuditVisitor],
    country_header: str,
    max_pages: int = 50,
    max_depth: int = 3,
    timeout: float = 10,
    progress: Progress | None = None,
    accept_all: bool = False,
    offline: bool = False,
) -> list[RegionResult]:
    """Crawl ``target`` in Chromium once per visitor.

    :raises BrowserError: Playwright or Chromium missing.
    :raises TargetError: the start page is unreachable or not HTML.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserError(
            "--browser needs the playwright package (pip install playwright)"
        ) from None
    executable = chromium_path()
    if not os.path.exists(executable):
        raise BrowserError(
            f"--browser needs Chromium at {executable} (apt-get install chromium) or "
            "PRIVGUARD_CHROMIUM"
        )
    server = None
    if target.kind == "url":
        parts = urlsplit(target.spec)
        base_url = f"{parts.scheme}://{parts.netloc}"
    else:
        from privguard.audit.serve import serve

        server = serve(target.app, timeout)
        base_url = server.url
    try:
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(
                    executable_path=executable, headless=True, args=list(LAUNCH_ARGS)
                )
            except PlaywrightError as exc:
                message = str(exc).splitlines()[0]
                raise BrowserError(f"Chromium would not start: {message}") from None
            try:
                _warm_up(browser, base_url, timeout)
                return [
                    _crawl_one(
                        browser,
                        base_url,
                        target.start_path,
                        settings,
                        v,
                        country_header,
                        max_pages,
                        max_depth,
                        timeout,
                        progress,
                        accept_all,
                        offline,
                    )
                    for v in visitors
                ]
            finally:
                browser.close()
    finally:
        if server is not None:
            server.close()
