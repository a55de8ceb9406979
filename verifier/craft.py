"""Frame builders and a pcap writer, for demo data, tests and benchmarks.

Built with ``struct`` so generating a million frames takes seconds (scapy
would take minutes). Checksums are left zero: nothing downstream verifies
them, and tshark does not either by default.
"""

import ipaddress
import struct

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_MPLS = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x8847
ETH_ARP = 0x0806


def mac(text):
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def ip(text):
    return ipaddress.ip_address(text).packed


def tcp(sport, dport, payload=b"", flags=0x18, seq=1, ack=1):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(itype, code, body=b"", ident=1, seq=1):
    return struct.pack("!BBHHH", itype, code, 0, ident, seq) + body


def ipv4(src, dst, proto, payload, ttl=64, ident=1, frag=0, options=b""):
    hlen = 20 + len(options)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | hlen // 4, 0, hlen + len(payload), ident, frag, ttl, proto, 0,
                       ip(src), ip(dst)) + options + payload


def ipv6(src, dst, nxt, payload, hlim=64, ext=b""):
    return struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(payload), nxt, hlim, ip(src), ip(dst)) + ext + payload


def ether(dst, src, ethertype, payload, vlans=()):
    """``vlans``: outer first; a (tpid, vid) pair or a bare vid (802.1Q)."""
    tags = b""
    for tag in vlans:
        tpid, vid = tag if isinstance(tag, tuple) else (ETH_VLAN, tag)
        tags += struct.pack("!HH", tpid, vid)
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def mpls(labels, payload):
    out = b""
    for i, label in enumerate(labels):
        out += struct.pack("!I", (label << 12) | (0x100 if i == len(labels) - 1 else 0) | 64)
    return out + payload


def arp(op, sender_mac, sender_ip, target_mac, target_ip):
    """An Ethernet/IPv4 ARP body (op 1 request, 2 reply); frame it with ``ether(..., ETH_ARP, ...)``."""
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sender_mac) + ip(sender_ip) + mac(target_mac) + ip(target_ip)


def neighbour_advert(target, target_mac):
    """An ICMPv6 neighbour advertisement (solicited, override) with its target link-layer address option."""
    return struct.pack("!BBHI", 136, 0, 0, 0x60000000) + ip(target) + b"\x02\x01" + mac(target_mac)


def pfcp_ie(itype, *parts):
    """One PFCP IE (2-byte type and length); ``parts`` are bytes or nested IEs."""
    value = b"".join(parts)
    return struct.pack("!HH", itype, len(value)) + value


def pfcp_session_establishment(seid, upf, upf_teid, gnb, gnb_teid, seq=1):
    """A PFCP Session Establishment Request (SMF -> UPF) for one N3 tunnel:
    a PDR whose PDI (source interface Access) holds the UPF's F-TEID, and a
    FAR forwarding toward Access with the gNB's TEID in Outer Header Creation."""
    pdr = pfcp_ie(1, pfcp_ie(56, b"\x00\x01"),
                  pfcp_ie(2, pfcp_ie(20, b"\x00"), pfcp_ie(21, b"\x01" + struct.pack("!I", upf_teid) + ip(upf))))
    far = pfcp_ie(3, pfcp_ie(108, b"\x00\x00\x00\x01"), pfcp_ie(44, b"\x02"),
                  pfcp_ie(4, pfcp_ie(42, b"\x00"),
                          pfcp_ie(84, b"\x01\x00" + struct.pack("!I", gnb_teid) + ip(gnb))))
    body = struct.pack("!Q", seid) + seq.to_bytes(3, "big") + b"\x00" + pdr + far
    return struct.pack("!BBH", 0x21, 50, len(body)) + body


def gtpu(teid, payload, qfi=None, uplink=True):
    """A GTP-U G-PDU; with ``qfi`` it carries a 5G PDU Session Container
    (extension header 0x85: PDU type UL or DL, QoS flow id)."""
    if qfi is None:
        return struct.pack("!BBHI", 0x30, 0xFF, len(payload), teid) + payload
    container = struct.pack("!BBBB", 1, (1 if uplink else 0) << 4, qfi & 0x3F, 0)   # length 1 (x4), next: none
    body = struct.pack("!HBB", 0, 0, 0x85) + container + payload
    return struct.pack("!BBHI", 0x34, 0xFF, len(body), teid) + body


def vxlan(vni, frame):
    return struct.pack("!BBHI", 0x08, 0, 0, vni << 8) + frame


def geneve(vni, payload, protocol=0x6558, options=b""):
    """A Geneve header (RFC 8926; ``options`` a multiple of 4 bytes) before
    ``payload``: an Ethernet frame (protocol 0x6558) or an IP packet."""
    return struct.pack("!BBHI", len(options) // 4, 0, protocol, vni << 8) + options + payload


class FileWriter:
    """A file written record by record (``fh``), closed on leaving a ``with``."""

    def close(self):
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PcapWriter(FileWriter):
    """Classic pcap (microsecond, little-endian unless ``nanosecond``/``big``)."""

    def __init__(self, path, linktype=1, snaplen=262144, nanosecond=False, big_endian=False):
        self.fh = open(path, "wb")
        self.order = ">" if big_endian else "<"
        self.scale = 1_000_000_000 if nanosecond else 1_000_000
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self.fh.write(struct.pack(self.order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self.rec = struct.Struct(self.order + "IIII")

    def write(self, ts, frame, wirelen=None):
        sec = int(ts)
        frac = int(round((ts - sec) * self.scale))
        if frac >= self.scale:
            sec, frac = sec + 1, frac - self.scale
        self.fh.write(self.rec.pack(sec, frac, len(frame), wirelen or len(frame)) + frame)


def pcapng(path, interfaces, packets, big_endian=False):
    """Write a pcapng file. ``interfaces``: [(linktype, name, tsresol or None)];
    ``packets``: [(ifindex, ts_ticks, frame)] with timestamps in interface ticks."""
    o = ">" if big_endian else "<"

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack(o + "II", btype, length) + body + struct.pack(o + "I", length)

    def option(code, value):
        return struct.pack(o + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    with open(path, "wb") as fh:
        fh.write(block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
        for linktype, name, tsresol in interfaces:
            opts = b""
            if name:
                opts += option(2, name.encode())
            if tsresol is not None:
                opts += option(9, bytes([tsresol]))
            if opts:
                opts += option(0, b"")
            fh.write(block(1, struct.pack(o + "HHI", linktype, 0, 262144) + opts))
        for ifindex, ticks, frame in packets:
            fh.write(block(6, struct.pack(o + "IIIII", ifindex, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                                          len(frame)) + frame))
