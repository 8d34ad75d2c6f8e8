"""Cookie declarations: lifetimes, lookups, the built-in data and shop entries."""

from __future__ import annotations

import tomllib
from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.core.declarations import Lifetime, describe_cookie, parse_lifetime
from privguard.errors import ConfigError
from privguard.settings import Settings, builtin_cookie_details, builtin_cookies

SECRET = "d" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("session", Lifetime(0, "session"), id="session"),
        pytest.param("2 years", Lifetime(2, "year"), id="years"),
        pytest.param("1 year", Lifetime(1, "year"), id="year"),
        pytest.param(" 90 Days ", Lifetime(90, "day"), id="case-space"),
        pytest.param("30 minutes", Lifetime(30, "minute"), id="minutes"),
        pytest.param("0 days", None, id="zero"),
        pytest.param("2y", None, id="short"),
        pytest.param("forever", None, id="word"),
        pytest.param(730, None, id="number"),
        pytest.param(None, None, id="none"),
    ],
)
def test_parse_lifetime(text: object, expected: Lifetime | None) -> None:
    assert parse_lifetime(text) == expected


@given(st.text(max_size=30))
def test_parse_lifetime_never_raises(text: str) -> None:
    found = parse_lifetime(text)
    assert found is None or str(found) in ("session", str(parse_lifetime(str(found))))


def test_builtin_details_are_sourced_and_describe_catalogued_names() -> None:
    data = tomllib.loads(files("privguard.data").joinpath("cookies.toml").read_text("utf-8"))
    catalogued = {name for name, _ in builtin_cookies()}
    details = builtin_cookie_details()
    assert len(details) >= 30
    for name in data["cookie"]:
        assert name in catalogued, name  # a declaration never adds an unclassified name
        if name in details:
            info = details[name]
            assert info.lifetime is not None, name
            assert info.purpose, name
            assert info.source.startswith(("https://", "DESIGN.md")), name
    ga = details["_ga"]
    assert ga.provider == "Google Analytics (Google)"
    assert ga.purpose == "visitor_id" and ga.lifetime == Lifetime(2, "year")


def test_describe_prefers_exact_then_longest_glob() -> None:
    details = builtin_cookie_details()
    assert describe_cookie("_ga_XYZ123", details) == details["_ga_*"]
    assert describe_cookie("_hjSessionUser_42", details) == details["_hjSessionUser*"]
    assert describe_cookie("_hjSession_42", details) == details["_hjSession*"]
    assert describe_cookie("unknown", details) is None


def test_shop_entries_add_and_override_declarations() -> None:
    s = Settings(
        secret_key=SECRET,
        cookies={
            "_ga": "performance",
            "_fbp": {"category": "marketing", "lifetime": "30 days"},
            "grid": {
                "category": "functionality",
                "purpose": {"en": "Remembers the grid view", "de": "Merkt sich die Rasteransicht"},
                "lifetime": "session",
            },
        },
    )
    assert s.declared_cookies == ("_ga", "_fbp", "grid")
    assert s.cookie_details["_ga"].lifetime == Lifetime(2, "year")
    fbp = s.cookie_details["_fbp"]
    assert fbp.lifetime == Lifetime(30, "day") and fbp.provider == "Meta (Facebook Pixel)"
    assert s.cookie_details["grid"].purpose["de"] == "Merkt sich die Rasteransicht"


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"category": "performance", "lifetime": "for ever"}, id="lifetime"),
        pytest.param({"category": "performance", "provider": 3}, id="provider"),
        pytest.param({"category": "performance", "purpose": ["x"]}, id="purpose"),
        pytest.param({"category": "performance", "vendor": "x"}, id="unknown-field"),
    ],
)
def test_bad_declarations_name_the_option(entry: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        Settings(secret_key=SECRET, cookies={"x": entry})
    assert err.value.option == "cookies"
