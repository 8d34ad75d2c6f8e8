"""The ``start_response`` the WSGI adapter hands the app, as PEP 3333 has it: once, or again
only with ``exc_info``; called during the body by a lazy app; on the quick pass (the
usual answer, the decision's plan made) as on the whole filter (a decision's first
answer, a page, privguard's own cookie on a withdrawal signal)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from privguard.wsgi import PrivacyMiddleware

SECRET = "wsgi-start-response-secret-0123456789abcdef"
JSON = [("Content-Type", "application/json"), ("Set-Cookie", "sessionid=1"),
        ("Set-Cookie", "_fbp=1")]  # fmt: skip
PAGE = [("Content-Type", "text/html; charset=utf-8")]
ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/api", "SERVER_NAME": "shop.example",
    "SERVER_PORT": "80", "wsgi.url_scheme": "http", "REMOTE_ADDR": "203.0.113.7",
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
}  # fmt: skip


class Server:
    """A server's start_response that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.calls.append((status, list(headers), exc_info))
        return lambda data: None


def _serve(mw: PrivacyMiddleware, environ: dict[str, Any] | None = None) -> tuple[Server, bytes]:
    server = Server()
    body = b"".join(mw(dict(environ or ENVIRON), server))
    return server, body


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [v.split("=", 1)[0] for n, v in headers if n == "Set-Cookie"]


@pytest.mark.parametrize("answers", [1, 2, 3], ids=["first", "quick", "quick-again"])
def test_a_second_call_without_exc_info_is_refused(answers: int) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", list(JSON))
        start_response("200 OK", list(JSON))
        return [b"{}"]

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    for _ in range(answers - 1):  # the decision's plan made, for the quick pass
        with pytest.raises(RuntimeError):
            _serve(mw)
    with pytest.raises(RuntimeError, match="twice without exc_info"):
        _serve(mw)


@pytest.mark.parametrize("headers", [JSON, PAGE], ids=["json", "page"])
def test_a_second_call_with_exc_info_reaches_the_server_filtered(headers: list) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", list(headers))
        try:
            raise ValueError("the app failed after starting")
        except ValueError:
            start_response("500 Internal Server Error", list(JSON), sys.exc_info())
        return [b"failed"]

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    for _ in range(3):  # the whole filter first, then the quick pass
        server, body = _serve(mw)
        assert body == b"failed"  # the error's body, no banner in it
        # a JSON answer went out at once, so the server saw both starts; a page was held
        # back for the banner, so the error's start replaced it and went out alone
        assert len(server.calls) == (2 if headers is JSON else 1)
        last = server.calls[-1]
        assert last[0] == "500 Internal Server Error"
        assert last[2] is not None and last[2][0] is ValueError
        assert _names(last[1]) == ["sessionid"]  # the marketing cookie dropped there too
        assert dict(last[1])["Content-Type"] == "application/json"


def test_a_lazy_app_is_filtered_when_it_starts() -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            start_response("200 OK", list(JSON))  # only once the server asks for the body
            yield b'{"ok": '
            yield b"true}"

        return body()

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    for _ in range(3):
        server, body = _serve(mw)
        assert body == b'{"ok": true}'
        assert len(server.calls) == 1
        assert _names(server.calls[0][1]) == ["sessionid"]


def test_the_quick_pass_answers_as_the_first_answer() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", list(JSON))
        return [b"{}"]

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    answers = [_serve(mw)[0].calls for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    headers = answers[0][0][1]
    assert _names(headers) == ["sessionid"]
    assert ("Cache-Control", "private") in headers  # a cookie dropped for this visitor


def test_a_withdrawal_signal_sends_privguards_cookie_on_every_answer() -> None:
    """A visitor who sends GPC after accepting everything: privguard's own cookie is
    rewritten on each answer (the whole filter), the marketing cookie dropped."""
    from privguard.core.categories import Category
    from privguard.core.consent import ConsentCodec, ConsentState

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", list(JSON))
        return [b"{}"]

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    settings = mw.settings
    state = ConsentState(
        version=settings.policy_version, granted=frozenset(Category), receipt_id=None,
        regime="gdpr",
    )  # fmt: skip
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    cookie = f"{settings.consent_cookie_name(False)}={codec.dump(state)}"
    environ = {**ENVIRON, "HTTP_COOKIE": cookie, "HTTP_SEC_GPC": "1"}
    for _ in range(3):
        server, _ = _serve(mw, environ)
        names = _names(server.calls[0][1])
        assert "_fbp" not in names
        assert any(n.endswith("privguard_consent") for n in names), names
