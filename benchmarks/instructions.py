"""Instructions per request, counted by cachegrind: what timings on a shared host cannot show.

On a busy machine the same code times +2 µs and +10 µs over the pass-through in two
runs a minute apart, so a change of 1 µs cannot be seen in ``make bench``. The number
of machine instructions a request executes does not move with the host: this script
runs each case under ``valgrind --tool=cachegrind`` twice, ``--warm`` requests and
``--warm`` + ``--requests``, and divides the difference by ``--requests`` -- start-up,
imports and warm-up cancel out. The collector is off while counting (a collection
falls on one of the two runs, not on both alike), the hash seed fixed.

Beside the instructions: the level-1 instruction and data cache misses and the
last-level misses of cachegrind's model of this machine's caches (read from sysfs),
the part of the cost an instruction count hides.

    python benchmarks/instructions.py [--only TEXT] [--requests N] [--out FILE]

``make bench-instructions`` installs valgrind when it is missing and runs this. It is
not part of ``make bench`` (about 5 minutes on 2 cores) and not a budget: the budgets
are in µs; this shows where a change moved them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "instructions.json"
#: cachegrind's events, in the order of its ``summary:`` line (with --cache-sim=yes)
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")


@dataclass(frozen=True)
class Case:
    """One counted app: a group (what is compared), its side, page kind and variant."""

    group: str
    side: str  # asgi or wsgi
    kind: str  # an apps.py page kind: json, html, html-token-stream, ...
    variant: str  # bare, passthrough, privguard
    visitor: str  # returning or first

    @property
    def name(self) -> str:
        return f"{self.group} | {self.variant} | {self.visitor}"


def _pair(group: str, side: str, kind: str, base: str, visitor: str) -> list[Case]:
    return [Case(group, side, kind, v, visitor) for v in (base, "privguard")]


TOKEN_PAGE = "html 50KB/8 chunks, per-request token"
#: The rows whose budgets are closest: the JSON answer to a returning visitor (over the
#: pass-through) and the pages with a per-request token in 8 chunks (over bare).
CASES: tuple[Case, ...] = (
    *_pair("ASGI json", "asgi", "json", "passthrough", "returning"),
    *_pair("WSGI json", "wsgi", "json", "passthrough", "returning"),
    *_pair("ASGI html 50KB/8 chunks", "asgi", "html-stream", "bare", "returning"),
    *_pair("WSGI html 50KB/8 chunks", "wsgi", "html-stream", "bare", "returning"),
    *_pair(f"ASGI {TOKEN_PAGE}", "asgi", "html-token-stream", "bare", "returning"),
    *_pair(f"WSGI {TOKEN_PAGE}", "wsgi", "html-token-stream", "bare", "returning"),
)


def parse_summary(text: str) -> dict[str, int]:
    """The event totals of a cachegrind output file (its ``events:`` and ``summary:`` lines)."""
    names: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("summary:"):
            if names is None:
                raise ValueError("cachegrind output: a summary line before its events line")
            values = [int(v) for v in line.split()[1:]]
            if len(values) != len(names):
                raise ValueError("cachegrind output: the summary does not match the events")
            return dict(zip(names, values, strict=True))
    raise ValueError("cachegrind output without a summary line")


def per_request(small: dict[str, int], large: dict[str, int], requests: int) -> dict[str, float]:
    """Each event per request: the difference of two runs that differ by ``requests``."""
    if requests <= 0:
        raise ValueError("requests must be positive")
    return {name: (large[name] - small[name]) / requests for name in large if name in small}


def summarise(events: dict[str, float]) -> dict[str, float]:
    """Instructions, L1 instruction misses, L1 data misses (reads and writes), last-level misses."""
    get = events.get
    return {
        "instructions": round(get("Ir", 0.0)),
        "l1i_misses": round(get("I1mr", 0.0)),
        "l1d_misses": round(get("D1mr", 0.0) + get("D1mw", 0.0)),
        "ll_misses": round(get("ILmr", 0.0) + get("DLmr", 0.0) + get("DLmw", 0.0)),
    }


def cache_args(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> list[str]:
    """``--I1/--D1/--LL`` for this machine's caches (L2 as the last level: a request's
    working set fits in it, and cachegrind models two levels), or ``[]`` to let
    cachegrind detect them."""
    found: dict[str, str] = {}
    try:
        for index in sorted(root.glob("index*")):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            ways = (index / "ways_of_associativity").read_text().strip()
            line = (index / "coherency_line_size").read_text().strip()
            multiplier = {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
            number = int(size.rstrip("KM")) * multiplier
            spec = f"{number},{ways},{line}"
            if level == "1" and kind == "Instruction":
                found["--I1"] = spec
            elif level == "1" and kind == "Data":
                found["--D1"] = spec
            elif level == "2":
                found["--LL"] = spec
    except (OSError, ValueError):
        return []
    if set(found) != {"--I1", "--D1", "--LL"}:
        return []
    return [f"{option}={spec}" for option, spec in sorted(found.items())]


def child(case: Case, count: int, warm: int) -> dict[str, Any]:
    """Serve ``warm`` requests, then ``count`` more with the collector off (run in valgrind).

    Returns what one request was answered (:func:`inprocess.summarise`), taken before.
    """
    import asyncio
    import gc

    sys.path.insert(0, str(HERE))
    import apps
    import inprocess

    tmp = Path(tempfile.mkdtemp(prefix="privguard-instructions-"))
    try:
        settings = apps.make_settings(apps.build_geo_db(tmp / "country.mmdb"))
        cookie = apps.consent_cookie(settings) if case.visitor == "returning" else None
        headers = apps.request_headers(cookie)
        if case.side == "asgi":
            loop = asyncio.new_event_loop()
            app = apps.asgi_app(case.variant, settings, case.kind)
            scope = inprocess.asgi_scope(headers)
            answer = inprocess.asgi_answer(loop, app, scope)
            timer = inprocess.asgi_timer(loop, app, scope)
        else:
            app = apps.wsgi_app(case.variant, settings, case.kind)
            environ = inprocess.wsgi_environ(headers)
            answer = inprocess.wsgi_answer(app, environ)
            timer = inprocess.wsgi_timer(app, environ)
        timer(warm)
        gc.collect()
        gc.disable()
        if count:
            timer(count)
        gc.enable()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return inprocess.summarise(answer)  # type: ignore[no-any-return]


def count_case(case: Case, requests: int, warm: int, valgrind: str, caches: list[str]) -> Any:
    """Run ``case`` under cachegrind with 0 and ``requests`` counted requests: per request."""
    totals = []
    with tempfile.TemporaryDirectory(prefix="privguard-cachegrind-") as tmp:
        for count in (0, requests):
            out = Path(tmp) / f"cachegrind.{count}"
            command = [
                valgrind, "--tool=cachegrind", "--cache-sim=yes", *caches,
                f"--cachegrind-out-file={out}", sys.executable, __file__, "--child",
                case.side, case.kind, case.variant, case.visitor, str(count), str(warm),
            ]  # fmt: skip
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"{case.name}: cachegrind run failed\n{proc.stderr[-2000:]}")
            totals.append(parse_summary(out.read_text()))
    return summarise(per_request(totals[0], totals[1], requests))


def rows(cases: list[Case], counted: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per group: its base, privguard, and what privguard adds to each count."""
    out = []
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for group, members in groups.items():
        base = next(c for c in members if c.variant != "privguard")
        mine = next(c for c in members if c.variant == "privguard")
        b, p = counted[base.name], counted[mine.name]
        out.append(
            {
                "group": group,
                "visitor": mine.visitor,
                "base": base.variant,
                "base_counts": b,
                "privguard_counts": p,
                "added": {k: p[k] - b[k] for k in p},
            }
        )
    return out


