"""The ``privguard`` command line: ``audit``, ``cookies``, ``ledger``, ``geoip``, ``demo``.

Each sub-command lives beside what it drives and registers itself here through
a ``register(subparsers)`` function; this module only dispatches. Exit codes:
0 clean, 1 a finding (a leak, a broken chain), 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

# module path -> it provides ``register(subparsers)``; each registered parser
# sets ``func(args) -> int``.
_COMMAND_MODULES = (
    "privguard.audit.cli",
    "privguard.ledger.cli",
    "privguard.geo_cli",
    "privguard.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="privguard", description="privguard: privacy middleware tools."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a part not built into this install
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, ledger_keys: Sequence[bytes] = ()) -> int:
    """Run the CLI; returns the process exit code.

    ``ledger_keys`` (an app's ``Settings.ledger_keys``, as ``flask privguard``
    passes them) check a keyed ledger without putting the key in the environment.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors already
        return int(exc.code or 0)
    args.ledger_keys = tuple(ledger_keys)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(func(args))
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `privguard audit --json | head`: the reader left early
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (tests capture it)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
