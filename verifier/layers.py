"""The layers above the link: ethertype chain -> IPv4/IPv6 -> ports, tunnels.

Pure: no I/O, no logging, no metrics. Each function takes a ``Packet`` being
filled, the frame's bytes and an offset, and returns the ``Packet`` or one of
the ``R_*`` reason strings; ``decode.py`` holds the link-layer front ends that
call in here, and ``decode()`` itself.

Invariant: never raises on any input, and its work is bounded: each chain
of like headers (VLAN tags, MPLS labels, IPv6 extension headers, GTP-U
extension headers) is capped at ``MAX_DEPTH``, and every route by which one
layer opens another — a pseudowire's or NSH's inner Ethernet frame, PPPoE,
a tunnel's payload, an ICMP error's quoted packet — adds one to the
packet's ``nesting``, capped at ``MAX_NESTING`` for the whole frame (then
``R_DEPTH``). So no crafted frame recurses more than a few dozen Python
frames deep, however its layers are interleaved.

Tunnels: GTP-U v1 (UDP 2152; extension headers, including the 5G PDU
Session Container), VXLAN (UDP 4789, 8472), Geneve (UDP 6081), GRE (IP
protocol 47 and GRE-in-UDP 4754; keys, PPTP's enhanced GRE, ERSPAN II/III,
transparent Ethernet bridging, MPLS), IP-in-IP and IPv6-in-IP (4, 41). The
innermost packet is the one returned: its addresses, ports and (for Ethernet
payloads) MACs are the flow's. Each outer layer is kept in ``tunnels`` as
``(kind, outer src, outer dst, id)`` — the TEID, VNI, GRE key or ERSPAN
session id, or -1 — outermost first, up to ``MAX_TUNNELS`` deep; deeper
nesting stays undecoded (the last decoded layer is the flow). A tunnel whose
inner packet cannot be decoded is returned as the outer packet, so it is
still counted. GTP-U messages other than G-PDU (echo, error indication, end
marker) are the outer UDP flow's packets.
"""
import struct

from .model import Packet
from .wire import (  # noqa: F401 - the numbers of the wire, named in wire.py; re-exported for decode's callers
    ERSPAN, ET_ERSPAN2, ET_ERSPAN3, ET_ETAG, ET_IPV4, ET_IPV6, ET_MPLS, ET_MPLS_MC, ET_NSH, ET_PPP, ET_PPPOE,
    ET_QINQ, ET_QINQ_OLD, ET_TEB, ET_VLAN, ET_VNTAG, GENEVE, GENEVE_OPTIONS, GENEVE_VERSION, GRE, GRE_A, GRE_C,
    GRE_K, GRE_S, GRE_VERSION, GTP_G_PDU, GTP_OPTIONAL, GTP_PT, GTP_VERSION, GTP_VERSION_1, GTPU, ICMP, ICMP6, IPIP,
    IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_IPV6, IPV4_MF, IPV4_OFFSET, SCTP, TCP, TUNNEL_UDP_PORTS, UDP, UDPLITE,
    VLAN_ID, VXLAN, VXLAN_I)

MAX_DEPTH = 16
MAX_NESTING = 16
MAX_TUNNELS = 4

NSH_IPV4, NSH_IPV6, NSH_ETHERNET, NSH_NSH, NSH_MPLS = 1, 2, 3, 4, 5   # NSH's next-protocol values
PPP_IPV4, PPP_IPV6, PPP_MPLS, PPP_MPLS_MC = 0x0021, 0x0057, 0x0281, 0x0283

IPV6_EXT = {0, 60, 135, 139, 140}             # length in 8-octet units after the first 8
IPV6_ROUTING = 43
IPV6_FRAG, IPV6_AH, IPV6_NONE = 44, 51, 59

R_LINKTYPE = "unsupported-linktype"
R_L2_SHORT = "truncated-link-header"
R_DEPTH = "header-depth-exceeded"
R_MPLS = "truncated-mpls"
R_IPV4_SHORT = "truncated-ipv4"
R_IPV4_BAD = "bad-ipv4-header"
R_IPV6_SHORT = "truncated-ipv6"
R_IPV6_EXT = "bad-ipv6-extension"
R_L4_SHORT = "truncated-l4"
R_VERSION = "bad-ip-version"
R_INTERNAL = "internal-error"               # a bug met while handling the frame (the daemon counts it and goes on)
R_ENCRYPTED = "encrypted-80211"             # an 802.11 data frame with the Protected bit: its payload is ciphertext

