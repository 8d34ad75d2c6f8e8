"""In-process benchmarks: call the ASGI/WSGI apps directly, no HTTP, no sockets.

ASGI apps are driven with ``await app(scope, receive, send)`` in a loop on one
event loop; WSGI apps with ``app(environ, start_response)``, consuming and
closing the returned iterable. Every request gets a fresh shallow copy of a
prepared scope/environ (privguard stores its context there), the same for
every variant, so the copy is part of the floor.

The memory run (:func:`memory_growth`) is meant for a fresh process:
``python benchmarks/inprocess.py --memory N --geo PATH`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apps
import report as reporting

# -- request templates ----------------------------------------------------------------


def asgi_scope(headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """An HTTP scope for ``GET /`` from :data:`apps.PROXY_IP` with ``headers``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        "client": (apps.PROXY_IP, 50123),
        "server": ("127.0.0.1", 8000),
    }


def wsgi_environ(headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A WSGI environ for ``GET /`` from :data:`apps.PROXY_IP` with ``headers``."""
    from werkzeug.test import EnvironBuilder

    hdrs = list(headers)
    builder = EnvironBuilder(
        path="/",
        method="GET",
        headers=[(n, v) for n, v in hdrs if n != "host"],
        base_url="http://shop.example/",
        environ_base={"REMOTE_ADDR": apps.PROXY_IP, "REMOTE_PORT": "50123"},
    )
    try:
        return builder.get_environ()
    finally:
        builder.close()


async def _receive() -> dict[str, Any]:
    """A client that sent a bodiless GET and stays connected: waits until cancelled.

    No app here reads the request body; Starlette's StreamingResponse (ASGI spec
    2.3, what uvicorn announces) listens for a disconnect and cancels this wait
    when the stream is done, exactly as under uvicorn.
    """
    await asyncio.get_running_loop().create_future()
    return {"type": "http.disconnect"}  # pragma: no cover - never reached


async def _discard(message: Any) -> None:
    return None


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    return None


# -- one request, recorded (sanity check of what each variant answers) -------------------


def asgi_answer(loop: asyncio.AbstractEventLoop, app: Any, scope: dict[str, Any]) -> dict[str, Any]:
    """Status, headers and body size of one ASGI request."""
    out: dict[str, Any] = {"headers": [], "body": 0, "chunks": 0}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = [(n.decode(), v.decode()) for n, v in message["headers"]]
        elif message["type"] == "http.response.body":
            out["body"] += len(message.get("body", b""))
            out["chunks"] += 1

    loop.run_until_complete(app(dict(scope), _receive, send))
    return out


def wsgi_answer(app: Any, environ: dict[str, Any]) -> dict[str, Any]:
    """Status, headers and body size of one WSGI request."""
    out: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        out["status"] = int(status[:3])
        out["headers"] = list(headers)
        return _write

    iterable = app(dict(environ), start_response)
    try:
        chunks = list(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    out["body"] = sum(len(c) for c in chunks)
    out["chunks"] = len(chunks)
    return out


def summarise(answer: dict[str, Any]) -> dict[str, Any]:
    """What a reader checks: status, kept cookies, privguard's headers, banner or not."""
    cookies = [v.split("=", 1)[0] for n, v in answer["headers"] if n.lower() == "set-cookie"]
    names = {n.lower() for n, _ in answer["headers"]}
    return {
        "status": answer.get("status"),
        "set_cookie": cookies,
        "permissions_policy": "permissions-policy" in names,
        "body_bytes": answer["body"],
        "body_chunks": answer["chunks"],
    }


# -- timed loops ---------------------------------------------------------------------------


Timer = Callable[[int], tuple[float, float]]


def asgi_timer(loop: asyncio.AbstractEventLoop, app: Any, scope: dict[str, Any]) -> Timer:
    """A function timing ``n`` ASGI requests; returns (CPU seconds, wall seconds)."""

    async def run(n: int) -> float:
        template = scope
        receive = _receive
        send = _discard
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(n):
            await app(template.copy(), receive, send)
        return time.thread_time() - cpu, time.perf_counter() - wall

    return lambda n: loop.run_until_complete(run(n))


