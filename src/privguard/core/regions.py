"""Which rules apply: country / subdivision -> :class:`Regime`, from data tables.

Unknown or unresolvable countries (no source, ``XX``, ``T1``, ``ZZ``, empty)
fall into the strictest regime. Overrides may name a country (``BR``) or a
subdivision (``US-CA``); the subdivision wins over its country.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from privguard.core.categories import Category

__all__ = ["Regime", "RegionTable", "normalise_country", "UNKNOWN_COUNTRY_CODES"]

#: Codes that geo sources emit for "we don't know" (Cloudflare XX/T1, App Engine ZZ, Fastly **).
UNKNOWN_COUNTRY_CODES = frozenset({"", "XX", "T1", "ZZ", "**", "A1", "A2", "O1", "EU", "AP"})


@dataclass(frozen=True, slots=True)
class Regime:
    """A named set of cookie rules."""

    name: str
    opt_in: frozenset[Category]
    default_on: frozenset[Category]
    description: str = ""
    #: every HTML page carries the "Do Not Sell or Share" link (DESIGN §12)
    optout_link: bool = False


def normalise_country(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 upper case, or ``None`` for unknown/garbage."""
    if value is None:
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return None
    if code in UNKNOWN_COUNTRY_CODES:
        return None
    return code


@dataclass(frozen=True, slots=True)
class RegionTable:
    """Country and subdivision codes -> regime name, plus the regimes themselves."""

    regimes: Mapping[str, Regime]
    by_code: Mapping[str, str]
    default_regime: str
    unknown_regime: str

    def regime_for(self, country: str | None, subdivision: str | None = None) -> Regime:
        """The regime for a visitor from ``country`` (and ``US-CA``-style ``subdivision``)."""
        if country is None:
            return self.regimes[self.unknown_regime]
        if subdivision is not None:
            name = self.by_code.get(subdivision)
            if name is not None:
                return self.regimes[name]
        return self.regimes[self.by_code.get(country, self.default_regime)]

    def opt_in_of(self, name: str | None) -> frozenset[Category]:
        """Categories regime ``name`` makes opt-in; empty for ``None`` or a name not known here.

        What a choice made under ``name`` may count as an opt-in for (DESIGN §13):
        an unknown regime promised nothing, so none of its grants is an opt-in.
        """
        regime = self.regimes.get(name) if name is not None else None
        return regime.opt_in if regime is not None else frozenset()
