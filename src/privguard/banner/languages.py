"""The shipped translations and ``Accept-Language`` negotiation.

Each shipped language is one data file, ``i18n/<tag>.json``, with every key of
``en.json``. A configured language uses the file of its exact tag (``pt-BR``), else
that of an alias (``no`` and ``nn`` read the Bokmål texts, ``nb``), else that of its
primary subtag (``de-AT`` -> ``de``, ``pt-PT`` -> ``pt``).

Negotiation walks the visitor's ``Accept-Language`` in their order of preference
(quality, then header order; parsed by werkzeug) and takes the first entry that one
offered language serves: the exact tag, else werkzeug's primary-subtag match
(``de-AT`` -> ``de``, ``pt`` -> ``pt-BR`` when only ``pt-BR`` is offered), else the
entry's primary subtag against the offered ones' (``pt-PT`` -> ``pt-BR`` when no
``pt`` is offered). A higher-quality entry served by a fallback beats a lower one
served exactly: ``de-AT, en;q=0.5`` gets German. ``*``, nothing usable or no header
gets the first offered language.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

__all__ = [
    "FALLBACK_LANGUAGE",
    "LANGUAGE_ALIASES",
    "SHIPPED_LANGUAGES",
    "builtin_for",
    "load_builtin_texts",
    "negotiate",
]

#: The language every key exists in first; the other files translate it.
FALLBACK_LANGUAGE = "en"

#: Every shipped translation: the 24 official languages of the EU, then Norwegian
#: Bokmål, Icelandic and Brazilian Portuguese (the EEA's other languages and the
#: largest non-EEA audience the shipped regimes name). English first: the fallback.
SHIPPED_LANGUAGES: tuple[str, ...] = (
    "en",
    "bg",
    "cs",
    "da",
    "de",
    "el",
    "es",
    "et",
    "fi",
    "fr",
    "ga",
    "hr",
    "hu",
    "it",
    "lt",
    "lv",
    "mt",
    "nl",
    "pl",
    "pt",
    "ro",
    "sk",
    "sl",
    "sv",
    "nb",
    "is",
    "pt-BR",
)

#: Tags read with another shipped file: the macrolanguage ``no`` and Nynorsk get
#: Bokmål (every Norwegian reader reads it; browsers often send ``no``).
LANGUAGE_ALIASES: Mapping[str, str] = MappingProxyType({"no": "nb", "nn": "nb"})

_SHIPPED_BY_KEY = {tag.lower(): tag for tag in SHIPPED_LANGUAGES}
_DELIM = re.compile(r"[-_]")


def _primary(tag: str) -> str:
    return _DELIM.split(tag, 1)[0].lower()


def _dealias(tag: str) -> str:
    """``no-NO`` -> ``nb-NO``, ``nn`` -> ``nb``; other tags unchanged."""
    parts = _DELIM.split(tag, 1)
    alias = LANGUAGE_ALIASES.get(parts[0].lower())
    if alias is None:
        return tag
    return alias if len(parts) == 1 else f"{alias}-{parts[1]}"


def builtin_for(tag: str) -> str | None:
    """The shipped file serving the configured language ``tag``, or None."""
    for candidate in (tag, _dealias(tag)):
        found = _SHIPPED_BY_KEY.get(candidate.replace("_", "-").lower())
        if found is not None:
            return found
    return _SHIPPED_BY_KEY.get(_primary(_dealias(tag)))


@functools.cache
def _load(lang: str) -> Mapping[str, str]:
    ref = importlib.resources.files("privguard.banner").joinpath("i18n", f"{lang}.json")
    data = json.loads(ref.read_text("utf-8"))
    if not isinstance(data, dict):  # pragma: no cover - shipped data
        raise TypeError(f"i18n/{lang}.json is not an object")
    return MappingProxyType({str(k): str(v) for k, v in data.items()})


def load_builtin_texts(lang: str) -> dict[str, str]:
    """The texts of the shipped file ``lang`` exactly as shipped (one of
    :data:`SHIPPED_LANGUAGES`)."""
    if lang not in SHIPPED_LANGUAGES:
        raise KeyError(f"no shipped translation {lang!r}; shipped: {list(SHIPPED_LANGUAGES)}")
    return dict(_load(lang))


def negotiate(accept_language: str | None, offered: Sequence[str]) -> str:
    """The offered language a visitor sending ``accept_language`` reads best.

    ``offered`` is not empty; its first entry is the fallback. Never raises.
    """
    fallback = offered[0]
    if not accept_language:
        return fallback
    # compare on de-aliased tags ("no" offered serves an "nb" visitor), answer the original
    by_key: dict[str, str] = {}
    for tag in offered:
        by_key.setdefault(_dealias(tag), tag)
    keys = list(by_key)
    for value, quality in parse_accept_header(accept_language, LanguageAccept):
        if quality <= 0:  # "q=0": not acceptable
            continue
        if value == "*":
            return fallback
        wanted = _dealias(value)
        for tag in (wanted, _primary(wanted)):
            found = LanguageAccept([(tag, 1)]).best_match(keys)
            if found is not None:
                return by_key[found]
    return fallback
