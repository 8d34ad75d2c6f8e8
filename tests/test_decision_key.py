"""The decision memo's key built from the raw ASGI header list (no request view on a hit)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from privguard.asgi import PrivacyMiddleware
from privguard.settings import Settings
from tests.consent import consent_cookie

SECRET = "decision-key-test-secret-0123456789abcdef"


def _consent(settings: Settings) -> bytes:
    return consent_cookie(settings, https=True).encode()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"_ga=1; Path=/")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def _set_cookies(mw: PrivacyMiddleware, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "https",
        "headers": headers,
        "client": ("203.0.113.7", 1234),
        "server": ("shop.example", 443),
        "query_string": b"",
    }
    asyncio.run(mw(scope, None, send))
    return [v for n, v in sent[0]["headers"] if n == b"set-cookie"]


def test_split_cookie_headers_are_joined_and_memo_keys_stay_apart() -> None:
    settings = Settings(secret_key=SECRET, country_header="cf-ipcountry")
    mw = PrivacyMiddleware(_app, settings=settings)
    consent = _consent(settings)
    base = [(b"host", b"shop.example"), (b"cf-ipcountry", b"DE")]
    # HTTP/2 may split the Cookie field: the consent in the second one still counts
    assert _set_cookies(mw, [*base, (b"cookie", b"sid=1"), (b"cookie", consent)]) == [
        b"_ga=1; Path=/"
    ]
    # one field: decided once, then a memo hit on the raw key, the same answer
    joined = [*base, (b"cookie", b"sid=1; " + consent)]
    assert _set_cookies(mw, joined) == [b"_ga=1; Path=/"]
    assert _set_cookies(mw, joined) == [b"_ga=1; Path=/"]
    # without the consent the key differs: the consenting visitor's answer is not reused
    assert _set_cookies(mw, [*base, (b"cookie", b"sid=1")]) == []
    assert _set_cookies(mw, [*base, (b"cookie", b"sid=1"), (b"cookie", b"x=2")]) == []


_NAMES = [b"host", b"cookie", b"user-agent", b"accept-language", b"x-forwarded-for", b"sec-gpc",
          b"dnt", b"forwarded", b"content-type", b"x-other", b"accept"]  # fmt: skip


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    picked=st.lists(st.sampled_from(_NAMES), unique=True, max_size=len(_NAMES)),
    values=st.lists(st.binary(max_size=40), min_size=len(_NAMES), max_size=len(_NAMES)),
)
def test_the_view_from_the_header_dict_is_the_view_from_the_list(
    picked: list[bytes], values: list[bytes]
) -> None:
    """With no repeated field, the fast lane's dict gives the same view as the list walk."""
    mw = PrivacyMiddleware(_app, secret_key=SECRET, ledger=None)
    headers = list(zip(picked, values, strict=False))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers,
             "client": ("198.51.100.7", 1), "server": ("shop.example", 80)}  # fmt: skip
    slow, fast = mw.view(scope), mw.view(scope, dict(headers))
    assert (fast.host, fast.peer, fast.path, dict(fast.headers)) == (
        slow.host,
        slow.peer,
        slow.path,
        dict(slow.headers),
    )
