"""Test helpers for shops using privguard: visitors, response assertions, a visitor matrix.

With pytest, installing privguard enables the plugin (:mod:`privguard.testing.plugin`):
the ``privguard_visitor`` factory fixture and the ``@pytest.mark.privguard_visitor(...)``
marker. Without pytest, build visitors with :func:`make_visitor`.

Every assertion takes a webtest, werkzeug/Flask, Starlette/httpx or requests
response and raises :class:`AssertionError` naming the cookie, its category and
the visitor::

    def test_first_visit(client, privguard_visitor):  # werkzeug's test client
        visitor = privguard_visitor(country="DE")
        response = client.get("/", environ_overrides=visitor.environ)
        assert_no_nonessential_cookies(response)
        assert_banner_shown(response)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privguard.testing.assertions import assert_banner_hidden as assert_banner_hidden
    from privguard.testing.assertions import assert_banner_shown as assert_banner_shown
    from privguard.testing.assertions import assert_cookie_allowed as assert_cookie_allowed
    from privguard.testing.assertions import assert_cookie_blocked as assert_cookie_blocked
    from privguard.testing.assertions import assert_cookie_expired as assert_cookie_expired
    from privguard.testing.assertions import (
        assert_no_nonessential_cookies as assert_no_nonessential_cookies,
    )
    from privguard.testing.assertions import banner_state as banner_state
    from privguard.testing.assertions import cookies_set as cookies_set
    from privguard.testing.matrix import MatrixResult as MatrixResult
    from privguard.testing.matrix import MatrixRow as MatrixRow
    from privguard.testing.matrix import visitor_matrix as visitor_matrix
    from privguard.testing.responses import ResponseData as ResponseData
    from privguard.testing.responses import read_response as read_response
    from privguard.testing.visitors import STANDARD_VISITORS as STANDARD_VISITORS
    from privguard.testing.visitors import VISITOR_PEER as VISITOR_PEER
    from privguard.testing.visitors import Visitor as Visitor
    from privguard.testing.visitors import make_visitor as make_visitor

# Loaded on first use: the pytest plugin imports this package in every test run.
_EXPORTS = {
    "assert_banner_hidden": "privguard.testing.assertions",
    "assert_banner_shown": "privguard.testing.assertions",
    "assert_cookie_allowed": "privguard.testing.assertions",
    "assert_cookie_blocked": "privguard.testing.assertions",
    "assert_cookie_expired": "privguard.testing.assertions",
    "assert_no_nonessential_cookies": "privguard.testing.assertions",
    "banner_state": "privguard.testing.assertions",
    "cookies_set": "privguard.testing.assertions",
    "MatrixResult": "privguard.testing.matrix",
    "MatrixRow": "privguard.testing.matrix",
    "visitor_matrix": "privguard.testing.matrix",
    "ResponseData": "privguard.testing.responses",
    "read_response": "privguard.testing.responses",
    "STANDARD_VISITORS": "privguard.testing.visitors",
    "VISITOR_PEER": "privguard.testing.visitors",
    "Visitor": "privguard.testing.visitors",
    "make_visitor": "privguard.testing.visitors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Visitor",
    "make_visitor",
    "VISITOR_PEER",
    "STANDARD_VISITORS",
    "assert_no_nonessential_cookies",
    "assert_cookie_allowed",
    "assert_cookie_blocked",
    "assert_cookie_expired",
    "assert_banner_shown",
    "assert_banner_hidden",
    "banner_state",
    "cookies_set",
    "visitor_matrix",
    "MatrixResult",
    "MatrixRow",
    "ResponseData",
    "read_response",
]
