"""Which back-end a ledger URL names, and opening it.

The one module that knows every back-end: ``base.py`` (the rules) is below
it and never imports a back-end, ``sqlite.py``/``postgres.py`` import only
``base.py``, and the writer, CLI, runtime and settings come here to open one.
"""

from __future__ import annotations

from collections.abc import Sequence

from privguard.errors import ConfigError
from privguard.ledger.base import Ledger, LedgerKey, redact_url

__all__ = ["ledger_kind", "open_ledger"]

_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def ledger_kind(url: object) -> str:
    """``"sqlite"`` or ``"postgresql"`` for a ledger URL (no I/O).

    Raises ``ConfigError(option="ledger")`` for anything else, including a URL
    whose parameters the back-end would refuse.
    """
    if not isinstance(url, str) or ":" not in url:
        raise ConfigError(
            "ledger",
            f"{redact_url(url) if isinstance(url, str) else url!r} is not a ledger URL "
            "(sqlite:///path.db or postgresql://…)",
        )
    kind = _SCHEMES.get(url.split(":", 1)[0].lower())
    if kind is None:
        raise ConfigError(
            "ledger",
            f"unsupported ledger URL scheme in {redact_url(url)!r} (use sqlite:// or postgresql://)",
        )
    if kind == "sqlite":
        from privguard.ledger.sqlite import parse_sqlite_url

        parse_sqlite_url(url)
    else:
        try:
            from privguard.ledger.postgres import check_postgres_url
        except ImportError:
            raise ConfigError(
                "ledger", "a postgresql:// ledger needs psycopg: pip install 'privguard[postgres]'"
            ) from None
        check_postgres_url(url)
    return kind


def open_ledger(url: str, *, create: bool = True, keys: Sequence[LedgerKey] = ()) -> Ledger:
    """Open the ledger at ``url``: ``sqlite:///path.db``, ``sqlite:///:memory:`` or ``postgresql://…``.

    A bad URL raises ``ConfigError(option="ledger")``; an unreachable database
    raises :class:`~privguard.errors.LedgerError`. With ``create=False`` a
    missing ledger is an error instead of being created. ``keys`` (from
    :func:`~privguard.ledger.base.derive_ledger_keys`) key the chain: the first
    keys a new or not yet keyed ledger, any of them continues one keyed before.
    """
    if ledger_kind(url) == "sqlite":
        from privguard.ledger.sqlite import SQLiteLedger

        return SQLiteLedger(url, create=create, keys=keys)
    from privguard.ledger.postgres import PostgresLedger

    return PostgresLedger(url, create=create, keys=keys)
