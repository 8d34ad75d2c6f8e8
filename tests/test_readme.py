"""The README's quick-start snippets run as written and protect the app they build.

Each fenced ``python`` block whose first line is ``# quickstart: <name>`` is executed
in a fresh namespace; the ``app`` it leaves behind must answer a first-time visitor
with the banner and without non-essential cookies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from webtest import TestApp

from privguard.testing import assert_banner_shown, assert_no_nonessential_cookies

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(# quickstart: (\w+)\n.*?)^```", re.MULTILINE | re.DOTALL)
HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html",
}


def quickstarts() -> dict[str, str]:
    """``name -> code`` of every quick-start block in README.md."""
    return {m.group(2): m.group(1) for m in BLOCK.finditer(README.read_text("utf-8"))}


def run_snippet(name: str) -> Any:
    code = quickstarts()[name]
    namespace: dict[str, Any] = {"__name__": f"readme_quickstart_{name}"}
    exec(compile(code, f"README.md (quickstart: {name})", "exec"), namespace)
    assert "app" in namespace, f"the {name} quick start must leave an `app` behind"
    return namespace["app"]


def test_readme_has_both_quickstarts() -> None:
    assert {"flask", "starlette"} <= set(quickstarts())


def test_flask_quickstart_protects_the_app() -> None:
    app = run_snippet("flask")
    response = TestApp(app).get("/", headers=HEADERS)
    assert "Welcome" in response.text
    assert_banner_shown(response)
    assert_no_nonessential_cookies(response)
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_starlette_quickstart_protects_the_app() -> None:
    app = run_snippet("starlette")
    with TestClient(app) as client:
        response = client.get("/", headers=HEADERS)
    assert "Welcome" in response.text
    assert_banner_shown(response)
    assert_no_nonessential_cookies(response)
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("name", ["flask", "starlette"])
def test_quickstart_answers_privguard_endpoints(name: str) -> None:
    app = run_snippet(name)
    if name == "flask":
        state = TestApp(app).get("/privguard/consent", headers=HEADERS).json
    else:
        with TestClient(app) as client:
            state = client.get("/privguard/consent", headers=HEADERS).json()
    assert state["regime"] == "gdpr" and state["needs_banner"] is True  # unknown: strictest