def wsgi_timer(app: Any, environ: dict[str, Any]) -> Timer:
    """Time ``n`` WSGI requests (iterable consumed and closed): (CPU s, wall s)."""

    def run(n: int) -> float:
        template = environ
        start_response = _start_response
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(n):
            iterable = app(template.copy(), start_response)
            for _chunk in iterable:
                pass
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return time.thread_time() - cpu, time.perf_counter() - wall

    return run


@dataclass
class Case:
    """One measured row: an app, a visitor, a request count."""

    group: str  # e.g. "ASGI json"
    variant: str  # bare, passthrough, privguard, basehttp, talisman
    visitor: str  # returning, first, -
    timer: Timer
    n: int
    answer: dict[str, Any]
    samples_us: list[float] = field(default_factory=list)  # CPU time per request
    wall_us: list[float] = field(default_factory=list)  # wall-clock time per request

    @property
    def name(self) -> str:
        return f"{self.group} | {self.variant} | {self.visitor}"

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)


def build_cases(settings: Any, n: int, n_html: int) -> list[Case]:
    """Every in-process case, apps built once."""
    loop = asyncio.new_event_loop()
    cookie = apps.consent_cookie(settings)
    returning = apps.request_headers(cookie)
    first = apps.request_headers(None)
    cases: list[Case] = []

    def add_asgi(group: str, variant: str, visitor: str, kind: str, count: int) -> None:
        app = apps.asgi_app(variant, settings, kind)
        scope = asgi_scope(first if visitor == "first" else returning)
        answer = summarise(asgi_answer(loop, app, scope))
        cases.append(Case(group, variant, visitor, asgi_timer(loop, app, scope), count, answer))

    def add_wsgi(group: str, variant: str, visitor: str, kind: str, count: int) -> None:
        app = apps.wsgi_app(variant, settings, kind)
        environ = wsgi_environ(first if visitor == "first" else returning)
        answer = summarise(wsgi_answer(app, environ))
        cases.append(Case(group, variant, visitor, wsgi_timer(app, environ), count, answer))

    for variant, visitor in (
        ("bare", "returning"),
        ("passthrough", "returning"),
        ("privguard", "returning"),
        ("privguard", "first"),
        ("basehttp", "returning"),
    ):
        add_asgi("ASGI json", variant, visitor, "json", n)
    for variant, visitor in (
        ("bare", "returning"),
        ("passthrough", "returning"),
        ("privguard", "returning"),
        ("privguard", "first"),
        ("talisman", "returning"),
    ):
        add_wsgi("WSGI json", variant, visitor, "json", n)
    pages = (("html", "50KB"), ("html-stream", "50KB/8 chunks"))
    visits = (("bare", "first"), ("privguard", "first"), ("privguard", "returning"))
    for add, side in ((add_asgi, "ASGI"), (add_wsgi, "WSGI")):
        for kind, label in pages:
            for variant, visitor in visits:
                add(f"{side} html {label}", variant, visitor, kind, n_html)
    # the same page with a per-request token in it (a CSRF token, as a template writes
    # it): its bytes differ on every request, in the token's places only
    pages = (("html-token", "50KB"), ("html-token-stream", "50KB/8 chunks"))
    visits = (("bare", "first"), ("no-autoblock", "first"), *visits[1:])
    for add, side in ((add_asgi, "ASGI"), (add_wsgi, "WSGI")):
        for kind, label in pages:
            for variant, visitor in visits:
                add(f"{side} html {label}, per-request token", variant, visitor, kind, n_html)
    # auto-blocking: 10 script tags, 8 of them catalogued, streamed in 8 chunks; the same
    # page with 10 uncatalogued tags shows what a tracker-free page pays
    for add, side in ((add_asgi, "ASGI"), (add_wsgi, "WSGI")):
        for kind, label in (("html-trackers", "trackers"), ("html-scripts", "no trackers")):
            for variant in ("bare", "no-autoblock", "privguard"):
                group = f"{side} html 50KB/8 chunks, 10 scripts, {label}"
                add(group, variant, "first", kind, n_html)
    return cases