REASONS = (R_LINKTYPE, R_L2_SHORT, R_DEPTH, R_MPLS, R_IPV4_SHORT, R_IPV4_BAD,
           R_IPV6_SHORT, R_IPV6_EXT, R_L4_SHORT, R_VERSION, R_ENCRYPTED, R_INTERNAL)

# ICMP types whose counterpart makes a request/reply one flow (Community ID v1).
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
               130: 131, 131: 130, 144: 145, 145: 144}
ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}

_H = struct.Struct("!H").unpack_from
_HH = struct.Struct("!HH").unpack_from
_I = struct.Struct("!I").unpack_from
_IPV4 = struct.Struct("!BBHHHBB2x4s4s").unpack_from
_IPV6 = struct.Struct("!I2xBB16s16s").unpack_from
_GTP = struct.Struct("!BBHI").unpack_from


def ethertype_chain(pkt, data, pos, et=None):
    """Walk the ethertype chain from ``pos`` (the offset of a type field), or,
    when ``et`` is given, from a payload at ``pos`` of that type (SLL2)."""
    for _ in range(MAX_DEPTH):
        if et is None:
            if pos + 2 > len(data):
                return R_L2_SHORT
            (et,) = _H(data, pos)
            pos += 2
        if et == ET_IPV4 or et == ET_IPV6:
            return ip_layer(pkt, data, pos)
        if et == ET_VLAN or et == ET_QINQ or et == ET_QINQ_OLD:
            if pos + 4 > len(data):
                return R_L2_SHORT
            vid = _H(data, pos)[0] & VLAN_ID
            if pkt.vlan < 0:
                pkt.vlan = vid
            elif pkt.vlan2 < 0:
                pkt.vlan2 = vid
            pos += 2
            et = None
            continue
        if et == ET_MPLS or et == ET_MPLS_MC:
            return _mpls(pkt, data, pos)
        if et == ET_VNTAG or et == ET_ETAG:
            pos += 4 if et == ET_VNTAG else 6
            et = None
            continue
        if et == ET_PPPOE:
            if pos + 8 > len(data):
                return R_L2_SHORT
            pkt.nesting += 1
            if pkt.nesting > MAX_NESTING:
                return R_DEPTH
            return ppp_payload(pkt, data, pos + 6, et)
        if et == ET_NSH:
            pkt, pos, et = _nsh(pkt, data, pos)
            if pkt.__class__ is str:
                return pkt
            if et is None:                          # an Ethernet frame follows
                if pos + 14 > len(data):
                    return R_L2_SHORT
                pkt.dst_mac, pkt.src_mac = data[pos:pos + 6], data[pos + 6:pos + 12]
                pos += 12
            elif et == 0:                           # the rest is not ours to read
                pkt.ethertype = ET_NSH
                pkt.l2_payload = pos
                return pkt
            continue
        pkt.ethertype = et          # < 0x0600 is an 802.3 length: LLC (CDP, STP, ...)
        pkt.l2_payload = pos
        return pkt
    return R_DEPTH


def _mpls(pkt, data, pos):
    for _ in range(MAX_DEPTH):
        if pos + 4 > len(data):
            return R_MPLS
        (entry,) = _I(data, pos)
        pos += 4
        if entry & 0x100:                      # bottom of stack
            if pos >= len(data):
                return R_MPLS
            nibble = data[pos] >> 4
            if nibble in (4, 6):
                return ip_layer(pkt, data, pos)
            if nibble == 0 and pos + 4 + 14 <= len(data):
                # Ethernet pseudowire behind a control word (RFC 4385): the
                # inner frame's addresses are the ones the flow belongs to.
                inner = _inner(pkt)
                if inner is None:
                    return R_DEPTH
                inner.dst_mac = data[pos + 4:pos + 10]
                inner.src_mac = data[pos + 10:pos + 16]
                return ethertype_chain(inner, data, pos + 16)
            pkt.ethertype = ET_MPLS
            return pkt
    return R_DEPTH


