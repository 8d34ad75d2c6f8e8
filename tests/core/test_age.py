import datetime as dt

import pytest

from privguard.core.age import AgeAnswerError, carry_age_status, judge_age, parse_birth
from privguard.settings import Settings

TODAY = dt.date(2026, 11, 25)

COUNTRIES = ["DE", "FR", "AT", "BE", "GB", "IE", "US", "BR", None]
POLICY = {"DE": 16, "FR": 16, "AT": 16, "BE": 16, "GB": 16, "IE": 16, "US": 13, "BR": 13, None: 16}
MEMBER = {"DE": 16, "FR": 15, "AT": 14, "BE": 13, "GB": 13, "IE": 16, "US": 13, "BR": 13, None: 16}


@pytest.mark.parametrize("country", COUNTRIES, ids=lambda c: c or "unknown")
@pytest.mark.parametrize(("rule", "table"), [("policy", POLICY), ("member-state", MEMBER)])
def test_required_age_by_rule(rule, table, country):
    rules = Settings(secret_key="k" * 32, age_rule=rule).age_rules
    assert rules.required_age(country) == table[country]


def test_member_state_defaults_and_overrides():
    rules = Settings(
        secret_key="k" * 32, age_rule="member-state", age_overrides={"BR": 16}
    ).age_rules
    assert rules.required_age("CH") == 16  # gdpr regime, no own Art. 8 age
    assert rules.required_age("GF") == 16
    assert rules.required_age("BR") == 16


@pytest.mark.parametrize(
    ("birth_date", "birth_year", "required", "expected"),
    [
        pytest.param("2010-11-25", None, 16, "adult", id="16-today"),
        pytest.param("2010-11-26", None, 16, "minor", id="16-tomorrow"),
        pytest.param("2013-01-01", None, 13, "adult", id="13-us"),
        pytest.param(None, "2010", 16, "minor", id="year-counts-as-youngest"),
        pytest.param(None, 2009, 16, "adult", id="year-int"),
        pytest.param(None, "1900", 13, "adult", id="old"),
    ],
)
def test_judge(birth_date, birth_year, required, expected):
    assert judge_age(parse_birth(birth_date, birth_year, TODAY), required, TODAY) == expected


@pytest.mark.parametrize(
    ("birth_date", "birth_year"),
    [
        pytest.param("2030-01-01", None, id="future-date"),
        pytest.param(None, "2027", id="future-year"),
        pytest.param("1800-01-01", None, id="over-130"),
        pytest.param(None, 1880, id="year-over-130"),
        pytest.param("2010-02-30", None, id="not-a-date"),
        pytest.param("10/11/2010", None, id="wrong-format"),
        pytest.param(None, "twenty", id="word"),
        pytest.param(None, True, id="bool"),
        pytest.param(None, None, id="nothing"),
        pytest.param(["2010-01-01"], None, id="list"),
    ],
)
def test_bad_answers(birth_date, birth_year):
    with pytest.raises(AgeAnswerError):
        parse_birth(birth_date, birth_year, TODAY)


@pytest.mark.parametrize(
    ("stored", "threshold", "required", "expected"),
    [
        ("minor", 16, 13, "minor"),
        ("adult", 16, 13, "adult"),
        ("adult", 13, 16, "unknown"),
        ("adult", None, 13, "unknown"),
        ("unknown", None, 13, "unknown"),
    ],
)
def test_carry_age_status(stored, threshold, required, expected):
    assert carry_age_status(stored, threshold, required) == expected
