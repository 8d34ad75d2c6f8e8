"""The benchmark report: README tables equal the committed run, budget verdicts are honest.

No benchmark run here except one tiny smoke run of ``benchmarks/run.py`` (a few seconds)
that proves the harness still drives the current code and leaves the READMEs alone.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchscripts import BENCH, ROOT, bench_module

report = bench_module("report")


def test_readme_tables_equal_what_the_committed_results_render() -> None:
    run = report.load(report.DEFAULT_RESULTS)
    for path, marker in report.SECTIONS:
        current = report.section(path.read_text(encoding="utf-8"), marker)
        assert current == report.render(run, marker) + "\n", (
            f"{path.relative_to(ROOT)} section {marker!r} differs from "
            "benchmarks/results/latest.json: run `python benchmarks/report.py`"
        )


def test_committed_profile_belongs_to_the_committed_run() -> None:
    run = json.loads(report.DEFAULT_RESULTS.read_text(encoding="utf-8"))
    profile = (BENCH / "results" / "profile-returning.txt").read_text(encoding="utf-8")
    assert "=== ASGI" in profile and "=== WSGI" in profile
    if "profile_n" not in run["settings"]:
        return  # a run from before run.py wrote the profile itself
    stamp = re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", profile)
    assert stamp is not None
    started = time.mktime(time.strptime(run["started_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    taken = time.mktime(time.strptime(stamp.group(0), "%Y-%m-%dT%H:%M:%SZ"))
    assert started <= taken <= started + run["seconds"] + 1


def _row(group: str, variant: str, visitor: str, median: float, low: float) -> dict[str, Any]:
    return {
        "group": group,
        "variant": variant,
        "visitor": visitor,
        "median_us": median,
        "min_us": low,
        "wall_median_us": median,
        "ratio_to_bare": 1.0,
        "over_floor_us": 0.0,
    }


WRK = {"p50_ms": 2.5, "p99_ms": 4.0, "non_2xx": 0, "errors": 0}
SYNTHETIC: dict[str, Any] = {
    "machine": {"nproc": 2, "cpu": "test", "python": "3.11", "loadavg_at_start": [0, 0, 0]},
    "settings": {
        "repeats": 7,
        "n": 5000,
        "n_html": 1000,
        "served_duration": 5,
        "served_rounds": 3,
        "privguard": {"block_scripts": True},
    },
    "started_utc": "2026-12-02T03:05:00Z",
    "seconds": 420.0,
    "inprocess": [
        _row("ASGI json", "bare", "returning", 29.0, 28.0),
        _row("ASGI json", "passthrough", "returning", 30.0, 29.0),
        _row("ASGI json", "privguard", "returning", 35.0, 33.0),  # +5.0: met
        _row("WSGI json", "passthrough", "returning", 60.0, 59.0),
        _row("WSGI json", "privguard", "returning", 65.1, 63.0),  # +5.1: not met
        _row("ASGI html 50KB", "bare", "first", 8.0, 7.5),
        _row("ASGI html 50KB", "privguard", "first", 58.0, 50.0),  # +50: met
        _row("ASGI html 50KB", "privguard", "returning", 58.5, 50.0),  # +50.5: not met
        _row("WSGI html 50KB/8 chunks, 10 scripts, no trackers", "bare", "first", 40.0, 39.0),
        _row("WSGI html 50KB/8 chunks, 10 scripts, no trackers", "no-autoblock", "first", 90, 88),
        _row("WSGI html 50KB/8 chunks, 10 scripts, no trackers", "privguard", "first", 96, 93),
    ],
    "served": [
        {
            "server": "uvicorn",
            "variant": "bare",
            "rps": 6000.0,
            "ratio_to_bare": 1.0,
            "server_cpu_us": 166.0,
            "cpu_ratio_to_bare": 1.0,
            **WRK,
        },
        {
            "server": "uvicorn",
            "variant": "privguard",
            "rps": 5394.0,
            "ratio_to_bare": 0.899,
            "server_cpu_us": 184.0,
            "cpu_ratio_to_bare": 0.902,
            **WRK,
        },
    ],  # fmt: skip
    "memory": {
        "visitors": 1_000_000,
        "warmup_visitors": 20_000,
        "returning_answers": 1_000_000,
        "growth_mb": 0.8,
        "rss_before_mb": 70.0,
        "rss_after_mb": 70.8,
        "us_per_visitor": 200.0,
        "checkpoints": [{"visitors": i * 100_000, "rss_mb": 70.0 + i / 10} for i in range(11)],
    },
}


def _verdicts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["label"]: v for v in report.budgets(data)}


def test_budget_verdicts_follow_the_medians_and_print_min_to_min() -> None:
    verdicts = _verdicts(SYNTHETIC)
    asgi = verdicts["Starlette endpoint in-process, returning visitor"]
    assert asgi["met"] and asgi["value"] == 5.0 and asgi["min_value"] == 4.0
    assert "+5.0 µs over the pass-through (median; min-to-min +4.0 µs)" in asgi["text"]
    assert not verdicts["Flask endpoint in-process, returning visitor"]["met"]
    assert verdicts["Starlette 50 KB page, one body, first visitor"]["met"]
    assert not verdicts["Starlette 50 KB page, one body, returning visitor"]["met"]
    chunked = verdicts["Flask 50 KB page in 8 chunks, 10 scripts, no trackers, first visitor"]
    assert chunked["budget"] == "html_chunked_us" and chunked["met"]  # +56 <= 60
    alone = [v for v in verdicts.values() if v["budget"] == "no_tracker_us"]
    assert len(alone) == 1 and not alone[0]["met"] and alone[0]["value"] == 6.0
    served = verdicts["uvicorn, requests/s"]
    assert not served["met"] and "184.0 µs, 0.902x" in served["text"]
    memory = verdicts["memory, 1,000,000 distinct visitors"]
    assert memory["met"] and memory["value"] == 0.5
    text = report.format_report({**SYNTHETIC, "budgets": report.budgets(SYNTHETIC)})
    assert "[met] ASGI json" in text and "[NOT MET] WSGI json" in text


def test_memory_budget_needs_a_million_checked_visitors() -> None:
    short = copy.deepcopy(SYNTHETIC)
    short["memory"]["visitors"] = short["memory"]["returning_answers"] = 999_999
    assert not _verdicts(short)["memory, 999,999 distinct visitors"]["met"]
    unchecked = copy.deepcopy(SYNTHETIC)
    unchecked["memory"]["returning_answers"] = 999_000  # some visitors were not returning
    verdict = _verdicts(unchecked)["memory, 1,000,000 distinct visitors"]
    assert not verdict["met"] and "returning answers 999,000" in verdict["text"]


def test_readme_table_marks_every_missed_budget() -> None:
    table = report.readme_table({**SYNTHETIC, "budgets": report.budgets(SYNTHETIC)})
    assert "auto-blocking on (`block_scripts=True`" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "budget" not in line]
    missed = [line for line in rows if line.endswith("| **no** |")]
    assert len(missed) == sum(not v["met"] for v in report.budgets(SYNTHETIC)) == 4


def test_a_smoke_run_drives_the_current_code_and_leaves_the_readmes_alone(
    tmp_path: Path,
) -> None:
    before = {path: path.read_text(encoding="utf-8") for path, _ in report.SECTIONS}
    out = tmp_path / "r.json"
    cmd = [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "ASGI json",
           "--repeats", "1", "-n", "50", "--profile-n", "50", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(out.read_text(encoding="utf-8"))
    assert run["settings"]["privguard"]["block_scripts"] is True
    rows = {(r["variant"], r["visitor"]): r for r in run["inprocess"]}
    # privguard really filtered: the returning visitor keeps _ga, never _fbp
    assert rows[("privguard", "returning")]["answer"]["set_cookie"] == ["sessionid", "_ga"]
    assert rows[("bare", "returning")]["answer"]["set_cookie"] == ["sessionid", "_ga", "_fbp"]
    assert [v["budget"] for v in run["budgets"]] == ["over_floor_us"]
    assert "=== ASGI: 50 requests ===" in (tmp_path / "profile-returning.txt").read_text()
    assert {path: path.read_text(encoding="utf-8") for path, _ in report.SECTIONS} == before


def test_per_request_token_pages_get_their_own_html_budget_rows() -> None:
    """The never-seen pages (``..., per-request token``) are judged like the others."""
    data = copy.deepcopy(SYNTHETIC)
    data["inprocess"] += [
        _row("ASGI html 50KB, per-request token", "bare", "first", 8.0, 7.5),
        _row("ASGI html 50KB, per-request token", "no-autoblock", "first", 30.0, 28.0),
        _row("ASGI html 50KB, per-request token", "privguard", "first", 70.0, 60.0),
        _row("WSGI html 50KB/8 chunks, per-request token", "bare", "first", 40.0, 39.0),
        _row("WSGI html 50KB/8 chunks, per-request token", "privguard", "first", 95.0, 90.0),
    ]
    verdicts = _verdicts(data)
    one = verdicts["Starlette 50 KB page, one body, per-request token, first visitor"]
    assert one["budget"] == "html_one_body_us" and not one["met"] and one["value"] == 62.0
    assert "auto-blocking alone +40.0 µs over block_scripts=False" in one["text"]
    chunked = verdicts["Flask 50 KB page in 8 chunks, per-request token, first visitor"]
    assert chunked["budget"] == "html_chunked_us" and chunked["met"]  # +55 <= 60
    # a page without the no-tracker suffix is not judged against banner injection alone
    assert [v for v in report.budgets(data) if v["budget"] == "no_tracker_us"] == [
        v for v in report.budgets(SYNTHETIC) if v["budget"] == "no_tracker_us"
    ]
