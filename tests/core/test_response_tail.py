"""The pairs the filter appends to the usual response, written down as a rule.

A response whose app sent no ``Vary``, ``Cache-Control`` or (for a page)
``Permissions-Policy`` of its own, and that carries no cookie of privguard's own,
takes the filter's short way: the pairs privguard appends are worked out once per
decision and shape (``ResponsePlan.tail``) and reused. These tests state what they
must be, independently of how the filter builds them, and check every shape in both
string types, the first time (worked out) and the second (reused).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from privguard._adapter import HTML_VARY
from privguard.core.categories import Category
from privguard.core.headers import (
    DEFAULT_REFERRER_POLICY,
    merge_permissions_policy,
    merge_vary,
)
from privguard.core.response import changed_headers, filter_headers, filter_raw_headers
from privguard.runtime import Runtime
from privguard.settings import Settings
from tests.consent import visitor_decision

SECRET = "response-tail-test-secret-0123456789abcdef"

_PAIRS = st.sampled_from(
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Type", "application/json"),
        ("Content-Length", "1234"),
        ("Set-Cookie", "sessionid=abc; Path=/; HttpOnly"),
        ("Set-Cookie", "_ga=GA1.1.1; Path=/"),
        ("Set-Cookie", "_fbp=fb.1; Path=/"),
        ("Set-Cookie", "mystery=1"),
        ("Referrer-Policy", "no-referrer"),
        ("Permissions-Policy", "camera=()"),  # kept as it is on a non-page
        ("ETag", '"abc"'),
        ("X-Custom", "1"),
    ]
)

RUNTIMES = {
    debug: Runtime(Settings(secret_key=SECRET, debug_headers=debug)) for debug in (False, True)
}


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    pairs=st.lists(_PAIRS, max_size=7),
    visitor=st.sampled_from(["first", "returning", "gpc", "withdrawn"]),
    debug=st.booleans(),
    raw=st.booleans(),
    changed=st.booleans(),
    bot_vary=st.booleans(),
    status=st.sampled_from([200, 404, 302]),
)
def test_the_appended_pairs_follow_the_rule(
    pairs: list[tuple[str, str]],
    visitor: str,
    debug: bool,
    raw: bool,
    changed: bool,
    bot_vary: bool,
    status: int,
) -> None:
    rt = RUNTIMES[debug]
    settings = rt.settings
    decision = visitor_decision(rt, visitor)
    vary_extra = HTML_VARY if bot_vary else ()
    ctypes = [v for n, v in pairs if n == "Content-Type"]
    if len(ctypes) > 1:  # one Content-Type per response
        pairs = [p for p in pairs if p[0] != "Content-Type"] + [("Content-Type", ctypes[0])]
    html = bool(ctypes) and ctypes[0].startswith("text/html")
    if html and status not in (300, 301, 302, 303, 307, 308):
        pairs = [p for p in pairs if p[0] != "Permissions-Policy"]  # a page's is merged anew
    for attempt in ("worked out", "reused"):
        if raw:
            app_raw = [(n.lower().encode(), v.encode()) for n, v in pairs]
            result = filter_raw_headers(
                app_raw, decision, settings, changed=changed, vary_extra=vary_extra, status=status
            )
            got = [(n.decode(), v.decode()) for n, v in result.headers]
        else:
            result = filter_headers(
                pairs, decision, settings, changed=changed, vary_extra=vary_extra, status=status
            )
            got = [(n, v) for n, v in result.headers]
        # what the app sent and privguard kept, then privguard's own pairs
        kept_names = {name for name, _ in result.dropped}
        kept = [
            (n, v) for n, v in pairs if not (n == "Set-Cookie" and v.split("=", 1)[0] in kept_names)
        ]
        kept_got = got[: len(kept)]
        assert [(n.lower(), v) for n, v in kept_got] == [(n.lower(), v) for n, v in kept], attempt
        added = [(n.lower(), v) for n, v in got[len(kept) :]]
        want = (
            [("referrer-policy", DEFAULT_REFERRER_POLICY)]
            if not any(n == "Referrer-Policy" for n, _ in pairs)
            else []
        )
        private = (
            changed
            or bool(decision.expire)
            or any(
                category is not None and category is not Category.NECESSARY
                for _, category in result.dropped
            )
        )
        varies = (
            private
            or result.document
            or debug
            or any(n == "Set-Cookie" and v.startswith(("_ga=", "_fbp=")) for n, v in kept)
        )
        if varies:
            want += [("set-cookie", value) for value in decision.expire]
            if result.document and Category.MARKETING not in decision.allowed:
                want.append(("permissions-policy", merge_permissions_policy(None)))
            vary = merge_vary((), decision.vary + vary_extra)
            if vary:
                want.append(("vary", vary))
            if private:
                want.append(("cache-control", "private"))
            if debug:
                want.append(
                    ("privguard-region", decision.subdivision or decision.country or "unknown")
                )
                want.append(("privguard-regime", decision.regime.name))
        assert added == want, attempt
        # a page: changed_headers() reuses everything before the Vary, and gives what a
        # second pass over the app's headers, body changed, would
        if result.document:
            again = changed_headers(result, decision, settings, HTML_VARY)
            if raw:
                second = filter_raw_headers(
                    app_raw,
                    decision,
                    settings,
                    changed=True,
                    vary_extra=HTML_VARY,
                    status=status,
                ).headers
            else:
                second = filter_headers(
                    pairs, decision, settings, changed=True, vary_extra=HTML_VARY, status=status
                ).headers
            assert again == second, attempt
