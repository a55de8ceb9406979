"""A seeded mutation fuzzer over every reader and decoder.

    python -m tests.fuzz --minutes 10 [--seed 7] [--corpus ../shared/corpus]

Targets, each fed mutants of its own seeds:

- ``capture``: a whole capture file (pcap, pcapng, either byte order) through
  ``open_capture`` and the audit's pipeline — record walk, pcapng blocks,
  the fast path on both engines, the decoder, the flow table, LLDP/CDP/STP,
  ARP/NDP, GTP-C/PFCP parsers, path building and judging. May raise only
  ``CaptureError`` at open.
- ``gzip``: the same captures gzip-compressed, the compressed bytes mutated.
- ``frame``: one frame through ``decode`` under every link type we read,
  including crafted deep nesting (hundreds of MPLS pseudowire, PPPoE, NSH,
  VLAN, IP-in-IP, GRE and ICMP-quote layers). Must return a Packet or a
  known reason.
- ``policy``, ``inventory``: mutated YAML (and inventory CSV) text through
  the loaders. May raise only ``VerifierError`` (a positioned error).
- ``bmp``: a BMP stream (Initiation, Peer Up with OPENs naming 4-byte AS and
  ADD-PATH, Route Monitoring of pre-/post-policy and Loc-RIB UPDATEs with
  IPv4 NLRI, MP_REACH/MP_UNREACH, AS4_PATH, Peer Down, Termination) through
  a BMP session into a live RIB, then lookups. Must raise nothing.
- ``export``: NetFlow v5/v9, IPFIX and sFlow v5 datagrams (templates, options
  templates, variable-length and enterprise fields, data) through one
  collector, in order. Must raise nothing.
- ``mrt``: an MRT RIB dump (TABLE_DUMP_V2 with ADD-PATH records, legacy
  TABLE_DUMP, gzip) through ``Rib.load``, the lookup tables and lookups of
  the routes' addresses. May raise only ``DataError``.

Seeds are crafted here (with verifier.craft and scapy) and, when present,
the small captures of ``../shared/corpus``. An input fails when it raises
anything else or takes longer than ``LIMIT`` seconds. Every failing input is
written to ``tests/fuzz_regressions/`` (name: target and hash) and replayed
by the test suite for ever after (tests/test_fuzz.py).

No coverage guidance (atheris would add it, but it needs a libFuzzer build of
CPython's extension modules to see into numpy and our C module, and its
mutation state is not reproducible from a seed): mutations are structure
aware instead — pcap record fields, pcapng block lengths, splices of
records between seeds — and the runs are reproducible from ``--seed``.
"""

