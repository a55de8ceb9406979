"""Vectorised fast path: a Chunk -> per-direction groups + rows left to decode.

Pure: numpy in, numpy out; no flow state. The pipeline looks each group up
once (not each packet) in the flow table's direction index (directions.py).
``split`` is one C pass (verifier/_fastpath.c, hashing rows into groups)
where setup.py could build that module, else ``split_numpy``'s whole-chunk
passes described here (hashing, then sorting by hash); the results are equal
to the bit, and the numpy code is the reference.

Fast rows are Ethernet frames carrying IPv4 (IHL 5, not a fragment, total
length covering the ports) or IPv6 (next header TCP/UDP directly), untagged
or behind one 802.1Q tag, with the ports captured: exactly the frames for
which the decoder would return a TCP/UDP packet with these fields. Every row
is checked, not only a flow's first. For these the raw header bytes of one
flow direction — both MACs, the tag, the protocol, the addresses and ports —
are a stable key:

    class  layout                    key bytes (of the frame)
    0      Ethernet  IPv4            0:12 + 23:24 + 26:38
    1      Ethernet  IPv6            0:12 + 20:21 + 22:58
    2      802.1Q    IPv4            0:16 + 27:28 + 30:42
    3      802.1Q    IPv6            0:16 + 24:25 + 26:62

A key (a row of ``Groups.keys``) is the first 64 header bytes with every
other byte zeroed, as 64-bit words, plus one word naming class and
interface: fields stay at their frame offsets, so ``fields_from_key`` reads
them back by class (``Groups.key_bytes``).

Tunnel classes 4-15 (``_tunnel_layouts``): GTP-U (plain, or with one PDU
Session Container) and VXLAN over IPv4 without options, untagged or tagged,
carrying IPv4 (IHL 5) or IPv6 TCP/UDP. Their key adds the outer addresses
and ports, the GTP flags and TEID or the VXLAN VNI and inner MACs, and the
inner protocol, addresses and ports; ``fields_from_key`` gives the inner
packet's fields with its tunnel layer, as the decoder would. They read a 112-byte
header (keys of 120 bytes), for those rows only.

Rows are grouped by (class, interface, key): each header is read as 64-bit
words masked down to the class's key bytes, plus one word holding class and
interface, hashed and sorted; rows that share a hash are then compared word
for word, so a hash collision can never merge two directions (a colliding
chunk is handed back whole as rows to decode). Plain and tunnel classes come
back as separate ``Groups`` (their keys differ in width). Everything else — ICMP,
fragments, other tunnels (Geneve, GRE, IP-in-IP, GTP-U with other extension
headers), GTP-C and PFCP, QinQ, MPLS, other link types, damaged headers — is returned as
rows for the full decoder.
"""

from itertools import repeat

import numpy as np

from . import engine
from .attribution.mobile import CONTROL_UDP_PORTS
from .decode import GTPU, TUNNEL_UDP_PORTS, VXLAN
from .model import NO_MACS, Flow

WIDTH = 64                    # header bytes looked at per frame
# Port sets as 65,536-entry tables: one gather per row instead of np.isin's sort.
_TUNNEL_PORTS = np.zeros(1 << 16, bool)
_TUNNEL_PORTS[list(TUNNEL_UDP_PORTS)] = True
# UDP the decoder must see frame by frame: tunnels (the inner flow) and the mobile control plane (GTP-C, PFCP).
_DECODER_PORTS = np.zeros(1 << 16, bool)
_DECODER_PORTS[list(set(TUNNEL_UDP_PORTS) | CONTROL_UDP_PORTS)] = True
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


