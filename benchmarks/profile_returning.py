"""Where the returning visitor's microseconds go: cProfile of the in-process JSON cases.

    python benchmarks/profile_returning.py            # writes results/profile-returning.txt

``run.py`` writes the same profile with every run, beside its results JSON.
    python benchmarks/profile_returning.py -n 20000 --out /tmp/p.txt

Profiles privguard (ASGI and WSGI) answering the returning visitor of ``inprocess.py``
(the small JSON endpoint, a valid consent cookie) and prints, per adapter, the
functions by own time and by cumulative time. cProfile adds a fixed cost to every call,
so read the shares and call counts, not the absolute times (those are in ``run.py``).

Each adapter's section starts with the bytecodes privguard executes per request, by
function (counted with ``sys.settrace`` opcode events): a number that does not depend on
how busy the machine is, so two versions compare exactly where timings cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import apps
import inprocess

HERE = Path(__file__).resolve().parent


def bytecodes(run: inprocess.Timer, n: int) -> str:
    """privguard's bytecodes per request, by function, over ``n`` (warm) requests."""
    counts: collections.Counter[str] = collections.Counter()

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if "privguard" not in Path(code.co_filename).parts:
            return None
        frame.f_trace_opcodes = True
        where = f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})"

        def opcode(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[where] += 1
            return opcode

        return opcode

    sys.settrace(call)
    try:
        run(n)
    finally:
        sys.settrace(None)
    total = sum(counts.values()) / n
    lines = [f"--- privguard's bytecodes per request: {total:.0f} (exact; by function) ---"]
    lines += [f"{count / n:8.1f}  {where}" for where, count in counts.most_common()]
    return "\n".join(lines) + "\n"


def profile(label: str, run: inprocess.Timer, n: int, top: int) -> str:
    run(max(n // 10, 100))  # warm-up: caches, first-call imports
    ops = bytecodes(run, min(n, 500))
    prof = cProfile.Profile()
    prof.enable()
    run(n)
    prof.disable()
    out = io.StringIO()
    out.write(f"=== {label}: {n} requests ===\n")
    out.write(ops)
    stats = pstats.Stats(prof, stream=out)
    out.write("--- everything (app and framework included), by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("--- privguard's own functions, by own time ---\n")
    stats.sort_stats("tottime").print_stats(r"privguard[/\\]", top)
    out.write("--- privguard's own functions, by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(r"privguard[/\\]", top)
    text = out.getvalue()
    for prefix in sorted({str(Path(p).parent) + "/" for p in sys.path if p}, key=len)[::-1]:
        text = text.replace(prefix, "")  # short file names: privguard/..., starlette/...
    return text


def profile_text(settings: Any, n: int, top: int = 25) -> str:
    """The pstats summary of ``n`` returning visitors through privguard, ASGI then WSGI."""
    returning = apps.request_headers(apps.consent_cookie(settings))
    loop = asyncio.new_event_loop()
    try:
        asgi = apps.asgi_app("privguard", settings, "json")
        wsgi = apps.wsgi_app("privguard", settings, "json")
        parts = [
            f"privguard returning visitor, JSON endpoint; Python {sys.version.split()[0]}, "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; "
            f"{apps.settings_summary(settings)}\n",
            profile(
                "ASGI",
                inprocess.asgi_timer(loop, asgi, inprocess.asgi_scope(returning)),
                n,
                top,
            ),
            profile(
                "WSGI",
                inprocess.wsgi_timer(wsgi, inprocess.wsgi_environ(returning)),
                n,
                top,
            ),
        ]
    finally:
        loop.close()
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000, help="requests per adapter")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile-returning.txt")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = apps.make_settings(apps.build_geo_db(Path(tmp) / "bench-city.mmdb"))
        text = profile_text(settings, args.n, args.top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
