"""GeoIP: the country (and US state) of a client IP, from a MaxMind ``.mmdb``.

:func:`open_geo` turns the ``geoip_db`` option into a :class:`GeoIP` that the
core calls through its ``GeoLookup`` protocol: ``lookup(ip) -> (country,
subdivision)``, e.g. ``("DE", None)`` or ``("US", "US-CA")``.

* The hot path reads the raw record through the ``maxminddb`` reader (not the
  geoip2 model objects) and keeps a small bounded cache on the instance.
* Only ``country`` is the visitor's location; ``registered_country`` (where
  the block is registered) is never used. ``subdivisions[0]`` of a City
  database becomes an ISO 3166-2 code (``US-CA``). A record without a country
  answers ``(None, None)``, so the visitor gets the strictest regime.
* A path is opened once per process, reopened in a child after ``fork`` (pid
  check) and when the file is replaced (inode, size and mtime are checked at
  most once per :data:`RECHECK_SECONDS`). If the file vanishes or turns
  corrupt while serving, lookups answer ``(None, None)`` and it is logged once
  (logger ``privguard.geo``) -- a lookup never raises.
* What is mapped is a private copy of the file (one per database version, in
  a 0700 directory under the temp dir, shared by forked workers), so copying
  a new database *over* the old one in place cannot crash the process with
  SIGBUS; the change is picked up at the next check.
* A ``geoip2.database.Reader`` passed in is used as it is: no reopening, no
  copy (replace its file atomically, as ``geoipupdate`` does).

A missing, corrupt or wrong-type database (an ASN or ISP edition; the type
must contain ``Country``, ``City`` or ``Enterprise``) is a
:class:`~privguard.errors.ConfigError` for ``geoip_db`` at start-up, or, with
``geoip_required=False``, a logged warning and no GeoIP at all.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import logging
import os
import shutil
import stat as stat_module
import tempfile
import threading
import time
import weakref
from typing import Any

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from privguard.errors import ConfigError

__all__ = [
    "GeoIP",
    "open_geo",
    "describe",
    "RECHECK_SECONDS",
    "DEFAULT_CACHE_SIZE",
    "ACCEPTED_TYPES",
]

log = logging.getLogger("privguard.geo")

#: How often (seconds) the database file is checked for replacement.
RECHECK_SECONDS = 1.0
#: Snapshot copies older than this (seconds) are removed when a new one is made.
SNAPSHOT_MAX_AGE = 7 * 24 * 3600
#: Cached answers per :class:`GeoIP` instance.
DEFAULT_CACHE_SIZE = 4096
#: ``metadata().database_type`` must contain one of these.
ACCEPTED_TYPES = ("Country", "City", "Enterprise")
_UNKNOWN: tuple[str | None, str | None] = (None, None)
_DOWNLOAD_HINT = (
    "use a MaxMind GeoLite2/GeoIP2 Country or City database "
    "(https://dev.maxmind.com/geoip/geolite2-free-geolocation-data)"
)


#: Every GeoIP instance reading a file: a forked child must reopen each one.
_WATCHED: weakref.WeakSet[GeoIP] = weakref.WeakSet()


def _after_fork() -> None:
    for geo in list(_WATCHED):
        geo._next_check = float("-inf")


os.register_at_fork(after_in_child=_after_fork)


class GeoIP:
    """Country and subdivision lookups on one MaxMind database.

    Build it with :func:`open_geo`; ``source`` is a path or a
    ``geoip2.database.Reader`` / ``maxminddb.Reader``. Thread-safe.
    """

    def __init__(self, source: Any, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._path: str | None = None
        self._stat: tuple[int, int, int] | None = None
        self._next_check = float("inf")
        self._broken = False
        if isinstance(source, str | os.PathLike):
            self._path = os.fsdecode(source)
            self._stat, reader = _open(self._path)
            self._next_check = time.monotonic() + RECHECK_SECONDS
        else:
            reader = _raw_reader(source)
            _check_type(reader, repr(source))
        self._reader: Any = reader
        self._pid = os.getpid()
        if self._path is not None:
            _WATCHED.add(self)  # a forked child looks at the file on its first lookup
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)

    @property
    def metadata(self) -> Any:
        """The open database's ``maxminddb`` metadata (type, build epoch, ...)."""
        return self._reader.metadata() if self._reader is not None else None

    @property
    def path(self) -> str | None:
        """The database path, or ``None`` for a reader passed in."""
        return self._path

    def lookup(self, ip: str) -> tuple[str | None, str | None]:
        """``(ISO country, ISO 3166-2 subdivision)`` of ``ip``; ``(None, None)`` if unknown."""
        self._check_file()
        if not isinstance(ip, str):
            return _UNKNOWN
        return self._cached(ip)

    def cache_clear(self) -> None:
        """Forget every cached answer."""
        self._cached.cache_clear()
        self._generation += 1

    def generation(self) -> int:
        """A number that changes whenever answers may have changed (reload, failure).

        Runs the same cheap file check as :meth:`lookup`, so callers that memoise
        results derived from lookups (the decision cache) notice a new database.
        """
        if time.monotonic() >= self._next_check:  # _check_file, inlined: once per request
            self._refresh()
        return self._generation

    # -- internals ---------------------------------------------------------------------

    def _check_file(self) -> None:
        """Reopen after a fork, or when the file changed (looked at about once a second).

        A fork sets ``_next_check`` back (see :func:`_after_fork`), so the
        per-request check is one clock read, not a ``getpid`` system call.
        """
        if time.monotonic() >= self._next_check:
            self._refresh()

    def _lookup(self, ip: str) -> tuple[str | None, str | None]:
        reader = self._reader
        if reader is None:
            return _UNKNOWN
        try:
            record = reader.get(_unmap(ip))
        except ValueError:  # not an IP, or IPv6 in an IPv4-only database
            return _UNKNOWN
        except Exception as exc:  # a corrupt tree or data section
            self._mark_broken(f"lookup failed: {exc}")
            return _UNKNOWN
        return _answer(record)

    def _refresh(self) -> None:
        """Reopen after a fork or a file change; called at most once a second."""
        path = self._path
        if path is None:
            return
        if os.getpid() != self._pid:  # a lock held by a thread of the parent stays held here
            self._lock = threading.Lock()
        with self._lock:
            pid = os.getpid()
            now = time.monotonic()
            if pid == self._pid and now < self._next_check:
                return  # another thread did it
            forked = pid != self._pid
            self._pid = pid
            self._next_check = now + RECHECK_SECONDS
            try:
                stat = _stat_key(path)
            except OSError as exc:
                self._fail(f"cannot read {path!r}: {exc.strerror or exc}")
                return
            if not forked and stat == self._stat and self._reader is not None:
                return
            try:
                _, reader = _open(path)
            except ConfigError as exc:
                self._stat = stat
                self._fail(str(exc))
                return
            self._reader, self._stat = reader, stat
            self.cache_clear()
            if self._broken:
                log.warning("privguard GeoIP database %r is readable again", path)
            elif not forked:
                log.info("privguard reloaded the GeoIP database %r", path)
            self._broken = False

    def _fail(self, message: str) -> None:
        self._reader = None
        self.cache_clear()
        self._mark_broken(message)

    def _mark_broken(self, message: str) -> None:
        self._generation += 1
        if not self._broken:
            self._broken = True
            log.error(
                "privguard GeoIP unavailable (%s); visitors get the strictest regime until "
                "the database is readable again",
                message,
            )