def _inner(pkt):
    """A packet for the layer ``pkt`` carries: its tags, MACs and tunnels
    so far, one nesting step deeper; None when that is past ``MAX_NESTING``."""
    if pkt.nesting >= MAX_NESTING:
        return None
    inner = Packet()
    inner.dst_mac, inner.src_mac, inner.vlan, inner.vlan2 = pkt.dst_mac, pkt.src_mac, pkt.vlan, pkt.vlan2
    inner.tunnels = pkt.tunnels
    inner.nesting = pkt.nesting + 1
    return inner


def _nsh(pkt, data, pos):
    """RFC 8300 NSH at ``pos`` -> (pkt, offset after it, what follows): an
    ethertype to go on with, None for an Ethernet frame, 0 for anything else;
    or (reason, 0, 0). Each NSH counts one nesting step (NSH may follow NSH)."""
    if pos + 8 > len(data):
        return R_L2_SHORT, 0, 0
    size = (data[pos + 1] & 0x3F) * 4
    if data[pos] >> 6 or size < 8 or pos + size > len(data):
        return R_L2_SHORT, 0, 0
    pkt.nesting += 1
    if pkt.nesting > MAX_NESTING:
        return R_DEPTH, 0, 0
    nxt = data[pos + 3]
    pos += size
    if nxt == NSH_ETHERNET:
        return pkt, pos, None
    follow = {NSH_IPV4: ET_IPV4, NSH_IPV6: ET_IPV6, NSH_NSH: ET_NSH, NSH_MPLS: ET_MPLS}.get(nxt, 0)
    return pkt, pos, follow


def ip_layer(pkt, data, pos):
    if pos >= len(data):
        return R_IPV4_SHORT
    version = data[pos] >> 4
    if version == 4:
        return ipv4_layer(pkt, data, pos)
    if version == 6:
        return ipv6_layer(pkt, data, pos)
    return R_VERSION


def ipv4_layer(pkt, data, pos):
    if pos + 20 > len(data):
        return R_IPV4_SHORT
    vihl, _tos, total, ipid, frag, _ttl, proto, src, dst = _IPV4(data, pos)
    hlen = (vihl & 15) * 4
    if hlen < 20 or (total and total < hlen):
        return R_IPV4_BAD
    if pos + hlen > len(data):
        return R_IPV4_SHORT
    pkt.family, pkt.src, pkt.dst, pkt.proto = 4, src, dst, proto
    # Total length 0: a segmentation-offload frame captured before the NIC
    # cut it (TSO; Wireshark presumes the same): the frame is the datagram.
    end = min(len(data), pos + total) if total else len(data)   # else drop Ethernet padding
    offset = frag & IPV4_OFFSET
    if offset or frag & IPV4_MF:
        pkt.frag_id = ipid
        if offset:
            pkt.frag_offset = offset
            return pkt                         # no L4 header in a later fragment
    return _l4(pkt, data, pos + hlen, end)


def ipv6_layer(pkt, data, pos):
    if pos + 40 > len(data):
        return R_IPV6_SHORT
    _vtf, nxt, _hlim, src, dst = _IPV6(data, pos)
    pkt.family, pkt.src, pkt.dst = 6, src, dst
    end = len(data)
    pos += 40
    for _ in range(MAX_DEPTH):
        if nxt in IPV6_EXT:
            if pos + 8 > end:
                return R_IPV6_EXT
            nxt, hlen = data[pos], (data[pos + 1] + 1) * 8
        elif nxt == IPV6_ROUTING:
            if pos + 8 > end:
                return R_IPV6_EXT
            nxt, hlen = data[pos], (data[pos + 1] + 1) * 8
            if pos + hlen > end:
                return R_IPV6_EXT
            final = _final_destination(data, pos, hlen)
            if final is not None:
                pkt.dst = final
        elif nxt == IPV6_FRAG:
            if pos + 8 > end:
                return R_IPV6_EXT
            fo, ident = _HH(data, pos + 2)[0], _I(data, pos + 4)[0]
            nxt, hlen = data[pos], 8
            pkt.frag_id = ident
            if fo >> 3:
                pkt.proto = nxt
                pkt.frag_offset = fo >> 3
                return pkt
        elif nxt == IPV6_AH:
            if pos + 8 > end:
                return R_IPV6_EXT
            nxt, hlen = data[pos], (data[pos + 1] + 2) * 4
        else:
            pkt.proto = nxt
            return _l4(pkt, data, pos, end)
        pos += hlen
        if pos > end:
            return R_IPV6_EXT
    return R_DEPTH


