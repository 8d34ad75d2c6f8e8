"""The filter's quick pass answers exactly as the whole filter, or leaves it the response.

``quick_headers`` is what both adapters call first for every response: for the usual
answer that is not a page (JSON, an asset, a redirect) it returns the header list
``filter_headers`` would return, without building a ``FilterResult``. These tests
check that, whenever it answers, its list is the whole filter's, pair for pair, in
both string types, and that it declines what only the whole filter may handle -- with
the header loop in C (``privguard.core._quickscan``) and with its Python reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from privguard.core import response
from privguard.core.response import filter_headers, filter_raw_headers, quick_headers
from privguard.runtime import Runtime
from privguard.settings import Settings
from tests.consent import visitor_decision
from tests.needs import quickscan_loop

SECRET = "quick-headers-test-secret-0123456789abcdef"

_PAIRS = st.sampled_from(
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Type", "application/json"),
        ("Content-Type", "application/xhtml+xml"),
        ("content-type", "image/png"),
        ("Content-Length", "1234"),
        ("Set-Cookie", "sessionid=abc; Path=/; HttpOnly"),
        ("Set-Cookie", "_ga=GA1.1.1; Path=/"),
        ("Set-Cookie", "_fbp=fb.1; Path=/"),
        ("Set-Cookie", "mystery=1"),  # undeclared: dropped and reported
        ("Set-Cookie", "privguard_consent=forged"),
        ("Set-Cookie", "no-equals-sign"),
        ("SET-COOKIE", "_fbp=fb.2"),
        ("Referrer-Policy", "no-referrer"),
        ("Permissions-Policy", "camera=()"),
        ("Vary", "Accept-Encoding"),
        ("Cache-Control", "max-age=60"),
        ("Content-Encoding", "gzip"),
        ("privguard-skip", "1"),
        ("ETag", '"abc"'),
        ("X-Custom", "1"),
        ("x-lower", "1"),
    ]
)


@pytest.fixture(autouse=True, params=["c", "python"])
def header_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test once with the C loop (where it was not built: a failure under CI, a
    skip elsewhere) and once with the Python loop."""
    loop = quickscan_loop() if request.param == "c" else response._scan_headers
    saved = response._scan
    response._scan = loop
    try:
        yield request.param
    finally:
        response._scan = saved


RUNTIMES = {
    (debug, unknown): Runtime(
        Settings(secret_key=SECRET, debug_headers=debug, unknown_cookies=unknown)
    )
    for debug in (False, True)
    for unknown in ("block", "allow")  # an undeclared cookie dropped and reported, or passed
}


def _whole(rt: Runtime, pairs: list, decision, raw: bool, status: int, consulted: bool) -> list:
    if raw:
        return filter_raw_headers(
            pairs, decision, rt.settings, status=status, consulted=consulted
        ).headers
    return filter_headers(pairs, decision, rt.settings, status=status, consulted=consulted).headers


@hypothesis_settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the fixture only chooses the loop; every example runs with it
@given(
    pairs=st.lists(_PAIRS, max_size=7),
    visitor=st.sampled_from(["first", "returning", "gpc", "withdrawn"]),
    debug=st.booleans(),
    unknown=st.sampled_from(["block", "allow"]),
    raw=st.booleans(),
    consulted=st.booleans(),
    status=st.sampled_from([200, 404, 302]),
)
def test_the_quick_pass_answers_as_the_whole_filter_or_not_at_all(
    pairs: list[tuple[str, str]],
    visitor: str,
    debug: bool,
    unknown: str,
    raw: bool,
    consulted: bool,
    status: int,
) -> None:
    rt = RUNTIMES[debug, unknown]
    decision = visitor_decision(rt, visitor)
    app: list = [(n.lower().encode(), v.encode()) for n, v in pairs] if raw else list(pairs)
    for attempt in ("first", "again"):
        quick = quick_headers(app, decision, rt.settings, status, consulted, raw)
        whole = _whole(rt, app, decision, raw, status, consulted)
        if quick is not None:
            assert quick == whole, attempt
            names = {(n.decode() if raw else n).lower() for n, _ in app}
            assert not names & {
                "vary",
                "cache-control",
                "referrer-policy",
                "permissions-policy",
                "content-encoding",
                "privguard-skip",
            }, attempt
            if unknown == "block":  # dropped and reported: the whole filter's
                assert not any(v.startswith("mystery=") for _, v in pairs), attempt
            types = [v for n, v in pairs if n.lower() == "content-type"]
            assert len(types) <= 1, attempt  # two types: the whole filter decides
            page = any(v.startswith(("text/html", "application/xhtml")) for v in types)
            assert not (page and status == 200), attempt  # a document: the whole filter