import argparse
import gzip
import hashlib
import os
import random
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REGRESSIONS = os.path.join(HERE, "fuzz_regressions")
LIMIT = 1.0                       # seconds per input
MAX_SEED_BYTES = 64 << 10         # corpus captures larger than this are not seeds (slow to mutate and run)
INTERESTING = (0, 1, 2, 7, 8, 12, 14, 16, 20, 24, 28, 32, 40, 64, 127, 128, 255, 256, 1500, 0x7FFF, 0x8000,
               0xFFFF, 0x10000, 262144, 262145, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


# --- seeds -------------------------------------------------------------------

def crafted_frames():
    """Ethernet frames, one behaviour each, for every layer the decoder reads."""
    from verifier import craft as c
    a, b, gw = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "00:e0:fc:00:00:01"
    t4 = c.ipv4("198.51.100.5", "192.0.2.7", 6, c.tcp(40000, 443, b"x" * 20))
    u6 = c.ipv6("2001:db8::5", "2001:db8:1::7", 17, c.udp(5353, 53, b"q" * 12))
    frames = [
        c.ether(gw, a, c.ETH_IPV4, t4), c.ether(gw, a, c.ETH_IPV6, u6),
        c.ether(gw, a, c.ETH_IPV4, t4, vlans=(20,)), c.ether(gw, a, c.ETH_IPV4, t4, vlans=((c.ETH_QINQ, 100), 20)),
        c.ether(gw, a, c.ETH_MPLS, c.mpls([16, 17], t4)),
        c.ether(gw, a, c.ETH_MPLS, c.mpls([16], b"\0\0\0\0" + c.ether(b, a, c.ETH_IPV4, t4))),
        c.ether(gw, a, 0x8864, b"\x11\x00\x00\x01" + struct.pack("!H", len(t4) + 2) + b"\x00\x21" + t4),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("203.0.113.1", "198.51.100.5", 1, c.icmp(11, 0, t4[:28]))),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("198.51.100.5", "192.0.2.7", 17, c.udp(1, 2, b"f" * 16), frag=0x2000)),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("198.51.100.5", "192.0.2.7", 17, b"g" * 16, frag=3)),
        c.ether(gw, a, c.ETH_IPV6, c.ipv6("2001:db8::5", "2001:db8:1::7", 0, c.tcp(1, 2),
                                          ext=bytes([43, 2, 0, 1]) + b"\0" * 4 + bytes(16))),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("192.0.2.1", "192.0.2.2", 17, c.udp(2152, 2152, c.gtpu(7, t4, qfi=9)))),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("192.0.2.1", "192.0.2.2", 17, c.udp(4789, 4789,
                                                                              c.vxlan(5, c.ether(b, a, 0x0800, t4))))),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("192.0.2.1", "192.0.2.2", 47, b"\x20\x00\x08\x00" + b"\0\0\0\x07" + t4)),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("192.0.2.1", "192.0.2.2", 4, t4)),
        c.ether(gw, a, 0x894F, b"\x00\x02\x01\x01" + b"\0\0\x2a\xff" + t4),
        c.ether("ff:ff:ff:ff:ff:ff", a, c.ETH_ARP, c.arp(2, a, "198.51.100.5", b, "198.51.100.6")),
        c.ether(gw, a, c.ETH_IPV6, c.ipv6("2001:db8::5", "2001:db8::6", 58, c.neighbour_advert("2001:db8::5", a))),
        c.ether(gw, a, c.ETH_IPV4, c.ipv4("192.0.2.1", "192.0.2.2", 17, c.udp(8805, 8805, c.pfcp_session_establishment(
            1, "192.0.2.20", 100, "192.0.2.30", 200)))),
    ]
    return frames + control_frames()


def control_frames():
    """LLDP, CDP, STP and GTPv1-C/GTPv2-C frames, made by scapy (not by us)."""
    from scapy.all import Dot3, LLC, SNAP, STP, Ether, raw
    from scapy.contrib.cdp import CDPMsgDeviceID, CDPMsgPlatform, CDPMsgSoftwareVersion, CDPv2_HDR
    from scapy.contrib.lldp import (LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUPortID, LLDPDUSystemDescription,
                                    LLDPDUSystemName, LLDPDUTimeToLive)
    lldp = (Ether(dst="01:80:c2:00:00:0e", src="00:e0:fc:00:00:02", type=0x88CC) /
            LLDPDUChassisID(subtype=4, id="00:e0:fc:00:00:02") / LLDPDUPortID(subtype=5, id="Gi0/1") /
            LLDPDUTimeToLive(ttl=120) / LLDPDUSystemName(system_name="core-sw") /
            LLDPDUSystemDescription(description="Huawei Versatile Routing Platform") / LLDPDUEndOfLLDPDU())
    cdp = (Dot3(dst="01:00:0c:cc:cc:cc", src="00:1b:54:00:00:01") / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) /
           SNAP(OUI=0x0C, code=0x2000) / CDPv2_HDR() / CDPMsgDeviceID(val=b"edge-rtr") /
           CDPMsgSoftwareVersion(val=b"Cisco IOS Software") / CDPMsgPlatform(val=b"cisco ISR4431"))
    stp = Dot3(dst="01:80:c2:00:00:00", src="00:e0:fc:00:00:03") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP()
    from scapy.all import IP, UDP
    from scapy.contrib.gtp import GTPCreatePDPContextRequest, GTPHeader, IE_GSNAddress, IE_TEIDI
    from scapy.contrib.gtp_v2 import GTPHeader as GTPv2Header
    from scapy.contrib.gtp_v2 import IE_EPSBearerID, IE_FTEID, GTPV2CreateSessionRequest, IE_BearerContext
    link = Ether(dst="00:e0:fc:00:00:01", src="02:00:00:00:00:0a") / IP(src="192.0.2.1", dst="192.0.2.2")
    gtpv1 = (link / UDP(sport=2123, dport=2123) / GTPHeader(gtp_type=16, teid=0) /
             GTPCreatePDPContextRequest(IE_list=[IE_TEIDI(TEIDI=0x55), IE_GSNAddress(ipv4_address="192.0.2.40"),
                                                 IE_GSNAddress(ipv4_address="192.0.2.41")]))
    gtpv2 = (link / UDP(sport=2123, dport=2123) / GTPv2Header(gtp_type=32, T=1, teid=0, seq=1) /
             GTPV2CreateSessionRequest(IE_list=[IE_FTEID(InterfaceType=10, GRE_Key=0x1234, ipv4="192.0.2.30"),
                                                IE_BearerContext(IE_list=[IE_EPSBearerID(EBI=5), IE_FTEID(
                                                    InterfaceType=0, GRE_Key=0x99, ipv4="192.0.2.31")])]))
    return [raw(lldp), raw(cdp), raw(stp), raw(gtpv1), raw(gtpv2)]