def table(result: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (instructions in thousands)."""
    lines = [
        "| | base | privguard | added | L1i misses added | L1d misses added |",
        "|---|---|---|---|---|---|",
    ]
    for row in result:
        b, p, a = row["base_counts"], row["privguard_counts"], row["added"]
        lines.append(
            f"| {row['group']}, {row['visitor']} visitor | {row['base']} "
            f"{b['instructions'] / 1000:,.1f}k | {p['instructions'] / 1000:,.1f}k | "
            f"+{a['instructions'] / 1000:,.1f}k | {a['l1i_misses']:+,} | {a['l1d_misses']:+,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="TEXT", help="groups whose name contains TEXT only")
    parser.add_argument("--requests", type=int, default=1000, help="counted requests")
    parser.add_argument("--warm", type=int, default=300, help="requests before counting")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--child", nargs=6, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, kind, variant, visitor, count, warm = args.child
        answer = child(Case("", side, kind, variant, visitor), int(count), int(warm))
        print(json.dumps(answer))
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed: `make bench-instructions` installs it", file=sys.stderr)
        return 2
    cases = [c for c in CASES if not args.only or args.only in c.group]
    if not cases:
        print(f"no group contains {args.only!r}", file=sys.stderr)
        return 2
    caches = cache_args()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {c.name: pool.submit(count_case, c, args.requests, args.warm, valgrind, caches)
                   for c in cases}  # fmt: skip
        counted = {name: future.result() for name, future in futures.items()}
    result = rows(cases, counted)
    run = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        "requests": args.requests,
        "warm": args.warm,
        "caches": caches or "detected by cachegrind",
        "python": sys.version.split()[0],
        "rows": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"\n{len(cases)} cases in {run['seconds']} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
