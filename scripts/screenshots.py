"""Render the consent banner in the shown languages and save PNG screenshots.

    python scripts/screenshots.py [--out docs/screenshots] [--languages en,de,pl]

Starts a small demo shop wrapped in privguard's ASGI middleware on 127.0.0.1 (a free
port), opens it in Debian's Chromium (``/usr/bin/chromium``) as a first-time visitor
from Germany, and writes ``banner-<lang>.png`` (dialog) and
``banner-<lang>-settings.png`` (settings and the performance cookies expanded) for
each language shown (en, de, fr, es, pl, it, nl, sv by default). For a US visitor:
``banner-us-en.png`` (first visit, the dialog and the "Do Not Sell" link),
``us-link-en.png`` (after a choice), ``banner-us-en-reopened.png``,
``us-optout-page-en.png`` / ``us-optout-done-en.png`` (the opt-out page before and
after the post), ``us-link-gpc-en.png`` / ``us-optout-gpc-en.png`` (with GPC) and
``banner-us-en-phone.png`` (375 px wide).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from privguard.asgi import PrivacyMiddleware  # noqa: E402
from tests.browser.browser_shop import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    SECRET,
    chromium_missing_reason,
    serve,
)

DEMO_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Qomoor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head><body style="margin:0;font:16px/1.5 system-ui,sans-serif;color:#222;background:#f4f1ec">
<header style="padding:1rem 2rem;background:#2b2d42;color:#fff"><strong>Qomoor</strong></header>
<main style="padding:2rem;display:grid;grid-template-columns:repeat(3,1fr);gap:1.5rem">
<article style="background:#fff;padding:1rem;border-radius:.5rem;height:12rem">Ceramic mug</article>
<article style="background:#fff;padding:1rem;border-radius:.5rem;height:12rem">Linen towel</article>
<article style="background:#fff;padding:1rem;border-radius:.5rem;height:12rem">Oak tray</article>
</main></body></html>
"""


async def _home(request: Request) -> HTMLResponse:
    return HTMLResponse(DEMO_PAGE)


def shoot(page: Any, path: Path) -> None:
    """Save a screenshot of the viewport and say where."""
    page.screenshot(path=str(path), caret="hide")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


#: The languages ``make screenshots`` shows by default (those shipped of them).
SHOWN = ("en", "de", "fr", "es", "pl", "it", "nl", "sv")


def default_languages() -> list[str]:
    """:data:`SHOWN`, keeping only the languages with a built-in text file."""
    folder = ROOT / "src" / "privguard" / "banner" / "i18n"
    return [lang for lang in SHOWN if (folder / f"{lang}.json").is_file()]


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots; exit status 1 when Chromium is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument(
        "--languages",
        default="",
        help=f"comma-separated; by default {','.join(SHOWN)}",
    )
    args = parser.parse_args(argv)
    missing = chromium_missing_reason()
    if missing is not None:
        print(f"screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    languages = languages or default_languages()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = PrivacyMiddleware(
        Starlette(routes=[Route("/", _home)]),
        secret_key=SECRET,
        ledger=None,
        rate_limit=None,
        country_header="CF-IPCountry",
        trusted_proxies=["127.0.0.1/32"],
        policy_url="/privacy",
        languages=languages,
        cookies={
            "session": "necessary",
            "lang": {"category": "functionality", "purpose": "preferences", "lifetime": "1 year"},
            "_ga": "performance",
            "_ga_*": "performance",
            "_fbp": "marketing",
            "_gcl_au": "marketing",
        },
    )
    with serve(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            agent = (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                f"Chrome/{browser.version} Safari/537.36"
            )
            for lang in languages:
                context = browser.new_context(
                    base_url=base,
                    viewport={"width": 1024, "height": 720},
                    user_agent=agent,
                    reduced_motion="reduce",
                    extra_http_headers={"CF-IPCountry": "DE", "Accept-Language": lang},
                )
                page = context.new_page()
                page.goto("/")
                page.locator("#privguard-banner").wait_for(state="visible")
                shoot(page, out / f"banner-{lang}.png")
                page.click('[data-privguard-action="settings"]')
                cookies = page.locator('[data-privguard-cookies="performance"] summary')
                cookies.click()
                cookies.scroll_into_view_if_needed()
                shoot(page, out / f"banner-{lang}-settings.png")
                context.close()
            us = {"CF-IPCountry": "US", "Accept-Language": "en"}

            def us_page(headers: dict[str, str], width: int = 1024) -> Any:
                context = browser.new_context(
                    base_url=base,
                    viewport={"width": width, "height": 720},
                    user_agent=agent,
                    reduced_motion="reduce",
                    extra_http_headers=headers,
                )
                return context.new_page()

            # the US first visit: the dialog, and the persistent "Do Not Sell" link
            page = us_page(us)
            page.goto("/")
            page.locator("#privguard-banner").wait_for(state="visible")
            shoot(page, out / "banner-us-en.png")
            # after a choice: the dialog is gone, the link stays (beside "Privacy settings")
            page.click('[data-privguard-action="accept-all"]')
            page.locator("#privguard-banner").wait_for(state="hidden")
            shoot(page, out / "us-link-en.png")
            # reopened: the stored choice ticked, and a close button
            page.click("#privguard-reopen")
            page.click('[data-privguard-action="settings"]')
            shoot(page, out / "banner-us-en-reopened.png")
            # the opt-out page, before and after the post
            page.goto("/privguard/do-not-sell?next=%2F")
            shoot(page, out / "us-optout-page-en.png")
            page.click('[data-privguard-action="confirm-do-not-sell"]')
            page.locator('[data-privguard-notice="opted-out"]').wait_for(state="visible")
            shoot(page, out / "us-optout-done-en.png")
            page.context.close()
            # with GPC: "Opt-Out Request Honored" on the page and beside the link
            page = us_page({**us, "Sec-GPC": "1"})
            page.goto("/")
            shoot(page, out / "us-link-gpc-en.png")
            page.goto("/privguard/do-not-sell")
            shoot(page, out / "us-optout-gpc-en.png")
            page.context.close()
            # a phone: the link above "Privacy settings", the dialog above both
            page = us_page(us, width=375)
            page.goto("/")
            page.locator("#privguard-banner").wait_for(state="visible")
            shoot(page, out / "banner-us-en-phone.png")
            page.context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
