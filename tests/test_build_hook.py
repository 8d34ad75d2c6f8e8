"""hatch_build.py: the build hook that compiles the quick pass's C loop.

An editable install puts the module next to its source. A test run that installs this
checkout into another venv (``tests/transparency``) builds it again while the running
tests have it loaded: the new file must arrive by a rename, never by writing into the
loaded one (that changed the code under a running process, which crashed at exit).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hook_module():
    spec = importlib.util.spec_from_file_location("privguard_hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_editable_build_renames_the_module_into_place(tmp_path: Path) -> None:
    hook = _hook_module()
    target = tmp_path / "_quickscan.so"
    target.write_bytes(b"the loaded build")
    built = tmp_path / "build" / "_quickscan.so"
    built.parent.mkdir()
    built.write_bytes(b"the new build")
    with target.open("rb") as loaded:
        before = target.stat().st_ino
        hook._place(built, target)
        assert loaded.read() == b"the loaded build"  # what a running process has is intact
    assert target.read_bytes() == b"the new build"
    assert target.stat().st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_quickscan.so", "build"]


def test_the_hook_builds_the_module_it_names(tmp_path: Path) -> None:
    hook = _hook_module()
    built = hook.build_extension(ROOT, tmp_path)
    assert built.name.startswith("_quickscan.") and built.suffix in (".so", ".pyd")
    assert built.stat().st_size > 0