def _final_destination(data, pos, hlen):
    """The flow's real destination while a routing header still has segments
    to visit (as Wireshark and Zeek key flows): RH0 its last address, type 2
    (Mobile IPv6) the home address, SRH (type 4) segment list[0]."""
    rtype, segleft = data[pos + 2], data[pos + 3]
    if not segleft or hlen < 24:
        return None
    if rtype == 0:
        return data[pos + hlen - 16:pos + hlen]
    if rtype == 2 or rtype == 4:
        return data[pos + 8:pos + 24]
    return None


def _l4(pkt, data, pos, end):
    proto = pkt.proto
    if proto == TCP or proto == UDP or proto == SCTP or proto == UDPLITE:
        if pos + 4 > end:
            return R_L4_SHORT
        pkt.sport, pkt.dport = _HH(data, pos)
        if proto == UDP:
            pkt.payload = pos + 8
            kind = TUNNEL_UDP_PORTS.get(pkt.dport) or TUNNEL_UDP_PORTS.get(pkt.sport)
            if kind is not None:
                return _UDP_TUNNELS[kind](pkt, data, pos + 8, end)
        return pkt
    if proto == IPPROTO_IPIP or proto == IPPROTO_IPV6:
        return _decapsulate(pkt, IPIP, -1, data, pos, end, ip_layer)
    if proto == IPPROTO_GRE:
        return _gre(pkt, data, pos, end)
    if proto == ICMP or proto == ICMP6:
        if pos + 2 > end:
            return R_L4_SHORT
        itype, code = data[pos], data[pos + 1]
        if proto == ICMP:
            pairs, errors = ICMP4_PAIRS, ICMP4_ERRORS
        else:
            pairs, errors = ICMP6_PAIRS, ICMP6_ERRORS
        pkt.sport = itype
        pkt.dport = pairs.get(itype, code)
        if itype in errors and pos + 8 < end and pkt.nesting < MAX_NESTING:
            pkt.quote = _quoted(data[pos + 8:end], pkt.nesting + 1)
        return pkt
    return pkt


# --- tunnels -----------------------------------------------------------------

def _decapsulate(pkt, kind, ident, data, pos, end, parse):
    """The packet inside a tunnel whose payload starts at ``pos``; the outer
    ``pkt`` when nesting is too deep, the outer packet is a fragment, or the
    inner packet is not IP."""
    outer = pkt.tunnels or []
    if len(outer) >= MAX_TUNNELS or pkt.frag_id >= 0 or pos >= end:
        return pkt
    inner = _inner(pkt)
    if inner is None:
        return pkt
    inner.tunnels = outer + [(kind, pkt.src, pkt.dst, ident)]
    result = parse(inner, data[:end] if end < len(data) else data, pos)
    if result.__class__ is str or not result.family:
        return pkt
    return result


def _ethernet_at(pkt, data, pos):
    """An Ethernet frame carried in a tunnel: its MACs are the inner flow's."""
    if pos + 14 > len(data):
        return R_L2_SHORT
    pkt.dst_mac, pkt.src_mac = data[pos:pos + 6], data[pos + 6:pos + 12]
    return ethertype_chain(pkt, data, pos + 12)


def _ppp_at(pkt, data, pos):
    if data[pos:pos + 2] == b"\xff\x03":
        pos += 2
    if pos + 2 > len(data):
        return R_L2_SHORT
    return ppp_payload(pkt, data, pos, 0)


def _gtpu(pkt, data, pos, end):
    """GTP-U v1 G-PDU: 8-byte header, optional sequence/N-PDU/extension
    fields and extension headers (PDU Session Container and others)."""
    if pos + 8 > end:
        return pkt
    flags, mtype, _length, teid = _GTP(data, pos)
    if (flags & GTP_VERSION) != GTP_VERSION_1 or not flags & GTP_PT or mtype != GTP_G_PDU:
        return pkt
    pos += 8
    if flags & GTP_OPTIONAL:
        if pos + 4 > end:
            return pkt
        nxt = data[pos + 3]
        pos += 4
        for _ in range(MAX_DEPTH):
            if not nxt:
                break
            if pos >= end:
                return pkt
            size = data[pos] * 4
            if not size or pos + size > end:
                return pkt
            nxt = data[pos + size - 1]
            pos += size
        else:
            return pkt
    return _decapsulate(pkt, GTPU, teid, data, pos, end, ip_layer)


