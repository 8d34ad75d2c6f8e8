"""Access logs without full client IPs: :class:`TruncateIPFilter`.

The shop policy keeps log data for 12 months; an access log that stores
whole client addresses keeps personal data for that long. This filter
rewrites every IPv4 and IPv6 address in a log record -- the message and its
arguments -- to the form privguard's analytics use (``203.0.113.77`` ->
``203.0.113.0``, ``2001:db8:1:2::5`` -> ``2001:db8:1::``; IPv6 that embeds
IPv4 is truncated as that IPv4 address; see ``core/clientip.truncate_ip``).
It never drops a record.

Attach it to the **handlers** that write access logs (a filter on a logger
does not see records propagated from child loggers)::

    import logging
    from privguard.logging import TruncateIPFilter

    ip_filter = TruncateIPFilter(ipv4_prefix=24, ipv6_prefix=48)
    for handler in logging.getLogger().handlers:  # or your access-log handlers
        handler.addFilter(ip_filter)

    # werkzeug's development server logs to the "werkzeug" logger:
    logging.getLogger("werkzeug").addFilter(ip_filter)

With ``logging.config.dictConfig`` (Django's ``LOGGING``, uvicorn's
``--log-config``)::

    "filters": {"truncate_ip": {"()": "privguard.logging.TruncateIPFilter"}},
    "handlers": {"access": {..., "filters": ["truncate_ip"]}},

Gunicorn: put the same ``dictConfig`` in ``logconfig_dict`` (filter on the
``gunicorn.access`` handler). It handles werkzeug's ``127.0.0.1 - - [date]
"GET / HTTP/1.1" 200 -``, gunicorn's access ``atoms`` mapping (``{"h": ip,
...}``, rewritten in place) and uvicorn.access's argument tuple
``(client_addr "ip:port", method, path, http_version, status)``.

Only text that parses as an address is changed: ``HTTP/1.1``, times such as
``12:30:45``, dates and MAC addresses stay as they are. A four-part version
number whose parts are all 0-255 (``Version/1.2.3.4``) cannot be told from
an IPv4 address and is truncated too -- privacy first.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from privguard.core.clientip import truncate_ip

__all__ = ["TruncateIPFilter", "truncate_ips", "werkzeug_request_handler"]

# An IPv6 candidate is a maximal run of hex digits, colons and dots holding at
# least two colons (whatever stands before it: ``remote_addr:2001:db8::5`` has a
# letter and a colon there); an IPv4 candidate a dotted quad. Candidates are
# checked with ``ipaddress`` before anything is rewritten, and an IPv6 run is
# searched for the address inside it (see :func:`_v6`).
_CANDIDATE = re.compile(
    r"(?<![0-9A-Fa-f.:])(?P<v6>(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]+)"
    r"|(?<![0-9])(?P<v4>\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?![0-9])"
)
_DOTTED_QUAD = re.compile(r"(?<![0-9])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![0-9])")


class TruncateIPFilter(logging.Filter):
    """A ``logging.Filter`` that truncates every IP address in a record; keeps every record."""

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 48, name: str = "") -> None:
        super().__init__(name)
        if not 0 <= ipv4_prefix <= 32:
            raise ValueError("ipv4_prefix must be from 0 to 32")
        if not 0 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be from 0 to 128")
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.msg`` and ``record.args`` in place; always True."""
        v4, v6 = self.ipv4_prefix, self.ipv6_prefix
        msg = record.msg
        if isinstance(msg, str):
            record.msg = truncate_ips(msg, v4, v6)
        elif msg is not None and not isinstance(msg, int | float):
            text = str(msg)
            new = truncate_ips(text, v4, v6)
            if new != text:
                record.msg = new
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(self._value(a) for a in args)
        elif isinstance(args, MutableMapping):  # gunicorn's atoms: keep its dict subclass
            for key, value in list(args.items()):
                new_value = self._value(value)
                if new_value is not value:
                    args[key] = new_value
        elif isinstance(args, Mapping):
            record.args = {k: self._value(v) for k, v in args.items()}
        if record.exc_text:
            record.exc_text = truncate_ips(record.exc_text, v4, v6)
        return True

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            new = truncate_ips(value, self.ipv4_prefix, self.ipv6_prefix)
            return value if new == value else new
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return truncate_ip(str(value), self.ipv4_prefix, self.ipv6_prefix)
        if isinstance(value, list | tuple) and value and isinstance(value[0], str):
            # e.g. an ASGI client (host, port) pair
            return type(value)(self._value(v) for v in value)
        return value


