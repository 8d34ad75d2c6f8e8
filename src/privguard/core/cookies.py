"""Cookies: names in a Cookie header, names of Set-Cookie lines, expiry headers.

The app's ``Set-Cookie`` values are never re-serialised: privguard only reads
the name and passes the original bytes through or drops them. Expiry headers
for withdrawal are built with werkzeug's ``dump_cookie``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from werkzeug.http import dump_cookie

__all__ = [
    "set_cookie_name",
    "request_cookies",
    "expiry_headers",
    "MAX_CLASSIFIED",
    "MAX_EXPIRY_BYTES",
]

#: Control characters (RFC 5234 CTL): a name holding one is never echoed back. Other
#: bytes pass: a UTF-8 name arrives as latin-1 text that may hold U+0080-U+009F.
_CTL = re.compile("[\x00-\x1f\x7f]")
#: Request cookies classified per request (in header order): a browser keeps about
#: 180 per site, so a longer Cookie header is not a real visitor's whole jar.
MAX_CLASSIFIED = 180
#: Bytes of expiry ``Set-Cookie`` values per response. nginx's default proxy buffer
#: (4-8 KB) must hold every response header; the rest expire on the next requests.
MAX_EXPIRY_BYTES = 2048


def set_cookie_name(header_value: str) -> str:
    """The cookie name of a ``Set-Cookie`` value ('' when it has none)."""
    head = header_value.split(";", 1)[0]
    name, sep, _ = head.partition("=")
    return name.strip(" \t") if sep else ""


def request_cookies(cookie_header: str | None) -> dict[str, str]:
    """Name -> first value of a ``Cookie`` header; garbage pairs are skipped.

    Deliberately small: the consent cookie value is URL-safe and never quoted,
    and for every other cookie only the name matters.
    """
    out: dict[str, str] = {}
    if not cookie_header:
        return out
    for part in cookie_header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip(" \t")
        if name and name not in out and _CTL.search(name) is None:  # no CR/LF/NUL echoed
            value = value.strip(" \t")
            if len(value) >= 2 and value[0] == value[-1] == '"':  # RFC 6265 quoted value
                value = value[1:-1]
            out[name] = value
    return out


def expiry_headers(
    names: Iterable[str],
    domains: Iterable[str],
    paths: Iterable[str] = ("/",),
    secure: bool = False,
) -> list[str]:
    """``Set-Cookie`` values that delete each cookie on the host and every domain/path.

    ``names`` are request cookie names as the adapters read them (the header's
    bytes as latin-1 text); each is written back unchanged, so the browser gets
    the very bytes it sent (a UTF-8 name is not turned into mojibake).
    """
    out: list[str] = []
    domain_list = [None, *domains]
    path_list = list(dict.fromkeys(paths)) or ["/"]
    tails: dict[tuple[str | None, str, bool], str] = {}  # the same for every name
    for name in names:
        host_only = name.startswith("__Host-")
        needs_secure = secure or host_only or name.startswith("__Secure-")
        for domain in domain_list:
            if host_only and domain is not None:
                continue
            for path in path_list:
                if host_only and path != "/":
                    continue
                tail = tails.get((domain, path, needs_secure))
                if tail is None:
                    line = dump_cookie(
                        "x",
                        "",
                        max_age=0,
                        expires=0,
                        path=path,
                        domain=domain,
                        secure=needs_secure,
                        samesite="Lax",
                    )
                    tail = tails[(domain, path, needs_secure)] = line[1:]
                # the name exactly as the browser sent it: both adapters hold header
                # bytes as latin-1 text, which dump_cookie would encode a second time
                out.append(name + tail)
    return out
