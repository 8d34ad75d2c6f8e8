"""Age: the required age per rule and country, and judging an answer.

``policy`` rule: 16 in the EEA/UK/CH (and their territories), 13 elsewhere.
``member-state`` rule: each country's GDPR Art. 8 age. Unknown country: 16.
Only ``adult``/``minor`` and the threshold are ever kept -- never the date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "AgeRules",
    "AgeAnswerError",
    "parse_birth",
    "judge_age",
    "carry_age_status",
    "MAX_AGE",
]

MAX_AGE = 130
_DATE_RE = re.compile(r"\A(\d{4})-(\d{2})-(\d{2})\Z")
_YEAR_RE = re.compile(r"\A\d{4}\Z")


class AgeAnswerError(ValueError):
    """The visitor's age answer is malformed or impossible."""


@dataclass(frozen=True, slots=True)
class AgeRules:
    """Required age per country, precomputed from the data tables and overrides."""

    by_country: Mapping[str, int]
    default: int
    unknown: int

    def required_age(self, country: str | None) -> int:
        """Age a visitor from ``country`` must have reached (``None``: unknown)."""
        if country is None:
            return self.unknown
        return self.by_country.get(country, self.default)


def parse_birth(
    birth_date: object, birth_year: object, today: dt.date
) -> tuple[int, int | None, int | None]:
    """Validate an answer; returns ``(year, month, day)`` (month/day ``None`` for a year).

    Raises :class:`AgeAnswerError` with a message fit for the visitor.
    """
    if birth_date not in (None, ""):
        if not isinstance(birth_date, str):
            raise AgeAnswerError("birth_date must be a string YYYY-MM-DD")
        m = _DATE_RE.match(birth_date.strip())
        if m is None:
            raise AgeAnswerError("birth_date must look like YYYY-MM-DD")
        try:
            born = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise AgeAnswerError("birth_date is not a real date") from None
        if born > today:
            raise AgeAnswerError("birth_date is in the future")
        if _age_on(born.year, born.month, born.day, today) > MAX_AGE:
            raise AgeAnswerError(f"an age over {MAX_AGE} is not plausible")
        return born.year, born.month, born.day
    if birth_year not in (None, ""):
        if isinstance(birth_year, bool):
            raise AgeAnswerError("birth_year must be a four-digit year")
        if isinstance(birth_year, int):
            year = birth_year
        elif isinstance(birth_year, str) and _YEAR_RE.match(birth_year.strip()):
            year = int(birth_year.strip())
        else:
            raise AgeAnswerError("birth_year must be a four-digit year")
        if year > today.year:
            raise AgeAnswerError("birth_year is in the future")
        if today.year - year > MAX_AGE:
            raise AgeAnswerError(f"an age over {MAX_AGE} is not plausible")
        return year, None, None
    raise AgeAnswerError("send birth_date (YYYY-MM-DD) or birth_year (YYYY)")


def _age_on(year: int, month: int, day: int, today: dt.date) -> int:
    return today.year - year - ((today.month, today.day) < (month, day))


def judge_age(birth: tuple[int, int | None, int | None], required_age: int, today: dt.date) -> str:
    """``"adult"`` or ``"minor"`` against ``required_age``.

    With only a year, the visitor is taken to be the youngest that year allows
    (born on 31 December), so a year answer never overstates an age.
    """
    year, month, day = birth
    age = _age_on(year, month or 12, day or 31, today)
    return "adult" if age >= required_age else "minor"


def carry_age_status(stored: str, stored_threshold: int | None, required_age: int) -> str:
    """Re-judge a stored answer for the visitor's current required age.

    ``minor`` sticks. ``adult`` judged against a threshold lower than the one
    now required (the visitor moved region) becomes ``unknown``: ask again.
    """
    if stored == "minor":
        return "minor"
    if stored == "adult":
        if stored_threshold is not None and stored_threshold >= required_age:
            return "adult"
        return "unknown"
    return "unknown"
