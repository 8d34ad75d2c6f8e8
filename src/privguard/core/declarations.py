"""What a cookie declaration says: who sets the cookie, what for, how long it lives.

The built-in facts live in ``data/cookies.toml`` (``[details."<name>"]``, each with
its source); a shop's ``cookies`` entries may add or override them. The banner's
settings view and the ``privguard cookies`` inventory read the same
:class:`CookieInfo`, so the policy page and the banner never disagree.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CookieInfo", "Lifetime", "parse_lifetime", "describe_cookie"]

_LIFETIME = re.compile(r"\A(\d{1,4}) (minute|hour|day|month|year)s?\Z")


@dataclass(frozen=True, slots=True)
class Lifetime:
    """``count`` ``unit`` (minute, hour, day, month, year); ``unit == "session"``
    for a cookie that lives until the browser is closed (``count`` is 0)."""

    count: int
    unit: str

    def __str__(self) -> str:
        if self.unit == "session":
            return "session"
        return f"{self.count} {self.unit}{'' if self.count == 1 else 's'}"


def parse_lifetime(text: object) -> Lifetime | None:
    """``"session"`` or ``"<n> <unit>[s]"`` -> :class:`Lifetime`; ``None`` for anything else."""
    if not isinstance(text, str):
        return None
    text = text.strip().lower()
    if text == "session":
        return Lifetime(0, "session")
    match = _LIFETIME.match(text)
    if match is None or int(match.group(1)) == 0:
        return None
    return Lifetime(int(match.group(1)), match.group(2))


@dataclass(frozen=True, slots=True)
class CookieInfo:
    """A declared cookie: ``provider`` (empty: the shop itself), ``purpose`` (a purpose
    code of the banner texts, or free text; per language when it is a mapping),
    ``lifetime`` and the ``source`` the facts come from."""

    provider: str = ""
    purpose: str | Mapping[str, str] = ""
    lifetime: Lifetime | None = None
    source: str = ""


def describe_cookie(name: str, details: Mapping[str, CookieInfo]) -> CookieInfo | None:
    """The declaration for the cookie ``name``: its exact entry, else the longest glob."""
    found = details.get(name)
    if found is not None:
        return found
    best: tuple[int, CookieInfo] | None = None
    for pattern, info in details.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(name, pattern):
            if best is None or len(pattern) > best[0]:
                best = (len(pattern), info)
    return None if best is None else best[1]
