"""The browser suite fails under CI, and only skips locally, when Chromium is missing."""

from __future__ import annotations

import pytest

from tests.browser.browser_shop import CHROMIUM, chromium_missing_reason, require_chromium


def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs the browser tests"):
        require_chromium("/nonexistent/chromium")


def test_missing_chromium_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        require_chromium("/nonexistent/chromium")


def test_installed_chromium_is_found() -> None:
    assert chromium_missing_reason("/nonexistent/chromium") is not None
    if chromium_missing_reason(CHROMIUM) is None:
        require_chromium(CHROMIUM)  # returns quietly
