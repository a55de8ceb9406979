"""The fast frame classes, declared once.

A fast class is a frame layout whose fields sit at fixed offsets, for which
the reference decoder (layers.py) would return exactly one TCP/UDP packet:
a link (Ethernet, or behind one 802.1Q tag), an IP header without options or
extension headers, the ports; for a tunnel class, an outer IPv4 header
without options and UDP, a tunnel header of fixed size, for some tunnels an
inner Ethernet header, then the inner IP header and ports. Frames of no
class go to the decoder, so a class may be narrower than what the decoder
reads, never wider.

Everything the fast path knows about layouts comes from the three tables
below (``LINKS``, ``IPS``, ``TUNNELS``); from them this module builds, once,
at import:

- ``CLASSES``: each class's tests (when a frame is of it), key byte ranges
  (what makes one flow direction) and ``FIELDS`` row (where the decoder's
  fields sit in the key);
- ``PROGRAM``: the classes' tests as one decision list shared by the two
  engines (split.split_numpy walks it as a tree, whole arrays at a node; the
  C module interprets its rows frame by frame); classes in order, a frame is
  of the first whose tests all pass;
- ``WIDTHS``: the header bytes read per key width (plain classes 64, tunnel
  classes 112), the classes of each, their key masks and mirrors (a plain
  class's reply swaps MACs, addresses and ports: the direction index keeps
  one entry for both directions, split.entry_keys);
- ``PORT_FLAGS``: one byte per UDP port naming what the decoder does there.

Adding a tunnel layout is one ``Tunnel`` row (its kind, header size, byte
tests, key ranges, identifier; the ports come from ``wire.TUNNEL_UDP_PORTS``)
and a frame of it in tests/test_batch.py, which holds the fast path's fields
equal to the decoder's. Neither engine names a port, an offset or a layout.

Tests are rows ``(op, a, b, c)``:

    BYTE         (header[a] & b) == c
    WORD         (big-endian u16 at a & b) == c
    AT_LEAST     big-endian u16 at a >= c           (an IP length field)
    CAPTURED     captured length >= c
    TRANSPORT    protocol byte at a is TCP, or UDP with neither port (at b,
                 b + 2) one the decoder must see (a tunnel, GTP-C, PFCP)
    TUNNEL_PORT  the port the decoder reads a tunnel behind (the destination
                 port when it is a tunnel port, else the source port: layers._l4)
                 has flag b

and, made from a class's BYTE and WORD tests that fall within 16 bytes
(``_fused``: fewer rows for both engines to run), rows ``(op, a, b, c, d, e)``:

    EQUAL16      (little-endian u64 at a & b) == c and (u64 at a + 8 & d) == e
"""

from dataclasses import dataclass

import numpy as np

from ..wire import (CONTROL_UDP_PORTS, ET_IPV4, ET_IPV6, ET_TEB, ET_VLAN, GENEVE, GTP_E, GTP_EXT_PDU_SESSION,
                    GTP_G_PDU, GTP_PT, GTP_VERSION_1, GTPU, IP_VERSION, IPV4_FRAGMENT, IPV4_HEADER, IPV4_NO_OPTIONS,
                    IPV6_HEADER, TUNNEL_UDP_PORTS, UDP, VXLAN, VXLAN_I)

BYTE, WORD, AT_LEAST, CAPTURED, TRANSPORT, TUNNEL_PORT, EQUAL16 = range(1, 8)
ETHERNET_HEADER, UDP_HEADER, PORTS = 14, 8, 4


def byte(at, value, mask=0xFF):
    return (BYTE, at, mask, value)


def word(at, value, mask=0xFFFF):
    return (WORD, at, mask, value)


def at_least(at, value):
    return (AT_LEAST, at, 0, value)


def captured(size):
    return (CAPTURED, 0, 0, size)


def transport(proto_at, ports_at):
    return (TRANSPORT, proto_at, ports_at, 0)


def tunnel_port(ports_at, flag):
    return (TUNNEL_PORT, ports_at, flag, 0)


# ---- the tables --------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    name: str
    ip_at: int          # where the (outer) IP header starts
    type_at: int        # the ethertype that names it
    tests: tuple        # before that ethertype
    key: tuple          # byte ranges of the link header kept in the key (both MACs, the tag)
    vlan_at: int        # the 802.1Q TCI, or -1


