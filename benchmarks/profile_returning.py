"""Where the returning visitor's microseconds go: cProfile of the in-process JSON cases.

    python benchmarks/profile_returning.py            # writes results/profile-returning.txt

``run.py`` writes the same profile with every run, beside its results JSON.
    python benchmarks/profile_returning.py -n 20000 --out /tmp/p.txt

Profiles privguard (ASGI and WSGI) answering the returning visitor of ``inprocess.py``
(the small JSON endpoint, a valid consent cookie) and prints, per adapter, the
functions by own time and by cumulative time. cProfile adds a fixed cost to every call,
so read the shares and call counts, not the absolute times (those are in ``run.py``).

Each adapter's section starts with the bytecodes privguard executes per request, by
function (counted with ``sys.settrace`` opcode events): a number that does not depend on
how busy the machine is, so two versions compare exactly where timings cannot.

It ends with where the in-framework overhead comes from (:func:`shares`): privguard's
CPU time over the pass-through around a do-nothing app that answers with the
framework's own response headers (privguard's own work, caches warm), the same with a
4 MB memory sweep between requests (its data cold), and around the framework itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import apps
import inprocess

HERE = Path(__file__).resolve().parent


def bytecodes(run: inprocess.Timer, n: int) -> str:
    """privguard's bytecodes per request, by function, over ``n`` (warm) requests."""
    counts: collections.Counter[str] = collections.Counter()

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if "privguard" not in Path(code.co_filename).parts:
            return None
        frame.f_trace_opcodes = True
        where = f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})"

        def opcode(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[where] += 1
            return opcode

        return opcode

    sys.settrace(call)
    try:
        run(n)
    finally:
        sys.settrace(None)
    total = sum(counts.values()) / n
    lines = [f"--- privguard's bytecodes per request: {total:.0f} (exact; by function) ---"]
    lines += [f"{count / n:8.1f}  {where}" for where, count in counts.most_common()]
    return "\n".join(lines) + "\n"


def profile(label: str, run: inprocess.Timer, n: int, top: int) -> str:
    run(max(n // 10, 100))  # warm-up: caches, first-call imports
    ops = bytecodes(run, min(n, 500))
    prof = cProfile.Profile()
    prof.enable()
    run(n)
    prof.disable()
    out = io.StringIO()
    out.write(f"=== {label}: {n} requests ===\n")
    out.write(ops)
    stats = pstats.Stats(prof, stream=out)
    out.write("--- everything (app and framework included), by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("--- privguard's own functions, by own time ---\n")
    stats.sort_stats("tottime").print_stats(r"privguard[/\\]", top)
    out.write("--- privguard's own functions, by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(r"privguard[/\\]", top)
    text = out.getvalue()
    for prefix in sorted({str(Path(p).parent) + "/" for p in sys.path if p}, key=len)[::-1]:
        text = text.replace(prefix, "")  # short file names: privguard/..., starlette/...
    return text


#: Bytes the ``cold`` do-nothing app sweeps before each answer (twice the L2 of this machine).
SWEEP = 4 * 1024 * 1024


def _sweeper(cold: bool) -> Any:
    """A function touching every cache line of :data:`SWEEP` bytes (C speed), or None."""
    if not cold:
        return None
    buf = bytearray(SWEEP)
    zeros = bytes(len(buf[::64]))

    def sweep() -> None:
        buf[::64] = zeros

    return sweep


def _wsgi_answer(settings: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    """What the Flask JSON endpoint answers (status, headers, body), taken once."""
    app = apps.wsgi_app("passthrough", settings, "json")
    seen: list[Any] = []
    body = b"".join(app(inprocess.wsgi_environ([]), lambda s, h, e=None: seen.extend((s, h))))
    return seen[0], list(seen[1]), body


def _asgi_answer(settings: Any, loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """The messages the Starlette JSON endpoint sends, taken once."""
    app = apps.asgi_app("passthrough", settings, "json")
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop.run_until_complete(app(inprocess.asgi_scope([]), inprocess._receive, send))
    return sent


def _do_nothing_wsgi(answer: tuple[str, list[tuple[str, str]], bytes], cold: bool) -> Any:
    status, headers, body = answer
    sweep = _sweeper(cold)

    def app(environ: Any, start_response: Any) -> Any:
        if sweep is not None:
            sweep()
        start_response(status, list(headers))
        return [body]

    return app


def _do_nothing_asgi(messages: list[dict[str, Any]], cold: bool) -> Any:
    start, body = messages[0], messages[-1]
    sweep = _sweeper(cold)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if sweep is not None:
            sweep()
        await send({**start, "headers": list(start["headers"])})
        await send(dict(body))

    return app


def _overhead(runs: dict[str, inprocess.Timer], n: int, rounds: int) -> str:
    """privguard minus pass-through: median of per-round differences (min-to-min)."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(max(n // 5, 20))  # warm-up
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(run(n)[0] / n * 1e6)
    base, mine = samples["passthrough"], samples["privguard"]
    median = statistics.median(b - a for a, b in zip(base, mine, strict=True))
    return f"{median:+6.2f} us ({min(mine) - min(base):+.2f})"


def shares(settings: Any, n: int, rounds: int = 15) -> str:
    """Where the returning visitor's in-framework overhead comes from (see the module)."""
    from privguard.asgi import PrivacyMiddleware as AsgiPrivacy
    from privguard.wsgi import PrivacyMiddleware as WsgiPrivacy

    returning = apps.request_headers(apps.consent_cookie(settings))
    environ = inprocess.wsgi_environ(returning)
    scope = inprocess.asgi_scope(returning)
    loop = asyncio.new_event_loop()
    lines = [
        "--- where the overhead comes from: privguard minus pass-through, CPU per request, "
        f"median of {rounds} interleaved rounds of {n} (min-to-min) ---"
    ]
    try:
        wsgi_answer, asgi_answer = _wsgi_answer(settings), _asgi_answer(settings, loop)
        for cold in (False, True):
            label = "data cold (4 MB swept)" if cold else "warm"
            flask = _do_nothing_wsgi(wsgi_answer, cold)
            wsgi = {
                "passthrough": inprocess.wsgi_timer(apps.WsgiPassThrough(flask), environ),
                "privguard": inprocess.wsgi_timer(WsgiPrivacy(flask, settings=settings), environ),
            }
            star = _do_nothing_asgi(asgi_answer, cold)
            asgi = {
                "passthrough": inprocess.asgi_timer(loop, apps.AsgiPassThrough(star), scope),
                "privguard": inprocess.asgi_timer(
                    loop, AsgiPrivacy(star, settings=settings), scope
                ),
            }
            lines.append(
                f"do-nothing app, {label:23}  ASGI {_overhead(asgi, n, rounds)}"
                f"   WSGI {_overhead(wsgi, n, rounds)}"
            )
        framework = {
            side: {
                variant: (
                    inprocess.asgi_timer(loop, apps.asgi_app(variant, settings, "json"), scope)
                    if side == "ASGI"
                    else inprocess.wsgi_timer(apps.wsgi_app(variant, settings, "json"), environ)
                )
                for variant in ("passthrough", "privguard")
            }
            for side in ("ASGI", "WSGI")
        }
        both = f"ASGI {_overhead(framework['ASGI'], n, rounds)}"
        both += f"   WSGI {_overhead(framework['WSGI'], n, rounds)}"
        lines.append(f"{'the framework (Starlette / Flask)':39}  {both}")
    finally:
        loop.close()
    lines.append(
        "(the same do-nothing app answers with the framework's own headers, so the first row"
        " is privguard's own work; what the framework rows add is cache and predictor state"
        " the framework's code and privguard's evict from each other)"
    )
    return "\n".join(lines) + "\n"


def profile_text(settings: Any, n: int, top: int = 25) -> str:
    """The pstats summary of ``n`` returning visitors through privguard, ASGI then WSGI."""
    returning = apps.request_headers(apps.consent_cookie(settings))
    loop = asyncio.new_event_loop()
    try:
        asgi = apps.asgi_app("privguard", settings, "json")
        wsgi = apps.wsgi_app("privguard", settings, "json")
        parts = [
            f"privguard returning visitor, JSON endpoint; Python {sys.version.split()[0]}, "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; "
            f"{apps.settings_summary(settings)}\n",
            profile(
                "ASGI",
                inprocess.asgi_timer(loop, asgi, inprocess.asgi_scope(returning)),
                n,
                top,
            ),
            profile(
                "WSGI",
                inprocess.wsgi_timer(wsgi, inprocess.wsgi_environ(returning)),
                n,
                top,
            ),
            shares(settings, max(n // 5, 20)),
        ]
    finally:
        loop.close()
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000, help="requests per adapter")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile-returning.txt")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = apps.make_settings(apps.build_geo_db(Path(tmp) / "bench-city.mmdb"))
        text = profile_text(settings, args.n, args.top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
