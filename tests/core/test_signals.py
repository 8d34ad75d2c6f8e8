"""Sec-GPC / DNT: "1" is a signal, anything else is not (core/signals.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.core.signals import is_signal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1", True, id="one"),
        pytest.param(None, False, id="absent"),
        pytest.param("", False, id="empty"),
        pytest.param("0", False, id="zero"),
        pytest.param(" 1 ", True, id="ows-around"),
        pytest.param("1, 1", True, id="repeated-fields-joined"),
        pytest.param("0, 1", True, id="any-exact-one-counts"),
        pytest.param("foo, 1", True, id="garbage-and-one"),
        pytest.param("true", False, id="true"),
        pytest.param("yes", False, id="yes"),
        pytest.param("01", False, id="leading-zero"),
        pytest.param("1.0", False, id="float"),
        pytest.param("11", False, id="eleven"),
        pytest.param("1;q=1", False, id="parameters"),
        pytest.param('"1"', False, id="quoted"),
        pytest.param("１", False, id="fullwidth-digit"),
        pytest.param("\t1\t", True, id="tabs"),
        pytest.param(",", False, id="comma-only"),
    ],
)
def test_is_signal(value: str | None, expected: bool) -> None:
    assert is_signal(value) is expected


@given(st.text(max_size=20))
def test_signal_needs_an_exact_one_element(value: str) -> None:
    expected = any(part.strip(" \t") == "1" for part in value.split(","))
    assert is_signal(value) is expected


@given(st.lists(st.text(alphabet=" \t0123456789abc", max_size=4), max_size=4))
def test_joined_fields_signal_when_one_field_is_one(fields: list[str]) -> None:
    joined = ", ".join(fields)
    assert is_signal(joined) is any(f.strip(" \t") == "1" for f in fields)
