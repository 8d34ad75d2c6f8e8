import pytest

from privguard.core.cookies import expiry_headers, request_cookies, set_cookie_name
from privguard.core.headers import make_private, merge_permissions_policy, merge_vary


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "browsing-topics=(), interest-cohort=()"),
        ("camera=()", "camera=(), browsing-topics=(), interest-cohort=()"),
        (
            "browsing-topics=(self), geolocation=()",
            "browsing-topics=(), geolocation=(), interest-cohort=()",
        ),
    ],
)
def test_permissions_policy_merge(existing, expected):
    assert merge_permissions_policy(existing) == expected


def test_vary_merge_keeps_app_entries_once():
    assert merge_vary(["Accept-Encoding, cookie"], ["Cookie", "Sec-GPC"]) == (
        "Accept-Encoding, cookie, Sec-GPC"
    )
    assert merge_vary(["*"], ["Cookie"]) == "*"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "private"),
        ("public, max-age=60", "private, max-age=60"),
        ("no-store", "no-store"),
        ("private, max-age=5", "private, max-age=5"),
        ("public, s-maxage=600, max-age=60", "private, max-age=60"),
    ],
)
def test_make_private(existing, expected):
    assert make_private(existing) == expected


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("a=b; Path=/", "a"),
        (" _ga = 1", "_ga"),
        ("noequals", ""),
        ("=v", ""),
        ("x=; Max-Age=0", "x"),
    ],
)
def test_set_cookie_name(value, name):
    assert set_cookie_name(value) == name


def test_request_cookies_first_value_wins_and_garbage_skipped():
    assert request_cookies("a=1; b=2; a=3; junk; =x; c=") == {"a": "1", "b": "2", "c": ""}


def test_expiry_headers_host_prefix_and_domains():
    out = expiry_headers(["_ga", "__Host-x"], ["shop.test"], ("/", "/app"))
    assert len([v for v in out if v.startswith("_ga=")]) == 4  # host + domain, two paths
    host = [v for v in out if v.startswith("__Host-x=")]
    assert len(host) == 1 and "Secure" in host[0] and "Domain" not in host[0]
