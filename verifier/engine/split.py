"""Vectorised fast path: a Chunk -> per-direction groups + rows left to decode.

Pure: numpy in, numpy out; no flow state. The pipeline looks each group up
once (not each packet) in its direction index (engine/directions.py).
``split`` is one C pass (engine/_fastpath.c, hashing rows into groups) for
``engine.COMPILED``, else ``split_numpy``'s whole-chunk passes described here
(hashing, then sorting by hash); the results are equal to the bit, and the
numpy code is the reference.

Which rows are fast is engine/frames.py's: its classes (Ethernet or one
802.1Q tag; IPv4 without options or IPv6 without extension headers; TCP or
UDP that is no tunnel or control-plane port; and the tunnel layouts: GTP-U,
GTP-U with a PDU Session Container, VXLAN, Geneve) are exactly frames for
which the decoder would return one TCP/UDP packet with fields at fixed
offsets. Every row is checked, not only a flow's first: ``split_numpy`` walks
``frames.TREE`` over the chunk, the C pass runs ``frames.PROGRAM`` frame by
frame. For these frames the raw header bytes of one flow direction — both
MACs, the tag, the protocol, the addresses and ports, for a tunnel its outer
addresses and TEID or VNI (and inner MACs) — are a stable key.

A key (a row of ``Groups.keys``) is the first 64 header bytes (112 for the
tunnel classes) with every byte but the class's key bytes zeroed, as 64-bit
words, plus one word naming class and interface: fields stay at their frame
offsets, so ``fields_of`` and ``fields_from_key`` read them back where
``frames.FIELDS`` says.

Rows are grouped by (class, interface, key): each header is read as 64-bit
words masked down to the class's key bytes, plus one word holding class and
interface, hashed and sorted; rows that share a hash are then compared word
for word, so a hash collision can never merge two directions (a colliding
chunk is handed back whole as rows to decode). Each key width comes back as
its own ``Groups``. Everything else — ICMP, fragments, other tunnels (GRE,
IP-in-IP, Geneve with options, GTP-U with other extension headers), GTP-C
and PFCP, QinQ, MPLS, other link types, damaged headers — is returned as
rows for the full decoder.
"""

from itertools import repeat

import numpy as np

from . import frames
from .frames import (  # noqa: F401 - FIELD_COLUMNS: re-exported beside FIELDS
    ANY_TUNNEL, AT_LEAST, BYTE, CAPTURED, DECODER, EQUAL16, FIELD_COLUMNS, FIELDS, PORT_FLAGS, TRANSPORT, TUNNEL_KINDS,
    TUNNEL_PORT, WIDTHS, WORD)
from ..model import Flow
from ..wire import TCP, UDP, VLAN_ID


def _odd_constants(count, seed):
    """``count`` odd 64-bit multipliers, independent-looking (splitmix64).
    Not an arithmetic progression: with multipliers k * c, two keys whose
    word differences satisfy d1 = -k * d2 hash alike (damaged tunnel frames
    met exactly that), and each such chunk went whole to the decoder."""
    mask, x, out = (1 << 64) - 1, seed, []
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append((z ^ (z >> 31)) | 1)
    return np.array(out, np.uint64)


