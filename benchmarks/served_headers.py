"""What each response header costs a server, and how in-process cost shows up served.

    python benchmarks/served_headers.py                 # ~3 minutes
    python benchmarks/served_headers.py --duration 2 --rounds 1   # smoke

The bare JSON endpoints (Starlette, Flask) behind a pure middleware that appends the
first N of privguard's headers (``Referrer-Policy``, ``Vary``, ``Cache-Control``,
``Permissions-Policy``, then ``x-bench-*`` fillers of the same length) -- no privguard --
next to the bare app and privguard, under uvicorn (h11) and gunicorn (sync), the same
interleaved wrk rounds as ``run.py``. The cost per header is the least-squares slope of
the server's CPU per request over N. The same variants are also timed in-process
(CPU, like ``inprocess.py``), so the served difference can be set against it.
Writes ``results/served-headers.json``; not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import apps
import inprocess
import served

HERE = Path(__file__).resolve().parent
COUNTS = (0, 1, 2, 3, 4, 8)
#: added headers for the header code alone (more points: a steadier slope)
CODE_COUNTS = (0, 1, 2, 4, 8, 16)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def _best_us(runs: dict[int, Any], n: int, repeats: int) -> dict[int, float]:
    """Best of ``repeats`` interleaved rounds of each ``run(n)``: CPU µs per call."""
    best = {key: float("inf") for key in runs}
    for run in runs.values():
        run(max(n // 10, 100))
    for _ in range(repeats):
        for key, run in runs.items():
            gc.collect()
            cpu = time.thread_time()
            run(n)
            best[key] = min(best[key], time.thread_time() - cpu)
    return {key: round(value / n * 1e6, 2) for key, value in best.items()}


def h11_response(extra: tuple[tuple[str, str], ...]) -> Any:
    """CPU µs of one request/response cycle in h11 (what uvicorn's h11 protocol drives)."""
    import h11

    request = b"GET / HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: wrk\r\n\r\n"
    body = b'{"ok":true,"items":[1,2,3]}'
    headers = [
        (b"server", b"uvicorn"),
        (b"date", b"Wed, 02 Dec 2026 03:05:00 GMT"),
        (b"content-length", b"27"),
        (b"content-type", b"application/json"),
        *((b"set-cookie", f"{k}={v}; Path=/; SameSite=lax".encode()) for k, v in apps.APP_COOKIES),
        *((k.encode(), v.encode()) for k, v in extra),
    ]

    def run(count: int) -> None:
        conn = h11.Connection(h11.SERVER)
        for _ in range(count):
            conn.receive_data(request)
            conn.next_event()
            conn.next_event()
            # uvicorn: h11.Response(...) validates every header; send() frames them
            conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
            conn.send(h11.Data(data=body))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()

    return run


def gunicorn_response(extra: tuple[tuple[str, str], ...]) -> Any:
    """CPU µs of gunicorn's ``Response.start_response`` + ``send_headers`` (sync worker)."""
    from gunicorn.config import Config
    from gunicorn.http.wsgi import Response

    class Request:  # what Response reads of the parsed request
        version = (1, 1)
        method = "GET"

        def should_close(self) -> bool:
            return True  # the sync worker closes every connection

    class Sink:
        def sendall(self, data: bytes) -> None:
            return None

    cfg, req, sock = Config(), Request(), Sink()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", "28"),
        *(("Set-Cookie", f"{k}={v}; Path=/; SameSite=Lax") for k, v in apps.APP_COOKIES),
        *extra,
    ]

    def run(count: int) -> None:
        for _ in range(count):
            response = Response(req, sock, cfg)
            response.start_response("200 OK", list(headers))
            response.send_headers()

    return run


def server_code(n: int = 1_000, repeats: int = 40) -> dict[str, Any]:
    """The servers' own per-response header code alone, for 0..8 added headers."""
    out: dict[str, Any] = {}
    for server, make in (("uvicorn", h11_response), ("gunicorn", gunicorn_response)):
        times = _best_us({c: make(apps.extra_headers(c)) for c in CODE_COUNTS}, n, repeats)
        # privguard's JSON answer: one Set-Cookie fewer, three headers more
        out[server] = {
            "cpu_us_by_added_headers": times,
            "cpu_us_per_header": round(slope(list(times.items())), 2),
        }
    return out


