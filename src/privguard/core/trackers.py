"""The tracker catalog: which script, pixel and embed URLs belong to which category.

A pattern without ``/`` names a host: ``connect.facebook.net`` is that host only,
``*.hotjar.com`` is ``hotjar.com`` and every subdomain, other globs (``analytics*.x``)
are matched against the whole host. A pattern with ``/`` is an fnmatch glob over
``host + path + query`` without the scheme (``www.facebook.com/tr*``). Hosts compare
case-insensitively, paths case-sensitively. The most specific pattern wins: a URL glob
before any host pattern, then the exact host, then the longest ``*.`` suffix, then other
host globs. Relative URLs are the shop's own and never match.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from privguard.core.categories import Category

__all__ = ["Tracker", "TrackerCatalog", "split_url"]

_GLOB_CHARS = frozenset("*?[")
#: What may stand before the host of an absolute or protocol-relative URL.
_SCHEMES = ("https://", "http://", "//", "wss://", "ws://")


@dataclass(frozen=True, slots=True)
class Tracker:
    """One catalogued product: its name (shown in placeholders), category and Google flag."""

    name: str
    category: Category
    google: bool = False


def split_url(url: str) -> tuple[str, str] | None:
    """``(host, rest)`` of an absolute or ``//`` URL (host lower-cased, no port), else None.

    ``rest`` is the path with query, without the fragment; ``""`` for a bare host.
    """
    url = url.strip()
    low = url[:8].lower()
    for scheme in _SCHEMES:
        if low.startswith(scheme):
            url = url[len(scheme) :]
            break
    else:
        return None
    end = len(url)
    for sep in "/?#\\":
        i = url.find(sep)
        if 0 <= i < end:
            end = i
    host = url[:end]
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    if host.startswith("["):
        return None  # an IP literal: never a catalogued tracker host
    host = host.split(":", 1)[0].lower().rstrip(".")
    if not host:
        return None
    rest = url[end:].split("#", 1)[0].replace("\\", "/")
    return host, rest


@dataclass(frozen=True, slots=True)
class TrackerCatalog:
    """Host or URL glob -> :class:`Tracker`, compiled once; see the module docstring."""

    exact: Mapping[str, Tracker]
    suffixes: Mapping[str, Tracker]
    host_globs: tuple[tuple[str, Tracker], ...]
    url_globs: tuple[tuple[str, Tracker], ...]
    _host_regex: re.Pattern[str] | None
    _url_regex: re.Pattern[str] | None
    #: hosts that some URL glob starts with (literally); others skip the URL regex
    _url_hosts: frozenset[str]
    _url_wild: bool

    @classmethod
    def build(cls, *tables: Iterable[tuple[str, Tracker]]) -> TrackerCatalog:
        """Merge ``tables`` (later ones win) into a compiled catalog."""
        merged: dict[str, Tracker] = {}
        for table in tables:
            for pattern, tracker in table:
                merged[normalise_pattern(pattern)] = tracker
        exact: dict[str, Tracker] = {}
        suffixes: dict[str, Tracker] = {}
        host_globs: dict[str, Tracker] = {}
        url_globs: dict[str, Tracker] = {}
        for pattern, tracker in merged.items():
            if "/" in pattern:
                url_globs[pattern] = tracker
            elif pattern.startswith("*.") and not _GLOB_CHARS.intersection(pattern[2:]):
                suffixes[pattern[2:]] = tracker
            elif _GLOB_CHARS.intersection(pattern):
                host_globs[pattern] = tracker
            else:
                exact[pattern] = tracker
        hosts = tuple(sorted(host_globs.items(), key=lambda item: -len(item[0])))
        urls = tuple(sorted(url_globs.items(), key=lambda item: -len(item[0])))
        url_hosts = set()
        url_wild = False
        for pattern, _ in urls:
            host = pattern.split("/", 1)[0]
            if _GLOB_CHARS.intersection(host):
                url_wild = True
            else:
                url_hosts.add(host)
        return cls(
            exact=dict(exact),
            suffixes=dict(suffixes),
            host_globs=hosts,
            url_globs=urls,
            _host_regex=_alternation(hosts),
            _url_regex=_alternation(urls),
            _url_hosts=frozenset(url_hosts),
            _url_wild=url_wild,
        )

    def __len__(self) -> int:
        return len(self.exact) + len(self.suffixes) + len(self.host_globs) + len(self.url_globs)

    def match(self, url: str) -> Tracker | None:
        """The tracker ``url`` loads from, or ``None`` (relative URLs never match)."""
        parts = split_url(url)
        if parts is None:
            return None
        return self.match_host(*parts)

    def match_host(self, host: str, rest: str = "") -> Tracker | None:
        """The tracker for a lower-cased ``host`` and its path+query ``rest``."""
        regex = self._url_regex
        if regex is not None and (self._url_wild or host in self._url_hosts):
            found = regex.match(host + rest)
            if found is not None and found.lastgroup is not None:
                return self.url_globs[int(found.lastgroup[1:])][1]
        tracker = self.exact.get(host)
        if tracker is not None:
            return tracker
        suffixes = self.suffixes
        if suffixes:
            name = host
            while True:
                tracker = suffixes.get(name)
                if tracker is not None:
                    return tracker
                dot = name.find(".")
                if dot < 0:
                    break
                name = name[dot + 1 :]
        regex = self._host_regex
        if regex is not None:
            found = regex.match(host)
            if found is not None and found.lastgroup is not None:
                return self.host_globs[int(found.lastgroup[1:])][1]
        return None

    def patterns(self) -> list[tuple[str, Tracker]]:
        """Every pattern in its normalised form (for the in-page guard)."""
        out = [(h, t) for h, t in self.exact.items()]
        out += [("*." + s, t) for s, t in self.suffixes.items()]
        out += list(self.host_globs) + list(self.url_globs)
        return out


def normalise_pattern(pattern: str) -> str:
    """A pattern without its scheme, its host part lower-cased."""
    text = pattern.strip()
    low = text.lower()
    for scheme in _SCHEMES:
        if low.startswith(scheme):
            text = text[len(scheme) :]
            break
    host, sep, rest = text.partition("/")
    return host.lower() + sep + rest


def _alternation(pairs: tuple[tuple[str, Tracker], ...]) -> re.Pattern[str] | None:
    if not pairs:
        return None
    parts = [f"(?P<g{i}>{fnmatch.translate(p)})" for i, (p, _) in enumerate(pairs)]
    return re.compile("|".join(parts))