def open_geo(db: Any, required: bool) -> GeoIP | None:
    """The ``geoip_db`` option as a lookup, or ``None`` (no GeoIP: strictest regime).

    ``db`` is ``None``, a path or a ``geoip2.database.Reader``. A bad database
    raises :class:`ConfigError` when ``required``, else it is logged as a
    warning and ``None`` is returned.
    """
    if db is None:
        return None
    try:
        return GeoIP(db)
    except ConfigError as exc:
        if required:
            raise
        log.warning("%s; continuing without GeoIP (visitors get the strictest regime)", exc)
        return None


def describe(metadata: Any) -> dict[str, Any]:
    """Type, edition, build date and size of a database, from its metadata."""
    kind = str(getattr(metadata, "database_type", ""))
    edition = next((t for t in ("City", "Enterprise", "Country") if t in kind), None)
    epoch = int(getattr(metadata, "build_epoch", 0) or 0)
    built = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return {
        "database_type": kind,
        "edition": edition,
        "build_date": built.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ip_version": getattr(metadata, "ip_version", None),
        "node_count": getattr(metadata, "node_count", None),
        "languages": list(getattr(metadata, "languages", []) or []),
    }


# -- helpers ---------------------------------------------------------------------------


def _stat_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _open(path: str) -> tuple[tuple[int, int, int], Any]:
    """Stat and open ``path``; any failure is a ConfigError naming ``geoip_db``."""
    if os.path.isdir(path):
        raise ConfigError("geoip_db", f"{path!r} is a directory, not a .mmdb file")
    try:
        stat = _stat_key(path)
        reader = maxminddb.open_database(_snapshot(path, stat))
    except FileNotFoundError:
        raise ConfigError("geoip_db", f"{path!r} does not exist; {_DOWNLOAD_HINT}") from None
    except OSError as exc:
        raise ConfigError("geoip_db", f"cannot read {path!r}: {exc.strerror or exc}") from None
    except (InvalidDatabaseError, ValueError) as exc:
        raise ConfigError(
            "geoip_db", f"{path!r} is not a valid MaxMind .mmdb database ({exc}); {_DOWNLOAD_HINT}"
        ) from None
    try:
        _check_type(reader, repr(path))
    except ConfigError:
        reader.close()
        raise
    return stat, reader