@dataclass(frozen=True)
class Ip:
    version: int
    ethertype: int
    header: int         # bytes up to the ports
    proto_at: int       # offsets in the header
    addr_at: int
    addr_size: int
    key: tuple          # header byte ranges kept in the key (protocol, addresses; the ports follow)

    def tests(self, at, typed):
        """The tests of this header at ``at``; ``typed``: an ethertype named it
        (else the version nibble does, as after GTP-U)."""
        ports = at + self.header
        if self.version == 4:       # IHL 5, not a fragment, total length covering the ports (layers.ipv4_layer)
            return (byte(at, IPV4_NO_OPTIONS), transport(at + self.proto_at, ports),
                    word(at + 6, 0, IPV4_FRAGMENT), at_least(at + 2, self.header + PORTS))
        version = () if typed else (byte(at, 0x60, IP_VERSION),)
        return version + (transport(at + self.proto_at, ports),)      # next header TCP/UDP: no extension headers


@dataclass(frozen=True)
class Tunnel:
    kind: str           # the tunnel layer's kind (wire.GTPU, ...); its UDP ports are wire.TUNNEL_UDP_PORTS'
    name: str
    size: int           # header bytes before the payload
    tests: tuple        # byte() / word() tests, offsets from the header's start
    key: tuple          # header byte ranges kept in the key
    ident: tuple        # (offset, size) of the TEID / VNI
    ethernet: bool      # the payload is an Ethernet frame (its MACs are the flow's), else an IP packet


LINKS = (
    Link("ethernet", 14, 12, (), ((0, 12),), -1),
    Link("802.1q", 18, 16, (word(12, ET_VLAN),), ((0, 16),), 14),
)
IPS = (
    Ip(4, ET_IPV4, IPV4_HEADER, 9, 12, 4, ((9, 10), (12, 20))),
    Ip(6, ET_IPV6, IPV6_HEADER, 6, 8, 16, ((6, 7), (8, 40))),
)
TUNNELS = (
    # G-PDU, no optional fields; the flags and type stay in the key
    Tunnel(GTPU, "gtp-u", 8, (byte(0, GTP_VERSION_1 | GTP_PT), byte(1, GTP_G_PDU)), ((0, 2), (4, 8)), (4, 4),
           False),
    # G-PDU with one 4-byte PDU Session Container (5G), then no further extension
    Tunnel(GTPU, "gtp-u+pdu", 16, (byte(0, GTP_VERSION_1 | GTP_PT | GTP_E), byte(1, GTP_G_PDU),
                                   byte(11, GTP_EXT_PDU_SESSION), byte(12, 1), byte(15, 0)),
           ((0, 2), (4, 8), (11, 13), (15, 16)), (4, 4), False),
    Tunnel(VXLAN, "vxlan", 8, (byte(0, VXLAN_I, VXLAN_I),), ((0, 1), (4, 7)), (4, 3), True),
    # version 0, no options, an Ethernet frame inside
    Tunnel(GENEVE, "geneve", 8, (byte(0, 0), word(2, ET_TEB)), ((4, 7),), (4, 3), True),
)

# ---- what the engines read ---------------------------------------------------

DECODER, ANY_TUNNEL = 1, 2          # PORT_FLAGS bits; then one bit per tunnel kind
_KINDS = sorted(set(TUNNEL_UDP_PORTS.values()))
KIND_FLAG = {kind: 4 << k for k, kind in enumerate(_KINDS)}
TUNNEL_KINDS = tuple(dict.fromkeys(t.kind for t in TUNNELS))     # FIELDS' tunnel column: an index into this
FIELD_COLUMNS = ("vlan", "proto", "addr", "addr_size", "ports", "src_mac", "dst_mac", "tunnel", "outer", "ident",
                 "ident_size")


@dataclass(frozen=True)
class Class:
    name: str
    tests: tuple
    key: tuple          # frame byte ranges
    fields: tuple       # a FIELDS row
    end: int            # bytes the class reads
    mirror: tuple       # (a, b, size) byte ranges a reply swaps (MACs, addresses, ports); () for none


def _plain(link, ip):
    at = link.ip_at
    end = at + ip.header + PORTS
    tests = link.tests + (word(link.type_at, ip.ethertype),) + ip.tests(at, True) + (captured(end),)
    key = link.key + tuple((at + lo, at + hi) for lo, hi in ip.key) + ((end - PORTS, end),)
    fields = (link.vlan_at, at + ip.proto_at, at + ip.addr_at, ip.addr_size, end - PORTS, 6, 0, -1, -1, -1, 0)
    # The reply's key is this one with the MACs, addresses and ports swapped: both directions share an entry.
    mirror = ((0, 6, 6), (at + ip.addr_at, at + ip.addr_at + ip.addr_size, ip.addr_size), (end - PORTS, end - 2, 2))
    return Class(f"{link.name}/ipv{ip.version}", _fused(tests, end), key, fields, end, mirror)


