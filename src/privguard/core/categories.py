"""Cookie categories and the catalog that maps cookie names to them."""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Category", "CATEGORIES", "NON_ESSENTIAL", "CookieCatalog", "parse_category"]


class Category(enum.StrEnum):
    """The four cookie categories of the shop policy (§4)."""

    NECESSARY = "necessary"
    FUNCTIONALITY = "functionality"
    PERFORMANCE = "performance"
    MARKETING = "marketing"


#: Every category, in the order the policy lists them.
CATEGORIES: tuple[Category, ...] = tuple(Category)
#: Categories that need a decision; ``necessary`` is always allowed.
NON_ESSENTIAL: frozenset[Category] = frozenset(CATEGORIES) - {Category.NECESSARY}
_BY_NAME = {c.value: c for c in CATEGORIES}


def parse_category(value: object) -> Category | None:
    """Return the category named ``value`` or ``None`` for anything else."""
    if isinstance(value, Category):
        return value
    if isinstance(value, str):
        return _BY_NAME.get(value.strip().lower())
    return None


_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class CookieCatalog:
    """Cookie name or glob -> category, compiled once.

    Exact names are a dict lookup; globs are tried in a single compiled
    alternation, and the most specific (longest) matching pattern wins.
    """

    exact: Mapping[str, Category]
    globs: tuple[tuple[str, Category], ...]
    _regex: re.Pattern[str] | None

    @classmethod
    def build(cls, *tables: Iterable[tuple[str, Category]]) -> CookieCatalog:
        """Merge ``tables`` (later ones win) into a compiled catalog."""
        exact: dict[str, Category] = {}
        globs: dict[str, Category] = {}
        for table in tables:
            for pattern, category in table:
                if _GLOB_CHARS.intersection(pattern):
                    globs[pattern] = category
                    exact.pop(pattern, None)
                else:
                    exact[pattern] = category
        ordered = tuple(sorted(globs.items(), key=lambda item: -len(item[0])))
        regex = None
        if ordered:
            parts = [f"(?P<g{i}>{fnmatch.translate(p)})" for i, (p, _) in enumerate(ordered)]
            regex = re.compile("|".join(parts))
        return cls(exact=dict(exact), globs=ordered, _regex=regex)

    def pattern(self, name: str) -> str | None:
        """The entry that decides ``name``: the name itself or the winning glob; ``None`` if none.

        Per-entry facts (the ``paths`` a shop declared for ``"trk_*"``) are keyed by it.
        """
        if name in self.exact:
            return name
        match = self._regex.match(name) if self._regex is not None else None
        group = None if match is None else match.lastgroup
        return None if group is None else self.globs[int(group[1:])][0]

    def classify(self, name: str) -> Category | None:
        """Category of the cookie ``name``; ``None`` when undeclared."""
        found = self.exact.get(name)
        if found is not None:
            return found
        if self._regex is None:
            return None
        match = self._regex.match(name)
        if match is None:
            return None
        group = match.lastgroup
        return None if group is None else self.globs[int(group[1:])][1]