def _tunnel_layouts():
    """GTP-U (plain, or with one PDU Session Container) and VXLAN over IPv4
    without options, untagged or behind one 802.1Q tag, carrying IPv4 (IHL 5)
    or IPv6 TCP/UDP: (outer IP offset, variant, inner is IPv6, inner IP offset,
    key column ranges)."""
    out = []
    for o in (14, 18):
        p = o + 28                                   # the tunnel header, after outer IPv4 and UDP
        for variant in (GTPU, GTPU + "+pdu", VXLAN):
            i = {GTPU: p + 8, GTPU + "+pdu": p + 16, VXLAN: p + 22}[variant]
            for v6 in (False, True):
                ranges = [(0, 12)] + ([(12, 16)] if o == 18 else []) + [(o + 12, o + 24)]
                if variant == GTPU:
                    ranges += [(p, p + 2), (p + 4, p + 8)]
                elif variant == VXLAN:
                    ranges += [(p, p + 1), (p + 4, p + 7), (p + 8, p + 22)]
                else:
                    ranges += [(p, p + 2), (p + 4, p + 8), (p + 11, p + 13), (p + 15, p + 16)]
                ranges += [(i + 6, i + 7), (i + 8, i + 44)] if v6 else [(i, i + 1), (i + 9, i + 10), (i + 12, i + 24)]
                out.append((o, variant, v6, i, ranges))
    return out


TUNNEL_WIDTH = 112                               # header bytes looked at for tunnel rows
TUNNEL_BASE = len(_CLASSES)                      # tunnel class ids follow the plain ones
_LAYOUTS = _tunnel_layouts()
_TUNNEL_COLUMNS = [np.concatenate([np.arange(lo, hi) for lo, hi in lay[4]]) for lay in _LAYOUTS]
_TUNNEL_BYTEMASK = np.zeros((len(_LAYOUTS), TUNNEL_WIDTH), np.uint8)
for _c, _cols in enumerate(_TUNNEL_COLUMNS):
    _TUNNEL_BYTEMASK[_c, _cols] = 0xFF
