"""pytest plugin loaded into a framework's *own* test suite (``-p transparency_plugin``).

It does two things, driven by environment variables that
``scripts/transparency.py`` sets:

``PRIVGUARD_TRANSPARENCY_WRAP``
    ``asgi``: every app handed to ``starlette.testclient.TestClient`` (Starlette's
    and FastAPI's suites) is wrapped in :class:`privguard.asgi.PrivacyMiddleware`.
    ``wsgi``: every ``flask.Flask`` has its ``wsgi_app`` wrapped in
    :class:`privguard.wsgi.PrivacyMiddleware` as ``privguard.protect`` does.
    Empty or unset: nothing is wrapped (the bare run).
``PRIVGUARD_TRANSPARENCY_OUT``
    a JSON file that receives ``{"outcomes": {test id: outcome}, "messages":
    {test id: first line of the failure}}`` when the session ends.

The settings are the defaults a shop gets, with a fixed secret and no ledger
file (the suites never post a choice): every request is a first-time visitor
of unknown origin, so the strictest regime (``gdpr``) applies.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import pytest

WRAP = os.environ.get("PRIVGUARD_TRANSPARENCY_WRAP", "")
OUT = os.environ.get("PRIVGUARD_TRANSPARENCY_OUT", "")

# The options of the wrapped run; the report names them.
OPTIONS: dict[str, Any] = {
    "secret_key": "transparency-check-secret-0123456789abcdef",
    "ledger": None,
}

_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}


def _wrap_asgi() -> None:
    from starlette import testclient

    from privguard import Settings
    from privguard.asgi import PrivacyMiddleware

    settings = Settings(**OPTIONS)
    original = testclient.TestClient.__init__

    @functools.wraps(original)
    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(app, PrivacyMiddleware):
            if not testclient._is_asgi3(app):
                app = testclient._WrapASGI2(app)
            app = PrivacyMiddleware(app, settings)
        original(self, app, *args, **kwargs)

    testclient.TestClient.__init__ = __init__  # type: ignore[method-assign]


def _wrap_wsgi() -> None:
    import flask

    from privguard import Settings
    from privguard.wsgi import PrivacyMiddleware

    settings = Settings(**OPTIONS)
    original = flask.Flask.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.wsgi_app = PrivacyMiddleware(self.wsgi_app, settings)

    flask.Flask.__init__ = __init__  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    if WRAP == "asgi":
        _wrap_asgi()
    elif WRAP == "wsgi":
        _wrap_wsgi()
    elif WRAP:
        raise pytest.UsageError(f"PRIVGUARD_TRANSPARENCY_WRAP={WRAP!r}: use asgi, wsgi or nothing")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Fold setup/call/teardown into one outcome per test id; a failure anywhere wins."""
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"
    else:
        outcome = previous or "passed"
    if previous in ("failed", "error") and outcome not in ("failed", "error"):
        return
    _outcomes[report.nodeid] = outcome
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        _messages[report.nodeid] = message.splitlines()[0][:300] if message else ""


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that cannot be imported (or skips itself) counts as one test under its id."""
    if report.failed:
        _outcomes[report.nodeid] = "error"
        _messages[report.nodeid] = str(report.longrepr).strip().splitlines()[-1][:300]
    elif report.skipped:
        _outcomes[report.nodeid] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if OUT:
        with open(OUT, "w", encoding="utf-8") as fh:
            json.dump({"outcomes": _outcomes, "messages": _messages}, fh, indent=0, sort_keys=True)
