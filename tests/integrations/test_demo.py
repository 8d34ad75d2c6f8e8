"""``privguard demo``: the example shop behind the demo's region switcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webtest import TestApp

from privguard.cli import build_parser
from privguard.demo import REGIONS, build_demo_app, build_geoip_db

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HTML = {"User-Agent": UA, "Accept": "text/html"}


@pytest.fixture(params=["geoip", "header"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestApp]:
    app, mode = build_demo_app(tmp_path, geoip=request.param == "geoip")
    assert mode == request.param
    yield TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    app.extensions["privguard"].runtime.close()


def switch(demo: TestApp, region: str) -> None:
    answer = demo.post("/demo/region", {"region": region}, headers=HTML)
    assert answer.status_int == 303


@pytest.mark.parametrize(
    ("region", "regime", "shown"),
    [
        pytest.param("de", "gdpr", "DE", id="de"),
        pytest.param("gb", "gdpr", "GB", id="gb"),
        pytest.param("us-tx", "us-optout", "US", id="us-tx"),
        pytest.param("br", "notice", "BR", id="br"),
        pytest.param("unknown", "gdpr", "unknown", id="unknown"),
    ],
)
def test_switcher_sets_the_region(demo: TestApp, region: str, regime: str, shown: str) -> None:
    switch(demo, region)
    page = demo.get("/", headers=HTML)
    assert page.headers["Privguard-Regime"] == regime
    assert page.headers["Privguard-Region"].startswith(shown)
    assert f'value="{region}" selected' in page.text
    assert 'id="demo-bar"' in page.text


def test_geoip_mode_knows_us_states(tmp_path: Path) -> None:
    app, _ = build_demo_app(tmp_path)
    demo = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    switch(demo, "us-ca")
    assert demo.get("/", headers=HTML).headers["Privguard-Region"] == "US-CA"
    app.extensions["privguard"].runtime.close()


def test_default_region_is_germany_and_spoofed_headers_are_replaced(demo: TestApp) -> None:
    page = demo.get("/", headers={**HTML, "CF-IPCountry": "US", "X-Forwarded-For": "104.0.0.1"})
    assert page.headers["Privguard-Region"] == "DE"


def test_age_gate_differs_by_region(demo: TestApp) -> None:
    switch(demo, "us-ca")
    gate = demo.get("/checkout", headers=HTML, status=200)
    assert 'id="privguard-age-gate"' in gate.text
    state = demo.get("/privguard/consent", headers=HTML).json
    assert state["required_age"] == 13


def test_reset_forgets_choices(demo: TestApp) -> None:
    demo.post(
        "/privguard/consent", {"accept": "all"}, headers={**HTML, "Origin": "http://localhost"}
    )
    assert any(c.name == "privguard_consent" for c in demo.cookiejar)
    demo.get("/demo/reset", headers=HTML, status=303)
    assert not any(c.name == "privguard_consent" for c in demo.cookiejar)


def test_geoip_db_has_every_region(tmp_path: Path) -> None:
    from privguard.geo import open_geo

    geo = open_geo(str(build_geoip_db(tmp_path / "demo.mmdb")), True)
    assert geo is not None
    for region in REGIONS:
        if region.ip is None:
            continue
        sub = f"{region.country}-{region.subdivision}" if region.subdivision else None
        assert geo.lookup(region.ip) == (region.country, sub)


def test_cli_registers_demo() -> None:
    args = build_parser().parse_args(["demo", "--port", "8123", "--no-geoip"])
    assert args.port == 8123 and args.host == "127.0.0.1" and args.no_geoip
    assert callable(args.func)


def banner_lang(text: str) -> str:
    import re

    match = re.search(r'<div id="privguard-banner"[^>]* lang="([^"]+)"', text)
    assert match is not None, "no banner"
    return match.group(1)


def test_language_switcher_shows_every_shipped_language(demo: TestApp) -> None:
    from privguard.banner.languages import SHIPPED_LANGUAGES
    from privguard.demo import LANGUAGE_NAMES

    assert list(LANGUAGE_NAMES) == list(SHIPPED_LANGUAGES)
    page = demo.get("/", headers={**HTML, "Accept-Language": "fr-FR,fr;q=0.9"})
    assert banner_lang(page.text) == "fr"  # unset: the browser's header decides
    for tag in ("pl", "pt-BR", "nb", "ga"):
        answer = demo.post("/demo/region", {"region": "de", "language": tag}, headers=HTML)
        assert answer.status_int == 303
        page = demo.get("/", headers={**HTML, "Accept-Language": "fr-FR,fr;q=0.9"})
        assert banner_lang(page.text) == tag
        assert f'value="{tag}" lang="{tag}" selected' in page.text
    demo.post("/demo/region", {"region": "de", "language": ""}, headers=HTML)
    page = demo.get("/", headers={**HTML, "Accept-Language": "sv"})
    assert banner_lang(page.text) == "sv"


def test_language_switcher_ignores_unknown_tags(demo: TestApp) -> None:
    demo.post("/demo/region", {"region": "de", "language": "xx<script>"}, headers=HTML)
    demo.set_cookie("demo_language", "zz")
    page = demo.get("/", headers={**HTML, "Accept-Language": "it"})
    assert banner_lang(page.text) == "it"