def in_process(settings: Any, variants: list[str], n: int, repeats: int) -> dict[str, Any]:
    """CPU µs per request of every variant, ASGI and WSGI (median of interleaved rounds)."""
    headers = apps.request_headers(apps.consent_cookie(settings))
    loop = asyncio.new_event_loop()
    timers = {}
    for variant in variants:
        asgi = apps.asgi_app(variant, settings, "json")
        timers[("uvicorn", variant)] = inprocess.asgi_timer(
            loop, asgi, inprocess.asgi_scope(headers)
        )
        wsgi = apps.wsgi_app(variant, settings, "json")
        timers[("gunicorn", variant)] = inprocess.wsgi_timer(wsgi, inprocess.wsgi_environ(headers))
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in timers}
    for timer in timers.values():
        timer(max(n // 10, 50))
    for _ in range(repeats):
        for key, timer in timers.items():
            cpu, _wall = timer(n)
            samples[key].append(cpu / n * 1e6)
    loop.close()
    return {f"{s}/{v}": round(statistics.median(x), 2) for (s, v), x in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="wrk -d seconds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds")
    parser.add_argument("-n", type=int, default=3000, help="in-process requests per round")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "served-headers.json")
    parser.add_argument("--code-only", action="store_true", help="the header code alone")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    variants = ["bare", *(f"headers{c}" for c in COUNTS), "privguard"]
    bench_dir = Path(tempfile.mkdtemp(prefix="privguard-headers-"))
    started = time.perf_counter()
    try:
        settings = apps.make_settings(apps.build_geo_db(bench_dir / "bench-city.mmdb"))
        code = server_code()
        for server, part in code.items():
            print(
                f"{server} header code alone: {part['cpu_us_by_added_headers']} µs by added "
                f"headers; {part['cpu_us_per_header']:.2f} µs per header",
                flush=True,
            )
        if args.code_only:
            return 0
        local = in_process(settings, variants, args.n, 5)
        rows = served.run_served(
            bench_dir, settings, args.duration, args.rounds, variants=tuple(variants)
        )
    finally:
        shutil.rmtree(bench_dir, ignore_errors=True)
    result: dict[str, Any] = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration": args.duration,
        "rounds": args.rounds,
        "headers": [list(h) for h in apps.extra_headers(max(COUNTS))],
        "server_code": code,
        "in_process_cpu_us": local,
        "served": rows,
        "per_header": {},
    }
    print(
        f"{'server':<9} {'variant':<10} {'req/s':>8} {'x bare':>7} {'cpu µs':>7} "
        f"{'+cpu':>6} {'in-proc µs':>10} {'+in-proc':>8}"
    )
    for server in ("uvicorn", "gunicorn"):
        mine = {r["variant"]: r for r in rows if r["server"] == server}
        base = mine["bare"]["server_cpu_us"]
        base_local = local[f"{server}/bare"]
        for variant in variants:
            row = mine[variant]
            here = local[f"{server}/{variant}"]
            print(
                f"{server:<9} {variant:<10} {row['rps']:>8.0f} {row['ratio_to_bare']:>7.3f} "
                f"{row['server_cpu_us']:>7.1f} {row['server_cpu_us'] - base:>+6.1f} "
                f"{here:>10.1f} {here - base_local:>+8.1f}"
            )
        served_slope = slope([(c, mine[f"headers{c}"]["server_cpu_us"]) for c in COUNTS])
        local_slope = slope([(c, local[f"{server}/headers{c}"]) for c in COUNTS])
        pg_served = mine["privguard"]["server_cpu_us"] - base
        pg_local = local[f"{server}/privguard"] - base_local
        result["per_header"][server] = {
            "served_cpu_us_per_header": round(served_slope, 2),
            "in_process_cpu_us_per_header": round(local_slope, 2),
            "middleware_frames_served_cpu_us": round(mine["headers0"]["server_cpu_us"] - base, 1),
            "privguard_served_cpu_us": round(pg_served, 1),
            "privguard_in_process_cpu_us": round(pg_local, 1),
            "served_over_in_process": round(pg_served / pg_local, 2) if pg_local else None,
        }
        print(
            f"  {server}: +{served_slope:.2f} server CPU µs per added header "
            f"(in-process +{local_slope:.2f}); privguard +{pg_served:.1f} served CPU µs "
            f"against +{pg_local:.1f} in-process "
            f"({result['per_header'][server]['served_over_in_process']}x)"
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"total {result['seconds']:.0f}s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
