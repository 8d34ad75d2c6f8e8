"""Sec-GPC and DNT: is there an opt-out-of-sale signal on this request?

Global Privacy Control: a server must ignore the header unless its value is
exactly ``1``; with several fields any exact ``1`` counts (privacy-facts §4.1).
DNT is read the same way: ``1`` is a signal, ``0``, garbage or absence is not.
"""

from __future__ import annotations

__all__ = ["is_signal"]


def is_signal(value: str | None) -> bool:
    """True when the (possibly comma-joined) header value holds an exact ``1``."""
    if not value:
        return False
    if value == "1":
        return True
    return any(part.strip(" \t") == "1" for part in value.split(","))
