"""Frame bytes -> ``Packet`` record, or a reason string when malformed.

Pure: no I/O, no logging, no metrics. Headers are read with precompiled
``struct`` layouts (dpkt's way); scapy never runs here.

In:  ``decode(data, linktype)``.
Out: a ``Packet`` (``family`` 0 for non-IP frames such as ARP, LLDP, STP, which
     keep their ``ethertype`` so control-frame consumers can pick them up), or
     one of the ``R_*`` reason strings the pipeline counts.
Invariant: never raises on any input; the work per frame is bounded (see
layers.py, which holds everything above the link layer: ethertype chain,
IPv4/IPv6, ports, ICMP quotes, tunnels).

This module holds the link-layer front ends, one per pcap link type: each
finds where the first ethertype or IP header starts and which MACs the frame
names, and hands over to layers.py. The names every consumer uses (reasons,
tunnel kinds, ports) are re-exported from here.

Link types: Ethernet, Linux cooked (SLL, SLL2), raw IPv4/IPv6, BSD null and
loop, PPP (and Cisco HDLC framing found in PPP files, as Wireshark reads
it), Cisco HDLC, PPI (its inner link type), 802.11 with and without a
radiotap header. An 802.11 data frame's LLC/SNAP payload is the packet; its
receiver and transmitter addresses stand where Ethernet's destination and
source MACs do, so the access point a station talks through (the BSSID, on
the radio side of the frame) is the flow's ``l2-neighbor``, as a router is on
a wire. Encrypted data frames (the Protected bit) cannot be read: counted as
``R_ENCRYPTED``. Management and control frames, and null data frames, are
not IP (``family`` 0).
"""

import struct

from .layers import (  # noqa: F401 - re-exported: callers name them from decode
    ET_IPV4, ET_IPV6, ET_MPLS, ET_NSH, ERSPAN, GENEVE, GRE, GTPU, ICMP, ICMP6, ICMP4_ERRORS, ICMP4_PAIRS,
    ICMP6_ERRORS, ICMP6_PAIRS, IPIP, MAX_DEPTH, MAX_NESTING, MAX_TUNNELS, R_DEPTH, R_IPV4_BAD, R_IPV4_SHORT,
    R_IPV6_EXT, R_IPV6_SHORT, R_L2_SHORT, R_L4_SHORT, R_LINKTYPE, R_MPLS, R_VERSION, REASONS, SCTP, TCP,
    R_ENCRYPTED, R_INTERNAL, TUNNEL_UDP_PORTS, UDP, VXLAN, ethertype_chain, ip_layer, ipv4_layer, ipv6_layer,
    ppp_payload)
from .model import Packet

# Link types (https://www.tcpdump.org/linktypes.html)
LT_NULL, LT_ETHERNET, LT_RAW_BSD, LT_RAW_OBSD, LT_RAW = 0, 1, 12, 14, 101
LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = 108, 113, 228, 229, 276
LT_PPP, LT_PPP_HDLC = 9, 50
LT_C_HDLC, LT_IEEE802_11, LT_RADIOTAP, LT_PPI = 104, 105, 127, 192
# Names for messages about link types seen in captures (pcap-linktype(7)).
LINKTYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 6: "IEEE802_5", 8: "SLIP", 9: "PPP", 10: "FDDI", 50: "PPP_HDLC",
    51: "PPP_ETHER", 101: "RAW", 104: "C_HDLC", 105: "IEEE802_11", 107: "FRELAY", 108: "LOOP",
    113: "LINUX_SLL", 119: "IEEE802_11_PRISM", 122: "IP_OVER_FC", 127: "IEEE802_11_RADIOTAP",
    143: "DOCSIS", 163: "IEEE802_11_AVS", 187: "BLUETOOTH_HCI_H4", 192: "PPI", 195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR", 220: "USB_LINUX_MMAPPED", 227: "CAN_SOCKETCAN", 228: "IPV4",
    229: "IPV6", 230: "IEEE802_15_4_NOFCS", 239: "NFLOG", 249: "USBPCAP", 251: "BLUETOOTH_LE_LL",
    252: "WIRESHARK_UPPER_PDU", 263: "ZWAVE_R3", 276: "LINUX_SLL2", 288: "ETW",
}

