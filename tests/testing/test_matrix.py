"""visitor_matrix(): the usual visitors through one GET, in-process, WSGI and ASGI."""

from __future__ import annotations

import pytest

from privguard.testing import visitor_matrix
from tests.audit.apps import SETTINGS, bare_asgi, bare_wsgi, clean_asgi, clean_wsgi

LABELS = [
    "EEA, no choice",
    "EEA, rejected",
    "EEA, accepted",
    "California, GPC",
    "rest of world",
    "EEA, minor",
]


@pytest.mark.parametrize("app", [clean_wsgi, clean_asgi], ids=["wsgi", "asgi"])
def test_clean_app(app: object) -> None:
    result = visitor_matrix(app, "/")  # settings found inside the middleware
    result.assert_clean()
    assert [row.label for row in result.rows] == LABELS
    rows = {row.label: row for row in result.rows}
    assert rows["EEA, no choice"].cookies == (("session", "necessary"),)
    assert rows["EEA, no choice"].banner_shown is True
    assert ("_ga", "performance") in rows["EEA, accepted"].cookies
    assert rows["EEA, accepted"].banner_shown is False
    assert ("_ga", "performance") in rows["California, GPC"].cookies
    assert "marketing" not in rows["California, GPC"].allowed
    assert rows["rest of world"].banner_shown is True
    assert rows["EEA, minor"].cookies == (("session", "necessary"),)
    assert rows["EEA, minor"].banner_shown is False
    table = result.table()
    assert table.startswith("GET /\nvisitor")
    assert "EEA, accepted    200     session (necessary), _ga (performance)  hidden  ok" in table


@pytest.mark.parametrize("app", [bare_wsgi, bare_asgi], ids=["wsgi", "asgi"])
def test_leaky_app(app: object) -> None:
    result = visitor_matrix(app, "/", SETTINGS)
    rows = {row.label: row for row in result.rows}
    assert rows["EEA, accepted"].ok
    assert "_ga (performance) set but not allowed" in rows["EEA, no choice"].problems
    assert rows["rest of world"].problems == ("banner missing",)
    with pytest.raises(AssertionError) as info:
        result.assert_clean()
    message = str(info.value)
    assert "DE visitor, no consent choice yet: _ga (performance) set but not allowed" in message
    assert "DE visitor, minor, no consent choice yet: _ga (performance)" in message
    assert "EEA, rejected" in message  # the table follows


def test_app_without_privguard_needs_settings() -> None:
    with pytest.raises(TypeError, match="pass settings="):
        visitor_matrix(bare_wsgi, "/")
