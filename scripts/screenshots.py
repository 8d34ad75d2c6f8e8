"""Render the consent banner in every configured language and save PNG screenshots.

    python scripts/screenshots.py [--out docs/screenshots] [--languages en,de,fr,es]

Starts a small demo shop wrapped in privguard's ASGI middleware on 127.0.0.1 (a free
port), opens it in Debian's Chromium (``/usr/bin/chromium``) as a first-time visitor
from Germany, and writes ``banner-<lang>.png`` (dialog) and
``banner-<lang>-settings.png`` (settings expanded) for each language, and
``banner-us-en.png`` (a US visitor: the opt-out banner).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots; exit status 1 when Chromium is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--languages", default="en,de,fr,es")
    args = parser.parse_args(argv)
    missing = chromium_missing_reason()
    if missing is not None:
        print(f"screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
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
                path = out / f"banner-{lang}.png"
                page.screenshot(path=str(path), caret="hide")
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
                page.click('[data-privguard-action="settings"]')
                path = out / f"banner-{lang}-settings.png"
                page.screenshot(path=str(path), caret="hide")
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
                context.close()
            # the US opt-out banner ("Do Not Sell or Share"), in English
            context = browser.new_context(
                base_url=base,
                viewport={"width": 1024, "height": 720},
                user_agent=agent,
                reduced_motion="reduce",
                extra_http_headers={"CF-IPCountry": "US", "Accept-Language": "en"},
            )
            page = context.new_page()
            page.goto("/")
            page.locator("#privguard-banner").wait_for(state="visible")
            path = out / "banner-us-en.png"
            page.screenshot(path=str(path), caret="hide")
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
            context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
