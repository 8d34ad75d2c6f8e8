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
import served

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "latest.json"
#: Budgets of issue 10.
BUDGET_OVER_FLOOR_US = 5.0
BUDGET_SERVED_RATIO = 0.90
#: Auto-blocking: a 50 KB page with 10 script tags in 8 chunks, privguard over bare.
BUDGET_REWRITE_US = 60.0


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
    checkpoint = max(visitors // 5, 1)
    warmup = 2_000 if quick else 20_000
    cmd = [sys.executable, str(HERE / "inprocess.py"), "--memory", str(visitors), "--geo",
           str(geo_db), "--checkpoint", str(checkpoint), "--warmup", str(warmup)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the table -------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The one table (plus served, memory and budget lines) as plain text."""
    lines = []
    info = report["machine"]
    meta = report["settings"]
    lines.append(
        f"machine: {info['nproc']} CPU ({info['cpu']}), Python {info['python']}, "
        f"load average at start {', '.join(f'{x:.1f}' for x in info['loadavg_at_start'])}"
    )
    if "inprocess" in report:
        lines.append(
            f"\nIn-process: CPU µs per request, median of {meta['repeats']} rounds of "
            f"{meta['n']} requests ({meta['n_html']} for HTML); x bare = ratio to the bare "
            "app; +floor = µs over the pass-through (HTML rows: over bare)"
        )
        header = f"{'case':<26} {'variant':<12} {'visitor':<10} {'µs/req':>8} {'min':>8} "
        header += f"{'wall':>8} {'x bare':>7} {'+floor':>8}"
        lines.append(header)
        lines.append("-" * len(header))
        group = None
        for row in report["inprocess"]:
            if row["group"] != group and group is not None:
                lines.append("")
            group = row["group"]
            lines.append(
                f"{row['group']:<26} {row['variant']:<12} {row['visitor']:<10} "
                f"{row['median_us']:>8.1f} {row['min_us']:>8.1f} {row['wall_median_us']:>8.1f} "
                f"{row['ratio_to_bare']:>7.2f} {row['over_floor_us']:>8.1f}"
            )
    if "served" in report:
        lines.append(
            f"\nServed: wrk -t1 -c16 -d{meta['served_duration']:g}s --latency on 127.0.0.1, "
            f"median of {meta['served_rounds']} interleaved runs"
        )
        lines.append(
            "  cpu µs = server CPU per request (utime+stime from /proc), x cpu = bare cpu µs / "
            "this cpu µs: the throughput ratio a quiet machine would show"
        )
        header = f"{'server':<10} {'variant':<12} {'req/s':>9} {'x bare':>7} "
        header += f"{'p50 ms':>8} {'p99 ms':>8} {'cpu µs':>8} {'x cpu':>6} "
        header += f"{'non-2xx':>8} {'errors':>7}"
        lines.append(header)
        lines.append("-" * len(header))
        for row in report["served"]:
            lines.append(
                f"{row['server']:<10} {row['variant']:<12} {row['rps']:>9.1f} "
                f"{row['ratio_to_bare']:>7.3f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['server_cpu_us']:>8.1f} {row['cpu_ratio_to_bare'] or 0:>6.3f} "
                f"{row['non_2xx']:>8} {row['errors']:>7}"
            )
    if "memory" in report:
        mem = report["memory"]
        points = ", ".join(f"{p['visitors']:,}: {p['rss_mb']} MB" for p in mem["checkpoints"])
        lines.append(
            f"\nMemory: {mem['visitors']:,} distinct visitors (consent cookie, UA, IP) after "
            f"{mem['warmup_visitors']:,} warm-up: RSS {mem['rss_before_mb']} -> "
            f"{mem['rss_after_mb']} MB (growth {mem['growth_mb']} MB), "
            f"{mem['us_per_visitor']} µs/visitor wall\n  checkpoints: {points}"
        )
    lines.append("\nBudgets:")
    for verdict in report["budgets"]:
        lines.append(f"  [{'met' if verdict['met'] else 'NOT MET'}] {verdict['text']}")
    return "\n".join(lines)


def budgets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 10's budgets against the measured numbers."""
    out = []
    for row in report.get("inprocess", []):
        if (
            row["variant"] == "privguard"
            and row["visitor"] == "returning"
            and "json" in row["group"]
        ):
            over = row["over_floor_us"]
            over_min = row["min_us"] - _floor_min(report["inprocess"], row["group"])
            out.append(
                {
                    "budget": "over_floor_us",
                    "group": row["group"],
                    "value": over,
                    "met": over <= BUDGET_OVER_FLOOR_US,
                    "text": f"{row['group']}: returning visitor {over:.1f} µs over the "
                    f"pass-through (min-to-min {over_min:.1f} µs); budget "
                    f"<= {BUDGET_OVER_FLOOR_US:g} µs",
                }
            )
    rows = report.get("inprocess", [])
    for row in rows:
        if row["variant"] == "privguard" and "10 scripts" in row["group"]:
            same = [r for r in rows if r["group"] == row["group"]]
            bare = next(r for r in same if r["variant"] == "bare")
            plain = next((r for r in same if r["variant"] == "no-autoblock"), bare)
            over = row["median_us"] - bare["median_us"]
            extra = row["median_us"] - plain["median_us"]
            out.append(
                {
                    "budget": "rewrite_over_bare_us",
                    "group": row["group"],
                    "value": round(over, 2),
                    "met": over <= BUDGET_REWRITE_US,
                    "rewrite_us": round(extra, 2),
                    "text": f"{row['group']}: first visitor {over:.1f} µs over bare "
                    f"(banner, guard and rewriting; auto-blocking alone {extra:+.1f} µs over "
                    f"block_scripts=False); budget <= {BUDGET_REWRITE_US:g} µs",
                }
            )
    for row in report.get("served", []):
        if row["variant"] == "privguard":
            ratio = row["ratio_to_bare"] or 0.0
            out.append(
                {
                    "budget": "served_ratio",
                    "group": row["server"],
                    "value": ratio,
                    "met": ratio >= BUDGET_SERVED_RATIO,
                    "text": f"{row['server']}: privguard {ratio:.3f}x bare throughput "
                    f"(server CPU per request: {row['cpu_ratio_to_bare'] or 0:.3f}x); "
                    f"budget >= {BUDGET_SERVED_RATIO:.2f}x",
                }
            )
    mem = report.get("memory")
    if mem:
        points = mem["checkpoints"]
        tail = points[len(points) // 2 :]
        drift = tail[-1]["rss_mb"] - tail[0]["rss_mb"]
        out.append(
            {
                "budget": "memory_bounded",
                "value": drift,
                "met": drift <= 2.0,
                "text": f"memory: RSS moved {drift:+.1f} MB over the second half of the run "
                f"({tail[0]['visitors']:,} -> {tail[-1]['visitors']:,} visitors); "
                "bounded means <= 2 MB",
            }
        )
    return out


def _floor_min(rows: list[dict[str, Any]], group: str) -> float:
    same = [r for r in rows if r["group"] == group]
    floor = next((r for r in same if r["variant"] == "passthrough"), None)
    floor = floor or next(r for r in same if r["variant"] == "bare")
    return float(floor["min_us"])


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a smoke test")
    parser.add_argument("--skip-served", action="store_true", help="no uvicorn/gunicorn/wrk")
    parser.add_argument("--skip-memory", action="store_true", help="no memory run")
    parser.add_argument("--repeats", type=int, help="in-process rounds (default 7, quick 3)")
    parser.add_argument("-n", type=int, help="requests per round, JSON cases (default 5000)")
    parser.add_argument("--memory-visitors", type=int, help="default 200,000 (quick 10,000)")
    parser.add_argument("--served-duration", type=float, help="wrk -d seconds (default 5)")
    parser.add_argument("--served-rounds", type=int, help="wrk runs per server (default 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
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
    visitors = args.memory_visitors or (10_000 if quick else 200_000)
    duration = args.served_duration or (2.0 if quick else 5.0)
    rounds = args.served_rounds or (1 if quick else 3)

    # a SIGTERM (CI timeout, kill) unwinds through every `finally`: servers stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    bench_dir = Path(tempfile.mkdtemp(prefix="privguard-bench-"))
    report: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "quick": quick,
            "repeats": repeats,
            "n": n,
            "n_html": n_html,
            "served_duration": duration,
            "served_rounds": rounds,
            "timer": "time.thread_time (CPU) per request; wall clock alongside",
        },
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        geo_db = apps.build_geo_db(bench_dir / "bench-city.mmdb")
        settings = apps.make_settings(geo_db)
        print(f"in-process: {repeats} rounds, n={n} (HTML n={n_html})", flush=True)
        cases = inprocess.build_cases(settings, n, n_html)
        if args.only:
            cases = [c for c in cases if args.only in c.group]
            args.skip_served = args.skip_memory = True
        inprocess.measure(cases, repeats, progress=lambda s: print(s, flush=True))
        report["inprocess"] = inprocess.results(cases)
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
    report["budgets"] = budgets(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = format_report(report)
    report["table"] = text
    print()
    print(text)
    print(f"\ntotal {report['seconds']:.0f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
