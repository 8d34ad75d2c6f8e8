"""Cookies: names in a Cookie header, names of Set-Cookie lines, expiry headers.

The app's ``Set-Cookie`` values are never re-serialised: privguard only reads
the name and passes the original bytes through or drops them. Expiry headers
for withdrawal are built with werkzeug's ``dump_cookie``.
"""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.http import dump_cookie

__all__ = ["set_cookie_name", "request_cookies", "expiry_headers"]


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
        if name and name not in out and name.isprintable():  # no CR/LF/NUL echoed back
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
    """``Set-Cookie`` values that delete each cookie on the host and every domain/path."""
    out: list[str] = []
    domain_list = [None, *domains]
    path_list = list(dict.fromkeys(paths)) or ["/"]
    for name in names:
        host_only = name.startswith("__Host-")
        needs_secure = secure or host_only or name.startswith("__Secure-")
        for domain in domain_list:
            if host_only and domain is not None:
                continue
            for path in path_list:
                if host_only and path != "/":
                    continue
                out.append(
                    dump_cookie(
                        name,
                        "",
                        max_age=0,
                        expires=0,
                        path=path,
                        domain=domain,
                        secure=needs_secure,
                        samesite="Lax",
                    )
                )
    return out
