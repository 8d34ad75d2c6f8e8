"""changed_headers(): a page's headers once privguard changed its body, without a second
filter pass, must equal what filtering the app's headers again with ``changed=True`` gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from privguard._adapter import HTML_VARY
from privguard.core.response import changed_headers, filter_headers, filter_raw_headers
from privguard.runtime import Runtime
from privguard.settings import Settings
from tests.consent import visitor_decision

SECRET = "changed-headers-test-secret-0123456789abcdef"

_PAIRS = st.sampled_from(
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("content-type", "application/json"),
        ("Content-Length", "1234"),
        ("content-length", "99"),
        ("Set-Cookie", "sessionid=abc; Path=/; HttpOnly"),
        ("Set-Cookie", "_ga=GA1.1.1; Path=/"),
        ("set-cookie", "_fbp=fb.1; Path=/"),
        ("Set-Cookie", "mystery=1"),
        ("Vary", "Accept-Encoding"),
        ("Cache-Control", "max-age=60"),
        ("Permissions-Policy", "camera=()"),
        ("Referrer-Policy", "no-referrer"),
        ("ETag", '"abc"'),
        ("X-Custom", "1"),
        ("Content-Encoding", "identity"),
    ]
)
_HTML = ("Content-Type", "text/html; charset=utf-8")


def _runtime(debug: bool) -> Runtime:
    return Runtime(Settings(secret_key=SECRET, debug_headers=debug))


RUNTIMES = {debug: _runtime(debug) for debug in (False, True)}


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(_PAIRS, max_size=8),
    html_first=st.booleans(),
    visitor=st.sampled_from(["first", "first-with-ga", "returning", "gpc"]),
    debug=st.booleans(),
    raw=st.booleans(),
    drop_length=st.booleans(),
    own=st.booleans(),
    status=st.sampled_from([200, 404, 302]),
)
def test_changed_headers_equal_a_second_filter(
    pairs: list[tuple[str, str]],
    html_first: bool,
    visitor: str,
    debug: bool,
    raw: bool,
    drop_length: bool,
    own: bool,
    status: int,
) -> None:
    rt = RUNTIMES[debug]
    settings = rt.settings
    decision = visitor_decision(rt, visitor)
    headers = [_HTML, *pairs] if html_first else pairs
    extra = ("privguard_consent=x; Path=/",) if own else ()
    if raw:
        app: list = [(n.lower().encode(), v.encode()) for n, v in headers]
        first = filter_raw_headers(app, decision, settings, extra, status=status)
        again = filter_raw_headers(
            app, decision, settings, extra, changed=True, vary_extra=HTML_VARY, status=status
        ).headers
        length: object = b"content-length"
    else:
        app = headers
        first = filter_headers(app, decision, settings, extra, status=status)
        again = filter_headers(
            app, decision, settings, extra, changed=True, vary_extra=HTML_VARY, status=status
        ).headers
        length = "content-length"
    found = changed_headers(first, decision, settings, HTML_VARY, drop_length)
    names = {n.lower() for n, _ in headers}
    reusable = first.document and not names & {"vary", "cache-control"}
    assert (found is not None) == reusable
    if found is None:
        return
    if drop_length:
        again = [(n, v) for n, v in again if n.lower() != length]
    assert found == again


def test_a_page_whose_app_sent_vary_is_filtered_again() -> None:
    rt = RUNTIMES[False]
    decision = visitor_decision(rt, "first")
    first = filter_headers([_HTML, ("Vary", "Cookie")], decision, rt.settings)
    assert first.document
    assert changed_headers(first, decision, rt.settings, HTML_VARY) is None


def test_a_page_becomes_private_and_varies_by_language() -> None:
    rt = RUNTIMES[False]
    decision = visitor_decision(rt, "returning")
    app = [_HTML, ("Content-Length", "10"), ("Set-Cookie", "sessionid=1")]
    first = filter_headers(app, decision, rt.settings)
    found = changed_headers(first, decision, rt.settings, HTML_VARY, drop_length=True)
    assert found is not None
    got = dict(found)
    assert got["Cache-Control"] == "private"
    assert "Accept-Language" in got["Vary"] and "User-Agent" in got["Vary"]
    assert "Content-Length" not in got
    assert ("Set-Cookie", "sessionid=1") in found


_NAMES = st.sampled_from(
    ["Content-Length", "content-length", "CONTENT-LENGTH", "Content-length", "Content-Type",
     "X-Content-Length", "Content-Lengths", "Content_Length", "Set-Cookie", "ETag"]
)  # fmt: skip


@given(st.lists(st.tuples(_NAMES, st.sampled_from(["1", "22", "abc"])), max_size=8))
def test_content_length_is_found_and_dropped_in_any_case(pairs: list[tuple[str, str]]) -> None:
    from privguard.core.response import content_length, without_length

    raw = [(n.lower().encode(), v.encode()) for n, v in pairs]
    for headers, length in ((pairs, "content-length"), (raw, b"content-length")):
        others = [p for p in headers if p[0].lower() != length]
        values = [p[1] for p in headers if p[0].lower() == length]
        assert content_length(headers) == (values[0] if values else None)
        assert without_length(headers) == others
