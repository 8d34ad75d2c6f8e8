"""GeoIP lookups (geo.py) and ``privguard geoip check`` (geo_cli.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import geoip2.database
import maxminddb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import privguard.geo as geo_module
from privguard.cli import main as cli_main
from privguard.core.decision import Lookups, decide
from privguard.core.request import RequestView
from privguard.errors import ConfigError
from privguard.geo import GeoIP, open_geo
from privguard.settings import Settings
from tests.geodb import build_city_db, build_country_db, build_mmdb

COUNTRIES = {
    "203.0.113.0/24": "DE",
    "192.0.2.0/25": "BR",
    "2001:db8:1::/48": "FR",
    "198.18.0.0/16": None,  # a record without a country (e.g. satellite provider)
}
CITIES = {
    "198.51.100.0/25": ("US", "CA"),
    "198.51.100.128/25": ("US", None),
    "203.0.113.0/24": ("GB", "ENG"),
    "2001:db8:2::/48": ("US", "TX"),
}


@pytest.fixture
def country_db(tmp_path: Path) -> Path:
    return build_country_db(tmp_path / "country.mmdb", COUNTRIES, registered_country="NL")


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return build_city_db(tmp_path / "city.mmdb", CITIES, registered_country="NL")


@pytest.fixture
def fast_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geo_module, "RECHECK_SECONDS", 0.0)


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the GeoIP snapshot copies of these tests in their own temp dir."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _snapshots(tmp: Path) -> list[Path]:
    return sorted(p for d in tmp.glob("privguard-geoip-*") for p in d.iterdir())


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        pytest.param("203.0.113.9", ("DE", None), id="v4"),
        pytest.param("192.0.2.1", ("BR", None), id="v4-other"),
        pytest.param("192.0.2.200", (None, None), id="v4-not-in-db"),
        pytest.param("2001:db8:1:ff::1", ("FR", None), id="v6"),
        pytest.param("2001:db8:9::1", (None, None), id="v6-not-in-db"),
        pytest.param("::ffff:203.0.113.9", ("DE", None), id="v4-mapped"),
        pytest.param("198.18.0.1", (None, None), id="no-country-never-registered-country"),
        pytest.param("not-an-ip", (None, None), id="garbage"),
        pytest.param("", (None, None), id="empty"),
    ],
)
def test_country_edition(country_db: Path, ip: str, expected: tuple[str | None, None]) -> None:
    geo = open_geo(str(country_db), required=True)
    assert geo is not None
    assert geo.lookup(ip) == expected
    assert geo.lookup(ip) == expected  # cached answer is the same


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        pytest.param("198.51.100.7", ("US", "US-CA"), id="us-state"),
        pytest.param("198.51.100.200", ("US", None), id="us-without-state"),
        pytest.param("203.0.113.1", ("GB", "GB-ENG"), id="gb-country-subdivision"),
        pytest.param("2001:db8:2::1", ("US", "US-TX"), id="v6-us-state"),
        pytest.param("10.0.0.1", (None, None), id="not-in-db"),
    ],
)
def test_city_edition(city_db: Path, ip: str, expected: tuple[str | None, str | None]) -> None:
    geo = open_geo(city_db, required=True)  # a PathLike works too
    assert geo is not None
    assert geo.lookup(ip) == expected


def test_geoip2_reader_and_maxminddb_reader_are_accepted(city_db: Path) -> None:
    with geoip2.database.Reader(str(city_db)) as reader:
        geo = open_geo(reader, required=True)
        assert geo is not None and geo.path is None
        assert geo.lookup("198.51.100.7") == ("US", "US-CA")
    raw = maxminddb.open_database(str(city_db))
    try:
        geo = open_geo(raw, required=True)
        assert geo is not None
        assert geo.lookup("2001:db8:2::1") == ("US", "US-TX")
    finally:
        raw.close()


def test_non_string_ip_is_unknown(city_db: Path) -> None:
    geo = open_geo(city_db, required=True)
    assert geo is not None
    assert geo.lookup(["198.51.100.7"]) == (None, None)  # type: ignore[arg-type]
    assert geo.lookup(None) == (None, None)  # type: ignore[arg-type]


def test_none_is_no_geoip() -> None:
    assert open_geo(None, required=True) is None


def _asn_db(path: Path) -> Path:
    return build_mmdb(path, "GeoLite2-ASN", {"203.0.113.0/24": {"autonomous_system_number": 64500}})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing.mmdb", "does not exist", id="missing"),
        pytest.param(lambda p: p, "is a directory", id="directory"),
        pytest.param(
            lambda p: (p / "junk.mmdb").write_bytes(os.urandom(2048)) and p / "junk.mmdb",
            "not a valid MaxMind",
            id="corrupt",
        ),
        pytest.param(
            lambda p: (p / "empty.mmdb").write_bytes(b"") == 0 and p / "empty.mmdb",
            "not a valid MaxMind",
            id="empty-file",
        ),
        pytest.param(lambda p: _asn_db(p / "asn.mmdb"), "'GeoLite2-ASN' database", id="asn"),
    ],
)
def test_bad_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        open_geo(str(path), required=True)
    assert info.value.option == "geoip_db"
    assert message in str(info.value)
    with caplog.at_level(logging.WARNING, logger="privguard.geo"):
        assert open_geo(str(path), required=False) is None
    assert [r.name for r in caplog.records] == ["privguard.geo"]
    assert message in caplog.records[0].getMessage()


def test_wrong_type_reader_is_refused(tmp_path: Path) -> None:
    with geoip2.database.Reader(str(_asn_db(tmp_path / "asn.mmdb"))) as reader:
        with pytest.raises(ConfigError, match="Country or City"):
            open_geo(reader, required=True)
    with pytest.raises(ConfigError, match="geoip2.database.Reader"):
        open_geo(object(), required=True)


def test_settings_and_decide_use_the_database(city_db: Path) -> None:
    settings = Settings(
        secret_key="x" * 32, geoip_db=str(city_db), country_regimes={"US-CA": "gdpr"}
    )
    lookups = Lookups(geo=open_geo(settings.geoip_db, settings.geoip_required))

    def visit(peer: str) -> tuple[str | None, str | None, str]:
        d = decide(RequestView("GET", "/", peer=peer, headers={}), settings, lookups, 0.0)
        return d.country, d.subdivision, d.regime.name

    assert visit("198.51.100.7") == ("US", "US-CA", "gdpr")
    assert visit("198.51.100.200") == ("US", None, "us-optout")
    assert visit("10.0.0.1") == (None, None, "gdpr")


# -- serving: replacement, vanishing, corruption, fork, threads ---------------------------


def _replace(path: Path, networks: dict[str, tuple[str | None, str | None]]) -> None:
    tmp = path.with_suffix(".new")
    build_city_db(tmp, networks)
    os.replace(tmp, path)


def test_replaced_file_is_reloaded(city_db: Path, fast_recheck: None) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None
    assert geo.lookup("198.51.100.7") == ("US", "US-CA")
    _replace(city_db, {"198.51.100.0/24": ("CA", None)})
    assert geo.lookup("198.51.100.7") == ("CA", None)  # cache cleared on reload


def test_file_change_is_checked_at_most_once_a_second(city_db: Path) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None
    assert geo.lookup("198.51.100.7") == ("US", "US-CA")
    _replace(city_db, {"198.51.100.0/24": ("CA", None)})
    assert geo.lookup("198.51.100.7") == ("US", "US-CA")  # within the recheck interval


def test_vanished_and_corrupt_file_answer_unknown_and_log_once(
    city_db: Path, fast_recheck: None, caplog: pytest.LogCaptureFixture
) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None
    with caplog.at_level(logging.INFO, logger="privguard.geo"):
        os.remove(city_db)
        assert [geo.lookup("198.51.100.7") for _ in range(3)] == [(None, None)] * 3
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "unavailable" in errors[0].getMessage()
        city_db.write_bytes(b"\x00" * 4096)  # comes back corrupt
        assert [geo.lookup("198.51.100.7") for _ in range(3)] == [(None, None)] * 3
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        _replace(city_db, CITIES)  # and then repaired
        assert geo.lookup("198.51.100.7") == ("US", "US-CA")
    assert any("readable again" in r.getMessage() for r in caplog.records)


def test_reopens_after_fork(city_db: Path) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None
    assert geo.lookup("198.51.100.7") == ("US", "US-CA")
    parent_reader = geo._reader
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            answer = geo.lookup("2001:db8:2::1")
            reopened = geo._reader is not parent_reader
            os.write(write_end, json.dumps([answer, reopened]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    data = os.read(read_end, 4096)
    os.close(read_end)
    assert status == 0
    assert json.loads(data) == [["US", "US-TX"], True]
    assert geo._reader is parent_reader


def test_threads_share_one_instance_safely(city_db: Path, fast_recheck: None) -> None:
    geo = GeoIP(str(city_db), cache_size=8)
    errors: list[BaseException] = []
    answers: set[tuple[str | None, str | None]] = set()

    def work() -> None:
        try:
            for i in range(300):
                answers.add(geo.lookup(f"198.51.100.{i % 256}"))
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in range(5):
        _replace(city_db, CITIES)
    for t in threads:
        t.join()
    assert not errors
    assert answers <= {("US", "US-CA"), ("US", None), (None, None)}
    assert geo._cached.cache_info().maxsize == 8
    assert geo._cached.cache_info().currsize <= 8


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(ip=st.text(max_size=50) | st.ip_addresses().map(str))
def test_lookup_never_raises(city_db: Path, ip: str) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None
    country, subdivision = geo.lookup(ip)
    assert country is None or (len(country) == 2 and country.isupper())
    assert subdivision is None or (country is not None and subdivision.startswith(country + "-"))


# -- CLI -----------------------------------------------------------------------------------


def test_cli_check_ok(city_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["geoip", "check", str(city_db), "198.51.100.7", "203.0.113.1", "10.0.0.1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "GeoLite2-City (City edition)" in out
    assert "built:" in out
    assert "198.51.100.7: US-CA -> regime us-optout" in out
    assert "203.0.113.1: GB-ENG -> regime gdpr" in out
    assert "10.0.0.1: not found -> regime gdpr (strictest)" in out


def test_cli_check_json(country_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["geoip", "check", "--json", str(country_db), "192.0.2.1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["edition"] == "Country" and data["database_type"] == "GeoLite2-Country"
    assert data["answers"] == [
        {"ip": "192.0.2.1", "country": "BR", "subdivision": None, "regime": "notice"}
    ]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["missing.mmdb"], id="missing"),
        pytest.param(["asn.mmdb"], id="asn"),
        pytest.param(["city.mmdb", "junk"], id="bad-ip"),
        pytest.param([], id="no-path"),
    ],
)
def test_cli_check_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    build_city_db(tmp_path / "city.mmdb", CITIES)
    _asn_db(tmp_path / "asn.mmdb")
    paths = [str(tmp_path / a) if a.endswith(".mmdb") else a for a in args]
    assert cli_main(["geoip", "check", *paths]) == 2


def test_cli_geoip_without_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["geoip"]) == 2


# -- the mapped file is a private snapshot: copying over the database is safe --------------


def test_the_mapped_file_is_a_private_snapshot(
    city_db: Path, private_tmp: Path, fast_recheck: None
) -> None:
    geo = open_geo(str(city_db), required=True)
    assert geo is not None and geo.lookup("198.51.100.7") == ("US", "US-CA")
    (snap,) = _snapshots(private_tmp)
    assert snap.read_bytes() == city_db.read_bytes()
    assert snap.parent.stat().st_mode & 0o777 == 0o700
    _replace(city_db, {"198.51.100.0/24": ("CA", None)})
    assert geo.lookup("198.51.100.7") == ("CA", None)
    again = open_geo(str(city_db), required=True)  # a second instance reuses the copy
    assert again is not None and again.lookup("198.51.100.7") == ("CA", None)
    assert len(_snapshots(private_tmp)) == 1  # the old version's copy is gone


def test_unsafe_snapshot_dir_maps_the_file_directly(
    city_db: Path, private_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = private_tmp / f"privguard-geoip-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # others could plant a database here
    with caplog.at_level(logging.WARNING, logger="privguard.geo"):
        geo = open_geo(str(city_db), required=True)
    assert geo is not None and geo.lookup("198.51.100.7") == ("US", "US-CA")
    assert list(shared.iterdir()) == []
    assert "mapping" in caplog.text


IN_PLACE = textwrap.dedent(
    """
    import shutil, sys
    sys.path.insert(0, sys.argv[1])
    from tests.geodb import build_country_db
    import privguard.geo as geo_module

    geo_module.RECHECK_SECONDS = float(sys.argv[4])
    db, new = sys.argv[2], sys.argv[3]
    networks = {f"10.{a}.{b}.0/24": "US" for a in range(20) for b in range(256)}
    build_country_db(db, networks)
    build_country_db(new, {k: "DE" for k in networks})
    geo = geo_module.open_geo(db, required=True)
    assert geo.lookup("10.1.2.3") == ("US", None)
    with open(db, "r+b") as f:  # `cp new.mmdb GeoLite2-Country.mmdb`, caught mid-copy
        f.truncate(0)
        f.flush()
        seen = {geo.lookup(f"10.{a}.7.1") for a in range(1, 20)}
        assert seen <= {("US", None), (None, None)}, seen
        with open(new, "rb") as src:
            shutil.copyfileobj(src, f)
    geo_module.RECHECK_SECONDS = 0.0
    geo._next_check = 0.0
    assert geo.lookup("10.19.250.1") == ("DE", None)
    print("survived")
    """
)


@pytest.mark.parametrize(
    "recheck",
    [pytest.param("0", id="reopen-at-once"), pytest.param("3600", id="stale-until-recheck")],
)
def test_copy_over_the_database_in_place_does_not_crash(
    tmp_path: Path, private_tmp: Path, recheck: str
) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IN_PLACE,
            str(root),
            str(tmp_path / "db.mmdb"),
            str(tmp_path / "new.mmdb"),
            recheck,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "survived"
