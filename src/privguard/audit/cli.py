"""``privguard audit TARGET`` and ``privguard cookies TARGET``.

``TARGET`` is a URL (``http://127.0.0.1:8000/``) or ``module:app`` (a WSGI or
ASGI app, run in-process). Exit codes: 0 clean, 1 a finding, 2 bad input
(unreachable URL, import error, non-HTML start page, redirect loop, bad
option) with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from privguard.audit.crawl import DEFAULT_REGIONS, AuditResult, Crawler, parse_regions
from privguard.audit.target import Target, TargetError, open_target
from privguard.runtime import no_receipts

__all__ = ["register", "run_audit", "run_cookies"]

EXIT_CLEAN, EXIT_FINDING, EXIT_BAD_INPUT = 0, 1, 2


def _positive(kind: type, name: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, not {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be positive")
        return value

    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="a URL, or module:app (WSGI or ASGI)")
    parser.add_argument(
        "--max-pages",
        type=_positive(int, "--max-pages"),
        default=50,
        help="pages per region (default 50)",
    )
    parser.add_argument(
        "--max-depth", type=int, default=3, help="link depth from the start page (default 3)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float, "--timeout"),
        default=10.0,
        help="seconds per request (default 10)",
    )
    parser.add_argument(
        "--country-header",
        default=None,
        metavar="NAME",
        help="header carrying the visitor's country (default: the app's "
        "country_header, else CF-IPCountry); the app must trust it from the "
        "auditor, e.g. trusted_proxies including 127.0.0.1",
    )
    parser.add_argument(
        "--settings",
        default=None,
        metavar="MODULE:ATTR",
        help="the app's privguard Settings (or a callable returning them) to "
        "classify cookies; found automatically for module:app",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="crawl with headless Chromium (/usr/bin/chromium) to catch cookies set by scripts "
        "and requests to catalogued trackers too",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="with --browser: answer every request to another host with an empty 204 "
        "instead of letting it out (each is still reported)",
    )


def register(subparsers: Any) -> None:
    """Add ``audit`` and ``cookies`` to the ``privguard`` command."""
    audit = subparsers.add_parser(
        "audit",
        help="crawl a site as first-time visitors and report cookies set before consent",
        description="Crawl TARGET as a first-time visitor from each region and list every "
        "cookie with its category (with --browser also every request to a catalogued tracker). "
        "Exit 0 clean, 1 a finding (a non-essential cookie or tracker request before "
        "consent, an undeclared cookie, GPC ignored), 2 bad input.",
    )
    _common(audit)
    audit.add_argument(
        "--region",
        action="append",
        default=None,
        metavar="CODE[,CODE]",
        help="visitor region, repeatable or comma-separated: DE, US-CA, BR; "
        "suffix +gpc to send Sec-GPC (default: DE,US-CA+gpc,BR)",
    )
    audit.add_argument("--gpc", action="store_true", help="send Sec-GPC: 1 in every region")
    audit.add_argument("--junit", metavar="FILE", help="write JUnit XML to FILE")
    audit.set_defaults(func=run_audit)

    cookies = subparsers.add_parser(
        "cookies",
        help="inventory every cookie after accepting all (Markdown or --json)",
        description="Accept all categories (POST <prefix>/consent accept=all), crawl TARGET and "
        "list every cookie with category, lifetime, domain, path and flags.",
    )
    _common(cookies)
    cookies.add_argument(
        "--region", default="DE", metavar="CODE", help="visitor region (default DE)"
    )
    cookies.set_defaults(func=run_cookies)


class _ProgressBar:
    """A progress bar per region on stderr (tqdm; only used on a TTY)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None
        self.label = ""

    def __call__(self, label: str, done: int, total: int, path: str) -> None:
        from tqdm import tqdm

        if self.bar is None or label != self.label:
            self.finish()
            self.label = label
            self.bar = tqdm(
                total=total,
                desc=f"{label:<10}",
                unit="page",
                file=self.stream,
                leave=False,
                mininterval=0,  # a page takes longer than a redraw
                miniters=1,
                # a fresh pty reports a 0x0 terminal, where tqdm would print nothing
                ncols=_columns(self.stream),
                nrows=24,
            )
        self.bar.set_postfix_str(path[:40], refresh=False)
        self.bar.update(done - self.bar.n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _columns(stream: TextIO) -> int:
    """The terminal's width; 80 where it reports none (a fresh pty says 0)."""
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        width = 0
    return width or int(os.environ.get("COLUMNS", "0") or 0) or 80


def _progress(args: argparse.Namespace) -> _ProgressBar | None:
    return _ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.json else None


def _fail(message: str) -> int:
    print(f"privguard: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _open(args: argparse.Namespace) -> tuple[Target, Any, str]:
    if args.max_depth < 0:
        raise TargetError("--max-depth must be 0 or more")
    target = open_target(args.target, args.settings)
    settings = target.settings
    catalog = "the app's"
    if settings is None:
        from privguard.testing.assertions import builtin_settings

        settings = builtin_settings()
        catalog = "built-in"
    header = args.country_header or (target.settings.country_header if target.settings else None)
    return target, (settings, header or "CF-IPCountry"), catalog


def _crawler(
    args: argparse.Namespace, target: Target, settings: Any, header: str, progress: Any
) -> Crawler:
    return Crawler(target, settings, header, args.max_pages, args.max_depth, args.timeout, progress)


def run_audit(args: argparse.Namespace) -> int:
    """``privguard audit``: 0 clean, 1 a finding, 2 bad input."""
    try:
        visitors = parse_regions(args.region or list(DEFAULT_REGIONS), args.gpc)
        target, (settings, header), catalog = _open(args)
    except TargetError as exc:
        return _fail(str(exc))
    bar = _progress(args)
    result = AuditResult(args.target, catalog=catalog)
    try:
        with no_receipts():
            _audit_regions(args, target, settings, header, visitors, bar, result)
    except TargetError as exc:
        return _fail(str(exc))
    except _BrowserFailed as exc:
        return _fail(str(exc))
    finally:
        if bar is not None:
            bar.finish()
        target.close()
    return _report_audit(args, result)


class _BrowserFailed(Exception):
    """The browser crawl could not run (bad input: exit 2)."""


def _browser_regions(
    args: argparse.Namespace,
    target: Target,
    settings: Any,
    visitors: list[Any],
    header: str,
    bar: Any,
    accept_all: bool = False,
) -> list[Any]:
    """The crawl in a real browser, one region a visitor (``_BrowserFailed`` if it cannot run)."""
    from privguard.audit.browser import BrowserError, browser_crawl

    try:
        return browser_crawl(
            target,
            settings,
            visitors,
            header,
            args.max_pages,
            args.max_depth,
            args.timeout,
            bar,
            accept_all=accept_all,
            offline=args.offline,
        )
    except BrowserError as exc:
        raise _BrowserFailed(str(exc)) from None


def _audit_regions(
    args: argparse.Namespace,
    target: Target,
    settings: Any,
    header: str,
    visitors: list[Any],
    bar: Any,
    result: AuditResult,
) -> None:
    crawler = _crawler(args, target, settings, header, bar)
    if args.browser:
        regions = _browser_regions(args, target, settings, visitors, header, bar)
        for region in regions:
            problem = crawler.seen_country(region.visitor, {})
            if problem:
                region.problems.append(problem)
        result.regions.extend(regions)
        region_blocked = _blocked_undeclared(target)
        if region_blocked and result.regions:
            result.regions[0].blocked.extend(region_blocked)
    else:
        seen: set[str] = set(_blocked_undeclared(target))
        for visitor in visitors:
            region = crawler.crawl(visitor)
            now = _blocked_undeclared(target)
            region.blocked.extend(n for n in now if n not in seen)
            seen.update(now)
            result.regions.append(region)


def _report_audit(args: argparse.Namespace, result: AuditResult) -> int:
    if args.junit:
        from privguard.audit.report import write_junit

        try:
            write_junit(result, args.junit)
        except OSError as exc:
            return _fail(f"cannot write {args.junit}: {exc}")
    from privguard.audit.report import audit_json, render_table

    if args.json:
        json.dump(audit_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(result))
        for region in result.regions:
            for warning in region.warnings:
                print(f"privguard: warning: {warning}", file=sys.stderr)
    return result.exit_code


def _blocked_undeclared(target: Target) -> list[str]:
    """Undeclared cookies the in-process middleware blocked (and logged) during the crawl."""
    if target.app is None:
        return []
    from privguard.audit.target import find_middleware

    middleware = find_middleware(target.app)
    runtime = getattr(middleware, "runtime", None)
    return list(getattr(runtime, "undeclared_cookies", None) or ())


def _describer(settings: Any) -> Any:
    """name -> (provider, purpose, lifetime) in English, from the banner's own data."""
    from privguard.banner import BannerRenderer
    from privguard.core.declarations import describe_cookie

    try:
        renderer = BannerRenderer(settings.replace(languages=["en"], texts={}))
    except Exception:  # the shop's texts are not needed for the English inventory
        return None
    details = settings.cookie_details

    def describe(name: str) -> tuple[str, str, str] | None:
        base = "privguard_consent" if name.endswith("privguard_consent") else name
        info = describe_cookie(base, details)
        if info is None:
            return None
        if base == "privguard_consent":
            found = [i for n, _, i in renderer.declared_cookies() if n == base]
            info = found[0] if found and found[0] is not None else info
        return renderer.cookie_texts("en", info)

    return describe


def run_cookies(args: argparse.Namespace) -> int:
    """``privguard cookies``: the inventory after accepting all; 0, or 2 on bad input.

    The crawl's "accept all" is no visitor's consent: while it runs, no privguard
    runtime in this process writes a receipt (the app's ledger stays untouched).
    """
    with no_receipts():
        return _run_cookies(args)


def _run_cookies(args: argparse.Namespace) -> int:
    try:
        visitors = parse_regions([args.region])
        if len(visitors) != 1 or visitors[0].gpc:
            raise TargetError("--region: give one region without +gpc")
        target, (settings, header), _ = _open(args)
    except TargetError as exc:
        return _fail(str(exc))
    visitor = visitors[0]
    bar = _progress(args)
    try:
        if args.browser:
            try:
                regions = _browser_regions(
                    args, target, settings, visitors, header, bar, accept_all=True
                )
            except _BrowserFailed as exc:
                return _fail(str(exc))
            records = regions[0].cookies
        else:
            crawler = _crawler(args, target, settings, header, bar)
            jar: dict[str, str] = {}
            records = []
            warning = None
            try:
                answer = crawler.accept_all(visitor, jar)
            except Exception as exc:
                return _fail(f"cannot accept all at {settings.endpoint_prefix}/consent: {exc}")
            if answer.status >= 400 or not jar:
                warning = (
                    f"POST {settings.endpoint_prefix}/consent answered {answer.status}; "
                    "inventory without consent"
                )
            from privguard.audit.crawl import record_from
            from privguard.testing.responses import parse_set_cookie

            for value in answer.set_cookies:
                cookie = parse_set_cookie(value)
                if cookie is not None and not cookie.is_expiry():
                    records.append(
                        record_from(
                            cookie,
                            settings,
                            visitor.label,
                            f"POST {settings.endpoint_prefix}/consent",
                        )
                    )
            region = crawler.crawl(visitor, jar, judge_cookies=False)
            records.extend(region.cookies)
            if warning:
                print(f"privguard: warning: {warning}", file=sys.stderr)
    except TargetError as exc:
        return _fail(str(exc))
    finally:
        if bar is not None:
            bar.finish()
        target.close()
    from privguard.audit.report import inventory, inventory_json, inventory_markdown

    unique = inventory(records)
    blocked = _blocked_undeclared(target)
    describe = _describer(settings)
    if args.json:
        json.dump(inventory_json(unique, args.target, blocked, describe), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(inventory_markdown(unique, args.target, blocked, describe))
    return EXIT_CLEAN
