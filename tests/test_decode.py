"""Decoder tests: byte-literal frames, one behaviour each."""

import struct

import pytest

from verifier import decode as d
from verifier.craft import (ETH_IPV4, ETH_IPV6, ETH_MPLS, ETH_QINQ, ether, icmp, ip, ipv4, ipv6, mpls, tcp, udp)
from verifier.model import Packet

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def dec(frame, lt=d.LT_ETHERNET):
    out = d.decode(frame, lt)
    assert isinstance(out, Packet), out
    return out


def test_ethernet_ipv4_tcp():
    p = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "198.51.100.2", 6, tcp(40000, 443))))
    assert (p.family, p.proto, p.sport, p.dport) == (4, 6, 40000, 443)
    assert (p.src, p.dst) == (ip("192.0.2.1"), ip("198.51.100.2"))
    assert (p.src_mac.hex(), p.dst_mac.hex(), p.vlan) == ("02000000000a", "02000000000b", -1)


def test_vlan_and_qinq_stacks():
    p = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2)), vlans=(20,)))
    assert (p.vlan, p.vlan2) == (20, -1)
    p = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2)), vlans=((ETH_QINQ, 100), 20)))
    assert (p.vlan, p.vlan2, p.sport) == (100, 20, 1)


def test_mpls_label_stack_then_ipv6():
    inner = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5, 6))
    p = dec(ether(B, A, ETH_MPLS, mpls([100, 200, 300], inner)))
    assert (p.family, p.sport, p.dport) == (6, 5, 6)


def test_mpls_ethernet_pseudowire_uses_inner_frame():
    inner = ether("02:00:00:00:00:22", "02:00:00:00:00:11", ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 6, tcp(1, 2)))
    p = dec(ether(B, A, ETH_MPLS, mpls([16], b"\0\0\0\0" + inner)))
    assert p.src_mac.hex() == "020000000011" and p.sport == 1


def test_ipv4_fragments():
    first = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 17, udp(7, 8, b"x" * 16), ident=99,
                                           frag=0x2000)))
    later = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 17, b"y" * 16, ident=99, frag=3)))
    assert (first.frag_id, first.frag_offset, first.sport) == (99, 0, 7)
    assert (later.frag_id, later.frag_offset, later.sport) == (99, 3, 0)


def test_ipv6_extension_headers_and_fragment():
    hbh = bytes([60, 0]) + b"\x01\x04\0\0\0\0"                      # hop-by-hop -> destination options
    dst = bytes([44, 0]) + b"\x01\x04\0\0\0\0"                      # destination options -> fragment
    frag = struct.pack("!BBHI", 6, 0, 0x0001, 0xABCD)             # offset 0, M=1, next TCP
    p = dec(ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:db8::2", 0, tcp(80, 8080), ext=hbh + dst + frag)))
    assert (p.proto, p.sport, p.frag_id, p.frag_offset) == (6, 80, 0xABCD, 0)
    later = struct.pack("!BBHI", 6, 0, 0x0010, 0xABCD)            # offset 2 (x8 bytes)
    p = dec(ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:db8::2", 44, b"z" * 16, ext=later)))
    assert (p.proto, p.frag_offset, p.sport) == (6, 2, 0)


def test_icmp_error_quotes_the_flow():
    probe = ipv4("192.0.2.1", "198.51.100.9", 17, udp(33434, 33435, b"p" * 8), ttl=1)
    p = dec(ether(B, A, ETH_IPV4, ipv4("203.0.113.1", "192.0.2.1", 1, icmp(11, 0, probe[:28]))))
    assert p.proto == 1 and p.sport == 11
    q = p.quote
    assert (q.src, q.dst, q.proto, q.sport, q.dport) == (ip("192.0.2.1"), ip("198.51.100.9"), 17, 33434, 33435)


def test_icmp_echo_request_and_reply_pair_up():
    req = dec(ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 1, icmp(8, 0))))
    rep = dec(ether(A, B, ETH_IPV4, ipv4("192.0.2.2", "192.0.2.1", 1, icmp(0, 0))))
    assert (req.sport, req.dport) == (8, 0) and (rep.sport, rep.dport) == (0, 8)


@pytest.mark.parametrize("lt,frame", [
    (d.LT_SLL, struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("0200000000aa0000"), 0x0800)),
    (d.LT_SLL2, struct.pack("!H2xIHBB8s", 0x0800, 3, 1, 0, 6, bytes.fromhex("0200000000aa0000"))),
    (d.LT_RAW, b""), (d.LT_IPV4, b""),
    (d.LT_NULL, struct.pack("<I", 2)), (d.LT_LOOP, struct.pack(">I", 2)),
    (d.LT_PPP, b"\xff\x03\x00\x21"), (d.LT_PPP_HDLC, b"\x00\x21"),
])
def test_link_types(lt, frame):
    p = dec(frame + ipv4("192.0.2.1", "192.0.2.2", 6, tcp(1, 2)), lt)
    assert (p.family, p.sport, p.dport) == (4, 1, 2)
    if lt in (d.LT_SLL, d.LT_SLL2):
        assert p.src_mac.hex() == "0200000000aa"


def test_non_ip_frames_keep_their_ethertype():
    lldp = ether("01:80:c2:00:00:0e", A, 0x88CC, b"\x02\x07\x04" + b"\0" * 6)
    p = dec(lldp)
    assert p.family == 0 and p.ethertype == 0x88CC


@pytest.mark.parametrize("frame,reason", [
    (b"\x00" * 10, d.R_L2_SHORT),
    (ether(B, A, ETH_IPV4, b"\x45\x00"), d.R_IPV4_SHORT),
    (ether(B, A, ETH_IPV4, b"\x43" + b"\0" * 19), d.R_IPV4_BAD),                  # IHL 3
    (ether(B, A, ETH_IPV4, b"\x75" + b"\0" * 19), d.R_VERSION),
    (ether(B, A, ETH_IPV6, b"\x60" + b"\0" * 20), d.R_IPV6_SHORT),
    (ether(B, A, ETH_IPV4, ipv4("192.0.2.1", "192.0.2.2", 6, b"\0\1")), d.R_L4_SHORT),
    (ether(B, A, ETH_MPLS, b"\0\0\0"), d.R_MPLS),
    (ether(B, A, 0x8100, struct.pack("!HH", 1, 0x8100) * 40), d.R_DEPTH),
])
def test_malformed_frames_give_reasons(frame, reason):
    assert d.decode(frame, d.LT_ETHERNET) == reason


def test_ipv6_extension_chain_is_capped():
    ext = bytes([60, 0]) + b"\x01\x04\0\0\0\0"
    p = d.decode(ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:db8::2", 60, b"", ext=ext * 40)), d.LT_ETHERNET)
    assert p == d.R_DEPTH


def test_unknown_linktype():
    assert d.decode(b"\0" * 40, 147) == d.R_LINKTYPE


def test_never_raises_on_random_bytes():
    import random
    rnd = random.Random(7)
    for _ in range(3000):
        frame = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
        for lt in (1, 113, 276, 101, 0, 9):
            d.decode(frame, lt)
