"""Page views and the JSON-lines sink (analytics.py): never a full client IP."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

import privguard
from privguard.analytics import JSONLinesSink, PageView, make_sink, page_view_from
from privguard.core.clientip import truncate_ip
from privguard.core.decision import Decision, Lookups, decide
from privguard.core.request import RequestView
from privguard.errors import ConfigError
from privguard.settings import Settings
from tests.geodb import build_city_db

SECRET = "x" * 32
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
NOW = 1_795_000_000.75  # 2026-11-18T11:06:40.75Z


def _decision(peer: str, settings: Settings | None = None, **headers: str) -> Decision:
    settings = settings or Settings(secret_key=SECRET)
    view = RequestView("GET", "/", "https", "shop.test", peer, headers)
    return decide(view, settings, Lookups(), NOW)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/shop/item", "/shop/item", id="plain"),
        pytest.param("/p?email=a@b.example&token=s3cret", "/p", id="query-dropped"),
        pytest.param("/p#section", "/p", id="fragment-dropped"),
        pytest.param("", "/", id="empty"),
        pytest.param("/" + "a" * 5000, "/" + "a" * 2047, id="long-cut"),
    ],
)
def test_path_only(path: str, expected: str) -> None:
    view = page_view_from(_decision("203.0.113.77"), path, None, NOW)
    assert view.path == expected


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        pytest.param(
            "https://www.google.com/search?q=secret", "https://www.google.com", id="https"
        ),
        pytest.param("http://Shop.Example:8080/cart", "http://shop.example:8080", id="port-lower"),
        pytest.param("https://shop.example:443/", "https://shop.example", id="default-port"),
        pytest.param(
            "https://user:pw@shop.example/x", "https://shop.example", id="userinfo-dropped"
        ),
        pytest.param("http://[2001:db8::1]:81/x", "http://[2001:db8::1]:81", id="ipv6-host"),
        pytest.param("android-app://com.google.android.gm/", None, id="app-scheme"),
        pytest.param("javascript:alert(1)", None, id="javascript"),
        pytest.param("/relative/path", None, id="relative"),
        pytest.param("http://[broken/", None, id="broken"),
        pytest.param("https://shop.example:99999/", None, id="bad-port"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_referrer_origin(referrer: str | None, expected: str | None) -> None:
    view = page_view_from(_decision("203.0.113.77"), "/", referrer, NOW)
    assert view.referrer_origin == expected


def test_page_view_fields() -> None:
    decision = _decision("2001:db8:abcd:12::7")
    view = page_view_from(decision, "/x", None, NOW)
    assert view == PageView(
        ts="2026-11-18T11:06:40Z",
        path="/x",
        ip="2001:db8:abcd::",
        country=None,
        regime="gdpr",
        ua_family=None,
        referrer_origin=None,
    )
    with pytest.raises(AttributeError):
        view.ip = "2001:db8:abcd:12::7"  # type: ignore[misc]


def test_page_view_uses_the_configured_prefix() -> None:
    settings = Settings(secret_key=SECRET, ipv4_prefix=16)
    view = page_view_from(_decision("203.0.113.77", settings), "/", None, NOW)
    assert view.ip == "203.0.0.0"


def test_make_sink(tmp_path: Path) -> None:
    def mine(view: PageView) -> None:
        pass

    assert make_sink(None) is None
    assert make_sink(mine) is mine
    sink = make_sink(str(tmp_path / "a.jsonl"))
    assert isinstance(sink, JSONLinesSink)
    sink.close()
    sink = make_sink(tmp_path / "b.jsonl")
    assert isinstance(sink, JSONLinesSink) and sink.path.endswith("b.jsonl")
    sink.close()
    with pytest.raises(TypeError):
        make_sink(42)


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        JSONLinesSink(tmp_path / "missing-dir" / "pv.jsonl")
    assert info.value.option == "analytics"


def test_sink_appends_whole_lines_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "pv.jsonl"
    sink = JSONLinesSink(path)
    view = page_view_from(_decision("203.0.113.77"), "/ü/" + "x" * 500, None, NOW)

    def work() -> None:
        for _ in range(200):
            sink(view)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == 1600
    assert all(json.loads(line) == view.as_dict() for line in lines)
    # a second sink on the same file appends
    again = JSONLinesSink(path)
    again(view)
    again.close()
    assert len(path.read_text("utf-8").splitlines()) == 1601


def test_write_errors_are_logged_once_and_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = JSONLinesSink(tmp_path / "pv.jsonl")
    sink.close()
    view = page_view_from(_decision("203.0.113.77"), "/", None, NOW)
    with caplog.at_level(logging.ERROR, logger="privguard.analytics"):
        for _ in range(3):
            sink(view)  # never raises
    assert len(caplog.records) == 1


# -- the promise: the sink file never holds a full client IP ----------------------------


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(ip=st.ip_addresses(), spoof=st.ip_addresses())
def test_sink_file_never_contains_a_full_ip(
    tmp_path_factory: pytest.TempPathFactory,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    spoof: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    full = str(ip)
    assume(truncate_ip(full) != full)
    path = tmp_path_factory.mktemp("pv") / "pv.jsonl"
    settings = Settings(secret_key=SECRET, trusted_proxies=1)
    sink = JSONLinesSink(path)
    decision = _decision("10.0.0.1", settings, **{"x-forwarded-for": f"{spoof}, {full}"})
    sink(page_view_from(decision, f"/?ip={full}", f"https://ref.example/{full}", NOW))
    sink.close()
    text = path.read_text("utf-8")
    assert full not in text
    assert json.loads(text)["ip"] == truncate_ip(full)


@pytest.fixture
def shop(tmp_path: Path) -> tuple[object, Path]:
    db = build_city_db(
        tmp_path / "city.mmdb",
        {
            "198.51.100.0/24": ("US", "CA"),
            "203.0.113.0/24": ("DE", None),
            "2001:db8::/32": ("US", None),
        },
    )

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<html><body>shop</body></html>"]

    sink = tmp_path / "pageviews.jsonl"
    wrapped = privguard.protect(
        app, secret_key=SECRET, analytics=str(sink), geoip_db=str(db), ledger=None
    )
    return wrapped, sink


def test_middleware_writes_truncated_page_views_only_when_allowed(
    shop: tuple[object, Path],
) -> None:
    app, sink = shop
    client = Client(app)  # type: ignore[arg-type]
    headers = {"User-Agent": FIREFOX, "Referer": "https://search.example/?q=me@mail.example"}
    visitors = ["198.51.100.77", "2001:db8:1234:5678::9", "203.0.113.77"]
    for peer in visitors:
        response = client.get(
            "/cart?email=me@mail.example", headers=headers, environ_base={"REMOTE_ADDR": peer}
        )
        assert response.status_code == 200
    client.get(
        "/", headers={"User-Agent": "curl/8.5.0"}, environ_base={"REMOTE_ADDR": "198.51.100.78"}
    )
    text = sink.read_text("utf-8")
    for peer in [*visitors, "198.51.100.78"]:
        assert peer not in text
    assert "me@mail.example" not in text
    rows = [json.loads(line) for line in text.splitlines()]
    # DE (gdpr: performance is opt-in) and the curl bot wrote nothing
    assert [(r["ip"], r["country"], r["regime"]) for r in rows] == [
        ("198.51.100.0", "US", "us-optout"),
        ("2001:db8:1234::", "US", "us-optout"),
    ]
    assert {r["path"] for r in rows} == {"/cart"}
    assert {r["referrer_origin"] for r in rows} == {"https://search.example"}
    assert {r["ua_family"] for r in rows} == {"Firefox"}