_SLL = struct.Struct("!HHH8sH").unpack_from
_SLL2 = struct.Struct("!H2xIHBB8s").unpack_from
_AF_INET6 = {10, 24, 28, 30}
_PPI = struct.Struct("<BBHI").unpack_from                 # version, flags, header length, inner link type
_RADIOTAP = struct.Struct("<BBHI").unpack_from            # version, pad, header length, first present word
_U32LE = struct.Struct("<I").unpack_from
CHDLC_ADDRESSES = (0x0F, 0x8F)                            # unicast, broadcast; then control 0, then an ethertype
LLC_SNAP = (b"\xaa\xaa\x03\x00\x00\x00", b"\xaa\xaa\x03\x00\x00\xf8")   # RFC 1042, 802.1H bridge tunnel
WLAN_DATA, WLAN_TODS_FROMDS, WLAN_ORDER, WLAN_PROTECTED = 2, 0x03, 0x80, 0x40
WLAN_QOS, WLAN_NULL, QOS_AMSDU = 0x08, 0x04, 0x80            # subtype bits; QoS Control's A-MSDU bit
RADIOTAP_TSFT, RADIOTAP_FLAGS, RADIOTAP_EXT, RADIOTAP_HAS_FCS = 0x01, 0x02, 0x80000000, 0x10


def linktype_name(linktype):
    name = LINKTYPE_NAMES.get(linktype)
    if name is None and 147 <= linktype <= 162:
        name = f"USER{linktype - 147}"
    return name or "unnamed"


def decode(data, linktype):
    """Decode one frame. Returns a ``Packet`` or a reason string."""
    try:
        return _LINK.get(linktype, _unsupported)(data)
    except (struct.error, IndexError):          # defensive: a layout we did not bound-check
        return R_L2_SHORT


def _unsupported(data):
    return R_LINKTYPE


def _ethernet(data, pos=0):
    if len(data) < pos + 14:
        return R_L2_SHORT
    pkt = Packet()
    pkt.dst_mac = data[pos:pos + 6]
    pkt.src_mac = data[pos + 6:pos + 12]
    return ethertype_chain(pkt, data, pos + 12)


def _chdlc(data, pos=0):
    """Cisco HDLC: address, control, then an ethertype (IPv4, IPv6, MPLS; SLARP and CDP are not IP)."""
    if len(data) < pos + 4:
        return R_L2_SHORT
    return ethertype_chain(Packet(), data, pos + 2)


def _ppi(data):
    """PPI: a little-endian header naming the link type of the frame after it."""
    if len(data) < 8:
        return R_L2_SHORT
    version, _flags, size, inner = _PPI(data)
    if version or size < 8 or size > len(data):
        return R_L2_SHORT
    front = _PPI_INNER.get(inner)
    return front(data, size) if front is not None else R_LINKTYPE


def _radiotap(data, pos=0):
    """Radiotap header, then an 802.11 frame; its Flags field says whether the
    frame ends with a 4-byte FCS (dropped here, as the FCS is not payload)."""
    if len(data) < pos + 8:
        return R_L2_SHORT
    version, _pad, size, present = _RADIOTAP(data, pos)
    if version or size < 8 or pos + size > len(data):
        return R_L2_SHORT
    if present & RADIOTAP_FLAGS:
        at, word = pos + 8, present
        while word & RADIOTAP_EXT:            # more present words follow; fields start after the last
            if at + 4 > pos + size:
                return R_L2_SHORT
            (word,) = _U32LE(data, at)
            at += 4
        if present & RADIOTAP_TSFT:           # an 8-byte field aligned to 8 from the header's start
            at = pos + ((at - pos + 7) & ~7) + 8
        if at < pos + size and data[at] & RADIOTAP_HAS_FCS and len(data) >= pos + size + 4:
            data = data[:-4]
    return _ieee80211(data, pos + size)


