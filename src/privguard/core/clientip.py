"""Who is asking: the client IP behind trusted proxies, and its truncation.

**Trust.** The socket peer is the client unless ``trusted_proxies`` says
otherwise. It takes two forms:

* a hop count ``n`` (as werkzeug's ``ProxyFix(x_for=n)``): exactly ``n``
  proxies sit in front of the app, each appending the address it received the
  request from. The client is the ``n``-th address from the right; with fewer
  addresses than ``n`` (or none at all) the answer is ``None`` -- fail closed,
  never a guess. The socket peer is not checked (it may be a unix socket).
* a list of networks (as uvicorn's ``_TrustedHosts``): the peer must be in one
  of them, or the headers are ignored. The chain ``header values + [peer]`` is
  walked from the right past trusted hops; the first untrusted address is the
  client. When every hop is trusted the leftmost one is the client (an
  internal caller). An unusable hop on the way (garbage, ``unknown``, an
  obfuscated ``_node``) ends the walk with ``None``.

A header from an untrusted peer changes nothing.

**One header family per request.** When ``X-Forwarded-For`` is present it is
the only header read; RFC 7239 ``Forwarded`` is read only when there is no
``X-Forwarded-For``. Almost every proxy and CDN writes ``X-Forwarded-For``, so
a client-sent ``Forwarded`` can never outvote it. The reverse smuggling (a
proxy that writes only ``Forwarded`` and passes a client's ``X-Forwarded-For``
through) is closed by ``TrustedProxies(header="forwarded")``, which reads only
that family.

**Parsing.** Repeated header lines arrive joined with ``", "`` (RFC 9110 §5.3)
and empty list elements are ignored. Values may carry ports (``1.2.3.4:80``,
``[2001:db8::1]:80``), quotes and, in ``Forwarded``, case-insensitive
parameter names. IPv4-mapped IPv6 (``::ffff:1.2.3.4``, from dual-stack
sockets) is the IPv4 address it maps. Garbage gives ``None``, never an error.

**Truncation** (DESIGN §8, privacy-facts §7): the host bits are zeroed to
``ipv4_prefix`` / ``ipv6_prefix``; IPv6 addresses that embed an IPv4 address
(IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32``)
are truncated as that IPv4 address, since a /48 of a 6to4 address still holds
the whole IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "TrustedProxies",
    "parse_trusted_proxies",
    "resolve_client_ip",
    "truncate_ip",
    "parse_ip",
    "HeaderFamily",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderFamily = Literal["auto", "x-forwarded-for", "forwarded"]

_V4 = ipaddress.IPv4Address
_V6 = ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_NET = int(_NAT64.network_address)
_NAT64_MASK = int(_NAT64.netmask)
_LOW32 = 0xFFFFFFFF
_DIGITS = frozenset("0123456789")
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton
_inet_ntoa = socket.inet_ntoa
_HEADER_FAMILIES = ("auto", "x-forwarded-for", "forwarded")
# RFC 7239 §4: forwarded-pair = token "=" value; value = token / quoted-string
_FORWARDED_PAIR = re.compile(
    r"[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*"
    r'(?:"((?:[^"\\]|\\.)*)"|([!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]*))[ \t]*(?=[;,]|$)'
)
_QUOTED_PAIR = re.compile(r"\\(.)")
_ZERO_RUNS = tuple(":" + "0:" * k for k in range(8, 1, -1))  # longest first


def _masks(networks: tuple[IPNetwork, ...], version: int) -> tuple[tuple[int, int], ...]:
    return tuple((int(n.network_address), int(n.netmask)) for n in networks if n.version == version)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Either a hop count (``hops``) or a set of trusted networks.

    ``header`` picks the header family read behind trusted proxies:
    ``"auto"`` (``X-Forwarded-For`` when present, else ``Forwarded``),
    ``"x-forwarded-for"`` or ``"forwarded"`` (only that one).
    """

    hops: int = 0
    networks: tuple[IPNetwork, ...] = ()
    header: HeaderFamily = "auto"
    _v4: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _v6: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.header not in _HEADER_FAMILIES:
            raise ValueError(f"header must be one of {list(_HEADER_FAMILIES)}")
        # (network, mask) integers: membership is two int ops per network
        object.__setattr__(self, "_v4", _masks(self.networks, 4))
        object.__setattr__(self, "_v6", _masks(self.networks, 6))

    @property
    def enabled(self) -> bool:
        """True when forwarded headers may be read at all."""
        return self.hops > 0 or bool(self.networks)

    def trusts(self, ip: str | None) -> bool:
        """Is the direct peer ``ip`` a trusted proxy?

        With a hop count every peer is (the operator vouches that ``hops``
        proxies stand in front of the app, as with ``ProxyFix``).
        """
        if self.hops > 0:
            return True
        if ip is None or not self.networks:
            return False
        node = _node(ip)
        return node is not None and self._contains(node[0], node[1])

    def _contains(self, version: int, value: int) -> bool:
        for net, mask in self._v4 if version == 4 else self._v6:
            if value & mask == net:
                return True
        return False


