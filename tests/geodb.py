"""Small MaxMind ``.mmdb`` files for tests and benchmarks, built with mmdb-writer.

No GeoIP data ships with privguard; tests build what they need::

    from tests.geodb import build_city_db, build_country_db

    build_country_db(tmp_path / "country.mmdb", {"203.0.113.0/24": "DE"})
    build_city_db(tmp_path / "city.mmdb", {"198.51.100.0/24": ("US", "CA")})

Databases are IPv6 trees with IPv4 in ``::/96`` (as MaxMind ships them), so
both address families resolve. Records have the GeoIP2 shape (``country``,
``registered_country``, ``continent``; City adds ``subdivisions``, ``city``),
so ``geoip2.database.Reader`` reads them too. No state lives here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

__all__ = ["build_country_db", "build_city_db", "build_mmdb", "EU_CONTINENT"]

EU_CONTINENT = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO GB CH AX GI JE GG IM".split()
)
_NORTH_AMERICA = frozenset({"US", "CA", "MX"})


def build_mmdb(
    path: str | os.PathLike[str],
    database_type: str,
    records: Mapping[str, Mapping[str, Any]],
) -> Path:
    """Write ``records`` (CIDR -> record dict) as a database of ``database_type``."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description={"en": f"privguard test {database_type}"},
    )
    for cidr, record in records.items():
        writer.insert_network(IPSet([cidr]), dict(record))
    out = Path(path)
    writer.to_db_file(str(out))
    return out


def _country(code: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"iso_code": code, "names": {"en": f"Country {code}"}}
    if code in EU_CONTINENT - {"IS", "LI", "NO", "GB", "CH", "GI", "JE", "GG", "IM"}:
        rec["is_in_european_union"] = True
    return rec


def _record(country: str | None, registered_country: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    if country is not None:
        rec["country"] = _country(country)
        continent = "EU" if country in EU_CONTINENT else "NA" if country in _NORTH_AMERICA else "AS"
        rec["continent"] = {"code": continent, "names": {"en": continent}}
    registered = registered_country or country
    if registered is not None:
        rec["registered_country"] = _country(registered)
    return rec


def build_country_db(
    path: str | os.PathLike[str],
    networks: Mapping[str, str | None],
    *,
    database_type: str = "GeoLite2-Country",
    registered_country: str | None = None,
) -> Path:
    """A Country edition: CIDR -> ISO country (``None``: a record with no ``country``).

    ``registered_country`` puts that code in every record's
    ``registered_country`` (to prove it is never used as the location).
    """
    records = {cidr: _record(code, registered_country) for cidr, code in networks.items()}
    return build_mmdb(path, database_type, records)


def build_city_db(
    path: str | os.PathLike[str],
    networks: Mapping[str, tuple[str | None, str | None]],
    *,
    database_type: str = "GeoLite2-City",
    registered_country: str | None = None,
) -> Path:
    """A City edition: CIDR -> (ISO country, first-level subdivision code like ``"CA"``)."""
    records: dict[str, dict[str, Any]] = {}
    for cidr, (country, subdivision) in networks.items():
        rec = _record(country, registered_country)
        if subdivision is not None:
            rec["subdivisions"] = [
                {"iso_code": subdivision, "names": {"en": f"Subdivision {subdivision}"}}
            ]
        if country is not None:
            rec["city"] = {"names": {"en": f"City in {country}"}}
            rec["location"] = {"latitude": 0.0, "longitude": 0.0, "accuracy_radius": 100}
        records[cidr] = rec
    return build_mmdb(path, database_type, records)