def _vxlan(pkt, data, pos, end):
    if pos + 8 > end or not data[pos] & VXLAN_I:
        return pkt
    return _decapsulate(pkt, VXLAN, _I(data, pos + 4)[0] >> 8, data, pos + 8, end, _ethernet_at)


def _geneve(pkt, data, pos, end):
    if pos + 8 > end or data[pos] & GENEVE_VERSION:
        return pkt
    size = 8 + (data[pos] & GENEVE_OPTIONS) * 4
    ptype, vni = _H(data, pos + 2)[0], _I(data, pos + 4)[0] >> 8
    parse = _ethernet_at if ptype == ET_TEB else ip_layer if ptype in (ET_IPV4, ET_IPV6) else None
    if parse is None:
        return pkt
    return _decapsulate(pkt, GENEVE, vni, data, pos + size, end, parse)


def _gre(pkt, data, pos, end):
    """GRE (RFC 2784/2890), PPTP's enhanced GRE (version 1), ERSPAN I/II/III."""
    if pos + 4 > end:
        return pkt
    flags, ptype = _HH(data, pos)
    version = flags & GRE_VERSION
    at = pos + 4
    ident = -1
    if version == 0:
        if flags & GRE_C:
            at += 4
        if flags & GRE_K:
            if at + 4 > end:
                return pkt
            ident = _I(data, at)[0]
            at += 4
        if flags & GRE_S:
            at += 4
    elif version == 1 and ptype == ET_PPP:
        if at + 4 > end:
            return pkt
        ident = _H(data, at + 2)[0]               # call id
        at += 4 + (4 if flags & GRE_S else 0) + (4 if flags & GRE_A else 0)
    else:
        return pkt
    kind = GRE
    if ptype == ET_IPV4 or ptype == ET_IPV6:
        parse = ip_layer
    elif ptype == ET_TEB:
        parse = _ethernet_at
    elif ptype == ET_PPP:
        parse = _ppp_at
    elif ptype == ET_MPLS or ptype == ET_MPLS_MC:
        parse = _mpls
    elif ptype == ET_NSH:
        parse = _nsh_payload
    elif ptype == ET_ERSPAN2 or ptype == ET_ERSPAN3:
        kind, parse = ERSPAN, _ethernet_at
        if ptype == ET_ERSPAN3:
            if at + 12 > end:
                return pkt
            ident = _H(data, at + 2)[0] & 0x3FF
            at += 12 + (8 if data[at + 11] & 0x01 else 0)
        elif flags & GRE_S:                         # type II (type I has no sequence number and no header)
            if at + 8 > end:
                return pkt
            ident = _H(data, at + 2)[0] & 0x3FF
            at += 8
    else:
        return pkt
    return _decapsulate(pkt, kind, ident, data, at, end, parse)


def _nsh_payload(pkt, data, pos):
    """A tunnel payload that starts with NSH (GRE protocol type 0x894F)."""
    return ethertype_chain(pkt, data, pos, ET_NSH)


_UDP_TUNNELS = {GTPU: _gtpu, VXLAN: _vxlan, GENEVE: _geneve, GRE: _gre}


def _quoted(inner, nesting):
    """The header an ICMP error quotes, as a Packet (ports may be 0), or None."""
    pkt = Packet()
    pkt.nesting = nesting
    result = ip_layer(pkt, inner, 0)
    if isinstance(result, Packet):
        return result
    if pkt.family:                 # addresses decoded, ports cut off: still useful
        return pkt
    return None


def ppp_payload(pkt, data, pos, ethertype):
    if data[pos] & 1:                       # protocol field compressed to one byte
        proto, pos = data[pos], pos + 1
    else:
        proto, pos = _H(data, pos)[0], pos + 2
    if proto == PPP_IPV4 or proto == PPP_IPV6:
        return ip_layer(pkt, data, pos)
    if proto == PPP_MPLS or proto == PPP_MPLS_MC:
        return _mpls(pkt, data, pos)
    pkt.ethertype = ethertype or proto
    return pkt
