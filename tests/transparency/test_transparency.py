"""The transparency check (scripts/transparency.py): its comparison, and Starlette's suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "transparency.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transparency_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


tr = _script()


def _run(outcomes: dict[str, str]) -> object:
    ids = {f"tests/test_x.py::{name}": outcome for name, outcome in outcomes.items()}
    return tr.Run(ids, dict.fromkeys(ids, "boom"), 1.0, 1)


@pytest.fixture
def expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "expected.toml"
    monkeypatch.setattr(tr, "EXPECTED", path)
    return path


def test_listed_wrapped_only_failures_pass_the_check(expected: Path) -> None:
    expected.write_text(
        '[[demo]]\nverdict = "right"\nreason = "blocked"\ntests = ["tests/test_x.py::test_a"]\n'
    )
    fw = tr.Framework("demo", "asgi", ())
    bare = _run({"test_a[asyncio]": "passed", "test_a[trio]": "passed", "test_b": "failed"})
    wrapped = _run({"test_a[asyncio]": "failed", "test_a[trio]": "error", "test_b": "failed"})
    result = tr.compare(fw, "1.0", bare, wrapped)
    assert result.ok
    assert sorted(result.wrapped_only) == [
        "tests/test_x.py::test_a[asyncio]",
        "tests/test_x.py::test_a[trio]",
    ]
    assert result.bare_only == []


def test_an_unlisted_wrapped_only_failure_fails_the_check(expected: Path) -> None:
    expected.write_text(
        '[[demo]]\nverdict = "right"\nreason = "blocked"\ntests = ["tests/test_x.py::test_a"]\n'
    )
    fw = tr.Framework("demo", "asgi", ())
    bare = _run({"test_a": "passed", "test_ab": "passed"})
    wrapped = _run({"test_a": "failed", "test_ab": "failed"})  # a prefix is not a match
    result = tr.compare(fw, "1.0", bare, wrapped)
    assert not result.ok
    assert result.unlisted == ["tests/test_x.py::test_ab"]


def test_a_stale_right_entry_or_a_lost_test_fails_the_check(expected: Path) -> None:
    expected.write_text(
        '[[demo]]\nverdict = "right"\nreason = "blocked"\ntests = ["tests/test_x.py::test_a"]\n'
        '[[demo]]\nverdict = "wrong"\nreason = "vary"\ntests = ["tests/test_x.py::test_b"]\n'
    )
    fw = tr.Framework("demo", "asgi", ())
    bare = _run({"test_a": "passed", "test_b": "passed"})
    fixed = tr.compare(fw, "1.0", bare, _run({"test_a": "failed", "test_b": "passed"}))
    assert fixed.ok and [e.tests for e in fixed.stale] == [["tests/test_x.py::test_b"]]
    stale = tr.compare(fw, "1.0", bare, _run({"test_a": "passed", "test_b": "failed"}))
    assert not stale.ok and [e.tests for e in stale.stale] == [["tests/test_x.py::test_a"]]
    lost = tr.compare(fw, "1.0", bare, _run({"test_a": "failed"}))
    assert not lost.ok and lost.lost == ["tests/test_x.py::test_b"]


@pytest.mark.timeout(900)  # two runs of ~1,400 tests, and the venv the first time
def test_starlettes_own_suite_behind_privguard(tmp_path: Path) -> None:
    """Starlette's suite, bare and wrapped: every wrapped-only failure is explained."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "starlette", "--report", str(tmp_path / "report.md")],
        capture_output=True,
        text=True,
        timeout=840,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == 2:
        unavailable("PyPI for Starlette's sdist", output[-2000:])
    assert proc.returncode == 0, output[-6000:]
    report = (tmp_path / "report.md").read_text()
    assert "| starlette " in report and "Wrapped-only failures" in report