def pcap_bytes(frames, linktype=1, big=False, nano=False):
    order = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(frames):
        out.append(struct.pack(order + "IIII", 1_700_000_000 + i, i * 1000, len(frame), len(frame)) + frame)
    return b"".join(out)


def pcapng_bytes(frames, linktype=1):
    out = [struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)]
    name = b"eth1\0\0\0\0"
    idb_body = struct.pack("<HHI", linktype, 0, 65535) + struct.pack("<HH", 2, 4) + name + b"\0\0\0\0"
    out.append(struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body)))
    for i, frame in enumerate(frames):
        pad = frame + b"\0" * (-len(frame) % 4)
        ts = (1_700_000_000 + i) * 1_000_000
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + pad
        out.append(struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
    out.append(struct.pack("<III", 3, 16 + len(frames[0][:4]), len(frames[0])) + frames[0][:4] +
               struct.pack("<I", 16 + len(frames[0][:4])))
    return b"".join(out)


def deep_frame(rnd):
    """One frame of a layer repeated hundreds of times (the nesting routes)."""
    from verifier import craft as c
    inner = c.ipv4("198.51.100.5", "192.0.2.7", 6, c.tcp(1, 2))
    depth = rnd.randrange(50, 700)
    kind = rnd.choice(("pw", "pppoe", "nsh", "vlan", "ipip", "gre", "icmp", "mixed"))
    body, et = inner, 0x0800
    for level in range(depth):
        k = kind if kind != "mixed" else rnd.choice(("pw", "pppoe", "nsh", "vlan"))
        if k == "pw":
            body = struct.pack("!I", (16 << 12) | 0x100 | 64) + b"\0" * 4 + b"\x02" * 6 + b"\x04" * 6 + \
                struct.pack("!H", et) + body
            et = 0x8847
        elif k == "pppoe":
            ppp = struct.pack("!I", (16 << 12) | 0x100 | 64) + b"\0" * 4 + b"\x02" * 12 + struct.pack("!H", et) + body
            body = b"\x11\x00\x00\x01" + struct.pack("!H", len(ppp) + 2) + b"\x02\x81" + ppp
            et = 0x8864
        elif k == "nsh":
            body = b"\x00\x02\x01" + bytes([3]) + b"\0\0\0\xff" + b"\x02" * 12 + struct.pack("!H", et) + body
            et = 0x894F
        elif k == "vlan":
            body = struct.pack("!HH", level & 0xFFF, et) + body
            et = 0x8100
        elif k in ("ipip", "gre", "icmp"):
            if et != 0x0800:
                break
            if k == "ipip":
                body = c.ipv4("192.0.2.1", "192.0.2.2", 4, body)
            elif k == "gre":
                body = c.ipv4("192.0.2.1", "192.0.2.2", 47, b"\x00\x00\x08\x00" + body)
            else:
                body = c.ipv4("203.0.113.1", "192.0.2.2", 1, c.icmp(11, 0, body))
        if len(body) > 60000:
            break
    return c.mac("02:00:00:00:00:0b") + c.mac("02:00:00:00:00:0a") + struct.pack("!H", et) + body


def corpus_seeds(corpus):
    """Small capture files of the shared corpus (bytes), when it is there."""
    if not corpus or not os.path.isdir(corpus):
        return []
    out = []
    for root in ("pcaps", "malformed-tcpdump"):
        top = os.path.join(corpus, root)
        for dirpath, _dirs, files in os.walk(top):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if name.endswith((".tsv", ".md", ".txt")) or "LICENSES" in path:
                    continue
                if 0 < os.path.getsize(path) <= MAX_SEED_BYTES:
                    with open(path, "rb") as fh:
                        out.append(fh.read())
    return out


POLICY_EXTRA = """
exceptions:
  - rule: no-untrusted-vendors
    match: {remote: 192.0.2.10/32, port: 53, proto: udp}
    reason: "resolver"
    expires: 2027-06-30
"""
INVENTORY_YAML = """devices:
  - name: core-sw
    vendor: huawei
    model: S5700
    macs: [00:e0:fc:00:00:02, "00:e0:fc:10:00:00/36"]
    ips: [192.0.2.20, 198.51.100.0/28]
    role: gnb
    interfaces: [{interface: eth1, vlan: 20}]
"""
INVENTORY_CSV = ("name,vendor,model,macs,ips,role\n"
                 "core-sw,huawei,S5700,00:e0:fc:00:00:02;00:e0:fc:10:00:00/36,192.0.2.20,upf\n")


# --- mutation ----------------------------------------------------------------

def pcap_records(data):
    """Offsets of a pcap's records (for record-aware mutations), or []."""
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                           b"\xa1\xb2\x3c\x4d"):
        return []
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data) and len(out) < 10_000:
        incl = struct.unpack_from(order + "I", data, off + 8)[0]
        if off + 16 + incl > len(data):
            break
        out.append((off, 16 + incl, order))
        off += 16 + incl
    return out


