"""Vectorised fast path: a Chunk -> per-direction groups + rows left to decode.

Pure: numpy in, numpy out; no flow state. The pipeline looks each group up
once (not each packet) in ``FlowTable.fast``.

Fast rows are Ethernet frames carrying IPv4 (IHL 5, not a fragment, total
length covering the ports) or IPv6 (next header TCP/UDP directly), untagged
or behind one 802.1Q tag, with the ports captured: exactly the frames for
which the decoder would return a TCP/UDP packet with these fields. Every row
is checked, not only a flow's first. For these the raw header bytes of one flow direction — both
MACs, the tag, the protocol, the addresses and ports — are a stable key:

    class  layout                    key bytes (of the frame)       length
    0      Ethernet  IPv4            0:12 + 23:24 + 26:38            25
    1      Ethernet  IPv6            0:12 + 20:21 + 22:58            49
    2      802.1Q    IPv4            0:16 + 27:28 + 30:42            29
    3      802.1Q    IPv6            0:16 + 24:25 + 26:62            53

Rows are grouped by (interface, key): each 64-byte header is read as eight
64-bit words masked down to the class's key bytes, hashed and sorted; rows
that share a hash are then compared word for word, so a hash collision can
never merge two directions (a colliding chunk is handed back whole as rows to
decode). Everything else — ICMP, fragments, tunnels (UDP to or from a
tunnel port, IP-in-IP, GRE),
QinQ, MPLS, other link types, damaged headers — is returned as rows for the
full decoder.
"""

import numpy as np

from .decode import TUNNEL_UDP_PORTS
from .model import Packet

WIDTH = 64                    # header bytes looked at per frame
_TUNNEL_PORTS = np.array(sorted(TUNNEL_UDP_PORTS), np.uint16)
_CLASSES = (                  # key column ranges per class; see the table above
    ((0, 12), (23, 24), (26, 38)),
    ((0, 12), (20, 21), (22, 58)),
    ((0, 16), (27, 28), (30, 42)),
    ((0, 16), (24, 25), (26, 62)),
)
_COLUMNS = [np.concatenate([np.arange(lo, hi) for lo, hi in ranges]) for ranges in _CLASSES]
_BYTEMASK = np.zeros((len(_CLASSES), WIDTH), np.uint8)
for _c, _cols in enumerate(_COLUMNS):
    _BYTEMASK[_c, _cols] = 0xFF
_WORDMASK = _BYTEMASK.view("<u8")               # (classes, 8): keeps a class's key bytes of each word
_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5,
                  0x85EBCA77C2B2AE63, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x9E3779B185EBCA87], np.uint64)


class Groups:
    """Per (interface, direction key) sums of one chunk, in first-seen order."""

    __slots__ = ("keys", "ifx", "first", "count", "octets", "first_ts", "last_ts")

    def __init__(self, keys, ifx, first, count, octets, first_ts, last_ts):
        self.keys = keys              # list of bytes (exact direction keys)
        self.ifx = ifx                # list of source interface indexes
        self.first = first            # list: row index of each group's first packet
        self.count, self.octets = count, octets
        self.first_ts, self.last_ts = first_ts, last_ts


