"""The instruction-count benchmark: its arithmetic, its reading of cachegrind, its child run.

No valgrind here (``make bench-instructions`` runs it): the child is run as itself, for
a few requests of each side, which proves it still drives the benchmark apps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchscripts import BENCH, ROOT, bench_module

instructions = bench_module("instructions")

OUTPUT = """desc: I1 cache:         32768 B, 64 B, 8-way associative
cmd: python benchmarks/instructions.py --child asgi json privguard returning 0 300
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=???
fn=???
0 10 1 0 4 0 0 2 0 0
summary: 1000 20 3 400 30 5 200 10 1
"""


def test_the_summary_is_read_by_its_event_names() -> None:
    got = instructions.parse_summary(OUTPUT)
    assert got == {
        "Ir": 1000, "I1mr": 20, "ILmr": 3, "Dr": 400, "D1mr": 30, "DLmr": 5, "Dw": 200,
        "D1mw": 10, "DLmw": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    "text, message",
    [
        ("events: Ir\n", "without a summary"),
        ("summary: 5\nevents: Ir\n", "before its events"),
        ("events: Ir Dr\nsummary: 5\n", "does not match"),
    ],
)
def test_a_broken_output_file_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instructions.parse_summary(text)


def test_per_request_counts_are_the_difference_of_the_two_runs() -> None:
    small = {"Ir": 10_000, "I1mr": 100, "D1mr": 50, "D1mw": 5, "ILmr": 0, "DLmr": 1, "DLmw": 0}
    large = {"Ir": 510_000, "I1mr": 2_100, "D1mr": 1_050, "D1mw": 505, "ILmr": 0, "DLmr": 1,
             "DLmw": 100}  # fmt: skip
    each = instructions.per_request(small, large, 1000)
    assert each["Ir"] == 500.0 and each["I1mr"] == 2.0
    assert instructions.summarise(each) == {
        "instructions": 500,
        "l1i_misses": 2,
        "l1d_misses": 2,  # 1.0 read + 0.5 write, rounded
        "ll_misses": 0,
    }
    with pytest.raises(ValueError):
        instructions.per_request(small, large, 0)


def test_a_row_compares_privguard_with_its_own_base() -> None:
    cases = instructions.CASES[:4]
    counts = {
        cases[0].name: {"instructions": 300_000, "l1i_misses": 6_000, "l1d_misses": 2_000,
                        "ll_misses": 1},
        cases[1].name: {"instructions": 347_500, "l1i_misses": 7_200, "l1d_misses": 2_700,
                        "ll_misses": 3},
        cases[2].name: {"instructions": 500_000, "l1i_misses": 14_000, "l1d_misses": 7_000,
                        "ll_misses": 100},
        cases[3].name: {"instructions": 530_000, "l1i_misses": 14_600, "l1d_misses": 7_500,
                        "ll_misses": 100},
    }  # fmt: skip
    result = instructions.rows(list(cases), counts)
    assert [r["group"] for r in result] == ["ASGI json", "WSGI json"]
    assert result[0]["base"] == "passthrough"
    assert result[0]["added"] == {
        "instructions": 47_500, "l1i_misses": 1_200, "l1d_misses": 700, "ll_misses": 2,
    }  # fmt: skip
    text = instructions.table(result)
    assert "| ASGI json, returning visitor | passthrough 300.0k | 347.5k | +47.5k |" in text
    assert "| +1,200 | +700 |" in text
    assert "+30.0k | +600 | +500 |" in text


def test_every_group_has_one_base_and_privguard() -> None:
    groups: dict[str, list[str]] = {}
    for case in instructions.CASES:
        groups.setdefault(case.group, []).append(case.variant)
    for group, variants in groups.items():
        assert sorted(variants) in (["bare", "privguard"], ["passthrough", "privguard"]), group


def _cache(root: Path, index: int, level: int, kind: str, size: str, ways: int) -> None:
    d = root / f"index{index}"
    d.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size),
                        ("ways_of_associativity", ways), ("coherency_line_size", 64)):  # fmt: skip
        (d / name).write_text(f"{value}\n")


def test_the_cache_model_is_this_machines(tmp_path: Path) -> None:
    _cache(tmp_path, 0, 1, "Data", "48K", 12)
    _cache(tmp_path, 1, 1, "Instruction", "32K", 8)
    _cache(tmp_path, 2, 2, "Unified", "1024K", 16)
    _cache(tmp_path, 3, 3, "Unified", "32M", 16)
    assert instructions.cache_args(tmp_path) == [
        "--D1=49152,12,64",
        "--I1=32768,8,64",
        "--LL=1048576,16,64",
    ]
    # no second level known: cachegrind detects the caches itself
    assert instructions.cache_args(tmp_path / "missing") == []


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
def test_the_child_serves_its_requests(side: str) -> None:
    """The child as valgrind runs it, for 20 requests of the token page in 8 chunks."""
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "instructions.py"),
            "--child",
            side,
            "html-token-stream",
            "privguard",
            "returning",
            "20",
            "5",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    # the returning visitor's page, whole, with privguard's document header on it
    assert answer["status"] == 200
    assert answer["body_bytes"] > 50_000
    assert answer["permissions_policy"] is True


def test_an_unknown_group_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "instructions.py"), "--only", "no such group"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "no group contains" in proc.stderr or "valgrind is not installed" in proc.stderr