def mutate(rnd, data, others):
    """One to four mutations of ``data`` (bytes); ``others``: seeds to splice from."""
    buf = bytearray(data)
    for _ in range(rnd.randrange(1, 5)):
        op = rnd.randrange(11)
        n = len(buf)
        if op == 0 and n:                                   # flip bits
            for _ in range(rnd.randrange(1, 9)):
                buf[rnd.randrange(n)] ^= 1 << rnd.randrange(8)
        elif op == 1 and n:                                 # an interesting byte
            buf[rnd.randrange(n)] = rnd.choice((0, 1, 0x7F, 0x80, 0xFF, 0x3F, 0x40))
        elif op == 2 and n >= 4:                            # an interesting 16/32-bit value
            width, order = rnd.choice((2, 4)), rnd.choice("<>")
            value = rnd.choice(INTERESTING + (n, n - 16, n + 1))
            at = rnd.randrange(n - width + 1)
            buf[at:at + width] = struct.pack(order + ("H" if width == 2 else "I"), value & (0xFFFF if width == 2
                                                                                             else 0xFFFFFFFF))
        elif op == 3 and n:                                 # truncate
            del buf[rnd.randrange(n):]
        elif op == 4:                                       # insert random bytes
            at = rnd.randrange(n + 1)
            buf[at:at] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 32)))
        elif op == 5 and n > 1:                             # delete a range
            at = rnd.randrange(n)
            del buf[at:at + rnd.randrange(1, 64)]
        elif op == 6 and n > 1:                             # duplicate a range
            at = rnd.randrange(n)
            piece = buf[at:at + rnd.randrange(1, 256)]
            to = rnd.randrange(n + 1)
            buf[to:to] = piece
        elif op == 7 and others:                            # splice another seed in
            other = rnd.choice(others)
            if other:
                at, frm = rnd.randrange(n + 1), rnd.randrange(len(other))
                buf[at:] = other[frm:frm + rnd.randrange(1, 4096)] + buf[at:at + rnd.randrange(0, 4096)]
        elif op in (8, 9, 10):                              # record-aware: pcap lengths, duplicates, swaps
            records = pcap_records(bytes(buf))
            if not records:
                continue
            off, size, order = rnd.choice(records)
            if op == 8:
                field = rnd.choice((8, 12))
                buf[off + field:off + field + 4] = struct.pack(order + "I", rnd.choice(INTERESTING) & 0xFFFFFFFF)
            elif op == 9:
                buf[off:off] = buf[off:off + size]
            elif len(records) > 1:
                o2, s2, _ = rnd.choice(records)
                if o2 > off + size:
                    first, second = bytes(buf[off:off + size]), bytes(buf[o2:o2 + s2])
                    buf[o2:o2 + s2] = first
                    buf[off:off + size] = second
    return bytes(buf)


