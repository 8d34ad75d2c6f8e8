"""RequestView: the facts an adapter extracted from one request.

Header names are lower case; repeated fields are joined with ``", "`` in order
(RFC 9110 §5.3), so nothing is lost the way ``dict(headers)`` would lose it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RequestView", "environ_key"]


@dataclass(slots=True, eq=False)
class RequestView:
    """Method, path, scheme, host, socket peer and the headers privguard consults.

    Read-only by convention, not ``frozen`` (a frozen dataclass measured 1.0 µs
    to build against 0.4 µs; it is built on every request).
    """

    method: str
    path: str
    scheme: str = "http"
    host: str = ""
    peer: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: str = ""  # the raw query string, without "?"

    def header(self, name: str) -> str | None:
        """Value of a (lower-case) header, or ``None``."""
        return self.headers.get(name)

    @property
    def is_https(self) -> bool:
        """True for ``https`` requests."""
        return self.scheme == "https"


def environ_key(header: str) -> str:
    """The WSGI environ key of a (lower-case) request header (PEP 3333, CGI naming).

    ``user-agent`` -> ``HTTP_USER_AGENT``.
    """
    return "HTTP_" + header.upper().replace("-", "_")
