"""The WSGI adapter reads a status line's code once per distinct line (bounded), and a
line without a code still gets its headers filtered."""

from __future__ import annotations

from typing import Any

from privguard import wsgi
from privguard.wsgi import PrivacyMiddleware

SECRET = "wsgi-status-code-secret-0123456789abcdef"


def _call(status: str) -> list[tuple[str, str]]:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json"), ("Set-Cookie", "_fbp=1")])
        return [b"{}"]

    mw = PrivacyMiddleware(app, secret_key=SECRET, ledger=None)
    seen: list[Any] = []
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/api", "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "REMOTE_ADDR": "203.0.113.7",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
    }  # fmt: skip
    for _ in range(2):  # the whole filter, then the quick pass
        list(mw(dict(environ), lambda s, h, e=None: seen.append((s, h))))
    assert seen[0] == seen[1]
    assert seen[0][0] == status  # the app's line goes out as it came
    return seen[0][1]


def test_status_codes_are_read_and_remembered_within_a_bound() -> None:
    assert wsgi._status_code("204 No Content") == 204
    assert wsgi._status_code("OK") == 0
    assert wsgi._CODES["204 No Content"] == 204
    for n in range(1000):
        wsgi._status_code(f"200 Fine {n}")
    assert len(wsgi._CODES) <= 256


def test_a_line_with_or_without_a_code_gets_its_headers_filtered() -> None:
    for status in ("200 OK", "302 Found", "OK", "999 Strange"):
        headers = _call(status)
        assert ("Set-Cookie", "_fbp=1") not in headers, status  # marketing, no consent
        assert any(n == "Vary" for n, _ in headers), status
