"""Every regime end to end through the middleware, with generated GeoIP databases."""

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from privguard.asgi import PrivacyMiddleware
from tests.geodb import build_city_db, build_country_db

KEY = "regions-e2e-key-" + "x" * 32
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
NETWORKS = {
    "81.0.0.0/16": ("DE", None),
    "8.8.8.0/24": ("US", "CA"),
    "9.9.9.0/24": ("US", "TX"),
    "200.1.0.0/16": ("BR", None),
}


async def page(request):
    resp = HTMLResponse("<html><body>shop</body></html>")
    for name in ("sessionid", "lang", "_ga", "_fbp"):
        resp.set_cookie(name, "v")
    return resp


@pytest.fixture(scope="module", params=["city", "country"])
def client(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / f"{request.param}.mmdb"
    if request.param == "city":
        build_city_db(path, NETWORKS)
    else:
        build_country_db(path, {net: country for net, (country, _) in NETWORKS.items()})
    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(
        PrivacyMiddleware,
        secret_key=KEY,
        ledger=None,
        geoip_db=str(path),
        trusted_proxies=1,
        country_regimes={"US-TX": "gdpr"},
        debug_headers=True,
    )
    with TestClient(app, client=("127.0.0.1", 5000)) as c:
        c.edition = request.param
        yield c


@pytest.mark.parametrize(
    ("ip", "region", "regime", "cookies", "banner_shown"),
    [
        pytest.param("81.0.3.4", "DE", "gdpr", {"sessionid"}, True, id="DE-gdpr"),
        pytest.param(
            "8.8.8.8", "US-CA", "us-optout", {"sessionid", "lang", "_ga"}, True, id="US-CA-optout"
        ),
        pytest.param(
            "200.1.2.3", "BR", "notice", {"sessionid", "lang", "_ga"}, True, id="BR-notice"
        ),
        pytest.param("10.1.2.3", "unknown", "gdpr", {"sessionid"}, True, id="unknown-gdpr"),
    ],
)
def test_regime_per_database_answer(client, ip, region, regime, cookies, banner_shown):
    client.cookies.clear()  # each case is a first visit
    resp = client.get("/", headers={"X-Forwarded-For": ip, "User-Agent": CHROME})
    if client.edition == "country" and region.startswith("US-"):
        region = "US"  # a Country database has no subdivisions
    assert resp.headers["privguard-region"] == region
    assert resp.headers["privguard-regime"] == regime
    set_names = {v.split("=", 1)[0] for v in resp.headers.get_list("set-cookie")}
    assert set_names == cookies
    root = resp.text.split('id="privguard-banner"', 1)[1].split(">", 1)[0]
    assert (" hidden" not in root) is banner_shown


def test_state_override_needs_the_city_edition(client):
    client.cookies.clear()
    resp = client.get("/", headers={"X-Forwarded-For": "9.9.9.9", "User-Agent": CHROME})
    expected = "gdpr" if client.edition == "city" else "us-optout"
    assert resp.headers["privguard-regime"] == expected


def test_gpc_on_the_first_request_in_the_us(client):
    client.cookies.clear()
    resp = client.get(
        "/", headers={"X-Forwarded-For": "8.8.8.8", "User-Agent": CHROME, "Sec-GPC": "1"}
    )
    names = {v.split("=", 1)[0] for v in resp.headers.get_list("set-cookie")}
    assert "_fbp" not in names and "_ga" in names
    root = resp.text.split('id="privguard-banner"', 1)[1].split(">", 1)[0]
    assert " hidden" in root  # nothing left to ask: marketing is already refused
