"""Read any test client's response the same way: status, header pairs, body.

The assertions in :mod:`privguard.testing.assertions` accept the responses of
webtest (``TestResponse``), werkzeug/Flask (``client.get`` → ``TestResponse``),
Starlette's ``TestClient`` and httpx (``httpx.Response``) and requests
(``requests.Response``). Each is read into one :class:`ResponseData` whose
``headers`` keep every ``Set-Cookie`` value separately, in order -- never a
dict that would fold them into one (requests' ``response.headers`` does: the
separate values are read from the raw urllib3 headers instead).

No framework is imported here: the kind of response is told by its shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ResponseData",
    "SetCookie",
    "read_response",
    "request_header",
    "parse_set_cookie",
    "describe_seconds",
]

#: Request header that carries a test visitor's id, so failures can name it.
VISITOR_HEADER = "Privguard-Test-Visitor"
#: WSGI environ key of ``Visitor.environ``: the cookies the visitor meant to send.
SENT_COOKIES_KEY = "privguard.test_visitor_cookies"


@dataclass(frozen=True, slots=True)
class ResponseData:
    """One response, framework-free: status, header pairs (in order), body.

    ``request_headers`` are the request's headers when the client keeps them
    (lower-case names), used to name the visitor in failure messages.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    url: str | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        return next((v for n, v in self.headers if n.lower() == lname), None)

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    @property
    def set_cookies(self) -> list[str]:
        """Every ``Set-Cookie`` value, separately."""
        return self.header_list("set-cookie")

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` (may be empty)."""
        return self.header("content-type") or ""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")


def _pairs(items: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append((str(name), str(value)))
    return tuple(out)


def _lower_map(items: Iterable[Any]) -> dict[str, str]:
    return {n.lower(): v for n, v in _pairs(items)}


def _check_cookies_arrived(environ: Mapping[str, Any]) -> None:
    """AssertionError when a test client replaced the cookies a visitor sent.

    werkzeug's and Flask's test clients set the ``Cookie`` header from their own jar,
    over ``environ_overrides=visitor.environ``: a "returning visitor" would silently
    be tested as a first visit.
    """
    sent = environ.get(SENT_COOKIES_KEY)
    if not isinstance(sent, str) or not sent:
        return
    arrived = {p.strip() for p in str(environ.get("HTTP_COOKIE", "")).split(";")}
    missing = [p.strip() for p in sent.split(";") if p.strip() not in arrived]
    if missing:
        names = ", ".join(sorted({p.split("=", 1)[0] for p in missing}))
        raise AssertionError(
            f"the test client dropped the visitor's cookies ({names}): werkzeug's and "
            "Flask's clients replace the Cookie header of environ_overrides with their own "
            "jar. Send the request with visitor.get(client, path) (or call "
            "visitor.set_cookies_on(client) first)"
        )


def _environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            out[key[5:].replace("_", "-").lower()] = value
    return out


def _webtest(response: Any) -> ResponseData:
    request = getattr(response, "request", None)
    environ = getattr(request, "environ", None) or {}
    _check_cookies_arrived(environ)
    return ResponseData(
        status=int(response.status_int),
        headers=_pairs(response.headerlist),
        body=bytes(response.body or b""),
        url=getattr(request, "url", None),
        request_headers=_environ_headers(environ),
    )


def _werkzeug(response: Any) -> ResponseData:
    request = getattr(response, "request", None)
    environ = getattr(request, "environ", None) or {}
    _check_cookies_arrived(environ)
    return ResponseData(
        status=int(response.status_code),
        headers=_pairs(response.headers.to_wsgi_list()),
        body=bytes(response.get_data()),
        url=getattr(request, "url", None),
        request_headers=_environ_headers(environ),
    )


def _httpx(response: Any) -> ResponseData:
    request_headers: dict[str, str] = {}
    url = None
    try:  # httpx raises RuntimeError when the response has no request
        request = response.request
        request_headers = _lower_map(request.headers.multi_items())
        url = str(request.url)
    except RuntimeError:
        pass
    return ResponseData(
        status=int(response.status_code),
        headers=_pairs(response.headers.multi_items()),
        body=bytes(response.content),
        url=url,
        request_headers=request_headers,
    )


def _requests(response: Any) -> ResponseData:
    raw_headers = getattr(getattr(response, "raw", None), "headers", None)
    if raw_headers is not None and hasattr(raw_headers, "getlist"):
        # urllib3's HTTPHeaderDict keeps repeated fields: each name once, then its values
        headers = [(name, value) for name in raw_headers for value in raw_headers.getlist(name)]
    else:  # a hand-built Response: requests' folded dict is all there is
        headers = list(response.headers.items())
    request = getattr(response, "request", None)
    request_headers = _lower_map(request.headers.items()) if request is not None else {}
    return ResponseData(
        status=int(response.status_code),
        headers=_pairs(headers),
        body=bytes(response.content or b""),
        url=getattr(response, "url", None),
        request_headers=request_headers,
    )


def read_response(response: Any) -> ResponseData:
    """Read a webtest, werkzeug/Flask, Starlette/httpx or requests response.

    :raises TypeError: for anything else, naming the type.
    """
    if isinstance(response, ResponseData):
        return response
    if hasattr(response, "headerlist") and hasattr(response, "status_int"):
        return _webtest(response)
    headers = getattr(response, "headers", None)
    if headers is not None and hasattr(headers, "to_wsgi_list") and hasattr(response, "get_data"):
        return _werkzeug(response)
    if headers is not None and hasattr(headers, "multi_items") and hasattr(response, "content"):
        return _httpx(response)
    if hasattr(response, "raw") and hasattr(response, "status_code"):
        return _requests(response)
    raise TypeError(
        f"privguard.testing cannot read a {type(response).__module__}."
        f"{type(response).__qualname__}: expected a webtest, werkzeug/Flask, "
        "Starlette/httpx or requests response"
    )


def request_header(data: ResponseData, name: str) -> str | None:
    """A header of the request that produced ``data`` (when the client kept it)."""
    return data.request_headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One parsed ``Set-Cookie`` value: name, value and attributes (lower-case keys)."""

    name: str
    value: str
    attributes: Mapping[str, str]
    raw: str

    @property
    def max_age(self) -> int | None:
        """``Max-Age`` in seconds, ``None`` when absent or malformed."""
        value = self.attributes.get("max-age")
        if value is None:
            return None
        try:
            return int(value.strip())
        except ValueError:
            return None

    @property
    def expires(self) -> float | None:
        """``Expires`` as an epoch timestamp, ``None`` when absent or malformed."""
        value = self.attributes.get("expires")
        if not value:
            return None
        from werkzeug.http import parse_date

        parsed = parse_date(value)
        return None if parsed is None else parsed.timestamp()

    def is_expiry(self, now: float | None = None) -> bool:
        """Does this header delete the cookie (``Max-Age<=0`` or ``Expires`` in the past)?"""
        max_age = self.max_age
        if max_age is not None:  # Max-Age wins over Expires (RFC 6265 §5.3)
            return max_age <= 0
        expires = self.expires
        if expires is None:
            return False
        import time

        return expires <= (time.time() if now is None else now)

    @property
    def lifetime(self) -> str:
        """``session``, ``deleted`` or the lifetime in words (``180 days``)."""
        if self.is_expiry():
            return "deleted"
        seconds = self.max_age
        if seconds is None and self.expires is not None:
            import time

            seconds = int(self.expires - time.time())
        if seconds is None:
            return "session"
        return describe_seconds(seconds)

    @property
    def flags(self) -> tuple[str, ...]:
        """``Secure``, ``HttpOnly`` and ``SameSite=…`` as present."""
        out = []
        if "secure" in self.attributes:
            out.append("Secure")
        if "httponly" in self.attributes:
            out.append("HttpOnly")
        samesite = self.attributes.get("samesite")
        if samesite:
            out.append(f"SameSite={samesite.capitalize()}")
        return tuple(out)


def parse_set_cookie(header_value: str) -> SetCookie | None:
    """Parse one ``Set-Cookie`` value; ``None`` when it names no cookie."""
    head, *attrs = header_value.split(";")
    name, sep, value = head.partition("=")
    name = name.strip(" \t")
    if not sep or not name:
        return None
    attributes: dict[str, str] = {}
    for attr in attrs:
        key, _, attr_value = attr.partition("=")
        key = key.strip(" \t").lower()
        if key and key not in attributes:
            attributes[key] = attr_value.strip(" \t")
    return SetCookie(name, value.strip(" \t").strip('"'), attributes, header_value)


def describe_seconds(seconds: int) -> str:
    """``90 s``, ``30 min``, ``2 h``, ``180 days``, ``2 years`` (rounded down)."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds // 86400} days"
    return f"{seconds // (365 * 86400)} years"
