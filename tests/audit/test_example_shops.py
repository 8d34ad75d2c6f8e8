"""Both example shops paste the vendors' tags unmodified, and stay clean under
``privguard audit --browser``: auto-blocking holds the tags, the guard the cookies.

Off-site requests are answered by the auditor (``--offline``), so nothing leaves the
machine; each one is still reported, which is what these tests read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privguard.cli import main
from tests.audit.test_audit import _chromium_ready
from tests.needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
SHOPS = {
    "flask": "examples.flask_shop.app:create_app()",
    "starlette": "examples.starlette_shop.app:create_app()",
}


@pytest.mark.parametrize("shop", sorted(SHOPS))
def test_templates_carry_the_vendors_snippets_unmodified(shop: str) -> None:
    from tests.snippets import GTAG, META_PIXEL, YOUTUBE

    folder = ROOT / "examples" / f"{shop}_shop" / "templates"
    base = (folder / "base.html").read_text("utf-8")
    flat = "".join(base.split())
    for snippet in (GTAG, META_PIXEL):
        assert "".join(snippet.split()) in flat
    assert YOUTUBE in (folder / "product.html").read_text("utf-8")
    assert "text/plain" not in base and "data-privguard-category" not in base


@pytest.mark.parametrize("shop", sorted(SHOPS))
def test_example_shop_is_clean_under_the_browser_audit(
    shop: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = _chromium_ready()
    if missing is not None:
        unavailable("the browser audit", missing)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PRIVGUARD_LEDGER", "none")
    argv = [
        "audit",
        SHOPS[shop],
        "--browser",
        "--offline",
        "--region",
        "DE,US-CA+gpc,BR",
        "--max-pages",
        "15",
        "--json",
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert code == 0, json.dumps(data["findings"], indent=1) + err
    pages = {(r["label"], p["path"]): p for r in data["regions"] for p in r["pages"]}
    assert ("DE", "/product/1") in pages  # the page with the YouTube embed was crawled
    for (label, _), page in pages.items():
        hosts = {r["host"] for r in page["tracker_requests"]}
        if label == "DE":
            assert hosts == set(), page  # gdpr: no tracker is even called
        else:  # opt-out regions run analytics, never the Pixel or the embed
            assert not hosts & {"connect.facebook.net", "www.youtube.com"}, page
    us = [p for (label, _), p in pages.items() if label == "US-CA+gpc"]
    assert any(r["tracker"] == "Google Analytics" for p in us for r in p["tracker_requests"])
