"""Rate limiting for privguard's POST endpoints: a thin adapter over the ``limits`` library.

``rate_limit="30/minute"`` is counted with ``limits``' sliding window counter
strategy in a storage named by ``rate_limit_storage``: ``memory://`` (each
process counts alone, the default) or ``redis://host:port/db`` (every worker
and node shares one count). What is counted, and under which key, is decided
in :mod:`privguard.endpoints`; this module only parses the options, keeps the
storage and survives its outages:

* A storage that fails at run time (Redis down, a timeout) never fails a
  request: the limiter falls back to a per-process memory storage, logs the
  outage once, tries the shared storage again every ``retry_interval``
  seconds and logs once when it is back. A refusal must be recordable, so
  while Redis is away the limit is per process rather than absent.
* Keys are given as opaque strings and stored under ``privguard/<key>``;
  callers pass keyed hashes, never addresses.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from privguard.errors import ConfigError

__all__ = [
    "Rate",
    "RateLimiter",
    "parse_rate",
    "check_storage_url",
    "DEFAULT_STORAGE",
    "STORAGE_TIMEOUT",
]

log = logging.getLogger("privguard.ratelimit")

DEFAULT_STORAGE = "memory://"
#: Seconds a Redis round trip may take before the per-process fallback answers.
STORAGE_TIMEOUT = 0.25
#: Seconds between attempts to reach a failed shared storage again.
RETRY_INTERVAL = 5.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SPEC = re.compile(
    r"^\s*(\d{1,9})\s*(?:/|\s+per\s+)\s*"
    r"(?:(?P<s>s|secs?|seconds?)|(?P<m>m|mins?|minutes?)|(?P<h>h|hrs?|hours?)|(?P<d>d|days?))"
    r"\s*$",
    re.IGNORECASE,
)
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``window`` seconds."""

    limit: int
    window: float

    def times(self, factor: int) -> Rate:
        """The same window, ``factor`` times the limit."""
        return Rate(self.limit * factor, self.window)

    def item(self) -> RateLimitItem:
        """This rate as a ``limits`` item."""
        return RateLimitItemPerSecond(self.limit, int(self.window))


def parse_rate(spec: str) -> Rate:
    """``"30/minute"`` → ``Rate(30, 60.0)``; also ``5/second``, ``100/hour``, ``1000/day``.

    Units may be plural or short (``s``, ``min``, ``h``, ``d``). Anything else
    raises ``ConfigError(option="rate_limit")``.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(
            "rate_limit",
            f"{spec!r} is not a rate like '30/minute', '5/second', '100/hour' or '1000/day'",
        )
    unit = next(name for name in _UNITS if match.group(name) is not None)
    return Rate(int(match.group(1)), _UNITS[unit])


def check_storage_url(url: object) -> str:
    """``url`` when it names a usable storage, else ``ConfigError("rate_limit_storage")``.

    ``memory://`` or ``redis://[:password@]host[:port][/db]`` (also ``rediss://``
    and ``redis+unix:///path``); Redis needs the ``redis`` client
    (``pip install 'privguard[redis]'``). The password never appears in a message.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("rate_limit_storage", "expected 'memory://' or 'redis://host:port/db'")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError("rate_limit_storage", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{parts.hostname or ''}{f':{port}' if port else ''}{parts.path}"
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise ConfigError("rate_limit_storage", f"{shown!r}: write just 'memory://'")
        return url
    if scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            "rate_limit_storage",
            f"unsupported scheme {scheme + '://' if scheme else url!r}; "
            "use 'memory://' or 'redis://host:port/db'",
        )
    if scheme == "redis+unix":
        if not parts.path:
            raise ConfigError("rate_limit_storage", "redis+unix:// needs a socket path")
    else:
        if not parts.hostname:
            raise ConfigError("rate_limit_storage", f"{shown!r} names no host")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError("rate_limit_storage", f"{shown!r}: the database must be a number")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ConfigError(
            "rate_limit_storage",
            "a Redis storage needs the redis client: pip install 'privguard[redis]'",
        ) from None
    return url


def _open_storage(url: str) -> Storage:
    if urlsplit(url).scheme.lower() == "memory":
        return MemoryStorage()
    storage = storage_from_string(
        url,
        key_prefix="privguard",
        wrap_exceptions=True,
        socket_timeout=STORAGE_TIMEOUT,
        socket_connect_timeout=STORAGE_TIMEOUT,
    )
    assert isinstance(storage, Storage)  # a synchronous scheme (checked above)
    return storage


class RateLimiter:
    """Sliding-window-counter limits keyed by strings, in memory or shared in Redis.

    :param storage: ``rate_limit_storage``; see :func:`check_storage_url`.
    :param clock: monotonic seconds (only for the retry interval; ``limits``
        reads its own wall clock for the windows).
    """

    def __init__(
        self,
        storage: str = DEFAULT_STORAGE,
        *,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage_url = check_storage_url(storage)
        self.shared = urlsplit(storage).scheme.lower() != "memory"
        self._storage = _open_storage(storage)
        self._primary = SlidingWindowCounterRateLimiter(self._storage)
        self._fallback: SlidingWindowCounterRateLimiter | None = None
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._items: dict[Rate, RateLimitItem] = {}
        #: how many times the fallback answered because the shared storage failed
        self.fallbacks = 0

    def _item(self, rate: Rate) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = self._items.setdefault(rate, rate.item())
        return item

    def _memory(self) -> SlidingWindowCounterRateLimiter:
        with self._lock:
            if self._fallback is None:
                self._fallback = SlidingWindowCounterRateLimiter(MemoryStorage())
            return self._fallback

    def allow(self, rate: Rate, key: str) -> bool:
        """Count one request for ``key`` against ``rate``; ``False`` when over it. Never raises."""
        item = self._item(rate)
        if self.shared and self._clock() < self._down_until:
            self.fallbacks += 1
            return self._memory().hit(item, "privguard", key)
        try:
            allowed = self._primary.hit(item, "privguard", key)
        except Exception as exc:  # limits.errors.StorageError, or anything else
            return self._storage_failed(exc, item, key)
        if self._down_until:
            with self._lock:
                if self._down_until:
                    self._down_until = 0.0
                    log.warning("privguard rate limit storage is reachable again")
        return allowed

    def full(self, rate: Rate, key: str) -> bool:
        """Is ``key`` already at ``rate`` (nothing is counted)? ``False`` on storage errors."""
        item = self._item(rate)
        try:
            if self.shared and self._clock() < self._down_until:
                return not self._memory().test(item, "privguard", key)
            return not self._primary.test(item, "privguard", key)
        except Exception:
            return False

    def _storage_failed(self, exc: BaseException, item: RateLimitItem, key: str) -> bool:
        with self._lock:
            first = not self._down_until
            self._down_until = self._clock() + self._retry_interval
        if first:
            log.error(
                "privguard rate limit storage unreachable (%s); limiting per process "
                "until it is back",
                exc,
            )
        self.fallbacks += 1
        try:
            return self._memory().hit(item, "privguard", key)
        except Exception:  # pragma: no cover - memory storage does not fail
            log.exception("privguard rate limit fallback failed; allowing the request")
            return True

    def clear(self) -> None:
        """Forget every count (the per-process fallback and, in memory, the storage)."""
        with self._lock:
            self._fallback = None
        if not self.shared:
            self._storage.reset()

    def __repr__(self) -> str:
        where = "shared" if self.shared else "per process"
        return f"RateLimiter({where})"
