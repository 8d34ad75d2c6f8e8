"""The budgets, the text table and the README tables of a benchmark run, from its JSON.

``run.py`` calls this at the end of every run; run alone it re-renders the READMEs from
the committed results (or checks that they match, ``--check``):

    python benchmarks/report.py                      # results/latest.json -> READMEs
    python benchmarks/report.py --check              # exit 1 when a README differs
    python benchmarks/report.py --print /tmp/r.json  # the budget lines and the table

Everything here is derived from the JSON alone (no import of the apps), so the
README tables can never say anything the run did not measure.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_RESULTS = HERE / "results" / "latest.json"

#: ASGI and WSGI returning visitor, µs over the pass-through (median of the per-round
#: differences).
BUDGET_OVER_FLOOR_US = 5.0
#: uvicorn and gunicorn, privguard's requests/s over the bare app's (median of the
#: per-round ratios).
BUDGET_SERVED_RATIO = 0.90
#: A 50 KB page in one body: banner injection and auto-blocking, µs over bare.
BUDGET_HTML_ONE_BODY_US = 50.0
#: The same page in 8 chunks (and the 10-script pages), µs over bare.
BUDGET_HTML_CHUNKED_US = 60.0
#: A page with no catalogued URL pays for the ``</body>`` search only: auto-blocking's
#: cost there over banner injection alone (``block_scripts=False``), µs.
BUDGET_NO_TRACKER_US = 5.0
#: Memory flat: RSS drift over the second half of the memory run, MB.
BUDGET_MEMORY_DRIFT_MB = 2.0
#: The memory run must cover this many distinct visitors.
MEMORY_VISITORS = 1_000_000

#: The README sections this module owns: file, marker name.
SECTIONS = (
    (ROOT / "README.md", "bench"),
    (HERE / "README.md", "bench-results"),
)


# -- budgets ---------------------------------------------------------------------------


def _rows(report: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    return {
        f"{r['variant']}/{r['visitor']}": r
        for r in report.get("inprocess", [])
        if r["group"] == group
    }


def _groups(report: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for row in report.get("inprocess", []):
        if row["group"] not in seen:
            seen.append(row["group"])
    return seen


def _base(same: dict[str, dict[str, Any]], *variants: str) -> dict[str, Any] | None:
    for variant in variants:
        for key, row in same.items():
            if key.startswith(variant + "/"):
                return row
    return None


def paired_over(samples: list[float], base: list[float]) -> float:
    """Median of the per-round differences ``samples[r] - base[r]`` (µs, 2 decimals).

    Both lists come from the same rounds (``inprocess.measure``), so each difference is
    taken on the machine as it was in that round; the median of the differences
    holds on a noisy machine far better than the difference of the two medians.
    """
    if len(samples) != len(base):
        return round(statistics.median(samples) - statistics.median(base), 2)
    return round(statistics.median(a - b for a, b in zip(samples, base, strict=True)), 2)


def _over(row: dict[str, Any], base: dict[str, Any]) -> tuple[float, float]:
    """(median of the per-round differences, min - min) in µs.

    The rounds are paired (:func:`inprocess.measure` runs a group's cases side by
    side, alternating their order), so each round's difference saw one machine state.
    """
    return (
        paired_over(
            row.get("samples_us") or [row["median_us"]],
            base.get("samples_us") or [base["median_us"]],
        ),
        round(row["min_us"] - base["min_us"], 2),
    )


def _verdict(
    budget: str,
    label: str,
    met: bool,
    text: str,
    **fields: Any,
) -> dict[str, Any]:
    return {"budget": budget, "label": label, "met": met, "text": text, **fields}


def budgets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every budget of the speed issue against the measured numbers, in table order."""
    out: list[dict[str, Any]] = []
    groups = _groups(report)
    # the returning visitor of the small JSON endpoint, over the pass-through
    for side, framework in (("ASGI", "Starlette"), ("WSGI", "Flask")):
        same = _rows(report, f"{side} json")
        row, floor = same.get("privguard/returning"), _base(same, "passthrough", "bare")
        if row is None or floor is None:
            continue
        over, over_min = _over(row, floor)
        out.append(
            _verdict(
                "over_floor_us",
                f"{framework} endpoint in-process, returning visitor",
                over <= BUDGET_OVER_FLOOR_US,
                f"{side} json: returning visitor {over:+.1f} µs over the pass-through "
                f"(median; min-to-min {over_min:+.1f} µs); budget <= "
                f"{BUDGET_OVER_FLOOR_US:g} µs",
                group=f"{side} json",
                value=over,
                min_value=over_min,
                base_us=floor["median_us"],
                measured_us=row["median_us"],
                limit=f"≤ {BUDGET_OVER_FLOOR_US:g} µs over the pass-through",
            )
        )
    # HTML: banner injection and auto-blocking on a 50 KB page, over bare
    for group in groups:
        if " html " not in group:
            continue
        same = _rows(report, group)
        bare = _base(same, "bare")
        if bare is None:
            continue
        chunked = "chunks" in group
        limit = BUDGET_HTML_CHUNKED_US if chunked else BUDGET_HTML_ONE_BODY_US
        plain = same.get("no-autoblock/first")
        for key in ("privguard/first", "privguard/returning"):
            row = same.get(key)
            if row is None:
                continue
            over, over_min = _over(row, bare)
            visitor = row["visitor"]
            extra = ""
            fields: dict[str, Any] = {}
            if plain is not None:
                alone, alone_min = _over(row, plain)
                extra = f"; auto-blocking alone {alone:+.1f} µs over block_scripts=False"
                fields = {"autoblock_us": alone, "autoblock_min_us": alone_min}
            out.append(
                _verdict(
                    "html_chunked_us" if chunked else "html_one_body_us",
                    f"{_html_label(group)}, {visitor} visitor",
                    over <= limit,
                    f"{group}: {visitor} visitor {over:+.1f} µs over bare (median; "
                    f"min-to-min {over_min:+.1f} µs{extra}); budget <= {limit:g} µs",
                    group=group,
                    value=over,
                    min_value=over_min,
                    base_us=bare["median_us"],
                    measured_us=row["median_us"],
                    limit=f"≤ {limit:g} µs over bare",
                    **fields,
                )
            )
    # a page with no catalogued URL: auto-blocking against banner injection alone
    for group in groups:
        if not group.endswith("no trackers"):
            continue
        same = _rows(report, group)
        row, plain = same.get("privguard/first"), same.get("no-autoblock/first")
        bare = _base(same, "bare")
        if row is None or plain is None or bare is None:
            continue
        extra_us, extra_min = _over(row, plain)
        banner, _ = _over(plain, bare)
        out.append(
            _verdict(
                "no_tracker_us",
                f"{_html_label(group)}: auto-blocking over banner injection alone",
                extra_us <= BUDGET_NO_TRACKER_US,
                f"{group}: no catalogued URL, auto-blocking costs {extra_us:+.1f} µs over "
                f"banner injection alone (block_scripts=False, itself {banner:+.1f} µs over "
                f"bare) (median; min-to-min {extra_min:+.1f} µs); budget <= "
                f"{BUDGET_NO_TRACKER_US:g} µs, i.e. the `</body>` search only",
                group=group,
                value=extra_us,
                min_value=extra_min,
                base_us=plain["median_us"],
                measured_us=row["median_us"],
                limit=f"≤ {BUDGET_NO_TRACKER_US:g} µs over banner injection alone",
            )
        )
    for row in report.get("served", []):
        if row["variant"] != "privguard":
            continue
        bare = next(
            r for r in report["served"] if r["server"] == row["server"] and r["variant"] == "bare"
        )
        ratio = row["ratio_to_bare"] or 0.0
        cpu_ratio = row["cpu_ratio_to_bare"] or 0.0
        out.append(
            _verdict(
                "served_ratio",
                f"{row['server']}, requests/s",
                ratio >= BUDGET_SERVED_RATIO,
                f"{row['server']}: privguard {ratio:.3f}x bare requests/s (median of the "
                f"per-round ratios; server CPU per request {bare['server_cpu_us']:.1f} -> "
                f"{row['server_cpu_us']:.1f} µs, {cpu_ratio:.3f}x); budget >= "
                f"{BUDGET_SERVED_RATIO:.2f}x",
                group=row["server"],
                value=ratio,
                cpu_ratio=cpu_ratio,
                bare_rps=bare["rps"],
                rps=row["rps"],
                bare_cpu_us=bare["server_cpu_us"],
                cpu_us=row["server_cpu_us"],
                limit=f"≥ {BUDGET_SERVED_RATIO:.2f}× bare",
            )
        )
    mem = report.get("memory")
    if mem:
        points = mem["checkpoints"]
        tail = points[len(points) // 2 :]
        drift = round(tail[-1]["rss_mb"] - tail[0]["rss_mb"], 1)
        answers = mem.get("returning_answers")
        problems = []
        if mem["visitors"] < MEMORY_VISITORS:
            problems.append(f"only {mem['visitors']:,} of {MEMORY_VISITORS:,} visitors")
        if answers != mem["visitors"]:
            checked = "not checked" if answers is None else f"{answers:,}"
            problems.append(f"returning answers {checked}")
        out.append(
            _verdict(
                "memory_flat",
                f"memory, {mem['visitors']:,} distinct visitors",
                drift <= BUDGET_MEMORY_DRIFT_MB and not problems,
                f"memory: RSS {drift:+.1f} MB over the second half ({tail[0]['visitors']:,} -> "
                f"{tail[-1]['visitors']:,} visitors), {mem['growth_mb']:+.1f} MB over all "
                f"{mem['visitors']:,}"
                + (f" ({'; '.join(problems)})" if problems else "")
                + f"; budget <= {BUDGET_MEMORY_DRIFT_MB:g} MB over >= {MEMORY_VISITORS:,} "
                "distinct returning visitors",
                value=drift,
                growth_mb=mem["growth_mb"],
                visitors=mem["visitors"],
                limit=f"≤ {BUDGET_MEMORY_DRIFT_MB:g} MB drift over the second half of "
                f"≥ {MEMORY_VISITORS:,} visitors",
            )
        )
    return out


def _html_label(group: str) -> str:
    side, _, rest = group.partition(" html ")
    framework = {"ASGI": "Starlette", "WSGI": "Flask"}.get(side, side)
    rest = rest.replace("50KB/8 chunks", "50 KB page in 8 chunks").replace(
        "50KB", "50 KB page, one body"
    )
    return f"{framework} {rest}"


# -- the text table ----------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The one table (plus served, memory and budget lines) as plain text."""
    lines = []
    info = report["machine"]
    meta = report["settings"]
    lines.append(
        f"machine: {info['nproc']} CPU ({info['cpu']}), Python {info['python']}, "
        f"load average at start {', '.join(f'{x:.1f}' for x in info['loadavg_at_start'])}"
        + (
            f", at end {', '.join(f'{x:.1f}' for x in info['loadavg_at_end'])}"
            if "loadavg_at_end" in info
            else ""
        )
    )
    if "privguard" in meta:
        opts = ", ".join(f"{k}={v}" for k, v in meta["privguard"].items())
        lines.append(f"privguard settings: {opts}")
    if "inprocess" in report:
        rows = report["inprocess"]
        width = max([26] + [len(r["group"]) for r in rows])
        lines.append(
            f"\nIn-process: CPU µs per request, median of {meta['repeats']} rounds of "
            f"{meta['n']} requests ({meta['n_html']} for HTML); x bare = ratio to the bare "
            "app; +floor = µs over the pass-through (HTML rows: over bare), median of the "
            "per-round differences"
        )
        header = f"{'case':<{width}} {'variant':<12} {'visitor':<10} {'µs/req':>8} {'min':>8} "
        header += f"{'wall':>8} {'x bare':>7} {'+floor':>8}"
        lines.append(header)
        lines.append("-" * len(header))
        group = None
        for row in rows:
            if row["group"] != group and group is not None:
                lines.append("")
            group = row["group"]
            lines.append(
                f"{row['group']:<{width}} {row['variant']:<12} {row['visitor']:<10} "
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
        answers = mem.get("returning_answers")
        checked = "" if answers is None else f", {answers:,} answered as returning visitors"
        lines.append(
            f"\nMemory: {mem['visitors']:,} distinct visitors (consent cookie, UA, IP) after "
            f"{mem['warmup_visitors']:,} warm-up{checked}: RSS {mem['rss_before_mb']} -> "
            f"{mem['rss_after_mb']} MB (growth {mem['growth_mb']} MB), "
            f"{mem['us_per_visitor']} µs/visitor wall\n  checkpoints: {points}"
        )
    lines.append("\nBudgets (median; min-to-min beside it):")
    for verdict in report["budgets"]:
        lines.append(f"  [{'met' if verdict['met'] else 'NOT MET'}] {verdict['text']}")
    return "\n".join(lines)


# -- README sections -------------------------------------------------------------------------


def _us(value: float) -> str:
    return f"{value:.1f} µs"


def readme_table(report: dict[str, Any]) -> str:
    """The top-level README's performance section: one row per budget."""
    verdicts = report["budgets"]
    meta = report["settings"]
    options = meta.get("privguard")
    if options is None:
        mode = "privguard's options not recorded by this run"
    elif options.get("block_scripts"):
        mode = "auto-blocking on (`block_scripts=True`, the default)"
    else:
        mode = "auto-blocking **off** (`block_scripts=False`)"
    intro = (
        f"Latest `make bench` run ({report['started_utc'][:16].replace('T', ' ')} UTC, "
        f"{report['seconds'] / 60:.1f} minutes, {report['machine']['nproc']}-CPU development "
        f"machine, {mode}): in-process rows are CPU µs per request, median of "
        f"{meta['repeats']} interleaved rounds; the overhead is the median of the per-round "
        f"differences (a round runs privguard and its base side by side), min-to-min in "
        f"brackets; served rows are the median of {meta.get('served_rounds', '?')} "
        f"interleaved `wrk -c16` runs, the ratio the median of the per-round ratios."
    )
    lines = [
        textwrap.fill(intro, width=88, break_on_hyphens=False),
        "",
        "| | base | privguard | overhead | budget | met |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        met = "yes" if v["met"] else "**no**"
        if v["budget"] == "served_ratio":
            lines.append(
                f"| {v['label']} | bare {v['bare_rps']:,.0f} | {v['rps']:,.0f} | "
                f"{v['value']:.3f}× (CPU/request {v['bare_cpu_us']:.0f} → {v['cpu_us']:.0f} µs) "
                f"| {v['limit']} | {met} |"
            )
        elif v["budget"] == "memory_flat":
            lines.append(
                f"| {v['label']} | | | {v['growth_mb']:+.1f} MB RSS in all, {v['value']:+.1f} MB "
                f"over the second half | {v['limit']} | {met} |"
            )
        else:
            base = {"over_floor_us": "pass-through ", "no_tracker_us": "banner only "}.get(
                v["budget"], "bare "
            )
            lines.append(
                f"| {v['label']} | {base}{_us(v['base_us'])} | {_us(v['measured_us'])} | "
                f"{v['value']:+.1f} µs ({v['min_value']:+.1f}) | {v['limit']} | {met} |"
            )
    peer = _rows(report, "ASGI json").get("basehttp/returning")
    floor = _base(_rows(report, "ASGI json"), "passthrough", "bare")
    if peer is not None and floor is not None:
        lines.append(
            f"| peer: the same cookie policy as a Starlette `BaseHTTPMiddleware` | "
            f"pass-through {_us(floor['median_us'])} | {_us(peer['median_us'])} | "
            f"{_over(peer, floor)[0]:+.1f} µs | | |"
        )
    missed = [v for v in verdicts if not v["met"]]
    if not verdicts:
        summary = "This run checked no budget."
    elif missed:
        summary = (
            f"{len(verdicts) - len(missed)} of {len(verdicts)} budgets met; the rows marked "
            "**no** are not."
        )
    else:
        summary = f"All {len(verdicts)} budgets met."
    summary += (
        " `benchmarks/README.md` has the whole run and where the time goes; the profile of "
        "the returning visitor from the same run is `benchmarks/results/profile-returning.txt`."
    )
    lines += ["", textwrap.fill(summary, width=88, break_on_hyphens=False)]
    return "\n".join(lines)


def results_section(report: dict[str, Any]) -> str:
    """benchmarks/README.md "Results": the run's text table, verbatim."""
    profile = "`benchmarks/results/profile-returning.txt`"
    if "profile_n" in report["settings"]:
        profile = f"the profile of the same run: {profile}"
    else:
        profile = f"this run wrote no profile; {profile} was taken separately"
    return "\n".join(
        [
            f"Run of {report['started_utc'][:16].replace('T', ' ')} UTC "
            f"(`benchmarks/results/latest.json`, {report['seconds']:.0f} s; {profile}):",
            "",
            "```",
            format_report(report),
            "",
            f"total {report['seconds']:.0f}s",
            "```",
        ]
    )


def render(report: dict[str, Any], marker: str) -> str:
    """The generated body of README section ``marker``."""
    if marker == "bench":
        return readme_table(report)
    if marker == "bench-results":
        return results_section(report)
    raise ValueError(f"unknown section {marker!r}")


def _pattern(marker: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- {re.escape(marker)}:start[^>]*-->\n)(.*?)(<!-- {re.escape(marker)}:end -->)",
        re.DOTALL,
    )


def section(text: str, marker: str) -> str:
    """The current body of section ``marker`` in ``text`` (ends in a newline unless empty)."""
    match = _pattern(marker).search(text)
    if match is None:
        raise ValueError(f"no <!-- {marker}:start --> ... <!-- {marker}:end --> section")
    return match.group(2)


def replace_section(text: str, marker: str, body: str) -> str:
    """``text`` with section ``marker`` replaced by ``body`` (a newline is added)."""
    section(text, marker)  # raises when the markers are missing
    return _pattern(marker).sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)


def load(path: Path) -> dict[str, Any]:
    """A results JSON, with its budgets re-derived from the numbers."""
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    report["budgets"] = budgets(report)
    return report


def update_readmes(report: dict[str, Any], check: bool = False) -> list[Path]:
    """Rewrite (or, with ``check``, compare) every README section; the files that differ."""
    differ = []
    for path, marker in SECTIONS:
        text = path.read_text(encoding="utf-8")
        new = replace_section(text, marker, render(report, marker))
        if new != text:
            differ.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a README differs")
    mode.add_argument("--print", action="store_true", help="print the table, touch nothing")
    args = parser.parse_args(argv)
    report = load(args.results)
    if args.print:
        print(format_report(report))
        return 0
    differ = update_readmes(report, check=args.check)
    for path in differ:
        print(f"{'differs' if args.check else 'updated'}: {path.relative_to(ROOT)}")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
