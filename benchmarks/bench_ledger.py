"""Consent ledger throughput: receipts per second on SQLite and PostgreSQL.

Run: ``.venv/bin/python benchmarks/bench_ledger.py [--quick]``. Starts its own
throwaway PostgreSQL cluster (with fsync on, so the numbers are durable writes,
like SQLite's ``synchronous=FULL``) through ``tests/pg.py``, and writes
``benchmarks/results/ledger.json``.

Three ways of writing, per back-end:

* ``append``: one receipt per transaction, from one thread (the worst case);
* ``append_many``: batches of 256 in one transaction (what the writer does);
* ``writer``: ``LedgerWriter.submit`` for every receipt, then ``flush`` (end to end).

Plus ``submit_us``: how long ``submit`` takes on the request thread, and
``verify`` throughput. Each figure is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from privguard.ledger import LedgerWriter, ReceiptDraft, open_ledger

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ledger.json"
BATCH = 256


def _pg_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("privguard_tests_pg", ROOT / "tests" / "pg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _drafts(n: int) -> list[ReceiptDraft]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ReceiptDraft(
            id=secrets.token_urlsafe(16),
            ts=t0 + timedelta(seconds=i),
            policy_version="1",
            granted=("necessary", "performance"),
            denied=("functionality", "marketing"),
            method="banner",
            regime="gdpr",
            country="DE",
            gpc=False,
            dnt=False,
            ip="203.0.113.0",
            ua_family="Chrome",
        )
        for i in range(n)
    ]


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def _best(times: list[float]) -> dict[str, float]:
    return {"best_s": round(min(times), 4), "median_s": round(statistics.median(times), 4)}


def bench(url: str, spool_dir: Path, n_single: int, n_batch: int, repeats: int) -> dict[str, Any]:
    """Measure one back-end; ``url`` must point at an empty ledger location.

    Every figure is the best of ``repeats`` runs (the machine may be shared);
    the median is kept beside it in the JSON.
    """
    out: dict[str, Any] = {}
    single: list[float] = []
    batched: list[float] = []
    with open_ledger(url) as ledger:
        for _ in range(repeats):
            drafts = _drafts(n_single)
            start = time.perf_counter()
            for d in drafts:
                ledger.append(d)
            single.append(time.perf_counter() - start)
        for _ in range(repeats):
            drafts = _drafts(n_batch)
            start = time.perf_counter()
            for i in range(0, n_batch, BATCH):
                ledger.append_many(drafts[i : i + BATCH])
            batched.append(time.perf_counter() - start)
    out["append"] = {
        "receipts": n_single,
        "per_second": _rate(n_single, min(single)),
        **_best(single),
    }
    out["append_many"] = {
        "receipts": n_batch,
        "batch": BATCH,
        "per_second": _rate(n_batch, min(batched)),
        **_best(batched),
    }

    ends: list[float] = []
    submits: list[float] = []
    for k in range(repeats):
        drafts = _drafts(n_batch + 1)
        with LedgerWriter(url, spool_dir / f"spool-{k}.jsonl") as writer:
            writer.submit(drafts[0])
            writer.flush(30)  # open the ledger outside the timing
            start = time.perf_counter()
            for d in drafts[1:]:
                writer.submit(d)
            submitted = time.perf_counter()
            if not writer.flush(120):
                raise RuntimeError("writer did not flush within 120 s")
            ends.append(time.perf_counter() - start)
            submits.append(submitted - start)
    out["writer"] = {"receipts": n_batch, "per_second": _rate(n_batch, min(ends)), **_best(ends)}
    out["submit_us"] = round(min(submits) / n_batch * 1e6, 2)

    start = time.perf_counter()
    with open_ledger(url) as ledger:
        result = ledger.verify()
    out["verify"] = {
        "ok": result.ok,
        "receipts": result.checked,
        "per_second": _rate(result.checked, time.perf_counter() - start),
    }
    if not result.ok:
        raise RuntimeError(f"benchmark ledger does not verify: {result.reason}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer receipts (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args(argv)
    n_single, n_batch = (200, 2_000) if args.quick else (1_000, 10_000)

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="privguard-bench-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "sqlite").mkdir()
        results["backends"]["sqlite"] = bench(
            f"sqlite:///{tmpdir / 'sqlite' / 'ledger.db'}",
            tmpdir / "sqlite",
            n_single,
            n_batch,
            args.repeats,
        )
        results["backends"]["sqlite"]["settings"] = "WAL, synchronous=FULL"
        try:
            cluster = _pg_module().PgCluster(fsync=True).start()
        except Exception as exc:
            results["backends"]["postgresql"] = {"error": f"cluster did not start: {exc}"}
        else:
            try:
                (tmpdir / "pg").mkdir()
                pg = bench(cluster.url, tmpdir / "pg", n_single, n_batch, args.repeats)
                pg["settings"] = "localhost TCP, fsync=on, synchronous_commit=on"
                results["backends"]["postgresql"] = pg
            finally:
                cluster.destroy()

    print(f"{'backend':<11} {'append/s':>10} {'batch/s':>10} {'writer/s':>10} {'submit µs':>10}")
    for name, r in results["backends"].items():
        if "error" in r:
            print(f"{name:<11} {r['error']}")
            continue
        print(
            f"{name:<11} {r['append']['per_second']:>10.0f} {r['append_many']['per_second']:>10.0f}"
            f" {r['writer']['per_second']:>10.0f} {r['submit_us']:>10.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
