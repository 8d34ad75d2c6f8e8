"""One rule for a missing browser, database or tool: fail under CI, skip elsewhere.

CI must never turn green by skipping the half of the suite that needs Chromium
or PostgreSQL; a developer without them still gets a clear skip reason.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest


def under_ci() -> bool:
    """True when the ``CI`` environment variable is set to a true value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(what: str, reason: str) -> NoReturn:
    """Stop the test: ``pytest.fail`` under CI, ``pytest.skip`` elsewhere."""
    if under_ci():
        pytest.fail(f"CI needs {what}: {reason}", pytrace=False)
    pytest.skip(reason)


def quickscan_loop() -> Any:
    """The C loop of the quick pass (``privguard.core._quickscan.scan``), built at install
    by ``hatch_build.py``; without it, fail under CI and skip elsewhere."""
    try:
        from privguard.core import _quickscan  # type: ignore[attr-defined]
    except ImportError as exc:
        unavailable("the C accelerator (a C compiler and Python's headers at install)", str(exc))
    return _quickscan.scan


def quickscan_fits() -> Any:
    """The page memo's template check in C (``privguard.core._quickscan.fits``), built
    with :func:`quickscan_loop`'s module; without it, fail under CI and skip elsewhere."""
    quickscan_loop()
    from privguard.core import _quickscan  # type: ignore[attr-defined]

    return _quickscan.fits