_TUNNEL_WORDMASK = _TUNNEL_BYTEMASK.view("<u8")
_TAG_MULT = np.uint64(0x94D049BB133111EB)      # the class/interface word's multiplier
_TUNNEL_MULT = (np.arange(1, TUNNEL_WIDTH // 8 + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


class Groups:
    """Per (interface, direction key) sums of one chunk for one key width,
    one row per group, in first-seen order (numpy arrays)."""

    __slots__ = ("width", "hashes", "keys", "classes", "first", "count", "octets", "first_ts", "last_ts")

    def __init__(self, hashes, keys, classes, first, count, octets, first_ts, last_ts):
        self.width = keys.shape[1]    # 64-bit words per key (the class/interface word last)
        self.hashes = hashes          # uint64 hash of each key
        self.keys = keys              # (groups, width) uint64: exact direction keys
        self.classes = classes        # each key's class (how to read it back: fields_from_key)
        self.first = first            # chunk row of each group's first packet
        self.count, self.octets = count, octets
        self.first_ts, self.last_ts = first_ts, last_ts

    def __len__(self):
        return len(self.hashes)

    def key_bytes(self, rows):
        """The keys of ``rows`` as bytes: masked headers, fields at their frame
        offsets (what ``fields_from_key`` reads; the pipeline reads keys a
        column at a time with ``fields_of``)."""
        width = 8 * (self.width - 1)
        blob = self.keys[rows, :-1].tobytes()
        return [blob[k:k + width] for k in range(0, len(blob), width)]

    def interfaces(self, rows):
        """The interface of ``rows``, from their class/interface word."""
        return (self.keys[rows, -1] >> np.uint64(8)).tolist()


def split(chunk, ethernet_ifx, interfaces=None):
    """(list of Groups, rows to decode as an int array in arrival order).

    ``ethernet_ifx``: boolean array, True for source interfaces whose link
    type is Ethernet. ``interfaces``: int array mapping the source's
    interface indexes to the ones keys should carry (default: the same).

    The compiled module's pass when it was built, else the numpy one: same
    result (tests/test_fastpath.py).
    """
    if engine.compiled is None:
        return split_numpy(chunk, ethernet_ifx, interfaces)
    return split_compiled(chunk, ethernet_ifx, interfaces)


def split_compiled(chunk, ethernet_ifx, interfaces=None):
    """``split`` by the compiled module: one pass over the frames, grouped
    through a hash table (no sort). The tables it works from — key masks,
    multipliers, port sets — are this module's."""
    n = len(chunk)
    if n == 0:
        return [], np.arange(0)
    ethernet = np.ascontiguousarray(ethernet_ifx, np.uint8)
    if interfaces is None:
        interfaces = np.arange(len(ethernet))
    out = engine.compiled.split(chunk.buf, _int64(chunk.off), _int64(chunk.incl), _int64(chunk.orig),
                                np.ascontiguousarray(chunk.ts, np.float64), _int64(chunk.ifx), ethernet,
                                _int64(interfaces), _WORDMASK, _MULT, _TUNNEL_WORDMASK, _TUNNEL_MULT,
                                int(_TAG_MULT), _DECODER_PORTS, _TUNNEL_PORTS)
    if out is None:
        return [], np.arange(n)                  # a hash collision: decode this chunk row by row
    plain, tunnel, slow = out
    parts = [_groups_from(part, width) for part, width in ((plain, WIDTH // 8 + 1), (tunnel, TUNNEL_WIDTH // 8 + 1))
             if part is not None]
    return parts, np.frombuffer(slow, np.int64)


def _int64(values):
    return np.ascontiguousarray(values, np.int64)


def _groups_from(part, width):
    hashes, keys, classes, first, count, octets, first_ts, last_ts = part
    i64 = lambda raw: np.frombuffer(raw, np.int64)  # noqa: E731
    return Groups(np.frombuffer(hashes, np.uint64), np.frombuffer(keys, np.uint64).reshape(-1, width), i64(classes),
                  i64(first), i64(count), i64(octets), np.frombuffer(first_ts), np.frombuffer(last_ts))


def split_numpy(chunk, ethernet_ifx, interfaces=None):
    """``split`` as whole-chunk numpy passes (the reference, and the path
    when the compiled module is absent)."""
    n = len(chunk)
    every = np.arange(n)
    if n == 0:
        return [], every
    buf = chunk.buf
    if int(chunk.off.max()) > len(buf) - TUNNEL_WIDTH:
        # Pad so every frame has TUNNEL_WIDTH readable bytes; the length checks
        # below keep key bytes inside the captured frame.
        buf = buf + bytes(TUNNEL_WIDTH)
    ifx = chunk.ifx if interfaces is None else np.asarray(interfaces, np.int64)[chunk.ifx]
    cand = np.flatnonzero(ethernet_ifx[chunk.ifx])
    head = _headers(buf, chunk.off[cand], WIDTH)
    incl = chunk.incl[cand]
    et = _u16(head, 12)
    tagged = et == 0x8100
    inner = _u16(head, 16)
    cls = np.full(len(cand), -1, np.int64)
    cls[~tagged & (et == 0x0800) & (head[:, 14] == 0x45) & _l4(head, 23, 34) & _unfragmented(head, 20)
        & _ports_inside(head, 16) & (incl >= 38)] = 0
    cls[~tagged & (et == 0x86DD) & _l4(head, 20, 54) & (incl >= 58)] = 1
    cls[tagged & (inner == 0x0800) & (head[:, 18] == 0x45) & _l4(head, 27, 38) & _unfragmented(head, 24)
        & _ports_inside(head, 20) & (incl >= 42)] = 2
    cls[tagged & (inner == 0x86DD) & _l4(head, 24, 58) & (incl >= 62)] = 3
    parts = []
    slow = np.ones(n, bool)
    fast = np.flatnonzero(cls >= 0)
    if len(fast):
        part = _group(chunk, ifx, cand[fast], cls[fast], np.take(head, fast, axis=0), _WORDMASK, _MULT)
        if part is None:
            return [], every                    # a hash collision: decode this chunk row by row
        parts.append(part)
        slow[cand[fast]] = False
    # UDP to or from a tunnel port, outer IPv4 without options: candidates for the tunnel classes
    # (a chunk without any skips their dozen layout tests).
    tun = np.flatnonzero((cls < 0) & (((et == 0x0800) & (head[:, 14] == 0x45) & (head[:, 23] == 17)
                                       & _tunnel_port(head, 34))
                                      | (tagged & (inner == 0x0800) & (head[:, 18] == 0x45) & (head[:, 27] == 17)
                                         & _tunnel_port(head, 38))))
    if len(tun):
        rows = cand[tun]
        theads = _headers(buf, chunk.off[rows], TUNNEL_WIDTH)
        tcls = _tunnel_classes(theads, chunk.incl[rows])
        hit = np.flatnonzero(tcls >= 0)
        if len(hit):
            part = _group(chunk, ifx, rows[hit], tcls[hit], np.take(theads, hit, axis=0), _TUNNEL_WORDMASK,
                          _TUNNEL_MULT)
            if part is None:
                return [], every
            parts.append(part)
            slow[rows[hit]] = False
    return parts, np.flatnonzero(slow)


def _headers(buf, offsets, width):
    """(rows, width) uint8 copy of the ``width`` bytes at each offset. Read
    through a one-byte-stride view of ``width``-byte records: one memcpy per
    row, several times cheaper than fancy-indexing a sliding window."""
    records = np.ndarray((len(buf) - width + 1,), np.dtype((np.void, width)), buffer=buf, strides=(1,))
    return records[offsets].view(np.uint8).reshape(len(offsets), width)


def _group(chunk, ifx, rows, cls, head, wordmask, mult):
    """Group rows by (class, interface, key bytes) into ``Groups`` in arrival
    order, or None when two different keys share a hash."""
    base = TUNNEL_BASE if wordmask is _TUNNEL_WORDMASK else 0
    words = head.view("<u8") & np.take(wordmask, cls - base, axis=0)     # take: a row gather, not fancy indexing
    tag = cls.astype(np.uint64) | (ifx[rows].astype(np.uint64) << np.uint64(8))
    # class and interface take part in hash and check
    h = words @ mult + tag * _TAG_MULT
    h ^= h >> np.uint64(29)
    order = np.argsort(h)
    hs = h[order]
    ws = np.take(words, order, axis=0)             # take: a plain row gather, far cheaper than fancy indexing
    tg = tag[order]
    same_hash = hs[1:] == hs[:-1]
    # Exact: rows that share a hash must share every key byte, class and interface.
    differ = tg[1:] != tg[:-1]
    for k in range(ws.shape[1]):              # column by column: cheaper than a 2-D compare and any()
        differ |= ws[1:, k] != ws[:-1, k]
    if (differ & same_hash).any():
        return None
    starts = np.flatnonzero(np.concatenate(([True], ~same_hash)))
    counts = np.diff(np.append(starts, len(order)))
    ts = chunk.ts[rows][order]
    octets = np.add.reduceat(chunk.orig[rows][order], starts)
    first_ts = np.minimum.reduceat(ts, starts)
    last_ts = np.maximum.reduceat(ts, starts)
    leaders = np.minimum.reduceat(order, starts)   # each group's first frame to arrive
    arrival = np.argsort(leaders)
    lead = starts[arrival]
    keys = np.concatenate([np.take(ws, lead, axis=0), tg[lead][:, None]], axis=1)
    return Groups(hs[lead], keys, cls[leaders[arrival]], rows[leaders[arrival]], counts[arrival],
                  octets[arrival], first_ts[arrival], last_ts[arrival])


def _tunnel_classes(h, incl):
    """Tunnel class id per row (TUNNEL_BASE + layout), or -1: exactly the
    frames for which the decoder returns one GTP-U or VXLAN layer around an
    IPv4/IPv6 TCP/UDP packet with these fields.

    The layouts are disjoint (tag or not, GTP-U flags or the VXLAN port,
    inner version), so each test narrows the rows the next one looks at:
    outer headers once per tag layout, the tunnel header once per variant."""
    cls = np.full(len(h), -1, np.int64)
    tagged = _u16(h, 12) == 0x8100
    outer, tunnel = {}, {}
    for lid, (o, variant, v6, i, _ranges) in enumerate(_LAYOUTS):
        if o not in outer:
            rows = np.flatnonzero((tagged if o == 18 else ~tagged) & (h[:, o - 2] == 0x08) & (h[:, o - 1] == 0x00)
                                  & (h[:, o] == 0x45) & (h[:, o + 9] == 17))
            sub = np.take(h, rows, axis=0)
            keep = _unfragmented(sub, o + 6)
            outer[o] = (rows[keep], sub[keep])
        if (o, variant) not in tunnel:
            rows, sub = outer[o]
            sport, dport = _u16(sub, o + 20), _u16(sub, o + 22)
            by_dport = _TUNNEL_PORTS[dport]                 # the decoder asks the destination port first
            p = o + 28
            if variant == VXLAN:
                vx = lambda port: (port == 4789) | (port == 8472)  # noqa: E731
                ok = np.where(by_dport, vx(dport), vx(sport)) & ((sub[:, p] & 0x08) != 0)
            else:
                ok = np.where(by_dport, dport == 2152, sport == 2152) & (sub[:, p + 1] == 0xFF)
                if variant == GTPU:
                    ok &= sub[:, p] == 0x30
                else:
                    ok &= (sub[:, p] == 0x34) & (sub[:, p + 11] == 0x85) & (sub[:, p + 12] == 1) & (sub[:, p + 15] == 0)
            tunnel[(o, variant)] = (rows[ok], np.take(sub, np.flatnonzero(ok), axis=0))
        rows, sub = tunnel[(o, variant)]
        if variant == VXLAN:
            ok = _u16(sub, o + 48) == (0x86DD if v6 else 0x0800)
        else:
            ok = np.ones(len(rows), bool)
        if v6:
            ok &= ((sub[:, i] >> 4) == 6) & _l4(sub, i + 6, i + 40)
            need = i + 44
        else:
            ok &= (sub[:, i] == 0x45) & _l4(sub, i + 9, i + 20) & _unfragmented(sub, i + 6) & (_u16(sub, i + 2) >= 24)
            need = i + 24
        ok &= (incl[rows] >= need) & (_u16(sub, o + 2) >= need - o)    # captured, and inside the outer packet
        cls[rows[ok]] = TUNNEL_BASE + lid
    return cls


def _u16(head, at):
    """The big-endian 16-bit field at byte ``at`` of every row, as uint16.
    At an even offset of contiguous rows it is one column of a big-endian
    view (half the cost of assembling it from two byte columns)."""
    if not (at | head.shape[1]) & 1 and head.flags.c_contiguous:
        return head.view(">u2")[:, at >> 1].astype(np.uint16)
    return (head[:, at].astype(np.uint16) << 8) | head[:, at + 1]


def fields_from_key(key, cls):
    """``(vlan, proto, src, sport, dst, dport, src_mac, dst_mac, tunnels)``
    the decoder would find in a frame with this key.

    A key is the frame's header with everything but its class's key bytes
    zeroed, so fields sit at their frame offsets. Every fast class fixes the
    layout, so the key holds all the decoder would find: MACs, VLAN,
    protocol, addresses, ports (and for tunnel classes the outer addresses
    and the TEID or VNI).

    One key at a time, spelled out field by field: the definition that
    ``fields_of`` (what the pipeline calls, a layout's rows at once) is
    tested against, not a second path the pipeline takes.
    """
    if cls >= TUNNEL_BASE:
        return _tunnel_fields(key, cls - TUNNEL_BASE)
    vlan, o = -1, 14
    if cls >= 2:                                   # behind one 802.1Q tag
        vlan, o = ((key[14] << 8) | key[15]) & 0x0FFF, 18
    if cls & 1:
        proto, src, dst, p = key[o + 6], key[o + 8:o + 24], key[o + 24:o + 40], o + 40
    else:
        proto, src, dst, p = key[o + 9], key[o + 12:o + 16], key[o + 16:o + 20], o + 20
    return (vlan, proto, src, (key[p] << 8) | key[p + 1], dst, (key[p + 2] << 8) | key[p + 3],
            key[6:12], key[0:6], None)


TUNNEL_KINDS = (GTPU, VXLAN)      # the tunnel column of FIELDS: an index into this


def _field_table():
    """Where ``fields_from_key``'s fields sit in a key, per class (a row of
    ``FIELD_COLUMNS``; -1: absent). One table for both readers of keys a
    chunk at a time: ``fields_of`` (numpy) and the compiled module's
    ``open_directions``."""
    rows = []
    for lay in [(14, None, False, 14), (14, None, True, 14), (18, None, False, 18), (18, None, True, 18)] + \
            [lay[:4] for lay in _LAYOUTS]:
        o, variant, v6, i = lay
        vlan = 14 if o == 18 else -1
        l3 = [i + 6, i + 8, 16, i + 40] if v6 else [i + 9, i + 12, 4, i + 20]
        p = o + 28
        if variant is None:
            rest = [6, 0, -1, -1, -1, 0]
        elif variant == VXLAN:                     # the inner frame's MACs; a 24-bit VNI
            rest = [p + 14, p + 8, TUNNEL_KINDS.index(VXLAN), o + 12, p + 4, 3]
        else:                                      # GTP-U carries IP: the outer MACs; a 32-bit TEID
            rest = [6, 0, TUNNEL_KINDS.index(GTPU), o + 12, p + 4, 4]
        rows.append([vlan] + l3 + rest)
    return np.array(rows, np.int64)


FIELD_COLUMNS = ("vlan", "proto", "addr", "addr_size", "ports", "src_mac", "dst_mac", "tunnel", "outer", "ident",
                 "ident_size")
FIELDS = _field_table()


def fields_of(groups, rows):
    """``fields_from_key`` of ``rows`` of ``groups``, a list of tuples, read
    a column at a time (a class's rows at once, by ``FIELDS``): the numpy
    reader, for when the compiled module is not built."""
    n = len(rows)
    head = groups.keys[rows, :-1].view(np.uint8)
    cls = groups.classes[rows]
    out = [None] * n
    for c in np.unique(cls).tolist():
        vlan_at, proto_at, addr_at, size, ports_at, smac, dmac, tunnel, outer, ident_at, ident_size = \
            FIELDS[c].tolist()
        at = np.flatnonzero(cls == c)
        sub = np.take(head, at, axis=0)
        vlan = (_u16(sub, vlan_at) & 0x0FFF).tolist() if vlan_at >= 0 else repeat(-1)
        if tunnel >= 0:
            ident = np.zeros(len(at), np.int64)
            for k in range(ident_size):
                ident = (ident << 8) | sub[:, ident_at + k]
            kind = TUNNEL_KINDS[tunnel]
            tunnels = [[(kind, a, b, t)] for a, b, t in
                       zip(_blobs(sub, outer, 4), _blobs(sub, outer + 4, 4), ident.tolist())]
        else:
            tunnels = repeat(None)
        fields = zip(vlan, sub[:, proto_at].tolist(), _blobs(sub, addr_at, size), _u16(sub, ports_at).tolist(),
                     _blobs(sub, addr_at + size, size), _u16(sub, ports_at + 2).tolist(), _blobs(sub, smac, 6),
                     _blobs(sub, dmac, 6), tunnels)
        for k, row in zip(at.tolist(), fields):
            out[k] = row
    return out


def open_directions(table, opened):
    """Open in ``table`` (flows.FlowTable) the directions ``account`` left
    new, ``opened`` as [(Groups, rows)], in arrival order (by first frame,
    across the parts). Returns per part the ``(flow, side)`` owners of its
    rows. The compiled module reads the keys by ``FIELDS`` and takes
    ``FlowTable.add_directions``' steps itself; without it, ``fields_of``
    and ``add_directions`` do.
    """
    if engine.compiled is not None:
        parts = [(np.ascontiguousarray(g.keys, np.uint64), g.width, _int64(g.classes), _int64(rows), _int64(g.first),
                  np.ascontiguousarray(g.first_ts, np.float64), np.ascontiguousarray(g.last_ts, np.float64),
                  _int64(g.count), _int64(g.octets)) for g, rows in opened]
        macs = (table.mac_sets.table, NO_MACS, table.mac_sets.LIMIT)
        return engine.compiled.open_directions(table.flows, table.renew, table.idle, TUNNEL_KINDS, FIELDS, parts,
                                                Flow, table.capacity, macs)
    items, firsts = [], []
    for g, rows in opened:
        items.extend(zip(g.interfaces(rows), fields_of(g, rows), g.first_ts[rows].tolist(),
                         g.last_ts[rows].tolist(), g.count[rows].tolist(), g.octets[rows].tolist()))
        firsts.append(g.first[rows])
    order = np.argsort(np.concatenate(firsts), kind="stable").tolist()
    owners = [None] * len(items)
    for k, owner in zip(order, table.add_directions([items[k] for k in order])):
        owners[k] = owner
    out, start = [], 0
    for _g, rows in opened:
        out.append(owners[start:start + len(rows)])
        start += len(rows)
    return out


def _blobs(head, at, size):
    """Bytes ``at:at + size`` of every row, as a list of bytes objects."""
    return np.ascontiguousarray(head[:, at:at + size]).view(np.dtype((np.void, size))).ravel().tolist()


def _tunnel_fields(key, lid):
    o, variant, v6, i, _ranges = _LAYOUTS[lid]
    p = o + 28
    if variant == VXLAN:
        dst_mac, src_mac = key[p + 8:p + 14], key[p + 14:p + 20]
        kind, ident = VXLAN, int.from_bytes(key[p + 4:p + 7], "big")
    else:
        dst_mac, src_mac = key[0:6], key[6:12]
        kind, ident = GTPU, int.from_bytes(key[p + 4:p + 8], "big")
    vlan = int.from_bytes(key[14:16], "big") & 0x0FFF if o == 18 else -1
    if v6:
        proto, src, dst, ports = key[i + 6], key[i + 8:i + 24], key[i + 24:i + 40], key[i + 40:i + 44]
    else:
        proto, src, dst, ports = key[i + 9], key[i + 12:i + 16], key[i + 16:i + 20], key[i + 20:i + 24]
    return (vlan, proto, src, int.from_bytes(ports[:2], "big"), dst, int.from_bytes(ports[2:], "big"),
            src_mac, dst_mac, [(kind, key[o + 12:o + 16], key[o + 16:o + 20], ident)])


def _l4(head, proto_at, ports_at):
    """TCP, or UDP that is neither a tunnel (the decoder finds the inner flow)
    nor GTP-C/PFCP (the control-plane reader needs each message)."""
    proto = head[:, proto_at]
    sport, dport = _u16(head, ports_at), _u16(head, ports_at + 2)
    decoder = _DECODER_PORTS[sport] | _DECODER_PORTS[dport]
    return (proto == 6) | ((proto == 17) & ~decoder)


def _tunnel_port(head, ports_at):
    """Source or destination port is one the decoder reads a tunnel behind."""
    return _TUNNEL_PORTS[_u16(head, ports_at)] | _TUNNEL_PORTS[_u16(head, ports_at + 2)]


def _ports_inside(head, at):
    """IPv4 total length covers the header and the ports (the decoder's rule)."""
    return _u16(head, at) >= 24


def _unfragmented(head, at):
    return ((head[:, at] & 0x3F) == 0) & (head[:, at + 1] == 0)