def mrt_seeds():
    """RIB dumps with every record shape the reader knows."""
    import ipaddress
    from verifier.bgp import aspath
    from verifier.bgp.write import MrtWriter
    seq, aset = aspath.AS_SEQUENCE, aspath.AS_SET

    def b(text):
        return ipaddress.ip_address(text).packed
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "seed.mrt")
        with MrtWriter(path, peers=[(b("192.0.2.1"), 64500), (b("2001:db8::1"), 4200000001)], when=1796000000) as w:
            w.rib(b("8.8.8.0"), 24, [(0, ((seq, (64500, 4134, 64501)),), b("192.0.2.1")),
                                     (1, ((seq, (4200000001, 64501)),), b("192.0.2.1"))])
            w.rib(b("9.9.0.0"), 16, [(0, ((seq, (64500,)), (aset, (4134, 64502))), b("192.0.2.1"))])
            w.rib(b("2001:4860::"), 32, [(1, ((seq, (64500, 4809)),), b("2001:db8::1"))])
            w.rib(b("10.1.0.0"), 23, [(0, ((seq, (64500, 64505)),), b("192.0.2.1"), 7)], addpath=True)
        with open(path, "rb") as fh:
            out.append(fh.read())
        with MrtWriter(path, when=1796000000) as w:
            w.legacy(b("11.0.0.0"), 8, b("192.0.2.5"), 23456, ((seq, (23456, 64506)),), b("192.0.2.5"),
                     as4_path=((seq, (4200000000, 64506)),))
        with open(path, "rb") as fh:
            out.append(fh.read())
    out.append(gzip.compress(out[0], 6, mtime=0))
    return out


def export_seeds():
    """Flow-export datagrams: an IPFIX message with every set kind, a v9
    export packet with a template, an options template and data, a v5 one."""
    ipv4a, ipv4b = bytes((198, 51, 100, 1)), bytes((8, 8, 8, 8))
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 8), (82, 65535), (999, 4, 29305)]
    tmpl = struct.pack(">HH", 300, len(fields))
    for f in fields:
        tmpl += struct.pack(">HHI", f[0] | 0x8000, f[1], f[2]) if len(f) == 3 else struct.pack(">HH", *f)
    record = ipv4a + ipv4b + struct.pack(">HHBIQ", 1000, 443, 6, 3, 300) + b"\x03eth" + b"PEN!"
    options = struct.pack(">HHH", 500, 3, 1) + struct.pack(">HHHHHH", 302, 4, 305, 4, 306, 4)
    sets = [(2, tmpl), (3, options), (500, struct.pack(">III", 1, 1, 9)), (300, record * 3)]
    body = b"".join(struct.pack(">HH", k, 4 + len(v)) + v for k, v in sets)
    ipfix = struct.pack(">HHIII", 10, 16 + len(body), 1796000000, 0, 7) + body
    v9_tmpl = struct.pack(">HHHHHHHHHHHHHHHH", 0, 36, 256, 7, 8, 4, 12, 4, 7, 2, 11, 2, 4, 1, 2, 4) + \
        struct.pack(">HH", 1, 4)
    v9_opts = struct.pack(">HHHHHHHHHH", 1, 20, 257, 4, 4, 1, 2, 34, 4, 0)
    v9_data = struct.pack(">HH", 256, 4 + 21 * 2) + (ipv4a + ipv4b + struct.pack(">HHBII", 1, 2, 17, 5, 500)) * 2
    v9 = struct.pack(">HHIIII", 9, 3, 1000, 1796000000, 0, 1) + v9_tmpl + v9_opts + v9_data
    v5 = struct.pack(">HHIIIIBBH", 5, 1, 1000, 1796000000, 0, 0, 0, 0, 0x4000 | 10) + \
        struct.pack(">4s4s4sHHIIIIHHxBBBHHBBxx", ipv4a, ipv4b, bytes(4), 1, 2, 3, 300, 10, 20, 1000, 443, 0, 6, 0,
                    0, 0, 24, 24)
    return [ipfix, v9, v5, sflow_datagram()]


