"""Who is asking: the client IP behind trusted proxies, and its truncation.

Trust is given only by ``trusted_proxies``: a hop count (as werkzeug's
``ProxyFix``: take the n-th address from the right, fail closed when there are
fewer) or a list of networks (walk from the right past trusted hops, as
uvicorn does). A header from an untrusted peer changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "TrustedProxies",
    "parse_trusted_proxies",
    "resolve_client_ip",
    "truncate_ip",
    "parse_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Either a hop count (``hops``) or a set of trusted networks."""

    hops: int = 0
    networks: tuple[IPNetwork, ...] = ()

    @property
    def enabled(self) -> bool:
        """True when forwarded headers may be read at all."""
        return self.hops > 0 or bool(self.networks)

    def trusts(self, ip: str | None) -> bool:
        """Is the direct peer ``ip`` a trusted proxy?"""
        if ip is None:
            return False
        if self.hops > 0:
            return True
        addr = parse_ip(ip)
        if addr is None:
            return False
        return any(addr in net for net in self.networks)


def parse_trusted_proxies(value: object) -> TrustedProxies:
    """Parse the ``trusted_proxies`` option; raises ``ValueError`` on bad input."""
    if isinstance(value, bool):
        raise ValueError("expected a hop count or a list of CIDRs, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a hop count cannot be negative")
        return TrustedProxies(hops=value)
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if isinstance(value, list | tuple | set | frozenset):
        nets = []
        for item in value:
            try:
                nets.append(ipaddress.ip_network(str(item).strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return TrustedProxies(networks=tuple(nets))
    raise ValueError("expected a hop count or a list of CIDRs")


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or socket value; ``None`` for garbage."""
    text = value.strip().strip('"')
    if not text:
        return None
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    if "%" in text:  # zone id
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(values: str) -> list[str]:
    """``for=`` nodes of an RFC 7239 ``Forwarded`` header, oldest first."""
    out = []
    for element in values.split(","):
        node = ""
        for pair in element.split(";"):
            name, _, val = pair.partition("=")
            if name.strip().lower() == "for":
                node = val.strip()
        out.append(node)
    return out


def resolve_client_ip(
    peer: str | None,
    x_forwarded_for: str | None,
    forwarded: str | None,
    trusted: TrustedProxies,
) -> str | None:
    """The client's address as a normalised string, or ``None`` when unusable."""
    if not trusted.enabled or not trusted.trusts(peer):
        addr = parse_ip(peer) if peer else None
        return None if addr is None else str(addr)
    if x_forwarded_for:
        hops = [h.strip() for h in x_forwarded_for.split(",")]
    elif forwarded:
        hops = _forwarded_for(forwarded)
    else:
        addr = parse_ip(peer) if peer else None
        return None if addr is None else str(addr)
    if trusted.hops:
        if len(hops) < trusted.hops:
            return None
        addr = parse_ip(hops[-trusted.hops])
        return None if addr is None else str(addr)
    for hop in reversed(hops):
        addr = parse_ip(hop)
        if addr is None:
            return None
        if not any(addr in net for net in trusted.networks):
            return str(addr)
    return None


def truncate_ip(ip: str | None, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str | None:
    """Zero the host bits; IPv6 that embeds IPv4 is truncated as that IPv4 address."""
    if ip is None:
        return None
    addr = parse_ip(ip)
    if addr is None:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        v4 = addr.ipv4_mapped or addr.sixtofour
        if v4 is None and addr in _NAT64:
            v4 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if v4 is None and addr.teredo is not None:
            v4 = addr.teredo[1]
        if v4 is None:
            net = ipaddress.IPv6Network((addr, ipv6_prefix), strict=False)
            return str(net.network_address)
        addr = v4
    net4 = ipaddress.IPv4Network((addr, ipv4_prefix), strict=False)
    return str(net4.network_address)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