def parse_trusted_proxies(value: object) -> TrustedProxies:
    """Parse the ``trusted_proxies`` option; raises ``ValueError`` on bad input.

    An ``int`` is a hop count; a list (or comma-separated string) holds
    addresses and CIDR networks. An already built :class:`TrustedProxies`
    passes through.
    """
    if isinstance(value, TrustedProxies):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a hop count or a list of CIDRs, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a hop count cannot be negative")
        return TrustedProxies(hops=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return TrustedProxies(hops=int(text))
        value = [v for v in (p.strip() for p in text.split(",")) if v]
    if isinstance(value, list | tuple | set | frozenset):
        nets: list[IPNetwork] = []
        for item in value:
            if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
                nets.append(item)
                continue
            if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
                nets.append(ipaddress.ip_network(item))
                continue
            if not isinstance(item, str):
                raise ValueError(f"{item!r} is not an IP address or CIDR network")
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or CIDR network (e.g. '10.0.0.0/8')"
                ) from None
        return TrustedProxies(networks=tuple(nets))
    raise ValueError("expected a hop count or a list of CIDRs")


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or socket value; ``None`` for garbage.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:80``, optionally in double quotes, and drops an IPv6 zone
    (``%eth0``). IPv4-mapped IPv6 comes back as the IPv4 address.
    """
    parsed = _parse(value)
    if parsed is None:
        return None
    return _V4(parsed[1]) if parsed[0] == 4 else _V6(parsed[1])


def _parse(value: str) -> tuple[int, int] | None:
    """``(version, integer)`` of an address value (see :func:`parse_ip`), or ``None``.

    Addresses are checked by the C ``inet_pton``, which (on Linux) accepts exactly what
    ``ipaddress`` accepts (a test pins this), at a tenth of the cost.
    """
    if not isinstance(value, str):
        return None
    text = value.strip(" \t")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if not text or len(text) > 64:
        return None
    if text[0] == "[":  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest[0] == ":" and _is_port(rest[1:])):
            return None
        text = text[1:end]
        if ":" not in text:  # "[1.2.3.4]" is not a node
            return None
    elif text.count(":") == 1:  # v4:port
        text, _, port = text.partition(":")
        if not _is_port(port) or "." not in text:
            return None
    if ":" not in text:
        number = _v4_int(text)
        return None if number is None else (4, number)
    if "%" in text:  # zone id
        text = text.split("%", 1)[0]
    try:
        number = int.from_bytes(_inet_pton(_AF_INET6, text), "big")
    except (OSError, ValueError):
        return None
    if number >> 32 == 0xFFFF:  # IPv4-mapped ::ffff:0:0/96
        return 4, number & _LOW32
    return 6, number


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and _DIGITS.issuperset(text)


def _v4_int(text: str) -> int | None:
    """A strict dotted quad (no leading zeros, as ``ipaddress``) as an int, via C."""
    try:
        return int.from_bytes(_inet_pton(_AF_INET, text), "big")
    except (OSError, ValueError):  # illegal address, NUL or non-ASCII characters
        return None


def _text(version: int, number: int) -> str:
    """The canonical text of an address (RFC 5952 for IPv6, as ``ipaddress`` writes it)."""
    if version == 4:
        return _inet_ntoa(number.to_bytes(4, "big"))
    # RFC 5952: lower-case hex without leading zeros; the longest run of two or
    # more zero groups (the first of equals) becomes "::". Half the cost of
    # str(IPv6Address); a test pins it to that.
    h = f"{number:032x}"
    text = ":".join([h[i : i + 4].lstrip("0") or "0" for i in range(0, 32, 4)])
    if "0:0" not in text:
        return text
    padded = ":" + text + ":"
    for run in _ZERO_RUNS:
        at = padded.find(run)
        if at >= 0:
            out = padded[:at] + "::" + padded[at + len(run) :]
            if not out.startswith("::"):
                out = out[1:]
            return out if out.endswith("::") else out[:-1]
    return text


def _node(value: str) -> tuple[int, int, str] | None:
    """``(version, integer, canonical text)`` of an address value, or ``None``.

    A bare dotted quad -- most peers and forwarded values -- is already in
    canonical form when ``inet_pton`` accepts it, so no text is rebuilt.
    """
    text = value.strip(" \t")
    if ":" not in text and '"' not in text:
        number = _v4_int(text)
        return None if number is None else (4, number, text)
    parsed = _parse(value)
    return None if parsed is None else (parsed[0], parsed[1], _text(*parsed))


def _embedded_v4(number: int) -> int | None:
    """The IPv4 address a 6to4, NAT64 or Teredo address carries (privacy-facts §7)."""
    if number >> 112 == 0x2002:  # 6to4 2002::/16: IPv4 in bits 16-47
        return (number >> 80) & _LOW32
    if number & _NAT64_MASK == _NAT64_NET:  # NAT64 64:ff9b::/96: IPv4 in the low 32 bits
        return number & _LOW32
    if number >> 96 == 0x20010000:  # Teredo 2001::/32: the client's IPv4, bits inverted
        return ~number & _LOW32
    return None


def _split_list(value: str) -> list[str]:
    """Comma-separated list elements, empty ones dropped (RFC 9110 §5.6.1)."""
    return [item for item in (part.strip(" \t") for part in value.split(",")) if item]


def _forwarded_for(value: str) -> list[str] | None:
    """``for=`` nodes of an RFC 7239 ``Forwarded`` header, oldest first.

    An element without ``for=`` yields ``""`` (an unusable hop). Malformed
    syntax (an unclosed quote, a pair without ``=``, a parameter repeated in
    one element) makes the whole header unusable: ``None``.
    """
    elements: list[str] = []
    node: str | None = None
    seen: set[str] = set()
    pos, end = 0, len(value)
    while pos < end:
        ch = value[pos]
        if ch in " \t;":
            pos += 1
            continue
        if ch == ",":
            if seen:
                elements.append(node or "")
                node, seen = None, set()
            pos += 1
            continue
        m = _FORWARDED_PAIR.match(value, pos)
        if m is None:
            return None
        key = m.group(1).lower()
        if key in seen:
            return None
        seen.add(key)
        if key == "for":
            quoted = m.group(2)
            if quoted is None:
                node = m.group(3)
            else:
                node = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = m.end()
    if seen:
        elements.append(node or "")
    return elements


def _hops_from_headers(
    x_forwarded_for: str | None, forwarded: str | None, header: HeaderFamily
) -> list[str] | None:
    """The forwarded chain, oldest first, from one header family; ``None`` when absent."""
    if header != "forwarded" and x_forwarded_for is not None and x_forwarded_for.strip():
        return _split_list(x_forwarded_for)
    if header != "x-forwarded-for" and forwarded is not None and forwarded.strip():
        nodes = _forwarded_for(forwarded)
        return [] if nodes is None else nodes
    return None


def resolve_client_ip(
    peer: str | None,
    x_forwarded_for: str | None,
    forwarded: str | None,
    trusted: TrustedProxies,
) -> str | None:
    """The client's address as a normalised string, or ``None`` when unusable.

    ``peer`` is the socket peer; the two header values are the joined fields
    of ``X-Forwarded-For`` and ``Forwarded`` (or ``None``). See the module
    docstring for the trust rules.
    """
    if trusted.hops > 0:
        hops = _hops_from_headers(x_forwarded_for, forwarded, trusted.header)
        if hops is None or len(hops) < trusted.hops:
            return None  # fail closed: fewer values than trusted proxies
        chosen = _node(hops[-trusted.hops])
        return None if chosen is None else chosen[2]
    peer_node = _node(peer) if peer is not None else None
    if peer_node is None:
        return None
    if not trusted.networks or not trusted._contains(peer_node[0], peer_node[1]):
        return peer_node[2]
    hops = _hops_from_headers(x_forwarded_for, forwarded, trusted.header)
    if not hops:
        return None if hops is not None else peer_node[2]
    client = peer_node[2]
    for hop in reversed(hops):
        node = _node(hop)
        if node is None:
            return None
        client = node[2]
        if not trusted._contains(node[0], node[1]):
            return client
    return client  # every hop trusted: the leftmost is an internal caller


def truncate_ip(ip: str | None, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str | None:
    """Zero the host bits; IPv6 that embeds IPv4 is truncated as that IPv4 address.

    >>> truncate_ip("203.0.113.77")
    '203.0.113.0'
    >>> truncate_ip("2002:cb00:714d::1")
    '203.0.113.0'
    """
    if ip is None:
        return None
    keep4 = ((1 << ipv4_prefix) - 1) << (32 - ipv4_prefix)
    if ":" not in ip and '"' not in ip:  # a dotted quad: the C fast path
        number = _v4_int(ip.strip(" \t"))
        return None if number is None else _text(4, number & keep4)
    parsed = _parse(ip)  # IPv4-mapped already unwrapped
    if parsed is None:
        return None
    version, number = parsed
    if version == 6:
        v4 = _embedded_v4(number)
        if v4 is None:
            keep6 = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
            return _text(6, number & keep6)
        number = v4
    return _text(4, number & keep4)
