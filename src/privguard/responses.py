"""What an endpoint answers: :class:`EndpointResponse`, and the JSON answers built from it.

The answer type lives below everything that makes or sends one: the
endpoints (``endpoints.py``), the runtime's age gate (``runtime.py``) and the
adapters all import it from here, and this module imports only the core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from privguard.core.decision import Decision

__all__ = ["EndpointResponse", "JSON_TYPE", "NO_STORE", "json_error", "json_response"]

JSON_TYPE = "application/json"
NO_STORE = ("Cache-Control", "no-store")


@dataclass(frozen=True, slots=True)
class EndpointResponse:
    """Status, header pairs and body of an endpoint's answer.

    ``cookies`` are privguard's own Set-Cookie values (consent cookie, expiries);
    ``decision`` is the decision after the answer took effect, if it changed.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cookies: tuple[str, ...] = ()
    decision: Decision | None = None


def json_response(status: int, data: object) -> EndpointResponse:
    """``data`` as compact JSON, never stored by a cache."""
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", JSON_TYPE), NO_STORE, ("Content-Length", str(len(body)))]
    return EndpointResponse(status, headers, body)


def json_error(status: int, message: str) -> EndpointResponse:
    """A JSON ``{"error": message}`` answer."""
    return json_response(status, {"error": message})
