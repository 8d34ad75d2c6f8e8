"""Page views for analytics: built from a decision, with the truncated IP only.

The middleware calls the ``analytics`` sink for ``GET`` HTML responses when
``performance`` is allowed and the visitor is not a bot (DESIGN §8). What a
sink receives is a :class:`PageView`:

* ``ip`` is ``Decision.analytics_ip`` -- already truncated to ``ipv4_prefix``
  / ``ipv6_prefix``; the full client address never reaches this module.
* ``path`` has no query string or fragment (they often carry e-mail
  addresses, tokens or search terms).
* ``referrer_origin`` is the ``scheme://host[:port]`` of an http(s)
  ``Referer``, never its path.
* ``ts`` is UTC, to the second (``2026-11-25T12:30:45Z``).

The ``analytics`` option is ``None``, a callable taking a :class:`PageView`,
or a path: :class:`JSONLinesSink` appends one JSON object per line.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from privguard.errors import ConfigError

if TYPE_CHECKING:
    from privguard.core.decision import Decision

__all__ = ["PageView", "JSONLinesSink", "make_sink", "page_view_from", "Sink"]

log = logging.getLogger("privguard.analytics")

#: What the ``analytics`` option becomes: something that takes a page view.
Sink = Callable[["PageView"], None]
_MAX_PATH = 2048


@dataclass(frozen=True, slots=True)
class PageView:
    """One page view, safe to store: truncated IP, no query string, referrer origin only."""

    ts: str
    path: str
    ip: str | None
    country: str | None
    regime: str
    ua_family: str | None
    referrer_origin: str | None

    def as_dict(self) -> dict[str, Any]:
        """The page view as a plain dict (the JSON-lines record)."""
        return asdict(self)


def page_view_from(decision: Decision, path: str, referrer: str | None, now: float) -> PageView:
    """The :class:`PageView` of one request: ``path`` as requested, ``now`` in epoch seconds."""
    return PageView(
        ts=_iso(now),
        path=_path_only(path),
        ip=decision.analytics_ip,
        country=decision.country,
        regime=decision.regime.name,
        ua_family=decision.ua_family,
        referrer_origin=_origin(referrer),
    )


class JSONLinesSink:
    """Appends each page view as one JSON object per line to ``path``.

    The file is opened once, in append mode and unbuffered: each line is a
    single ``write`` (whole lines even with several worker processes), under a
    lock (whole lines between threads). A write error is logged once per
    failure streak and the page view dropped -- analytics never breaks a request.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            self._file = open(self.path, "ab", buffering=0)  # closed in close()
        except OSError as exc:
            raise ConfigError(
                "analytics", f"cannot open {self.path!r} for appending: {exc.strerror or exc}"
            ) from None
        self._failing = False

    def __call__(self, view: PageView) -> None:
        """Append ``view`` as one line."""
        line = json.dumps(view.as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            try:
                self._file.write(data)
            except (OSError, ValueError) as exc:  # disk full, closed file
                if not self._failing:
                    self._failing = True
                    log.error("privguard analytics: cannot write to %r: %s", self.path, exc)
                return
            self._failing = False

    def close(self) -> None:
        """Close the file; later page views are dropped (and logged once)."""
        with self._lock:
            self._file.close()

    def __repr__(self) -> str:
        return f"JSONLinesSink({self.path!r})"


def make_sink(option: object) -> Sink | None:
    """The ``analytics`` option as a sink: ``None``, the callable itself, or a JSONLinesSink."""
    if option is None:
        return None
    if isinstance(option, str | os.PathLike):
        return JSONLinesSink(option)
    if callable(option):
        return option
    raise TypeError(f"analytics: expected None, a callable or a file path, got {option!r}")


def _iso(now: float) -> str:
    moment = datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _path_only(path: str) -> str:
    for sep in ("?", "#"):
        path = path.split(sep, 1)[0]
    return path[:_MAX_PATH] or "/"


def _origin(referrer: str | None) -> str | None:
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme.lower() == "https" else 80
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"
