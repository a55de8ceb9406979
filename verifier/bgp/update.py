"""BGP UPDATE and OPEN messages (RFC 4271, 4760, 6793, 7911), as BMP
carries them.

In:  a BGP message (19-byte header included); for an UPDATE, how the
     session encodes it: 2- or 4-byte AS numbers, and the (AFI, SAFI) whose
     NLRI carry ADD-PATH path ids.
Out: ``Update``: announced and withdrawn unicast prefixes (IPv4 in the body,
     IPv4/IPv6 in MP_REACH/MP_UNREACH), each ``(prefix bytes, length, path
     id or None)``, with the announced routes' AS path (AS4_PATH merged) and
     next hop; ``open_capabilities``: an OPEN's AS and ADD-PATH
     capabilities. Damaged input raises ``Damaged`` (mrt.py's), the reason
     its message.
"""

import struct

from . import aspath
from .mrt import ATTR_AS4_PATH, ATTR_AS_PATH, ATTR_MP_REACH, ATTR_NEXT_HOP, Damaged, masked, path_attributes

ATTR_MP_UNREACH = 15
OPEN, UPDATE = 1, 2
AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1
CAPABILITIES, CAP_AS4, CAP_ADD_PATH = 2, 65, 69
ADD_PATH_RECEIVE, ADD_PATH_SEND = 1, 2
_HEADER = struct.Struct(">16sHB")
_SIZES = {AFI_IPV4: 4, AFI_IPV6: 16}


class Update:
    __slots__ = ("announced", "withdrawn", "path", "next_hop")

    def __init__(self):
        self.announced, self.withdrawn = [], []    # (prefix bytes, length, path id or None)
        self.path, self.next_hop = (), None


def message(data, at=0):
    """(type, body, end) of the BGP message at ``at``."""
    if len(data) < at + 19:
        raise Damaged("BGP message header cut short")
    marker, length, kind = _HEADER.unpack_from(data, at)
    if marker != b"\xff" * 16 or length < 19 or at + length > len(data):
        raise Damaged("not a BGP message (marker or length)")
    return kind, data[at + 19:at + length], at + length


def parse_update(body, as_size=4, addpath=frozenset()):
    """The routes of an UPDATE body; ``addpath``: the (AFI, SAFI) pairs whose
    NLRI carry a 4-byte path id in front."""
    out = Update()
    if len(body) < 4:
        raise Damaged("UPDATE cut short")
    (wlen,) = struct.unpack_from(">H", body)
    if 2 + wlen + 2 > len(body):
        raise Damaged("UPDATE withdrawn routes past the message")
    v4_addpath = (AFI_IPV4, SAFI_UNICAST) in addpath
    out.withdrawn = _prefixes(body[2:2 + wlen], 4, v4_addpath)
    at = 2 + wlen
    (alen,) = struct.unpack_from(">H", body, at)
    at += 2
    if at + alen > len(body):
        raise Damaged("UPDATE attributes past the message")
    as4 = None
    for code, value in path_attributes(body[at:at + alen]):
        if code == ATTR_AS_PATH:
            out.path = aspath.decode(value, as_size)
        elif code == ATTR_AS4_PATH:
            as4 = aspath.decode(value, 4)
        elif code == ATTR_NEXT_HOP and len(value) == 4:
            out.next_hop = value
        elif code == ATTR_MP_REACH:
            _mp_reach(value, out, addpath)
        elif code == ATTR_MP_UNREACH:
            afi, safi, size = _family(value)
            if size:
                out.withdrawn += _prefixes(value[3:], size, (afi, safi) in addpath)
    if as_size == 2 and as4:
        out.path = aspath.merge_as4(out.path, as4)
    nlri = _prefixes(body[at + alen:], 4, v4_addpath)
    out.announced += nlri
    return out


def _family(value):
    """(AFI, SAFI, address size or None for a family we do not keep)."""
    if len(value) < 3:
        raise Damaged("MP attribute cut short")
    afi, safi = struct.unpack_from(">HB", value)
    return afi, safi, _SIZES.get(afi) if safi == SAFI_UNICAST else None


def _mp_reach(value, out, addpath):
    afi, safi, size = _family(value)
    if len(value) < 4 or 4 + value[3] + 1 > len(value):
        raise Damaged("MP_REACH_NLRI cut short")
    nh_len = value[3]
    if size is None:
        return
    hop = value[4:4 + nh_len]
    # 32: global + link-local, the global one kept; a length no address has: no next hop
    out.next_hop = hop[:16] if nh_len == 32 else hop if nh_len in (4, 16) else None
    out.announced += _prefixes(value[4 + nh_len + 1:], size, (afi, safi) in addpath)


def _prefixes(data, size, addpath):
    out, at, end = [], 0, len(data)
    while at < end:
        path_id = None
        if addpath:
            if at + 4 > end:
                raise Damaged("ADD-PATH path id cut short")
            (path_id,) = struct.unpack_from(">I", data, at)
            at += 4
        if at >= end:
            raise Damaged("prefix cut short")
        plen = data[at]
        nbytes = (plen + 7) >> 3
        if plen > size * 8 or at + 1 + nbytes > end:
            raise Damaged("prefix length past the address or the attribute")
        raw = data[at + 1:at + 1 + nbytes].ljust(size, b"\0")
        if plen & 7:
            raw = masked(raw, plen)
        out.append((raw, plen, path_id))
        at += 1 + nbytes
    return out


def open_capabilities(body):
    """(the speaker's AS: its 4-byte AS capability's, else the 2-byte field;
    {(AFI, SAFI): ADD-PATH send/receive bits}) of an OPEN body."""
    if len(body) < 10:
        raise Damaged("OPEN cut short")
    plen = body[9]
    params, at = body[10:10 + plen], 0
    (as4,) = struct.unpack_from(">H", body, 1)
    addpath = {}
    while at + 2 <= len(params):
        ptype, length = params[at], params[at + 1]
        value = params[at + 2:at + 2 + length]
        at += 2 + length
        if ptype != CAPABILITIES:
            continue
        cat = 0
        while cat + 2 <= len(value):
            code, clen = value[cat], value[cat + 1]
            cap = value[cat + 2:cat + 2 + clen]
            cat += 2 + clen
            if code == CAP_AS4 and clen == 4:
                (as4,) = struct.unpack_from(">I", cap)
            elif code == CAP_ADD_PATH:
                for k in range(0, len(cap) - 3, 4):
                    afi, safi, bits = struct.unpack_from(">HBB", cap, k)
                    addpath[(afi, safi)] = bits
    return as4, addpath


def addpath_families(sent, received):
    """The (AFI, SAFI) whose received routes carry path ids: the monitored
    router said it can receive them (``sent`` OPEN) and its peer that it
    sends them (``received``)."""
    return frozenset(f for f, bits in sent.items()
                     if bits & ADD_PATH_RECEIVE and received.get(f, 0) & ADD_PATH_SEND)
