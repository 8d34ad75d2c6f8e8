"""The few errors privguard raises, under one root.

* :class:`ConfigError` -- a bad option, raised once at start-up. It is also a
  :class:`ValueError` and names the option in ``.option``.
* :class:`RequestDataError` -- a visitor sent something malformed to one of
  privguard's endpoints; the endpoint answers with ``.status`` (400, 413, ...)
  and a JSON ``{"error": ...}`` body. Never escapes to the server.
* :class:`LedgerError` -- the consent ledger could not store or read a receipt;
  writers react by spooling the receipt locally.
"""

from __future__ import annotations

__all__ = ["PrivguardError", "ConfigError", "RequestDataError", "LedgerError"]


class PrivguardError(Exception):
    """Root of every error privguard raises on purpose."""


class ConfigError(PrivguardError, ValueError):
    """An option given to :class:`privguard.Settings` is invalid.

    ``option`` is the option's name as written in the options table (the
    environment/Flask form is ``PRIVGUARD_`` + its upper-case name).
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"privguard option {option!r}: {message}")


class RequestDataError(PrivguardError):
    """A request to a privguard endpoint carried unusable data."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class LedgerError(PrivguardError):
    """The consent ledger could not complete an operation."""