def _ieee80211(data, pos=0):
    """An 802.11 frame: data frames give their LLC/SNAP payload; the rest is not IP."""
    if len(data) < pos + 10:
        return R_L2_SHORT
    fc, flags = data[pos], data[pos + 1]
    pkt = Packet()
    if (fc >> 2) & 3 != WLAN_DATA or fc >> 4 & WLAN_NULL:
        return pkt                            # management, control, null data: nothing carried
    size = 30 if flags & WLAN_TODS_FROMDS == WLAN_TODS_FROMDS else 24
    amsdu = False
    if fc >> 4 & WLAN_QOS:
        if len(data) >= pos + size + 1:
            amsdu = bool(data[pos + size] & QOS_AMSDU)
        size += 2 + (4 if flags & WLAN_ORDER else 0)    # QoS Control, then HT Control when Order is set
    if len(data) < pos + size:
        return R_L2_SHORT
    # Receiver and transmitter: the two ends of the radio hop, as an Ethernet frame's MACs.
    pkt.dst_mac, pkt.src_mac = data[pos + 4:pos + 10], data[pos + 10:pos + 16]
    if flags & WLAN_PROTECTED:
        return R_ENCRYPTED
    at = pos + size + (14 if amsdu else 0)    # an A-MSDU: its first subframe (DA, SA, length) is read
    if data[at:at + 6] in LLC_SNAP and len(data) >= at + 8:
        return ethertype_chain(pkt, data, at + 6)
    pkt.l2_payload = at                       # LLC without SNAP (STP, ...)
    return pkt


def _sll(data):
    if len(data) < 16:
        return R_L2_SHORT
    _ptype, hatype, halen, addr, proto = _SLL(data)
    pkt = Packet()
    if hatype == 1 and halen == 6:
        pkt.src_mac = addr[:6]
    return ethertype_chain(pkt, data, 14)


def _sll2(data):
    if len(data) < 20:
        return R_L2_SHORT
    proto, _ifindex, hatype, _ptype, halen, addr = _SLL2(data)
    pkt = Packet()
    if hatype == 1 and halen == 6:
        pkt.src_mac = addr[:6]
    return ethertype_chain(pkt, data, 20, proto)


def _ppp(data):
    """PPP (link types 9 and 50): optional HDLC address/control, then the
    protocol. Frames that begin with a Cisco HDLC address and control byte
    are Cisco HDLC (no PPP protocol begins with them: an odd first byte
    would be a compressed protocol field, and 0x0F/0x8F is none)."""
    if len(data) >= 2 and data[0] in CHDLC_ADDRESSES and data[1] == 0:
        return _chdlc(data)
    pos = 2 if data[:2] == b"\xff\x03" else 0
    if len(data) < pos + 2:
        return R_L2_SHORT
    return ppp_payload(Packet(), data, pos, 0)


def _raw(data, pos=0):
    return ip_layer(Packet(), data, pos)


def _ipv4_only(data):
    return ipv4_layer(Packet(), data, 0) if data and data[0] >> 4 == 4 else R_VERSION


def _ipv6_only(data):
    return ipv6_layer(Packet(), data, 0) if data and data[0] >> 4 == 6 else R_VERSION


def _null(data, order="<"):
    if len(data) < 4:
        return R_L2_SHORT
    (family,) = struct.unpack_from(order + "I", data)
    if family > 0xFFFF:             # written on a host of the other byte order
        family = struct.unpack_from(">I" if order == "<" else "<I", data)[0]
    if family == 2 or family in _AF_INET6:
        return ip_layer(Packet(), data, 4)
    pkt = Packet()
    return pkt


def _loop(data):
    return _null(data, ">")


_LINK = {
    LT_ETHERNET: _ethernet, LT_SLL: _sll, LT_SLL2: _sll2, LT_PPP: _ppp, LT_PPP_HDLC: _ppp,
    LT_RAW: _raw, LT_RAW_BSD: _raw, LT_RAW_OBSD: _raw,
    LT_IPV4: _ipv4_only, LT_IPV6: _ipv6_only, LT_NULL: _null, LT_LOOP: _loop,
    LT_C_HDLC: _chdlc, LT_PPI: _ppi, LT_IEEE802_11: _ieee80211, LT_RADIOTAP: _radiotap,
}
LINKTYPES = tuple(sorted(_LINK))          # the link types this version reads
_PPI_INNER = {LT_ETHERNET: _ethernet, LT_IEEE802_11: _ieee80211, LT_RADIOTAP: _radiotap, LT_RAW: _raw,
              LT_C_HDLC: _chdlc}
