"""Who-is-asking cost per request: client IP, GeoIP and User-Agent resolution.

Run: ``.venv/bin/python benchmarks/bench_resolution.py [--quick]``. Builds a
City ``.mmdb`` with :data:`NETWORKS` random networks (US networks carry a
state) through ``tests/geodb.py``, times each step with ``timeit`` (several
repeats, the median is reported, in microseconds per call) and writes
``benchmarks/results/resolution.json``.

* ``resolve_client_ip``: one trusted proxy (hop count 1) and a trusted
  network list with a spoofed left-hand value; plus ``truncate_ip``.
* GeoIP: ``GeoIP.lookup`` uncached ("cold": ``cache_size=0``, every call reads
  the tree) and cached (the same visitors again); for comparison the raw
  ``maxminddb`` reader and geoip2's ``Reader.city`` model objects.
* User agents: ``UserAgents.parse`` uncached (``cache_size=0``: a Rust-engine
  parse of a real browser UA every call) and cached.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import statistics
import sys
import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import geoip2.database
import maxminddb

from privguard.core.clientip import parse_trusted_proxies, resolve_client_ip, truncate_ip
from privguard.geo import GeoIP
from privguard.useragent import UserAgents

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "resolution.json"
NETWORKS = 10_000
REPEAT = 7

BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
COUNTRIES = ("DE", "FR", "GB", "US", "US", "US", "BR", "JP", "CH", "NO", "IN", "CA")
STATES = ("CA", "TX", "NY", "WA", "FL", "CO", "VA")


def _geodb() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "privguard_tests_geodb", ROOT / "tests" / "geodb.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("tests/geodb.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _time(stmt: str, env: dict[str, Any], number: int) -> float:
    """Median microseconds per call over REPEAT runs of ``number`` calls."""
    runs = timeit.Timer(stmt, globals=env).repeat(repeat=REPEAT, number=number)
    return round(statistics.median(runs) / number * 1e6, 3)


class _Cycle:
    """Hands out the items of a list in turn (cheap, so it barely shows in timings)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.i = 0

    def __call__(self) -> Any:
        self.i = (self.i + 1) % len(self.items)
        return self.items[self.i]


def build_city(path: Path, n: int, rng: random.Random) -> tuple[Path, list[str]]:
    """A City db of ``n`` random /24 networks; returns it and one address per network."""
    networks: dict[str, tuple[str, str | None]] = {}
    while len(networks) < n:
        a, b, c = rng.randrange(1, 224), rng.randrange(256), rng.randrange(256)
        country = rng.choice(COUNTRIES)
        state = rng.choice(STATES) if country == "US" else None
        networks[f"{a}.{b}.{c}.0/24"] = (country, state)
    db = _geodb().build_city_db(path, networks)
    ips = [cidr.replace(".0/24", f".{rng.randrange(1, 255)}") for cidr in networks]
    return db, ips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    rng = random.Random(7239)
    rows: dict[str, dict[str, Any]] = {}

    def record(name: str, us: float, note: str) -> None:
        rows[name] = {"us_per_call": us, "note": note}

    # -- client IP ------------------------------------------------------------------
    env: dict[str, Any] = {
        "resolve": resolve_client_ip,
        "truncate": truncate_ip,
        "nobody": parse_trusted_proxies(0),
        "one": parse_trusted_proxies(1),
        "nets": parse_trusted_proxies(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]),
    }
    n = 200_000 // scale
    record(
        "resolve_client_ip peer v4",
        _time("resolve('198.51.100.7', None, None, nobody)", env, n),
        "no trusted proxies: the socket peer",
    )
    record(
        "resolve_client_ip peer v6",
        _time("resolve('2001:db8:abcd:12::7', None, None, nobody)", env, n),
        "no trusted proxies: the socket peer",
    )
    record(
        "resolve_client_ip hops=1",
        _time("resolve('10.0.0.1', '198.51.100.7', None, one)", env, n),
        "X-Forwarded-For with one value behind one trusted proxy",
    )
    record(
        "resolve_client_ip cidr walk",
        _time("resolve('10.0.0.1', '6.6.6.6, 198.51.100.7, 10.1.2.3', None, nets)", env, n),
        "3 trusted networks, spoofed left value, one trusted hop",
    )
    record(
        "resolve_client_ip Forwarded",
        _time("resolve('10.0.0.1', None, 'for=\"[2001:db8::7]:4711\";proto=https', one)", env, n),
        "RFC 7239 header, IPv6 with port, hop count 1",
    )
    record("truncate_ip v4", _time("truncate('198.51.100.7')", env, n), "/24")
    record("truncate_ip v6", _time("truncate('2001:db8:abcd:12::7')", env, n), "/48")

    # -- GeoIP -----------------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="privguard-bench-") as tmp:
        networks = NETWORKS // scale
        db, ips = build_city(Path(tmp) / "city.mmdb", networks, rng)
        visitors = ips[:1000]
        cold = GeoIP(db, cache_size=0)
        warm = GeoIP(db)
        for ip in visitors:
            warm.lookup(ip)
        raw = maxminddb.open_database(str(db))
        model = geoip2.database.Reader(str(db))
        genv: dict[str, Any] = {
            "cold": cold,
            "warm": warm,
            "raw": raw,
            "model": model,
            "all_ips": _Cycle(ips),
            "visitor": _Cycle(visitors),
        }
        n = 100_000 // scale
        record("cycle overhead", _time("all_ips()", genv, n), "subtracted from nothing; for scale")
        record(
            "geo lookup cold",
            _time("cold.lookup(all_ips())", genv, n),
            f"cache_size=0, {networks} networks, City edition",
        )
        record(
            "geo lookup cached",
            _time("warm.lookup(visitor())", genv, n),
            "1000 returning visitors, default cache",
        )
        record("maxminddb reader.get", _time("raw.get(all_ips())", genv, n), "raw record dict")
        record(
            "geoip2 Reader.city",
            _time("model.city(all_ips())", genv, n // 5),
            "geoip2 model objects, for comparison",
        )
        geo_meta = {"networks": networks, "database_type": warm.metadata.database_type}
        raw.close()
        model.close()

    # -- user agents -----------------------------------------------------------------
    uncached = UserAgents(cache_size=0)
    cached = UserAgents()
    uas = list(BROWSER_UAS)
    for ua in uas:  # compile the lazy matchers before timing
        uncached.parse(ua)
        cached.parse(ua)
    uenv: dict[str, Any] = {"uncached": uncached, "cached": cached, "ua": _Cycle(uas)}
    record(
        "ua parse uncached",
        _time("uncached.parse(ua())", uenv, 20_000 // scale),
        f"cache_size=0, {len(uas)} real UAs (Rust engine, family + device)",
    )
    record(
        "ua parse cached",
        _time("cached.parse(ua())", uenv, 200_000 // scale),
        "the same UAs again, default cache",
    )

    total = (
        rows["resolve_client_ip hops=1"]["us_per_call"]
        + rows["truncate_ip v4"]["us_per_call"]
        + rows["geo lookup cached"]["us_per_call"]
        + rows["ua parse cached"]["us_per_call"]
    )
    record("per request (returning visitor)", round(total, 3), "resolve + truncate + geo + ua")

    print(f"{'step':<34} {'µs/call':>9}  note")
    for name, row in rows.items():
        print(f"{name:<34} {row['us_per_call']:>9.3f}  {row['note']}")
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeat": REPEAT,
        "statistic": "median of repeats, microseconds per call",
        "quick": args.quick,
        "geoip": geo_meta,
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
