"""``privguard geoip check PATH [IP ...]``: is this the right GeoIP database?

Opens ``PATH`` exactly as the middleware would (``geoip_db=PATH``), prints
its type, edition and build date, then the answer privguard would use for
each IP: country, ISO 3166-2 subdivision and regime under the default
regions. Exit 0 when the database is usable, 2 when it is missing, corrupt or
of the wrong type (or an argument is not an IP address).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "check"]


def register(subparsers: Any) -> None:
    """Add ``geoip check`` to the ``privguard`` command line."""
    geoip = subparsers.add_parser("geoip", help="GeoIP database tools")
    sub = geoip.add_subparsers(dest="geoip_command", metavar="COMMAND")
    check_parser = sub.add_parser(
        "check",
        help="validate a MaxMind .mmdb and look up IPs",
        description="Validate a MaxMind .mmdb (Country or City edition) and show "
        "what privguard would answer for each IP.",
    )
    check_parser.add_argument("path", metavar="PATH", help="the .mmdb file")
    check_parser.add_argument("ips", metavar="IP", nargs="*", help="addresses to look up")
    check_parser.add_argument("--json", action="store_true", help="print one JSON object")
    check_parser.set_defaults(func=check)

    def _usage(args: argparse.Namespace) -> int:
        geoip.print_help(sys.stderr)
        return 2

    geoip.set_defaults(func=_usage)


def check(args: argparse.Namespace) -> int:
    """Run ``geoip check``; returns the exit code."""
    from privguard.core.clientip import parse_ip
    from privguard.core.regions import normalise_country
    from privguard.errors import ConfigError
    from privguard.geo import describe, open_geo
    from privguard.settings import Settings

    try:
        geo = open_geo(args.path, required=True)
    except ConfigError as exc:
        print(f"privguard geoip check: {exc}", file=sys.stderr)
        return 2
    if geo is None:  # not reached: a path never gives None with required=True
        return 2
    info: dict[str, Any] = {"path": args.path, **describe(geo.metadata)}
    regions = Settings(secret_key="privguard-geoip-check-placeholder").regions  # default regions
    answers: list[dict[str, Any]] = []
    status = 0
    for ip in args.ips:
        addr = parse_ip(ip)
        if addr is None:
            answers.append({"ip": ip, "error": "not an IP address"})
            status = 2
            continue
        country, subdivision = geo.lookup(str(addr))
        country = normalise_country(country)
        regime = regions.regime_for(country, subdivision if country else None).name
        answers.append({"ip": ip, "country": country, "subdivision": subdivision, "regime": regime})
    if args.json:
        print(json.dumps({**info, "answers": answers}, indent=2))
        return status
    print(f"database:  {info['path']}")
    print(f"type:      {info['database_type']} ({info['edition']} edition)")
    print(f"built:     {info['build_date']}")
    print(f"ip:        IPv{info['ip_version']}, {info['node_count']} nodes")
    if info["edition"] == "Country":
        print("note:      a Country edition has no US states; use a City edition for US-XX")
    for row in answers:
        if "error" in row:
            print(f"{row['ip']}: {row['error']}")
        elif row["country"] is None:
            print(f"{row['ip']}: not found -> regime {row['regime']} (strictest)")
        else:
            region = row["subdivision"] or row["country"]
            print(f"{row['ip']}: {region} -> regime {row['regime']}")
    return status
