"""One Chromium per test module of the browser suite (Debian's, headless).

Missing Chromium fails under ``CI`` and skips elsewhere (:func:`require_chromium`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.browser_shop import launch_chromium, require_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The browser the module's tests open their contexts in."""
    require_chromium()
    with launch_chromium() as b:
        yield b