def _snapshot_dir() -> str | None:
    """This user's private snapshot directory (mode 0700), or ``None`` if unsafe."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    owner = "user" if uid is None else str(uid)
    directory = os.path.join(tempfile.gettempdir(), f"privguard-geoip-{owner}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError:
        return None
    if not stat_module.S_ISDIR(info.st_mode) or info.st_mode & 0o077:
        return None  # a symlink or a directory others can write: do not trust it
    if uid is not None and info.st_uid != uid:
        return None
    return directory


def _snapshot(path: str, stat: tuple[int, int, int]) -> str:
    """A private copy of ``path`` to map, so nobody can rewrite the mapped bytes.

    libmaxminddb mmaps the file; a copy *over* it in place (``cp new.mmdb
    GeoLite2-City.mmdb``) truncates the mapped pages and the next lookup dies
    with SIGBUS. The copy lives in a private directory under the temp dir,
    named by the source path and its (inode, size, mtime), so forked workers
    and restarts reuse one copy per database version, and older copies of the
    same path are removed. When no copy can be made the file itself is
    mapped (logged): replace it atomically then, as ``geoipupdate`` does.
    """
    directory = _snapshot_dir()
    if directory is None:
        log.warning("privguard GeoIP: no private temp directory; mapping %r directly", path)
        return path
    prefix = hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()
    prefix = prefix[:16] + "-"
    name = prefix + "-".join(map(str, stat)) + ".mmdb"
    target = os.path.join(directory, name)
    with contextlib.suppress(OSError):
        info = os.lstat(target)
        if stat_module.S_ISREG(info.st_mode) and info.st_size == stat[1]:
            return target
    source = open(path, "rb")  # errors here are the source's: let them propagate
    try:
        fd, part = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
    except OSError as exc:  # no space in the temp dir, ...
        log.warning("privguard GeoIP: cannot copy %r (%s); mapping it directly", path, exc)
        return path
    finally:
        source.close()
    # earlier versions of this database, and copies nobody refreshed for a week
    # (mapped copies stay readable after unlink; a missing one is made again)
    stale = time.time() - SNAPSHOT_MAX_AGE
    for entry in os.scandir(directory):
        if entry.name == name:
            continue
        with contextlib.suppress(OSError):
            if entry.name.startswith(prefix) or entry.stat().st_mtime < stale:
                os.unlink(entry.path)
    return target


def _raw_reader(source: Any) -> Any:
    """The ``maxminddb`` reader behind a geoip2 Reader (or the maxminddb reader itself)."""
    raw = getattr(source, "_db_reader", None)  # geoip2.database.Reader
    if raw is not None and hasattr(raw, "get"):
        return raw
    if hasattr(source, "get") and hasattr(source, "metadata"):  # maxminddb.Reader
        return source
    raise ConfigError("geoip_db", f"expected a path or a geoip2.database.Reader, got {source!r}")


def _check_type(reader: Any, name: str) -> None:
    try:
        kind = str(reader.metadata().database_type)
    except Exception as exc:
        raise ConfigError("geoip_db", f"{name}: cannot read the metadata ({exc})") from None
    if not any(t in kind for t in ACCEPTED_TYPES):
        raise ConfigError(
            "geoip_db",
            f"{name} is a {kind!r} database; privguard needs a Country or City edition "
            f"(database_type containing one of {list(ACCEPTED_TYPES)}); {_DOWNLOAD_HINT}",
        )


def _unmap(ip: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4`` (databases index IPv4 under ``::/96``)."""
    if ip[:7].lower() == "::ffff:" and "." in ip:
        return ip[7:]
    return ip


def _answer(record: Any) -> tuple[str | None, str | None]:
    if not isinstance(record, dict):
        return _UNKNOWN
    country_rec = record.get("country")
    if not isinstance(country_rec, dict):
        return _UNKNOWN  # never fall back to registered_country
    country = country_rec.get("iso_code")
    if not isinstance(country, str) or len(country) != 2 or not country.isascii():
        return _UNKNOWN
    country = country.upper()
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
        code = subdivisions[0].get("iso_code")
        if isinstance(code, str) and 0 < len(code) <= 3 and code.isascii() and code.isalnum():
            return country, f"{country}-{code.upper()}"
    return country, None