def werkzeug_request_handler(ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> type[Any]:
    """A request handler for werkzeug's development server that logs truncated IPs.

    Unlike a filter on the ``werkzeug`` logger, it leaves the server's own
    messages (``* Running on http://127.0.0.1:5000``) alone::

        app.run(request_handler=werkzeug_request_handler())
    """
    from werkzeug.serving import WSGIRequestHandler

    from privguard.core.clientip import truncate_ip

    class TruncatingRequestHandler(WSGIRequestHandler):
        def address_string(self) -> str:
            address = super().address_string()
            return truncate_ip(address, ipv4_prefix, ipv6_prefix) or "-"

    return TruncatingRequestHandler


def truncate_ips(text: str, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str:
    """``text`` with every IPv4/IPv6 address replaced by its truncated form."""
    if "." not in text and ":" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        v4 = match.group("v4")
        if v4 is not None:
            return _truncate(v4, ipv4_prefix, ipv6_prefix) or v4
        return _v6(match.group("v6"), ipv4_prefix, ipv6_prefix)

    return _CANDIDATE.sub(replace, text)


def _truncate(text: str, ipv4_prefix: int, ipv6_prefix: int) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return truncate_ip(text, ipv4_prefix, ipv6_prefix)


def _v6(candidate: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """An IPv6 run: the address in it, with what was glued to either side kept as it was.

    Servers glue text to an address in a few ways. Tried in order: the run
    as it is; without a leading glued colon (``addr:2001:db8::5``) or a leading
    group after a word (``de:2001:…``, tried only when the whole run is no
    address: the longer reading zeroes more, so it never leaks); without
    trailing dots or one colon (``2001:db8::5: connection reset``); without a
    port (uvicorn's ``2001:db8::1:51234``); last, the longest address at the
    front of the run (hex letters glued after it: ``::ffff:0:10addr``). When no
    form parses (a time, a MAC address, ``host:1.2.3.4``) any IPv4 address
    inside is still truncated.
    """
    starts = _v6_starts(candidate)
    # a port is the last guess: ":::1" is "::1" after a colon, not "::" port 1
    for with_port in (False, True):
        for start in starts:
            body = candidate[start:]
            for end in _v6_ends(body, with_port=with_port):
                out = _truncate(body[:end], ipv4_prefix, ipv6_prefix)
                if out is not None:
                    return candidate[:start] + out + body[end:]
    if "::" in candidate or candidate.count(":") >= 6:  # an address with letters glued after
        best: tuple[int, int, str] | None = None  # the longest address, whichever start
        for start in starts:
            body = candidate[start:]
            for end in range(len(body) - 1, 2, -1):
                if best is not None and end <= best[1] - best[0]:
                    break
                out = _truncate(body[:end], ipv4_prefix, ipv6_prefix)
                if out is not None:
                    best = (start, start + end, out)
                    break
        if best is not None:
            return candidate[: best[0]] + best[2] + candidate[best[1] :]
    return _DOTTED_QUAD.sub(
        lambda m: _truncate(m.group(0), ipv4_prefix, ipv6_prefix) or m.group(0), candidate
    )


def _v6_starts(run: str) -> list[int]:
    """Where the address may begin: the run itself, after a glued ``:``, after one glued group."""
    starts = [0]
    if run.startswith(":"):  # ":2001:db8::5", or ":::1" (a colon glued to "::1")
        starts.append(1)
    first = run.find(":", 1)
    if 0 < first < 5:  # "de:2001:…", "0:::1"
        starts.append(first + 1)
    return starts


def _v6_ends(body: str, *, with_port: bool) -> list[int]:
    """Where the address may end: the whole body, before trailing ``.``/``:``, or a port."""
    core = body.rstrip(".")
    if core.endswith(":"):  # "2001:db8::5:", or "2001:db8:::" (a colon glued to "2001:db8::")
        core = core[:-1]
    if not with_port:
        return [len(body), len(core)] if len(core) != len(body) else [len(body)]
    head, _, port = core.rpartition(":")
    return [len(head)] if port.isdigit() and head.count(":") >= 2 else []