def sflow_datagram(seq=1, rate=64, as_path=(64500, 4134, 64501)):
    """An sFlow v5 datagram (IPv4 agent 192.0.2.1): a flow sample with a
    sampled Ethernet/802.1Q/IPv4/UDP header and the switch, router and
    gateway records; the same as an expanded flow sample; a counter sample."""
    from verifier.craft import ETH_IPV4, ether, ipv4, udp
    frame = ether("00:00:0c:9f:f0:14", "d4:be:d9:10:00:21", ETH_IPV4,
                  ipv4("198.51.100.21", "203.0.113.9", 17, udp(5353, 53, b"q" * 20)), vlans=(20,))
    ip4 = lambda text: struct.pack(">I", 1) + bytes(int(x) for x in text.split("."))   # noqa: E731

    def record(fmt, body):
        return struct.pack(">II", fmt, len(body)) + body

    pad = bytes(-len(frame) % 4)
    records = [record(1, struct.pack(">IIII", 1, len(frame) + 4, 4, len(frame)) + frame + pad),
               record(1001, struct.pack(">IIII", 20, 0, 20, 0)),
               record(1002, ip4("192.0.2.254") + struct.pack(">II", 24, 24)),
               record(1003, ip4("192.0.2.253") + struct.pack(">IIII", 64496, 0, 64500, 1)
                      + struct.pack(">II", 2, len(as_path)) + struct.pack(f">{len(as_path)}I", *as_path)
                      + struct.pack(">II", 0, 100))]
    flow = struct.pack(">IIIIIIII", seq, 3, rate, 1000, 0, 3, 7, len(records)) + b"".join(records)
    expanded = struct.pack(">IIIIIIIIIII", seq, 0, 3, rate, 1000, 0, 0, 4, 0, 8, len(records)) + b"".join(records)
    counters = struct.pack(">III", seq, 3, 0)
    samples = [(1, flow), (3, expanded), (2, counters)]
    body = b"".join(struct.pack(">II", fmt, len(data)) + data for fmt, data in samples)
    return struct.pack(">I", 5) + ip4("192.0.2.1") + struct.pack(">IIII", 0, seq, 1000, len(samples)) + body