def test_the_usual_json_answer_takes_the_quick_pass_in_both_string_types() -> None:
    rt = Runtime(Settings(secret_key=SECRET))  # its own: no plan made by another test
    decision = visitor_decision(rt, "returning")
    pairs = [
        ("Content-Type", "application/json"),
        ("Content-Length", "28"),
        ("Set-Cookie", "sessionid=abc; Path=/"),
        ("Set-Cookie", "_ga=GA1.1.1; Path=/"),
        ("Set-Cookie", "_fbp=fb.1; Path=/"),
    ]
    for raw in (False, True):
        app: list = [(n.lower().encode(), v.encode()) for n, v in pairs] if raw else pairs
        # the decision's first response: its plan is made by the whole filter
        assert quick_headers(app, decision, rt.settings, 200, False, raw) is None
        whole = _whole(rt, app, decision, raw, 200, False)
        assert quick_headers(app, decision, rt.settings, 200, False, raw) == whole
        names = [(n.decode() if raw else n).lower() for n, _ in whole]
        assert names.count("set-cookie") == 2  # _fbp (marketing) dropped
        assert {"vary", "cache-control", "referrer-policy"} <= set(names)


def test_a_page_an_undeclared_cookie_and_a_new_cookie_name_take_the_whole_filter() -> None:
    rt = RUNTIMES[False, "block"]
    decision = visitor_decision(rt, "returning")
    settings = rt.settings
    page = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "10")]
    _whole(rt, page, decision, False, 200, False)
    assert quick_headers(page, decision, settings, 200, False) is None  # a document
    assert quick_headers(page, decision, settings, 302, False) is not None  # a redirect is not
    undeclared = [("Content-Type", "application/json"), ("Set-Cookie", "mystery=1")]
    _whole(rt, undeclared, decision, False, 200, False)
    assert quick_headers(undeclared, decision, settings, 200, False) is None  # to be reported
    new_name = [("Content-Type", "application/json"), ("Set-Cookie", "csrftoken=1")]
    assert quick_headers(new_name, decision, settings, 200, False) is None  # not judged yet


def test_the_plans_cookie_memos_stay_bounded_and_agree() -> None:
    """Many cookie names: the verdicts and the quick pass's actions are kept for at most
    ``MAX_NAMES`` names and forgotten together, and a forgotten name goes back to the
    whole filter (which judges it again) rather than to a stale answer."""
    from privguard.core.response import ResponsePlan, plan_for

    rt = Runtime(Settings(secret_key=SECRET, cookies={"c*": "necessary"}))
    decision = visitor_decision(rt, "returning")
    settings = rt.settings
    plan = plan_for(decision, settings)
    for i in range(ResponsePlan.MAX_NAMES * 3):
        pairs = [("Content-Type", "application/json"), ("Set-Cookie", f"c{i}=1")]
        _whole(rt, pairs, decision, False, 200, False)
        assert len(plan.verdicts) <= ResponsePlan.MAX_NAMES
        assert set(plan.actions) == set(plan.verdicts)  # every name here is declared
        assert quick_headers(pairs, decision, settings, 200, False) == _whole(
            rt, pairs, decision, False, 200, False
        )
    first = [("Content-Type", "application/json"), ("Set-Cookie", "c0=1")]
    assert "c0" not in plan.actions
    assert quick_headers(first, decision, settings, 200, False) is None
