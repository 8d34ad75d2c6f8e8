"""privguard's benchmarks (``make bench``): in-process, served, banner, peers, memory.

Runs everything in one go on this machine and prints one table with ratios to
the bare app, then writes the results as JSON (``benchmarks/results/latest.json``
by default). See ``benchmarks/README.md`` for what each row means.

    python benchmarks/run.py [--quick] [--skip-served] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import apps
import inprocess
import profile_returning
import report as reporting
import served

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "latest.json"
#: Where partial runs (--quick, --skip-*, --only) write: never over the committed run.
PARTIAL_OUT = HERE / "results" / "partial" / "latest.json"
PROFILE_NAME = "profile-returning.txt"


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python and the versions of everything measured."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist in ("privguard", "starlette", "flask", "werkzeug", "uvicorn", "gunicorn",
                 "flask-talisman", "itsdangerous", "maxminddb", "ua-parser"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        wrk = subprocess.run(
            [served.WRK, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        wrk = None
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "wrk": wrk,
        "versions": versions,
    }


def run_memory(geo_db: Path, visitors: int, quick: bool) -> dict[str, Any]:
    """The memory run, in a fresh process so nothing else measured here counts."""
    checkpoint = max(visitors // 10, 1)
    warmup = 5_000 if quick else 20_000
    cmd = [sys.executable, str(HERE / "inprocess.py"), "--memory", str(visitors), "--geo",
           str(geo_db), "--checkpoint", str(checkpoint), "--warmup", str(warmup)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a smoke test")
    parser.add_argument("--skip-served", action="store_true", help="no uvicorn/gunicorn/wrk")
    parser.add_argument("--skip-memory", action="store_true", help="no memory run")
    parser.add_argument("--repeats", type=int, help="in-process rounds (default 7, quick 3)")
    parser.add_argument("-n", type=int, help="requests per round, JSON cases (default 5000)")
    parser.add_argument(
        "--memory-visitors", type=int, help="distinct visitors (default 1,000,000, quick 10,000)"
    )
    parser.add_argument("--served-duration", type=float, help="wrk -d seconds (default 3)")
    parser.add_argument("--served-rounds", type=int, help="wrk runs per server (default 8)")
    parser.add_argument("--profile-n", type=int, help="profiled requests (default 5000)")
    parser.add_argument(
        "--out",
        type=Path,
        help="results JSON (default results/latest.json; partial runs: results/partial/)",
    )
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="in-process cases whose group contains TEXT only (no served or memory run)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    n = args.n or (300 if quick else 5000)
    n_html = max(n // 5, 50)
    visitors = args.memory_visitors or (10_000 if quick else reporting.MEMORY_VISITORS)
    duration = args.served_duration or (2.0 if quick else 3.0)
    rounds = args.served_rounds or (1 if quick else 8)
    profile_n = args.profile_n or (500 if quick else 5000)
    if args.only:
        args.skip_served = args.skip_memory = True
    # only a whole run (every part, not --quick) is the run the READMEs show
    complete = not (quick or args.skip_served or args.skip_memory)
    out_path: Path = args.out or (DEFAULT_OUT if complete else PARTIAL_OUT)
    readmes = complete and out_path.resolve() == DEFAULT_OUT

    # a SIGTERM (CI timeout, kill) unwinds through every `finally`: servers stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    bench_dir = Path(tempfile.mkdtemp(prefix="privguard-bench-"))
    report: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "quick": quick,
            "complete": complete,
            "repeats": repeats,
            "blocks": inprocess.BLOCKS,
            "n": n,
            "n_html": n_html,
            "served_duration": duration,
            "served_rounds": rounds,
            "memory_visitors": 0 if args.skip_memory else visitors,
            "profile_n": profile_n,
            "timer": "time.thread_time (CPU) per request; wall clock alongside",
        },
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    profile = ""
    try:
        geo_db = apps.build_geo_db(bench_dir / "bench-city.mmdb")
        settings = apps.make_settings(geo_db)
        report["settings"]["privguard"] = apps.settings_summary(settings)
        print(f"in-process: {repeats} rounds, n={n} (HTML n={n_html})", flush=True)
        cases = inprocess.build_cases(settings, n, n_html)
        if args.only:
            cases = [c for c in cases if args.only in c.group]
        inprocess.measure(cases, repeats, progress=lambda s: print(s, flush=True))
        report["inprocess"] = inprocess.results(cases)
        del cases
        print(f"profile: {profile_n} returning visitors per adapter under cProfile", flush=True)
        profile = profile_returning.profile_text(settings, profile_n, top=25)
        if not args.skip_served:
            print(f"served: {rounds} rounds of wrk -d{duration:g}s per server", flush=True)
            report["served"] = served.run_served(
                bench_dir, settings, duration, rounds, progress=lambda s: print(s, flush=True)
            )
        if not args.skip_memory:
            print(f"memory: {visitors:,} distinct visitors in a fresh process", flush=True)
            report["memory"] = run_memory(geo_db, visitors, quick)
    finally:
        shutil.rmtree(bench_dir, ignore_errors=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    report["budgets"] = reporting.budgets(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = reporting.format_report(report)
    report["table"] = text
    print()
    print(text)
    print(f"\ntotal {report['seconds']:.0f}s")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    profile_path = out_path.parent / PROFILE_NAME
    profile_path.write_text(profile, encoding="utf-8")
    print(f"wrote {out_path} and {profile_path}")
    if readmes:
        for path in reporting.update_readmes(report):
            print(f"updated {path}")
    else:
        print("READMEs not updated: only a whole run to results/latest.json is shown there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
