"""Client IP behind trusted proxies, and its truncation (core/clientip.py)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.core.clientip import (
    TrustedProxies,
    parse_ip,
    parse_trusted_proxies,
    resolve_client_ip,
    truncate_ip,
)

NOBODY = TrustedProxies()
ONE = TrustedProxies(hops=1)
TWO = TrustedProxies(hops=2)
LAN = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8"])
PEER = "10.0.0.1"


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "trusted", "expected"),
    [
        # -- nobody trusted: the socket peer, whatever the headers say
        pytest.param("203.0.113.7", None, None, NOBODY, "203.0.113.7", id="peer-only"),
        pytest.param(
            "203.0.113.7",
            "198.51.100.1",
            None,
            NOBODY,
            "203.0.113.7",
            id="xff-ignored-without-trust",
        ),
        pytest.param(
            "203.0.113.7",
            None,
            "for=198.51.100.1",
            NOBODY,
            "203.0.113.7",
            id="forwarded-ignored-without-trust",
        ),
        pytest.param("2001:db8::1", None, None, NOBODY, "2001:db8::1", id="peer-v6"),
        pytest.param(
            "::ffff:203.0.113.7", None, None, NOBODY, "203.0.113.7", id="peer-v4-mapped-unwrapped"
        ),
        pytest.param(None, "198.51.100.1", None, NOBODY, None, id="no-peer"),
        pytest.param("testclient", None, None, NOBODY, None, id="peer-not-an-ip"),
        pytest.param("", None, None, NOBODY, None, id="peer-empty"),
        # -- hop count, as ProxyFix: n-th from the right, fewer -> None
        pytest.param(PEER, "198.51.100.1", None, ONE, "198.51.100.1", id="hops1-xff"),
        pytest.param(
            PEER,
            "6.6.6.6, 198.51.100.1",
            None,
            ONE,
            "198.51.100.1",
            id="hops1-spoofed-left-value-ignored",
        ),
        pytest.param(
            PEER,
            "6.6.6.6, 198.51.100.1, 10.0.0.2",
            None,
            TWO,
            "198.51.100.1",
            id="hops2-second-from-right",
        ),
        pytest.param(PEER, "198.51.100.1", None, TWO, None, id="hops2-fewer-values-fail-closed"),
        pytest.param(PEER, None, None, ONE, None, id="hops1-no-header-fail-closed"),
        pytest.param(None, "198.51.100.1", None, ONE, "198.51.100.1", id="hops1-unix-socket-peer"),
        pytest.param(PEER, "198.51.100.1:51234", None, ONE, "198.51.100.1", id="xff-v4-port"),
        pytest.param(PEER, "2001:db8::7", None, ONE, "2001:db8::7", id="xff-v6-bare"),
        pytest.param(
            PEER, "[2001:db8::7]:443", None, ONE, "2001:db8::7", id="xff-v6-brackets-port"
        ),
        pytest.param(
            PEER, "198.51.100.1,, ", None, ONE, "198.51.100.1", id="xff-empty-elements-ignored"
        ),
        pytest.param(PEER, "garbage", None, ONE, None, id="xff-garbage"),
        pytest.param(PEER, "unknown", None, ONE, None, id="xff-unknown"),
        pytest.param(PEER, "198.51.100.1:port", None, ONE, None, id="xff-bad-port"),
        pytest.param(
            PEER, "6.6.6.6, 198.51.100.1", None, ONE, "198.51.100.1", id="xff-two-lines-joined"
        ),
        # -- RFC 7239 Forwarded
        pytest.param(
            PEER,
            None,
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            ONE,
            "192.0.2.60",
            id="fwd-basic",
        ),
        pytest.param(
            PEER,
            None,
            "for=192.0.2.43, for=198.51.100.17",
            ONE,
            "198.51.100.17",
            id="fwd-two-elements",
        ),
        pytest.param(
            PEER,
            None,
            'for="[2001:db8:cafe::17]:4711"',
            ONE,
            "2001:db8:cafe::17",
            id="fwd-v6-bracket-port-quoted",
        ),
        pytest.param(
            PEER, None, 'for="192.0.2.43:47011"', ONE, "192.0.2.43", id="fwd-v4-port-quoted"
        ),
        pytest.param(PEER, None, "For=192.0.2.43", ONE, "192.0.2.43", id="fwd-case-insensitive"),
        pytest.param(
            PEER, None, "FOR = 192.0.2.43 ; proto=https", ONE, "192.0.2.43", id="fwd-spaces"
        ),
        pytest.param(PEER, None, "for=unknown", ONE, None, id="fwd-unknown"),
        pytest.param(PEER, None, "for=_hidden", ONE, None, id="fwd-obfuscated"),
        pytest.param(PEER, None, 'for="_SEVKISEK"', ONE, None, id="fwd-obfuscated-quoted"),
        pytest.param(PEER, None, "proto=https;by=10.0.0.1", ONE, None, id="fwd-no-for"),
        pytest.param(PEER, None, 'for="192.0.2.43', ONE, None, id="fwd-unclosed-quote"),
        pytest.param(PEER, None, "for=192.0.2.43;for=6.6.6.6", ONE, None, id="fwd-repeated-param"),
        pytest.param(PEER, None, "for", ONE, None, id="fwd-pair-without-value"),
        pytest.param(PEER, None, "for=6.6.6.6, for=192.0.2.43", TWO, "6.6.6.6", id="fwd-hops2"),
        # -- one header family per request
        pytest.param(PEER, "198.51.100.1", "for=6.6.6.6", ONE, "198.51.100.1", id="both-xff-wins"),
        pytest.param(
            PEER,
            "6.6.6.6",
            "for=192.0.2.43",
            TrustedProxies(hops=1, header="forwarded"),
            "192.0.2.43",
            id="forwarded-only-family-ignores-xff",
        ),
        pytest.param(
            PEER,
            None,
            "for=6.6.6.6",
            TrustedProxies(hops=1, header="x-forwarded-for"),
            None,
            id="xff-only-family-ignores-forwarded",
        ),
        # -- trusted networks: walk from the right past trusted hops
        pytest.param(PEER, "198.51.100.1", None, LAN, "198.51.100.1", id="cidr-one-hop"),
        pytest.param(
            PEER,
            "6.6.6.6, 198.51.100.1, 10.1.2.3",
            None,
            LAN,
            "198.51.100.1",
            id="cidr-skips-trusted-hops",
        ),
        pytest.param(
            "203.0.113.9",
            "198.51.100.1",
            None,
            LAN,
            "203.0.113.9",
            id="cidr-untrusted-peer-spoof-ignored",
        ),
        pytest.param(PEER, None, None, LAN, PEER, id="cidr-no-header-peer"),
        pytest.param(
            PEER, "10.9.9.9, 10.1.1.1", None, LAN, "10.9.9.9", id="cidr-all-trusted-leftmost"
        ),
        pytest.param(
            PEER, "198.51.100.1, garbage", None, LAN, None, id="cidr-garbage-hop-fail-closed"
        ),
        pytest.param(PEER, ", ,", None, LAN, None, id="cidr-empty-list-fail-closed"),
        pytest.param(
            "fd00::5",
            None,
            'for="[2001:db8::9]:80"',
            LAN,
            "2001:db8::9",
            id="cidr-v6-peer-forwarded",
        ),
        pytest.param(
            "::ffff:10.0.0.1",
            "198.51.100.1",
            None,
            LAN,
            "198.51.100.1",
            id="cidr-v4-mapped-peer-trusted",
        ),
        pytest.param(
            PEER, None, "for=_hidden, for=10.2.2.2", LAN, None, id="cidr-obfuscated-hop-fail-closed"
        ),
    ],
)
def test_resolve_client_ip(
    peer: str | None,
    xff: str | None,
    forwarded: str | None,
    trusted: TrustedProxies,
    expected: str | None,
) -> None:
    assert resolve_client_ip(peer, xff, forwarded, trusted) == expected


@pytest.mark.parametrize(
    ("ip", "v4", "v6", "expected"),
    [
        pytest.param("203.0.113.77", 24, 48, "203.0.113.0", id="v4-24"),
        pytest.param("203.0.113.77", 16, 48, "203.0.0.0", id="v4-16"),
        pytest.param("203.0.113.77", 32, 48, "203.0.113.77", id="v4-32-keeps"),
        pytest.param("203.0.113.77", 0, 48, "0.0.0.0", id="v4-0"),
        pytest.param("2001:db8:abcd:12:1:2:3:4", 24, 48, "2001:db8:abcd::", id="v6-48"),
        pytest.param("2001:db8:abcd:12:1:2:3:4", 24, 64, "2001:db8:abcd:12::", id="v6-64"),
        pytest.param("::ffff:203.0.113.77", 24, 48, "203.0.113.0", id="v4-mapped"),
        pytest.param("64:ff9b::cb00:714d", 24, 48, "203.0.113.0", id="nat64"),
        pytest.param("2002:cb00:714d::1", 24, 48, "203.0.113.0", id="6to4"),
        pytest.param("2002:cb00:714d:1234::1", 16, 48, "203.0.0.0", id="6to4-prefix16"),
        pytest.param(
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", 24, 48, "192.0.2.0", id="teredo-client"
        ),
        pytest.param("[2001:db8::1]:443", 24, 48, "2001:db8::", id="v6-bracket-port"),
        pytest.param("203.0.113.77:8080", 24, 48, "203.0.113.0", id="v4-port"),
        pytest.param("fe80::1%eth0", 24, 48, "fe80::", id="zone-id"),
        pytest.param("not-an-ip", 24, 48, None, id="garbage"),
        pytest.param("", 24, 48, None, id="empty"),
        pytest.param(None, 24, 48, None, id="none"),
    ],
)
def test_truncate_ip(ip: str | None, v4: int, v6: int, expected: str | None) -> None:
    assert truncate_ip(ip, v4, v6) == expected


def test_truncate_is_idempotent_for_6to4() -> None:
    once = truncate_ip("2002:cb00:714d::1")
    assert truncate_ip(once) == once
    # a plain /48 would have kept the whole IPv4 address: 2002:cb00:714d::
    assert "714d" not in str(once)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1.2.3.4", "1.2.3.4", id="v4"),
        pytest.param(' "1.2.3.4" ', "1.2.3.4", id="quoted"),
        pytest.param("[::1]", "::1", id="v6-brackets"),
        pytest.param("[::1]x", None, id="v6-brackets-trailing-garbage"),
        pytest.param("[::1", None, id="v6-unclosed-bracket"),
        pytest.param("[1.2.3.4]", None, id="v4-in-brackets"),
        pytest.param("1.2.3.4:99999999", None, id="port-too-long"),
        pytest.param("01.2.3.4", None, id="leading-zero"),
        pytest.param("1.2.3.4.5", None, id="five-octets"),
        pytest.param("x" * 200, None, id="long"),
    ],
)
def test_parse_ip(value: str, expected: str | None) -> None:
    addr = parse_ip(value)
    assert (None if addr is None else str(addr)) == expected


@pytest.mark.parametrize(
    ("value", "hops", "networks"),
    [
        pytest.param(0, 0, (), id="zero"),
        pytest.param(2, 2, (), id="hops"),
        pytest.param("1", 1, (), id="hops-from-env"),
        pytest.param(["10.0.0.0/8", "::1"], 0, ("10.0.0.0/8", "::1/128"), id="list"),
        pytest.param(
            "10.0.0.0/8, 192.168.1.1", 0, ("10.0.0.0/8", "192.168.1.1/32"), id="comma-string"
        ),
        pytest.param(["10.0.0.1/8"], 0, ("10.0.0.0/8",), id="host-bits-allowed"),
    ],
)
def test_parse_trusted_proxies(value: object, hops: int, networks: tuple[str, ...]) -> None:
    parsed = parse_trusted_proxies(value)
    assert parsed.hops == hops
    assert tuple(str(n) for n in parsed.networks) == networks


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="bool"),
        pytest.param(-1, id="negative"),
        pytest.param(["10.0.0.0/33"], id="bad-prefix"),
        pytest.param(["nonsense"], id="bad-cidr"),
        pytest.param([42], id="not-a-string"),
        pytest.param(1.5, id="float"),
    ],
)
def test_parse_trusted_proxies_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_trusted_proxies(value)


def test_trusts() -> None:
    assert not NOBODY.trusts("10.0.0.1")
    assert ONE.trusts("203.0.113.1") and ONE.trusts(None)
    assert LAN.trusts("10.200.0.1") and LAN.trusts("fd12::1")
    assert not LAN.trusts("11.0.0.1") and not LAN.trusts(None) and not LAN.trusts("junk")


def test_header_family_is_checked() -> None:
    with pytest.raises(ValueError):
        TrustedProxies(hops=1, header="x-real-ip")  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------

_header_text = st.text(
    alphabet=st.sampled_from(list('0123456789abcdef.:[]",; =_-forFORunknow\t')), max_size=60
) | st.text(max_size=40)
_trusts = st.sampled_from([NOBODY, ONE, TWO, LAN, TrustedProxies(hops=1, header="forwarded")])


@given(
    peer=st.none() | st.ip_addresses().map(str) | st.text(max_size=20),
    xff=st.none() | _header_text,
    forwarded=st.none() | _header_text,
    trusted=_trusts,
)
def test_resolve_never_raises_and_returns_an_ip(
    peer: str | None, xff: str | None, forwarded: str | None, trusted: TrustedProxies
) -> None:
    result = resolve_client_ip(peer, xff, forwarded, trusted)
    if result is not None:
        assert str(ipaddress.ip_address(result)) == result


@given(peer=st.ip_addresses().map(str), xff=_header_text, forwarded=_header_text)
def test_spoofed_headers_from_untrusted_peer_change_nothing(
    peer: str, xff: str, forwarded: str
) -> None:
    expected = resolve_client_ip(peer, None, None, NOBODY)
    assert resolve_client_ip(peer, xff, forwarded, NOBODY) == expected
    if not LAN.trusts(peer):
        assert resolve_client_ip(peer, xff, forwarded, LAN) == expected


@given(client=st.ip_addresses(), spoof=st.lists(st.ip_addresses(), max_size=3))
def test_hop_count_picks_what_the_proxy_appended(
    client: ipaddress.IPv4Address | ipaddress.IPv6Address,
    spoof: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    xff = ", ".join([*map(str, spoof), str(client)])
    expected = str(parse_ip(str(client)))
    assert resolve_client_ip(PEER, xff, None, ONE) == expected
    node = f'"[{client}]:80"' if client.version == 6 else f"{client}"
    fwd = ", ".join(
        [
            *(f'for="[{s}]"' if s.version == 6 else f"for={s}" for s in spoof),
            f"for={node};proto=https",
        ]
    )
    assert resolve_client_ip(PEER, None, fwd, ONE) == expected


@given(
    ip=st.ip_addresses(),
    v4=st.integers(min_value=0, max_value=32),
    v6=st.integers(min_value=0, max_value=128),
)
def test_truncation_keeps_at_most_the_prefix(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, v4: int, v6: int
) -> None:
    out = truncate_ip(str(ip), v4, v6)
    assert out is not None
    addr = ipaddress.ip_address(out)
    net = ipaddress.ip_network((addr, v4 if addr.version == 4 else v6), strict=False)
    assert net.network_address == addr  # host bits are zero
    embeds_v4 = isinstance(addr, ipaddress.IPv6Address) and (
        addr.sixtofour or addr.teredo or addr in ipaddress.ip_network("64:ff9b::/96")
    )
    if not embeds_v4:  # a short prefix can land in 2002::/16, 2001::/32 or 64:ff9b::/96
        assert truncate_ip(out, v4, v6) == out  # idempotent


@given(v4=st.ip_addresses(v=4))
def test_embedded_ipv4_is_truncated_as_ipv4(v4: ipaddress.IPv4Address) -> None:
    expected = truncate_ip(str(v4))
    n = int(v4)
    for wrapped in (
        ipaddress.IPv6Address((0xFFFF << 32) | n),  # IPv4-mapped
        ipaddress.IPv6Address((0x64FF9B << 96) | n),  # NAT64
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1),  # 6to4
        ipaddress.IPv6Address((0x20010000 << 96) | (n ^ 0xFFFFFFFF)),  # Teredo client
    ):
        assert truncate_ip(str(wrapped)) == expected


@given(st.text(max_size=80))
def test_parse_ip_never_raises(value: str) -> None:
    addr = parse_ip(value)
    assert addr is None or isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address)


@given(st.text(alphabet="0123456789.x ", max_size=20) | st.ip_addresses(v=4).map(str))
def test_dotted_quad_fast_path_agrees_with_ipaddress(text: str) -> None:
    try:
        expected: str | None = str(ipaddress.IPv4Address(text.strip(" \t")))
    except ValueError:
        expected = None
    addr = parse_ip(text)
    assert (None if addr is None else str(addr)) == expected
    assert resolve_client_ip(text, None, None, NOBODY) == expected
    if expected is not None:
        slow = ipaddress.ip_network((expected, 24), strict=False).network_address
        assert truncate_ip(text) == str(slow)


@given(
    st.text(alphabet="0123456789abcdefABCDEF:.", max_size=45)
    | st.ip_addresses(v=6).map(str)
    | st.ip_addresses(v=6).map(lambda a: a.exploded.upper())
)
def test_ipv6_parsing_agrees_with_ipaddress(text: str) -> None:
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.IPv6Address(text)
    except ValueError:
        addr = None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    expected = None if addr is None else str(addr)
    parsed = parse_ip(text)
    assert (None if parsed is None else str(parsed)) == expected
    assert resolve_client_ip(f"[{text}]:443", None, None, NOBODY) == expected


_WORDS = st.sampled_from([0, 0, 0, 1, 0x10, 0x100, 0xABC, 0xFFFF])


@given(
    st.integers(min_value=0, max_value=2**128 - 1)
    | st.lists(_WORDS, min_size=8, max_size=8).map(
        lambda ws: sum(w << (16 * (7 - i)) for i, w in enumerate(ws))
    )
)
def test_ipv6_text_is_what_ipaddress_writes(number: int) -> None:
    from privguard.core.clientip import _text

    assert _text(6, number) == str(ipaddress.IPv6Address(number))