def bmp_seeds():
    """BMP streams of every message shape the session reads."""
    import ipaddress
    from verifier.bgp import aspath
    from verifier.bgp.write import attribute

    def b(text):
        return ipaddress.ip_address(text).packed

    def bgp(kind, body):
        return b"\xff" * 16 + struct.pack(">HB", 19 + len(body), kind) + body

    def bmp(kind, body):
        return struct.pack(">BIB", 3, 6 + len(body), kind) + body

    def per_peer(ptype=0, flags=0x40, address=b("192.0.2.1"), asn=64500):
        return struct.pack(">BB8s16sI4sII", ptype, flags, bytes(8), bytes(12) + address if len(address) == 4
                           else address, asn, address[:4], 1796000000, 0)

    def opened(addpath):
        caps = b"\x41\x04" + struct.pack(">I", 64500)
        if addpath:
            caps += b"\x45\x04" + struct.pack(">HBB", 1, 1, 3)
        return bgp(1, struct.pack(">BHH4sB", 4, 23456, 90, b("192.0.2.1"), 2 + len(caps)) + b"\x02"
                   + bytes((len(caps),)) + caps)

    def update(prefixes, path, v6=(), withdrawn=(), path_id=None):
        attrs = attribute(1, b"\x00") + attribute(2, aspath.encode(((aspath.AS_SEQUENCE, path),)))
        attrs += attribute(3, b("192.0.2.1"))
        if v6:
            nlri = b"".join(bytes((plen,)) + net[:(plen + 7) // 8] for net, plen in v6)
            attrs += attribute(14, struct.pack(">HBB", 2, 1, 16) + b("2001:db8::1") + b"\x00" + nlri, 0x80)
        pid = struct.pack(">I", path_id) if path_id is not None else b""
        nlri = b"".join(pid + bytes((plen,)) + net[:(plen + 7) // 8] for net, plen in prefixes)
        gone = b"".join(pid + bytes((plen,)) + net[:(plen + 7) // 8] for net, plen in withdrawn)
        return bgp(2, struct.pack(">H", len(gone)) + gone + struct.pack(">H", len(attrs)) + attrs + nlri)

    up = per_peer(flags=0)
    stream = bmp(4, struct.pack(">HH", 2, 6) + b"router")
    stream += bmp(3, up + bytes(16) + struct.pack(">HH", 179, 40000) + opened(True) + opened(True))
    stream += bmp(0, per_peer() + update([(b("8.8.8.0"), 24)], (64500, 4134, 64501), path_id=7))
    stream += bmp(0, per_peer(flags=0) + update([(b("9.9.0.0"), 16)], (64500,), path_id=1))       # pre-policy
    stream += bmp(0, per_peer(ptype=3, flags=0) + update([(b("1.1.1.0"), 24)], (64500, 13335),
                                                          v6=[(b("2001:4860::"), 32)]))
    stream += bmp(0, per_peer() + update([], (64500,), withdrawn=[(b("8.8.8.0"), 24)], path_id=7))
    stream += bmp(2, up + b"\x02\x00\x00")
    stream += bmp(5, struct.pack(">HH", 0, 3) + b"bye")
    return [stream, stream[:len(stream) // 2]]


# --- targets -----------------------------------------------------------------

class Targets:
    """The code under test, set up once (policy, registries), run per input."""

    def __init__(self, workdir):
        from verifier.cli import App
        from verifier import decode as d
        self.workdir = workdir
        self.app = App(os.path.join(workdir, "data"))
        self.policy = self.app.policy([])
        self.attributor = self.app.attributor(None, [])
        self.linktypes = d.LINKTYPES
        self.path = os.path.join(workdir, "input")

    def _write(self, data, suffix=""):
        path = self.path + suffix
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    def capture(self, data, numpy=False):
        from verifier import engine
        from verifier.attribution.discovery import SegmentDiscovery
        from verifier.attribution.mobile import ControlPlane
        from verifier.capture import open_capture
        from verifier.errors import CaptureError
        from verifier.pipeline import Pipeline
        path = self._write(data)
        chosen = engine.NUMPY if numpy else engine.DEFAULT
        try:
            source = open_capture(path, engine=chosen)
        except CaptureError:
            return
        pipe = Pipeline(self.policy, self.attributor, [], idle_timeout=300.0, active_timeout=1800.0,
                        discovery=SegmentDiscovery(self.attributor, self.app.catalogue),
                        control_plane=ControlPlane(), engine=chosen)
        pipe.ingest(source)
        pipe.finish()

    def gzip(self, data):
        self.capture(data)

    def frame(self, data):
        from verifier import decode as d
        for lt in self.linktypes:
            out = d.decode(data, lt)
            if out.__class__ is str:
                if out not in d.REASONS:
                    raise AssertionError(f"unknown reason {out!r} for link type {lt}")
            elif not isinstance(out, d.Packet):
                raise AssertionError(f"decode returned {type(out).__name__} for link type {lt}")

    def policy_text(self, data):
        from verifier.errors import VerifierError
        path = self._write(data, ".yaml")
        try:
            self.app.policy([path])
        except VerifierError:
            pass

    def mrt(self, data):
        from verifier.bgp.rib import Rib
        from verifier.errors import DataError
        path = self._write(data, ".mrt")
        try:
            rib = Rib.load([path])
        except DataError:
            return
        rib.view()
        for addr in (b"\x08\x08\x08\x08", b"\x09\x09\x01\x01", b"\x0a\x01\x00\x01", bytes(4),
                     b"\x20\x01\x48\x60" + bytes(12), bytes(16)):
            route = rib.lookup(addr)
            if route is not None:
                route.describe()

    def export(self, data):
        from verifier.export.decode import Collector
        collector = Collector()
        for k, piece in enumerate((data, data[:len(data) // 2], data)):      # again: templates now known
            for record in collector.datagram(piece, b"\x7f\x00\x00\x01", float(k)):
                repr(record)

    def bmp(self, data):
        from verifier.bgp.bmp import Session
        from verifier.bgp.live import LiveRib
        rib = LiveRib()
        session = Session(rib, b"\xc0\x00\x02\x02", {})
        for at in range(0, len(data), 97):          # in pieces, as a socket hands them over
            if not session.feed(data[at:at + 97]):
                break
        for addr in (b"\x08\x08\x08\x08", b"\x01\x01\x01\x01", b"\x20\x01\x48\x60" + bytes(12)):
            route = rib.lookup(addr)
            if route is not None:
                route.describe()
        rib.changes()
        session.close()

    def inventory(self, data):
        from verifier.attribution.inventory import load_inventory
        from verifier.errors import VerifierError
        path = self._write(data, ".csv" if data[:5] == b"name," else ".yaml")
        try:
            load_inventory(path, self.app.catalogue)
        except VerifierError:
            pass


class Fuzzer:
    def __init__(self, seed=1, corpus=None, workdir=None):
        self.rnd = random.Random(seed)
        self.workdir = workdir or tempfile.mkdtemp(prefix="cleanpath-fuzz-")
        os.makedirs(self.workdir, exist_ok=True)
        self.targets = Targets(self.workdir)
        frames = crafted_frames()
        plain = [pcap_bytes(frames), pcap_bytes(frames, big=True, nano=True), pcapng_bytes(frames)]
        plain += [pcap_bytes([f]) for f in frames]
        from verifier.demo import __file__ as demo_init
        with open(os.path.join(os.path.dirname(demo_init), "demo.pcap"), "rb") as fh:
            plain.append(fh.read()[:MAX_SEED_BYTES])
        plain += corpus_seeds(corpus)
        self.captures = plain
        self.gzips = [gzip.compress(p, 6, mtime=0) for p in plain[:8]]       # mtime 0: the same bytes every run
        self.frames = frames
        from verifier.cli import default_policy_path
        with open(default_policy_path(), "rb") as fh:
            self.policies = [fh.read() + POLICY_EXTRA.encode()]
        self.inventories = [INVENTORY_YAML.encode(), INVENTORY_CSV.encode()]
        self.mrts = mrt_seeds()
        self.bmps = bmp_seeds()
        self.exports = export_seeds()

    # target name -> (weight, seeds, runner)
    def plan(self):
        t = self.targets
        return [("capture", 40, self.captures, t.capture), ("gzip", 8, self.gzips, t.gzip),
                ("frame", 40, self.frames, t.frame), ("policy", 6, self.policies, t.policy_text),
                ("inventory", 6, self.inventories, t.inventory), ("mrt", 8, self.mrts, t.mrt),
                ("bmp", 8, self.bmps, t.bmp), ("export", 8, self.exports, t.export)]

    def inputs(self):
        """An endless, reproducible stream of (target, runner, data)."""
        plan = self.plan()
        weights = [w for _n, w, _s, _r in plan]
        while True:
            name, _w, seeds, runner = self.rnd.choices(plan, weights)[0]
            if name == "frame" and self.rnd.random() < 0.1:
                data = deep_frame(self.rnd)
            else:
                data = mutate(self.rnd, self.rnd.choice(seeds), seeds)
            yield name, runner, data

    def run(self, count=None, seconds=None, keep=True, log=None):
        """Run ``count`` inputs (or for ``seconds``). Returns (inputs run, failures)."""
        failures, done = [], 0
        end = time.monotonic() + seconds if seconds else None
        numpy = False
        for name, runner, data in self.inputs():
            if (count is not None and done >= count) or (end is not None and time.monotonic() >= end):
                break
            started = time.perf_counter()
            error = run_one(runner, data, numpy=(name == "capture" and numpy))
            numpy = not numpy
            took = time.perf_counter() - started
            if error is None and took > LIMIT:
                error = f"slow: {took:.2f} s (limit {LIMIT} s)"
            if error is not None:
                failures.append((name, data, error))
                if keep:
                    save_regression(name, data)
                if log:
                    log(f"FAIL {name}: {error}")
            done += 1
        return done, failures


def run_one(runner, data, numpy=False):
    """None, or the error text of what the input did."""
    try:
        if numpy:
            runner(data, numpy=True)
        else:
            runner(data)
    except Exception as exc:           # noqa: BLE001 - a fuzzer records every escape
        import traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return f"{type(exc).__name__}: {exc} at {os.path.basename(where.filename)}:{where.lineno}"
    return None


def save_regression(name, data):
    os.makedirs(REGRESSIONS, exist_ok=True)
    path = os.path.join(REGRESSIONS, f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.bin")
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def regressions():
    """(target, data, file name) of every kept failing input."""
    if not os.path.isdir(REGRESSIONS):
        return []
    out = []
    for name in sorted(os.listdir(REGRESSIONS)):
        if not name.endswith(".bin"):
            continue
        with open(os.path.join(REGRESSIONS, name), "rb") as fh:
            out.append((name.split("-", 1)[0], fh.read(), name))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--corpus", default=os.path.join(HERE, "..", "..", "shared", "corpus"))
    args = parser.parse_args(argv)
    fuzzer = Fuzzer(args.seed, args.corpus)
    print(f"seed {args.seed}: {len(fuzzer.captures)} capture seeds, {len(fuzzer.frames)} frame seeds; "
          f"{args.minutes} min", flush=True)
    done, failures = fuzzer.run(seconds=args.minutes * 60, log=lambda m: print(m, flush=True))
    print(f"{done} inputs, {len(failures)} failure(s); kept in {REGRESSIONS}" if failures else f"{done} inputs, "
          "no failure")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