def split(chunk, ethernet_ifx):
    """(Groups or None, rows to decode as an int array in arrival order).

    ``ethernet_ifx``: boolean array, True for source interfaces whose link
    type is Ethernet.
    """
    n = len(chunk)
    every = np.arange(n)
    if n == 0:
        return None, every
    buf = chunk.buf
    if int(chunk.off.max()) > len(buf) - WIDTH:
        # Pad so every frame has 64 readable bytes; the length checks below keep
        # key bytes inside the captured frame.
        buf = buf + bytes(WIDTH)
    raw = np.frombuffer(buf, np.uint8)
    window = np.lib.stride_tricks.sliding_window_view(raw, WIDTH)
    cand = np.flatnonzero(ethernet_ifx[chunk.ifx])
    head = window[chunk.off[cand]]              # (rows, 64) copy, contiguous
    incl = chunk.incl[cand]
    et = (head[:, 12].astype(np.uint16) << 8) | head[:, 13]
    tagged = et == 0x8100
    inner = (head[:, 16].astype(np.uint16) << 8) | head[:, 17]
    cls = np.full(len(cand), -1, np.int64)
    cls[~tagged & (et == 0x0800) & (head[:, 14] == 0x45) & _l4(head, 23, 34) & _unfragmented(head, 20)
        & _ports_inside(head, 16) & (incl >= 38)] = 0
    cls[~tagged & (et == 0x86DD) & _l4(head, 20, 54) & (incl >= 58)] = 1
    cls[tagged & (inner == 0x0800) & (head[:, 18] == 0x45) & _l4(head, 27, 38) & _unfragmented(head, 24)
        & _ports_inside(head, 20) & (incl >= 42)] = 2
    cls[tagged & (inner == 0x86DD) & _l4(head, 24, 58) & (incl >= 62)] = 3
    fast = np.flatnonzero(cls >= 0)
    if not len(fast):
        return None, every
    rows = cand[fast]                           # chunk row of each fast frame
    cls = cls[fast]
    words = head[fast].view("<u8") & _WORDMASK[cls]
    # Bytes 62-63 belong to no key: they carry the class and the interface.
    words[:, 7] |= (cls.astype(np.uint64) | (chunk.ifx[rows].astype(np.uint64) << np.uint64(2))) << np.uint64(48)
    h = (words * _MULT).sum(axis=1, dtype=np.uint64)
    h ^= h >> np.uint64(29)
    order = np.argsort(h)
    hs = h[order]
    ws = words[order]
    same_hash = hs[1:] == hs[:-1]
    # Exact: rows that share a hash must share every key byte, class and interface.
    if not (ws[1:][same_hash] == ws[:-1][same_hash]).all():
        return None, every                      # a hash collision: decode this chunk row by row
    starts = np.flatnonzero(np.concatenate(([True], ~same_hash)))
    counts = np.diff(np.append(starts, len(order)))
    ts = chunk.ts[rows][order]
    octets = np.add.reduceat(chunk.orig[rows][order], starts)
    first_ts = np.minimum.reduceat(ts, starts)
    last_ts = np.maximum.reduceat(ts, starts)
    leaders = np.minimum.reduceat(order, starts)   # each group's first frame to arrive
    arrival = np.argsort(leaders)
    keys = _exact_keys(ws[starts[arrival]].view(np.uint8), cls[leaders[arrival]])
    first_rows = rows[leaders[arrival]]
    slow = np.ones(n, bool)
    slow[rows] = False
    return (Groups(keys, chunk.ifx[first_rows].tolist(), first_rows.tolist(), counts[arrival].tolist(),
                   octets[arrival].tolist(), first_ts[arrival].tolist(), last_ts[arrival].tolist()),
            np.flatnonzero(slow))


def _exact_keys(heads, classes):
    """The key bytes of each leader row, in order."""
    keys = [None] * len(classes)
    for c, cols in enumerate(_COLUMNS):
        sel = np.flatnonzero(classes == c)
        if not len(sel):
            continue
        width = len(cols)
        blob = np.ascontiguousarray(heads[sel][:, cols]).tobytes()
        for j, i in enumerate(sel.tolist()):
            keys[i] = blob[j * width:(j + 1) * width]
    return keys


def packet_from_key(key):
    """The ``Packet`` the decoder would return for a frame with this key.

    Every fast class fixes the layout, so the key holds all the decoder would
    find: MACs, VLAN, protocol, addresses, ports.
    """
    pkt = Packet()
    pkt.dst_mac, pkt.src_mac = key[0:6], key[6:12]
    length = len(key)
    if length == 29 or length == 53:
        pkt.vlan = ((key[14] << 8) | key[15]) & 0x0FFF
        rest = key[16:]
    else:
        rest = key[12:]
    pkt.proto = rest[0]
    if length == 25 or length == 29:
        pkt.family, pkt.src, pkt.dst = 4, rest[1:5], rest[5:9]
        ports = rest[9:13]
    else:
        pkt.family, pkt.src, pkt.dst = 6, rest[1:17], rest[17:33]
        ports = rest[33:37]
    pkt.sport, pkt.dport = (ports[0] << 8) | ports[1], (ports[2] << 8) | ports[3]
    return pkt


def _l4(head, proto_at, ports_at):
    """TCP, or UDP that is not a tunnel (those need the decoder to find the inner flow)."""
    proto = head[:, proto_at]
    sport = (head[:, ports_at].astype(np.uint16) << 8) | head[:, ports_at + 1]
    dport = (head[:, ports_at + 2].astype(np.uint16) << 8) | head[:, ports_at + 3]
    tunnel = np.isin(sport, _TUNNEL_PORTS) | np.isin(dport, _TUNNEL_PORTS)
    return (proto == 6) | ((proto == 17) & ~tunnel)


def _ports_inside(head, at):
    """IPv4 total length covers the header and the ports (the decoder's rule)."""
    return ((head[:, at].astype(np.uint16) << 8) | head[:, at + 1]) >= 24


def _unfragmented(head, at):
    return ((head[:, at] & 0x3F) == 0) & (head[:, at + 1] == 0)