def _tunnelled(link, tunnel, ip):
    o = link.ip_at
    p = o + IPV4_HEADER + UDP_HEADER               # the tunnel header
    tests = link.tests + (word(link.type_at, ET_IPV4), byte(o, IPV4_NO_OPTIONS), byte(o + 9, UDP),
                          word(o + 6, 0, IPV4_FRAGMENT), tunnel_port(o + IPV4_HEADER, KIND_FLAG[tunnel.kind]))
    tests += tuple((op, p + at, mask, value) for op, at, mask, value in tunnel.tests)
    key = link.key + ((o + 12, o + 24),) + tuple((p + lo, p + hi) for lo, hi in tunnel.key)
    i = p + tunnel.size
    src_mac, dst_mac = 6, 0                        # an IP payload: the outer frame's MACs are the flow's
    if tunnel.ethernet:
        tests += (word(i + 12, ip.ethertype),)
        key += ((i, i + ETHERNET_HEADER),)
        src_mac, dst_mac, i = i + 6, i, i + ETHERNET_HEADER
    end = i + ip.header + PORTS
    # captured, and inside the outer packet (whose end bounds the inner one: layers._decapsulate)
    tests += ip.tests(i, tunnel.ethernet) + (captured(end), at_least(o + 2, end - o))
    key += tuple((i + lo, i + hi) for lo, hi in ip.key) + ((end - PORTS, end),)
    fields = (link.vlan_at, i + ip.proto_at, i + ip.addr_at, ip.addr_size, end - PORTS, src_mac, dst_mac,
              TUNNEL_KINDS.index(tunnel.kind), o + 12, p + tunnel.ident[0], tunnel.ident[1])
    # No mirror: a reply comes in the other tunnel direction (other outer addresses, its own TEID).
    return Class(f"{link.name}/ipv4/udp/{tunnel.name}/ipv{ip.version}", _fused(tests, end), key, fields, end, ())


def _bytes_of(test):
    """{offset: (mask, value)} of a BYTE or WORD test."""
    op, a, mask, value = test[:4]
    if op == BYTE:
        return {a: (mask, value)}
    return {a: (mask >> 8, value >> 8), a + 1: (mask & 0xFF, value & 0xFF)}


