"""Country / subdivision -> regime, from the data tables (core/regions.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.core.regions import UNKNOWN_COUNTRY_CODES, RegionTable, normalise_country
from privguard.settings import Settings

SECRET = "x" * 32
EU27 = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()


@pytest.fixture(scope="module")
def regions() -> RegionTable:
    return Settings(secret_key=SECRET).regions


@pytest.mark.parametrize(
    ("country", "subdivision", "regime"),
    [
        pytest.param("DE", None, "gdpr", id="DE"),
        pytest.param("FR", None, "gdpr", id="FR"),
        pytest.param("GB", None, "gdpr", id="GB-uk-gdpr"),
        pytest.param("CH", None, "gdpr", id="CH"),
        pytest.param("NO", None, "gdpr", id="NO-eea"),
        pytest.param("IS", None, "gdpr", id="IS-eea"),
        pytest.param("LI", None, "gdpr", id="LI-eea"),
        pytest.param("GF", None, "gdpr", id="GF-outermost-region"),
        pytest.param("RE", None, "gdpr", id="RE-outermost-region"),
        pytest.param("AX", None, "gdpr", id="AX-aland"),
        pytest.param("JE", None, "gdpr", id="JE-crown-dependency"),
        pytest.param("GI", None, "gdpr", id="GI-gibraltar"),
        pytest.param("US", None, "us-optout", id="US"),
        pytest.param("US", "US-CA", "us-optout", id="US-CA"),
        pytest.param("US", "US-TX", "us-optout", id="US-TX"),
        pytest.param("BR", None, "notice", id="BR"),
        pytest.param("JP", None, "notice", id="JP"),
        pytest.param("CA", None, "notice", id="CA-canada-not-california"),
        pytest.param(None, None, "gdpr", id="unknown-strictest"),
        pytest.param(None, "US-CA", "gdpr", id="subdivision-without-country"),
        pytest.param("GB", "GB-ENG", "gdpr", id="unlisted-subdivision-falls-back"),
    ],
)
def test_default_regimes(
    regions: RegionTable, country: str | None, subdivision: str | None, regime: str
) -> None:
    assert regions.regime_for(country, subdivision).name == regime


@pytest.mark.parametrize("code", EU27)
def test_every_eu_member_is_gdpr(regions: RegionTable, code: str) -> None:
    assert regions.regime_for(code).name == "gdpr"


@pytest.mark.parametrize(
    ("overrides", "country", "subdivision", "regime"),
    [
        pytest.param({"US-CA": "gdpr"}, "US", "US-CA", "gdpr", id="state-override"),
        pytest.param({"US-CA": "gdpr"}, "US", "US-NY", "us-optout", id="other-state-unchanged"),
        pytest.param({"US-CA": "gdpr"}, "US", None, "us-optout", id="country-without-state"),
        pytest.param({"BR": "gdpr"}, "BR", None, "gdpr", id="country-override"),
        pytest.param({"BR": "gdpr"}, "JP", None, "notice", id="other-country-unchanged"),
        pytest.param({"GB": "notice"}, "GB", None, "notice", id="loosen-a-country"),
        pytest.param(
            {"US": "gdpr", "US-CA": "us-optout"},
            "US",
            "US-CA",
            "us-optout",
            id="subdivision-beats-country",
        ),
        pytest.param(
            {"US": "gdpr", "US-CA": "us-optout"},
            "US",
            "US-WA",
            "gdpr",
            id="country-override-covers-states",
        ),
        pytest.param({"BR": "gdpr"}, None, None, "gdpr", id="unknown-still-strictest"),
    ],
)
def test_country_regime_overrides(
    overrides: dict[str, str], country: str | None, subdivision: str | None, regime: str
) -> None:
    regions = Settings(secret_key=SECRET, country_regimes=overrides).regions
    assert regions.regime_for(country, subdivision).name == regime


def test_regime_categories(regions: RegionTable) -> None:
    gdpr = regions.regime_for("DE")
    assert {c.value for c in gdpr.opt_in} == {"functionality", "performance", "marketing"}
    assert not gdpr.default_on
    us = regions.regime_for("US")
    assert {c.value for c in us.opt_in} == {"marketing"}
    assert {c.value for c in us.default_on} == {"functionality", "performance"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("DE", "DE", id="upper"),
        pytest.param("de", "DE", id="lower"),
        pytest.param(" fr ", "FR", id="spaces"),
        pytest.param("XX", None, id="cloudflare-unknown"),
        pytest.param("T1", None, id="cloudflare-tor"),
        pytest.param("ZZ", None, id="app-engine-unknown"),
        pytest.param("**", None, id="fastly-unknown"),
        pytest.param("A1", None, id="legacy-anonymous-proxy"),
        pytest.param("EU", None, id="legacy-eu-region"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
        pytest.param("DEU", None, id="alpha3"),
        pytest.param("D", None, id="one-letter"),
        pytest.param("D1", None, id="digit"),
        pytest.param("ÄÖ", None, id="non-ascii"),
        pytest.param("<script>", None, id="garbage"),
    ],
)
def test_normalise_country(value: str | None, expected: str | None) -> None:
    assert normalise_country(value) == expected


@given(st.none() | st.text(max_size=8))
def test_normalise_country_is_ascii_alpha2_or_none(value: str | None) -> None:
    out = normalise_country(value)
    if out is not None:
        assert len(out) == 2 and out.isascii() and out.isalpha() and out.isupper()
        assert out not in UNKNOWN_COUNTRY_CODES


@given(st.none() | st.text(max_size=8))
def test_every_header_value_gets_a_regime(value: str | None) -> None:
    regions = Settings(secret_key=SECRET).regions
    regime = regions.regime_for(normalise_country(value))
    assert regime.name in {"gdpr", "us-optout", "notice"}