# Hash multipliers per key word, per key width (the class/interface word has its own).
_MULTS = {w.size: _odd_constants(w.size // 8, w.size) for w in WIDTHS}
_TAG_MULT = np.uint64(0x94D049BB133111EB)      # the class/interface word's multiplier
HEADER = frames.HEADER                          # bytes a frame's header is read to


class Groups:
    """Per (interface, direction key) sums of one chunk for one key width,
    one row per group, in first-seen order (numpy arrays)."""

    __slots__ = ("width", "hashes", "keys", "classes", "first", "count", "octets", "first_ts", "last_ts",
                 "entry_hashes", "entry_keys", "flips")

    def __init__(self, hashes, keys, classes, first, count, octets, first_ts, last_ts):
        self.width = keys.shape[1]    # 64-bit words per key (the class/interface word last)
        self.hashes = hashes          # uint64 hash of each key
        self.keys = keys              # (groups, width) uint64: exact direction keys
        self.classes = classes        # each key's class (how to read it back: fields_from_key)
        self.first = first            # chunk row of each group's first packet
        self.count, self.octets = count, octets
        self.first_ts, self.last_ts = first_ts, last_ts
        # What the direction index holds them by (``entry_keys``): None until it is asked.
        self.entry_hashes = self.entry_keys = self.flips = None

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


def split(chunk, ethernet_ifx, interfaces=None, *, engine, port_flags=PORT_FLAGS):
    """(list of Groups, rows to decode as an int array in arrival order).

    ``ethernet_ifx``: boolean array, True for source interfaces whose link
    type is Ethernet. ``interfaces``: int array mapping the source's
    interface indexes to the ones keys should carry (default: the same).
    ``port_flags``: what each UDP port means (frames.port_flags: the
    pipeline's, which may send more ports to the decoder).

    ``engine`` (verifier.engine.Engine): its compiled module's pass, or the
    numpy one for ``engine.NUMPY``: same result (tests/test_fastpath.py).
    """
    if engine.c is None:
        return split_numpy(chunk, ethernet_ifx, interfaces, port_flags)
    return split_compiled(engine.c, chunk, ethernet_ifx, interfaces, port_flags)


def split_compiled(c, chunk, ethernet_ifx, interfaces=None, port_flags=PORT_FLAGS):
    """``split`` by the compiled module: one pass over the frames, each
    classified by ``frames.PROGRAM`` and grouped through a hash table (no
    sort). Everything it works from — the program, port flags, key masks,
    multipliers — is handed to it from here."""
    n = len(chunk)
    if n == 0:
        return [], np.arange(0)
    ethernet = np.ascontiguousarray(ethernet_ifx, np.uint8)
    if interfaces is None:
        interfaces = np.arange(len(ethernet))
    out = c.split(chunk.buf, _int64(chunk.off), _int64(chunk.incl), _int64(chunk.orig),
                                np.ascontiguousarray(chunk.ts, np.float64), _int64(chunk.ifx), ethernet,
                                _int64(interfaces), frames.PROGRAM, port_flags, _compiled_widths(), int(_TAG_MULT))
    if out is None:
        return [], np.arange(n)                  # a hash collision: decode this chunk row by row
    found, slow = out
    parts = [_groups_from(part, w.words) for part, w in zip(found, WIDTHS) if part is not None]
    return parts, np.frombuffer(slow, np.int64)


def _compiled_widths():
    return tuple((w.size, w.base, w.mask, _MULTS[w.size]) for w in WIDTHS)


def _int64(values):
    return np.ascontiguousarray(values, np.int64)


def _groups_from(part, width):
    hashes, keys, classes, first, count, octets, first_ts, last_ts = part
    i64 = lambda raw: np.frombuffer(raw, np.int64)  # noqa: E731
    return Groups(np.frombuffer(hashes, np.uint64), np.frombuffer(keys, np.uint64).reshape(-1, width), i64(classes),
                  i64(first), i64(count), i64(octets), np.frombuffer(first_ts), np.frombuffer(last_ts))


def split_numpy(chunk, ethernet_ifx, interfaces=None, port_flags=PORT_FLAGS):
    """``split`` as whole-chunk numpy passes (the reference, and the path
    when the compiled module is absent): the decision tree walked a node at
    a time over the rows that reach it, then each key width's rows grouped."""
    n = len(chunk)
    every = np.arange(n)
    if n == 0:
        return [], every
    buf = chunk.buf
    if int(chunk.off.max()) > len(buf) - HEADER:
        # Pad so every frame has HEADER readable bytes; the length tests
        # keep key bytes inside the captured frame.
        buf = buf + bytes(HEADER)
    ifx = chunk.ifx if interfaces is None else np.asarray(interfaces, np.int64)[chunk.ifx]
    cand = np.flatnonzero(ethernet_ifx[chunk.ifx])
    off = chunk.off[cand]
    narrow = WIDTHS[0].size
    head = _headers(buf, off, narrow)
    cls = np.full(len(cand), -1, np.int64)
    _classify(frames.TREE, np.arange(len(cand)), head, cls, chunk.incl[cand], lambda at: _headers(buf, off[at], HEADER),
              port_flags)
    parts = []
    slow = np.ones(n, bool)
    for w in WIDTHS:
        at = np.flatnonzero((cls >= w.base) & (cls < w.base + len(w.mask)))
        if not len(at):
            continue
        sub = np.take(head, at, axis=0) if w.size == narrow else _headers(buf, off[at], w.size)
        part = _group(chunk, ifx, cand[at], cls[at], sub, w)
        if part is None:
            return [], every                    # a hash collision: decode this chunk row by row
        parts.append(part)
        slow[cand[at]] = False
    return parts, np.flatnonzero(slow)


def _classify(nodes, at, head, cls, incl, widen, flags):
    """Give rows ``at`` (their headers ``head``, as wide as the tests so far
    needed) the class of the first leaf of ``nodes`` whose tests they pass:
    each node tested once over the rows that reach it, the rows it did not
    class going on to its next sibling. ``widen(at)`` reads the whole
    header for rows reaching a test past what ``head`` holds."""
    for node in nodes:
        if not len(at):
            return
        if node.reads > head.shape[1]:
            head = widen(at)
        hit = np.flatnonzero(_passes(node.test, head, incl[at], flags))
        if not len(hit):
            continue
        if node.leaf >= 0:
            cls[at[hit]] = node.leaf
        else:
            _classify(node.children, at[hit], np.take(head, hit, axis=0), cls, incl, widen, flags)
        left = np.flatnonzero(cls[at] < 0)
        if len(left) < len(at):
            at, head = at[left], np.take(head, left, axis=0)


def _passes(test, head, incl, flags):
    """Per row, whether it passes ``test`` (frames' test rows); ``flags``: the port flags."""
    op, a, b, c, d, e = test
    if op == EQUAL16:
        words = np.ascontiguousarray(head[:, a:a + 16]).view("<u8")
        return ((words[:, 0] & np.uint64(b)) == np.uint64(c)) & ((words[:, 1] & np.uint64(d)) == np.uint64(e))
    if op == BYTE:
        return (head[:, a] & b) == c
    if op == WORD:
        return (_u16(head, a) & b) == c
    if op == AT_LEAST:
        return _u16(head, a) >= c
    if op == CAPTURED:
        return incl >= c
    if op == TRANSPORT:
        proto = head[:, a]
        decoder = (flags[_u16(head, b)] | flags[_u16(head, b + 2)]) & DECODER
        return (proto == TCP) | ((proto == UDP) & (decoder == 0))
    if op == TUNNEL_PORT:                           # the decoder asks the destination port first
        sport, dport = _u16(head, a), _u16(head, a + 2)
        return (flags[np.where(flags[dport] & ANY_TUNNEL, dport, sport)] & b) != 0
    raise ValueError(f"unknown frame test {op}")


def _headers(buf, offsets, width):
    """(rows, width) uint8 copy of the ``width`` bytes at each offset. Read
    through a one-byte-stride view of ``width``-byte records: one memcpy per
    row, several times cheaper than fancy-indexing a sliding window."""
    records = np.ndarray((len(buf) - width + 1,), np.dtype((np.void, width)), buffer=buf, strides=(1,))
    return records[offsets].view(np.uint8).reshape(len(offsets), width)


def _group(chunk, ifx, rows, cls, head, width):
    """Group rows of one key ``width`` (frames.Width) by (class, interface,
    key bytes) into ``Groups`` in arrival order, or None when two different
    keys share a hash."""
    words = head.view("<u8") & np.take(width.mask, cls - width.base, axis=0)   # take: a row gather
    tag = cls.astype(np.uint64) | (ifx[rows].astype(np.uint64) << np.uint64(8))
    h = _key_hash(words, tag, width.size)         # class and interface take part in hash and check
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


def _key_hash(words, tag, size):
    """Hashes of keys (rows of ``words``, masked header words of a ``size``-byte
    width) and their class/interface words ``tag`` (the C module's key_hash)."""
    h = words @ _MULTS[size] + tag * _TAG_MULT
    return h ^ (h >> np.uint64(29))


def _u16(head, at):
    """The big-endian 16-bit field at byte ``at`` of every row, as uint16.
    At an even offset of contiguous rows it is one column of a big-endian
    view (half the cost of assembling it from two byte columns)."""
    if not (at | head.shape[1]) & 1 and head.flags.c_contiguous:
        return head.view(">u2")[:, at >> 1].astype(np.uint16)
    return (head[:, at].astype(np.uint16) << 8) | head[:, at + 1]


def entry_keys(groups, engine):
    """Fill ``groups.entry_hashes``, ``entry_keys`` and ``flips``: the key
    the direction index holds each group by, one for both directions of a
    flow where its class has a mirror (frames.Class.mirror: the reply's key
    is this one with MACs, addresses and ports swapped). Of a key and its
    mirror the index holds the lesser (word by word from the first, as
    unsigned 64-bit numbers; a key equal to its mirror is its own), ``flips``
    1 where that is the mirror: the group counts as the entry's second
    direction. Hashed as ``split`` hashes keys. One C pass when the
    compiled module is built, else whole-array numpy; the same to the bit."""
    if groups.entry_hashes is not None:
        return groups
    w = next((w for w in WIDTHS if w.words == groups.width), None)    # None: keys of no frame class
    n = len(groups)
    if w is None or not w.mirrored.any() or not n:
        groups.entry_hashes, groups.entry_keys, groups.flips = groups.hashes, groups.keys, np.zeros(n, np.int8)
        return groups
    if engine.c is not None:
        hashes, keys, flips = engine.c.entry_keys(np.ascontiguousarray(groups.keys, np.uint64), groups.width,
                                                  _int64(groups.classes), np.ascontiguousarray(groups.hashes,
                                                                                               np.uint64),
                                                  w.base, w.mirror, w.mirrored, _MULTS[w.size], int(_TAG_MULT))
        groups.entry_hashes = np.frombuffer(hashes, np.uint64)
        groups.entry_keys = np.frombuffer(keys, np.uint64).reshape(n, groups.width)
        groups.flips = np.frombuffer(flips, np.int8)
        return groups
    cls = groups.classes - w.base
    head = np.ascontiguousarray(groups.keys[:, :-1]).view(np.uint8)
    words = groups.keys[:, :-1]
    mirrored = np.take_along_axis(head, w.mirror[cls].astype(np.intp), axis=1).view("<u8")
    differ = words != mirrored
    first = differ.argmax(axis=1)
    rows = np.arange(n)
    flips = (w.mirrored[cls] != 0) & differ.any(axis=1) & (mirrored[rows, first] < words[rows, first])
    keys = groups.keys.copy()
    hashes = groups.hashes.copy()
    if flips.any():
        at = np.flatnonzero(flips)
        keys[at, :-1] = mirrored[at]
        hashes[at] = _key_hash(keys[at, :-1], keys[at, -1], w.size)
    groups.entry_hashes, groups.entry_keys, groups.flips = hashes, keys, flips.astype(np.int8)
    return groups


def fields_from_key(key, cls):
    """``(vlan, proto, src, sport, dst, dport, src_mac, dst_mac, tunnels)``
    the decoder would find in a frame with this key.

    A key is the frame's header with everything but its class's key bytes
    zeroed, so fields sit at their frame offsets, where ``FIELDS`` says.
    Every fast class fixes the layout, so the key holds all the decoder
    would find: MACs, VLAN, protocol, addresses, ports (and for tunnel
    classes the outer addresses and the TEID or VNI). One key at a time:
    what tests/test_batch.py holds equal to the decoder's packet, and
    ``fields_of`` (a class's rows at once, what the pipeline calls) to this.
    """
    vlan_at, proto_at, addr_at, size, ports_at, smac, dmac, tunnel, outer, ident_at, ident_size = FIELDS[cls].tolist()
    u16 = lambda at: (key[at] << 8) | key[at + 1]  # noqa: E731
    tunnels = None
    if tunnel >= 0:
        tunnels = [(TUNNEL_KINDS[tunnel], key[outer:outer + 4], key[outer + 4:outer + 8],
                    int.from_bytes(key[ident_at:ident_at + ident_size], "big"))]
    return (u16(vlan_at) & VLAN_ID if vlan_at >= 0 else -1, key[proto_at], key[addr_at:addr_at + size], u16(ports_at),
            key[addr_at + size:addr_at + 2 * size], u16(ports_at + 2), key[smac:smac + 6], key[dmac:dmac + 6], tunnels)


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
        vlan = (_u16(sub, vlan_at) & VLAN_ID).tolist() if vlan_at >= 0 else repeat(-1)
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


def open_directions(table, opened, engine):
    """Open in ``table`` (flows.FlowTable) the directions ``account`` left
    new, ``opened`` as [(Groups, rows)], in arrival order (by first frame,
    across the parts). Returns per part the ``(flow, side)`` owners of its
    rows. The compiled module reads the keys by ``FIELDS`` and takes
    ``FlowTable.add_directions``' steps itself; without it, ``fields_of``
    and ``add_directions`` do.
    """
    if engine.c is not None:
        parts = [(np.ascontiguousarray(g.keys, np.uint64), g.width, _int64(g.classes), _int64(rows), _int64(g.first),
                  np.ascontiguousarray(g.first_ts, np.float64), np.ascontiguousarray(g.last_ts, np.float64),
                  _int64(g.count), _int64(g.octets)) for g, rows in opened]
        macs = (table.mac_sets.table, table.mac_sets.LIMIT)
        return engine.c.open_directions(table.flows, table.created, table.renew, table.idle, TUNNEL_KINDS, FIELDS,
                                        parts, Flow, table.capacity, macs)
    if not opened:
        return []
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
