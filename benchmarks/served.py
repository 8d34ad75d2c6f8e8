"""Served benchmarks: the apps behind uvicorn and gunicorn on 127.0.0.1, loaded with wrk.

Every server listens on a free loopback port and is stopped when the run ends,
on error and on Ctrl-C too (:class:`Servers` is a context manager). wrk runs
are bounded (``-d``) and only ever target ``127.0.0.1``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import apps

HERE = Path(__file__).resolve().parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, variant: str, port: int) -> list[str]:
    """The command line serving ``variant`` with ``server`` (uvicorn or gunicorn)."""
    py = sys.executable
    if server == "uvicorn":
        return [
            py, "-m", "uvicorn", f"apps:asgi_{variant}", "--app-dir", str(HERE),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--no-access-log", "--log-level", "warning", "--no-proxy-headers",
            "--loop", "asyncio", "--http", "h11",
        ]  # fmt: skip
    if server == "gunicorn":
        return [
            py, "-m", "gunicorn", f"apps:wsgi_{variant}", "--pythonpath", str(HERE),
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "sync",
            "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


class Servers:
    """Starts servers on demand; stops every one of them on exit, whatever happened."""

    def __init__(self, bench_dir: Path, log_dir: Path) -> None:
        self.bench_dir = bench_dir
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, server: str, variant: str) -> tuple[str, int]:
        """Start one server; returns its URL and pid once it answers ``GET /``."""
        port = free_port()
        env = {**os.environ, "PRIVGUARD_BENCH_DIR": str(self.bench_dir)}
        log = open(self.log_dir / f"{server}-{variant}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            server_command(server, variant, port),
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}/"
        _wait_ready(proc, port, timeout=30.0)
        return url, proc.pid

    def stop_all(self) -> None:
        """SIGTERM every server started here (by pid), then SIGKILL the stragglers."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    request = b"GET / HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: probe\r\n\r\n"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.args}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(request)
                if sock.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its live descendants (from /proc).

    Read before and after a wrk run, it gives the server's CPU per request, which a
    busy machine disturbs far less than requests per second.
    """
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid ... utime (14th field) stime (15th)
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += stats[current][1]
        todo.extend(child for child, (ppid, _) in stats.items() if ppid == current)
    return total


def wrk(
    url: str,
    headers: list[tuple[str, str]],
    duration: float,
    connections: int = 16,
    threads: int = 1,
) -> dict[str, Any]:
    """One bounded wrk run against a loopback ``url``; requests/s and latency percentiles."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("wrk only ever targets 127.0.0.1")
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    cmd += [f"--timeout={max(2, int(duration))}s"]
    for name, value in headers:
        if name.lower() != "host":
            cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    return parse_wrk(out)


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, p50/p90/p99 (ms), request count and error counts from ``wrk --latency``."""
    result: dict[str, Any] = {"errors": 0, "non_2xx": 0}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        if m:
            result[f"p{pct}_ms"] = round(float(m.group(1)) * _UNITS_MS[m.group(2)], 3)
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", text)
    result["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        result["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        result["socket_errors"] = {
            "connect": int(m.group(1)),
            "read": int(m.group(2)),
            "write": int(m.group(3)),
            "timeout": int(m.group(4)),
        }
        result["errors"] = int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    return result


def run_served(
    bench_dir: Path,
    settings: Any,
    duration: float,
    rounds: int,
    progress: Any = print,
    variants: tuple[str, ...] = ("bare", "privguard"),
    servers: tuple[str, ...] = ("uvicorn", "gunicorn"),
) -> list[dict[str, Any]]:
    """``variants`` behind each server, ``rounds`` interleaved wrk runs each.

    Every server runs the same endpoint and gets the same request (the returning
    visitor's headers); each is warmed up with a 1 s wrk run first. Within a round the
    order of the variants alternates (forward, then backward), so a slow drift of the
    machine does not always hit the same variant last.
    """
    headers = apps.request_headers(apps.consent_cookie(settings))
    plan = [(s, v) for s in servers for v in variants]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in plan}
    log_dir = bench_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    with Servers(bench_dir, log_dir) as running:
        started = {key: running.start(*key) for key in plan}
        for key in plan:
            wrk(started[key][0], headers, 1.0)  # warm-up: imports, caches, first connections
        for r in range(rounds):
            for server in servers:
                order = variants if r % 2 == 0 else variants[::-1]
                for variant in order:
                    url, pid = started[(server, variant)]
                    before = cpu_seconds(pid)
                    run = wrk(url, headers, duration)
                    cpu = cpu_seconds(pid) - before
                    run["server_cpu_us"] = (
                        round(cpu / run["requests"] * 1e6, 1) if run["requests"] else None
                    )
                    runs[(server, variant)].append(run)
            progress(f"  served round {r + 1}/{rounds} done")
    rows = []
    for server in servers:
        bare_rps = _median([x["rps"] for x in runs[(server, variants[0])]])
        bare_cpu = _median([x["server_cpu_us"] or 0.0 for x in runs[(server, variants[0])]])
        bare_runs = runs[(server, variants[0])]
        for variant in variants:
            samples = runs[(server, variant)]
            rps = _median([x["rps"] for x in samples])
            # the variants of a round ran back to back: their ratio is taken per round
            paired = [
                x["rps"] / b["rps"] for x, b in zip(samples, bare_runs, strict=True) if b["rps"]
            ]
            cpu = _median([x["server_cpu_us"] or 0.0 for x in samples])
            rows.append(
                {
                    "server": server,
                    "variant": variant,
                    "rps": round(rps, 1),
                    "ratio_to_bare": round(_median(paired), 3) if paired else None,
                    "ratio_of_medians": round(rps / bare_rps, 3) if bare_rps else None,
                    "server_cpu_us": round(cpu, 1),
                    "cpu_ratio_to_bare": round(bare_cpu / cpu, 3) if cpu else None,
                    "p50_ms": _median([x.get("p50_ms", 0.0) for x in samples]),
                    "p99_ms": _median([x.get("p99_ms", 0.0) for x in samples]),
                    "non_2xx": sum(x["non_2xx"] for x in samples),
                    "errors": sum(x["errors"] for x in samples),
                    "runs": samples,
                }
            )
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