def _fused(tests, end):
    """``tests`` with the BYTE and WORD tests that fall within 16 bytes of
    each other as one EQUAL16 row, where the first of them stood (the tests
    are one conjunction: their order decides only how early a frame fails).
    A window starts at its first test's offset, moved back so that it ends
    inside the header the class reads (``end`` rounded up to the widths'
    8 bytes, at least 16); every row is padded to six columns."""
    limit = max(16, -(-end // 8) * 8)
    out, taken = [], set()
    for k, test in enumerate(tests):
        if k in taken:
            continue
        if test[0] not in (BYTE, WORD):
            out.append(tuple(test) + (0,) * (6 - len(test)))
            continue
        start = min(test[1], limit - 16)
        group = [j for j in range(k, len(tests)) if j not in taken and tests[j][0] in (BYTE, WORD)
                 and all(start <= at < start + 16 for at in _bytes_of(tests[j]))]
        if len(group) < 2:
            out.append(tuple(test) + (0, 0))
            continue
        taken.update(group)
        words = [[0, 0], [0, 0]]                   # (mask, value) of bytes start..+7, start+8..+15
        for j in group:
            for at, (mask, value) in _bytes_of(tests[j]).items():
                half, shift = divmod(at - start, 8)
                words[half][0] |= mask << (8 * shift)
                words[half][1] |= value << (8 * shift)
        out.append((EQUAL16, start, words[0][0], words[0][1], words[1][0], words[1][1]))
    return tuple(out)


CLASSES = tuple([_plain(link, ip) for link in LINKS for ip in IPS]
                + [_tunnelled(link, tunnel, ip) for link in LINKS for tunnel in TUNNELS for ip in IPS])
FIELDS = np.array([c.fields for c in CLASSES], np.int64)


def port_flags(decoded=()):
    """What each UDP port means to the fast path: its tunnel (a tunnel
    kind's flag), or that the decoder reads its frames (the mobile control
    plane, and ``decoded``: a pipeline's flow-export ports)."""
    flags = np.zeros(1 << 16, np.uint8)
    for port, kind in TUNNEL_UDP_PORTS.items():
        flags[port] |= DECODER | ANY_TUNNEL | KIND_FLAG[kind]
    flags[list(CONTROL_UDP_PORTS)] |= DECODER
    if decoded:
        flags[list(decoded)] |= DECODER
    return flags


PORT_FLAGS = port_flags()


class Width:
    """The classes keyed by ``size`` header bytes (a multiple of 8): ids
    ``base`` to ``base + len(mask) - 1``, each with its byte mask, and its
    ``mirror``: where each key byte of the reply direction comes from (the
    identity for a class with no mirror; ``mirrored`` says which have one)."""

    def __init__(self, size, base, classes):
        self.size, self.base = size, base
        self.words = size // 8 + 1                   # key words, the class/interface word last
        mask = np.zeros((len(classes), size), np.uint8)
        mirror = np.tile(np.arange(size, dtype=np.uint8), (len(classes), 1))
        for k, c in enumerate(classes):
            for lo, hi in c.key:
                mask[k, lo:hi] = 0xFF
            for a, b, n in c.mirror:
                mirror[k, a:a + n], mirror[k, b:b + n] = np.arange(b, b + n), np.arange(a, a + n)
        self.mask = mask.view("<u8")                 # (classes, size / 8): keeps a class's key bytes of each word
        self.mirror = mirror                         # (classes, size): byte j of a reply's key is byte mirror[j]
        self.mirrored = np.array([bool(c.mirror) for c in classes], np.uint8)


def _widths(sizes=(64, 112)):
    out, base = [], 0
    for size in sizes:
        classes = []
        while base + len(classes) < len(CLASSES) and CLASSES[base + len(classes)].end <= size:
            classes.append(CLASSES[base + len(classes)])
        out.append(Width(size, base, classes))
        base += len(classes)
    if base != len(CLASSES):
        raise ValueError(f"frame class {CLASSES[base].name} reads {CLASSES[base].end} bytes: past every width")
    return tuple(out)


WIDTHS = _widths()
HEADER = WIDTHS[-1].size                            # bytes a frame is read to (the widest class)


def reads(test):
    """The header bytes ``test`` reads up to (exclusive)."""
    op, a, b = test[:3]
    return {BYTE: a + 1, WORD: a + 2, AT_LEAST: a + 2, CAPTURED: 0, TRANSPORT: max(a + 1, b + PORTS),
            TUNNEL_PORT: a + PORTS, EQUAL16: a + 16}[op]


class Node:
    """One test of the decision tree: a frame passing it goes on to
    ``children`` (or is of class ``leaf``); the next sibling is tried by the
    frames that fail it or that none of its children took."""

    __slots__ = ("test", "children", "leaf", "reads")

    def __init__(self, test):
        self.test, self.children, self.leaf = test, [], -1
        self.reads = reads(test) if test else 0


def _tree():
    """Classes in order as a tree of tests: a class shares a node with the
    class before it while their tests agree, so shared prefixes are tested
    once and the first class whose tests all pass is the frame's."""
    root = Node(None)
    for cid, c in enumerate(CLASSES):
        level = root
        for depth, test in enumerate(c.tests):
            last = level.children[-1] if level.children else None
            if last is not None and last.test == test and last.leaf < 0 and depth < len(c.tests) - 1:
                level = last
                continue
            node = Node(test)
            level.children.append(node)
            level = node
        level.leaf = cid
        if any(t[0] != CAPTURED and reads(t) > _width_of(cid).size for t in c.tests):
            raise ValueError(f"frame class {c.name} tests bytes past its width")
    return root.children


def _width_of(cid):
    return next(w for w in WIDTHS if w.base <= cid < w.base + len(w.mask))


def _program(tree):
    """The tree in depth-first order as rows (op, a, b, c, d, e, leaf, fail): a
    frame passing row k is of class ``leaf`` (when >= 0) or goes on to row
    k + 1, its first child; failing, it goes to row ``fail``: the next
    sibling, or for a last child where its parent's failure goes (-1: no
    class). Every jump is forward, so any program of this shape ends."""
    rows = []

    def emit(nodes, inherited):
        for k, node in enumerate(nodes):
            at = len(rows)
            fail = at + _size(node) if k + 1 < len(nodes) else inherited
            rows.append([_signed(v) for v in node.test] + [node.leaf, fail])
            emit(node.children, fail)

    emit(tree, -1)
    return np.array(rows, np.int64)


def _signed(value):
    """A row value as int64 (EQUAL16's 64-bit masks and values, two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _size(node):
    return 1 + sum(_size(child) for child in node.children)


TREE = _tree()
PROGRAM = _program(TREE)
