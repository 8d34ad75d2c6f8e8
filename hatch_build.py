"""Build hook: compiles privguard's optional C accelerator, ``privguard.core._quickscan``.

The quick pass's loop over a response's header list (``src/privguard/core/_quickscan.c``)
runs on every response; the same loop in Python (``privguard.core.response._scan_headers``)
is the reference and the fallback. Where the extension cannot be built (no C compiler,
no Python headers) the wheel is pure Python and says so in a build warning;
``PRIVGUARD_NO_EXTENSION=1`` builds it pure on purpose.

A wheel gets the compiled module by ``force_include``; an editable install
(``make install``) gets it next to its source, where the import finds it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "privguard.core._quickscan"
SOURCE = Path("src", "privguard", "core", "_quickscan.c")


def build_extension(root: Path, work: Path) -> Path:
    """Compile the extension under ``work`` with setuptools' ``build_ext``; its path."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(MODULE, [str(root / SOURCE)])
    command = build_ext(Distribution({"name": "privguard", "ext_modules": [extension]}))
    command.build_temp = str(work / "temp")
    command.build_lib = str(work / "lib")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(MODULE))


def _place(built: Path, target: Path) -> None:
    """Put the module at ``target`` by renaming a copy over it, never by writing into it:
    a process that has the old one loaded (a test run that installs the checkout into
    another venv, editable) keeps its own file and does not crash on changed code."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy2(built, partial)
    os.replace(partial, target)


class QuickScanHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._work: Path | None = None
        if self.target_name != "wheel" or os.environ.get("PRIVGUARD_NO_EXTENSION"):
            return
        root = Path(self.root)
        self._work = Path(tempfile.mkdtemp(prefix="privguard-build-"))
        try:
            built = build_extension(root, self._work)
        except Exception as exc:  # no compiler, no headers: a pure-Python wheel
            self.app.display_warning(
                f"privguard: the C accelerator {MODULE} was not built ({exc}); "
                "the wheel runs the same loop in Python"
            )
            return
        if version == "editable":
            _place(built, root / SOURCE.parent / built.name)
        else:
            build_data["force_include"][str(built)] = f"privguard/core/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