#: Each round times a group's cases in this many interleaved blocks (``n / BLOCKS``
#: requests each, the order reversed every other block): a burst of load on this shared
#: host then falls on privguard and its base alike instead of on one of them.
BLOCKS = 10


def measure(
    cases: list[Case],
    repeats: int,
    progress: Callable[[str], None] = print,
    blocks: int = BLOCKS,
) -> None:
    """Warm each case up, then time ``repeats`` rounds, cases interleaved in each round.

    The cases of a group (an app and its bases) are timed together: in every round,
    ``blocks`` times ``n / blocks`` requests each, one case after the other and in
    reverse order every other time, so a round's sample of privguard and the same
    round's sample of its base saw the same machine, block by block; the report
    compares them pair by pair (median of the per-round differences). Every other
    round also runs the groups in reverse order.
    """
    for case in cases:
        case.timer(max(case.n // 10, 50))
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for r in range(repeats):
        started = time.perf_counter()
        order = list(groups.values())
        for group in order if r % 2 == 0 else order[::-1]:
            gc.collect()
            cpu = dict.fromkeys(map(id, group), 0.0)
            wall = dict.fromkeys(map(id, group), 0.0)
            for b in range(blocks):
                for case in group if (b + r) % 2 == 0 else group[::-1]:
                    c, w = case.timer(max(case.n // blocks, 1))
                    cpu[id(case)] += c
                    wall[id(case)] += w
            for case in group:
                count = max(case.n // blocks, 1) * blocks
                case.samples_us.append(cpu[id(case)] / count * 1e6)
                case.wall_us.append(wall[id(case)] / count * 1e6)
        progress(f"  in-process round {r + 1}/{repeats}: {time.perf_counter() - started:.1f}s")


def results(cases: list[Case]) -> list[dict[str, Any]]:
    """Rows with ratios to the bare app and overhead over the pass-through floor."""
    rows = []
    by_group: dict[str, dict[str, Case]] = {}
    for case in cases:
        by_group.setdefault(case.group, {})[f"{case.variant}/{case.visitor}"] = case
    for case in cases:
        group = by_group[case.group]
        bare = next(c for k, c in group.items() if k.startswith("bare/"))
        floor = next((c for k, c in group.items() if k.startswith("passthrough/")), bare)
        rows.append(
            {
                "group": case.group,
                "variant": case.variant,
                "visitor": case.visitor,
                "n": case.n,
                "median_us": round(case.median_us, 2),
                "min_us": round(min(case.samples_us), 2),
                "max_us": round(max(case.samples_us), 2),
                "samples_us": [round(s, 2) for s in case.samples_us],
                "wall_median_us": round(statistics.median(case.wall_us), 2),
                "wall_samples_us": [round(s, 2) for s in case.wall_us],
                "ratio_to_bare": round(case.median_us / bare.median_us, 3),
                "over_floor_us": reporting.paired_over(case.samples_us, floor.samples_us),
                "floor": floor.variant,
                "answer": case.answer,
            }
        )
    return rows


# -- memory ---------------------------------------------------------------------------------


def rss_kb() -> int:
    """Resident set size of this process, kB (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def visitor_headers(i: int, cookie: str) -> list[tuple[bytes, bytes]]:
    """Visitor ``i``: its own IP, user agent and consent cookie."""
    ip = f"2.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    ua = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{100 + i % 30}.0.{i // 30}.{i % 97} Safari/537.36"
    )
    jar = f"sessionid=s{i}; _ga=GA1.1.{i}.1700000000; {apps.CONSENT_COOKIE}={cookie}"
    return [
        (b"host", b"shop.example"),
        (b"user-agent", ua.encode()),
        (b"accept-language", b"de-DE,de;q=0.9"),
        (b"x-forwarded-for", ip.encode()),
        (b"cookie", jar.encode()),
    ]


def replayed_app(app: Any) -> Any:
    """A raw ASGI app answering exactly what ``app`` answers to ``GET /`` (recorded once).

    The memory run wraps this instead of Starlette: privguard sees the same status,
    headers (three Set-Cookie lines) and body, and a visitor costs about a third less,
    so a million of them fit in the default run.
    """
    loop = asyncio.new_event_loop()
    sent: list[dict[str, Any]] = []

    async def record(message: Any) -> None:
        sent.append(dict(message))

    try:
        loop.run_until_complete(app(asgi_scope(apps.request_headers(None)), _receive, record))
    finally:
        loop.close()
    messages = tuple(sent)

    async def replay(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    return replay


def memory_growth(geo_db: Path, visitors: int, checkpoint: int, warmup: int) -> dict[str, Any]:
    """RSS before/after ``visitors`` distinct visitors through the privguard ASGI app.

    Every visitor has its own signed consent cookie (its own receipt id, granting
    :data:`apps.GRANTED` under gdpr), user agent, IP address and session cookie, so
    every request misses the decision, consent and user-agent caches and takes the
    whole ``decide()`` path. Each answer is checked: ``returning`` counts the visitors
    whose response kept ``sessionid`` and ``_ga`` and dropped ``_fbp``.
    """
    from privguard.asgi import PrivacyMiddleware
    from privguard.core.categories import Category
    from privguard.core.consent import ConsentCodec, ConsentState

    settings = apps.make_settings(geo_db)
    app = PrivacyMiddleware(replayed_app(apps.starlette_app("json")), settings=settings)
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    granted = frozenset(Category(c) for c in apps.GRANTED)
    version = settings.policy_version
    template = asgi_scope([])
    loop = asyncio.new_event_loop()
    expected = [b"sessionid", b"_ga"]
    counts = {"returning": 0}

    async def check(message: Any) -> None:
        if message["type"] == "http.response.start":
            names = [v.split(b"=", 1)[0] for n, v in message["headers"] if n == b"set-cookie"]
            if names == expected:
                counts["returning"] += 1

    async def run(start: int, stop: int) -> None:
        for i in range(start, stop):
            state = ConsentState(version, granted, f"r{i:x}", regime="gdpr")
            scope = template.copy()
            scope["headers"] = visitor_headers(i, codec.dump(state))
            await app(scope, _receive, check)

    loop.run_until_complete(run(0, warmup))  # fill every bounded cache once
    gc.collect()
    counts["returning"] = 0
    base = rss_kb()
    points = [{"visitors": 0, "rss_mb": round(base / 1024, 1)}]
    started = time.perf_counter()
    done = 0
    while done < visitors:
        step = min(checkpoint, visitors - done)
        loop.run_until_complete(run(warmup + done, warmup + done + step))
        done += step
        gc.collect()
        points.append({"visitors": done, "rss_mb": round(rss_kb() / 1024, 1)})
    elapsed = time.perf_counter() - started
    end = rss_kb()
    return {
        "visitors": visitors,
        "warmup_visitors": warmup,
        "returning_answers": counts["returning"],
        "rss_before_mb": round(base / 1024, 1),
        "rss_after_mb": round(end / 1024, 1),
        "growth_mb": round((end - base) / 1024, 1),
        "seconds": round(elapsed, 1),
        "us_per_visitor": round(elapsed / visitors * 1e6, 1),
        "checkpoints": points,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory", type=int, required=True, help="distinct visitors")
    parser.add_argument("--geo", type=Path, required=True, help="the benchmark .mmdb")
    parser.add_argument("--checkpoint", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    args = parser.parse_args(argv)
    result = memory_growth(args.geo, args.memory, args.checkpoint, args.warmup)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
