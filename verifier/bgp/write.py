"""Write MRT RIB dumps: the shipped demo's table, the benchmark's full
table and the tests' edge cases (AS_SET, AS4_PATH, legacy TABLE_DUMP,
damaged records). The tests hold what this writes to Debian's ``bgpdump``,
and hold our reader to dumps BIRD writes, so neither side checks itself.

    with MrtWriter(path, peers=[(b"\\xc0\\x00\\x02\\x01", 64500)], when=ts) as out:
        out.rib(prefix_bytes, plen, [(peer_index, path, next_hop)])
"""

import struct

from ..craft import FileWriter
from . import aspath
from .mrt import (ATTR_AS4_PATH, ATTR_AS_PATH, ATTR_EXTENDED, ATTR_MP_REACH, ATTR_NEXT_HOP, ATTR_ORIGIN,
                  HEADER, PEER_INDEX_TABLE, RIB_IPV4_UNICAST, RIB_IPV4_UNICAST_ADDPATH, RIB_IPV6_UNICAST,
                  RIB_IPV6_UNICAST_ADDPATH, TABLE_DUMP, TABLE_DUMP_V2, TD_AFI_IPV4, TD_AFI_IPV6)

TRANSITIVE = 0x40
OPTIONAL_TRANSITIVE = 0xC0


def attribute(code, value, flags=TRANSITIVE):
    if len(value) > 255:
        return struct.pack(">BBH", flags | ATTR_EXTENDED, code, len(value)) + value
    return struct.pack(">BBB", flags, code, len(value)) + value


def attributes(path, next_hop, size=4, as4_path=None, origin=0):
    """An attribute block: ORIGIN, AS_PATH with ``size``-byte numbers (and
    AS4_PATH when given), NEXT_HOP (IPv4) or abbreviated MP_REACH (IPv6)."""
    out = attribute(ATTR_ORIGIN, bytes((origin,)))
    out += attribute(ATTR_AS_PATH, _segments(path, size))
    if as4_path is not None:
        out += attribute(ATTR_AS4_PATH, _segments(as4_path, 4), OPTIONAL_TRANSITIVE)
    if len(next_hop) == 4:
        out += attribute(ATTR_NEXT_HOP, next_hop)
    else:
        out += attribute(ATTR_MP_REACH, bytes((len(next_hop),)) + next_hop, 0x80)
    return out


def _segments(path, size):
    if size == 4:
        return aspath.encode(path)
    out = b""
    for kind, numbers in path:
        out += bytes((kind, len(numbers))) + struct.pack(">%dH" % len(numbers), *numbers)
    return out


class MrtWriter(FileWriter):
    """A TABLE_DUMP_V2 file (PEER_INDEX_TABLE first), or legacy TABLE_DUMP
    records through ``legacy``."""

    def __init__(self, path, peers=(), when=0, view=b"", bgp_id=b"\xc0\x00\x02\xfe"):
        self.fh = open(path, "wb")
        self.when, self.seq = int(when), 0
        self.peers = list(peers)
        if self.peers:
            body = bgp_id + struct.pack(">H", len(view)) + view + struct.pack(">H", len(self.peers))
            for address, asn in self.peers:
                kind = (1 if len(address) == 16 else 0) | 2
                body += bytes((kind,)) + bgp_id + address + struct.pack(">I", asn)
            self.record(TABLE_DUMP_V2, PEER_INDEX_TABLE, body)

    def record(self, kind, subtype, body):
        self.fh.write(HEADER.pack(self.when, kind, subtype, len(body)) + body)

    def rib(self, prefix, plen, entries, addpath=False, originated=None):
        """One RIB record: ``entries`` are (peer index, path, next hop[, path id][, attribute block])."""
        v6 = len(prefix) == 16
        subtype = (RIB_IPV6_UNICAST_ADDPATH if addpath else RIB_IPV6_UNICAST) if v6 else \
            (RIB_IPV4_UNICAST_ADDPATH if addpath else RIB_IPV4_UNICAST)
        body = struct.pack(">IB", self.seq, plen) + prefix[:(plen + 7) // 8] + struct.pack(">H", len(entries))
        for item in entries:
            index, path, next_hop = item[:3]
            block = item[4] if len(item) > 4 else attributes(path, next_hop)
            body += struct.pack(">HI", index, self.when if originated is None else originated)
            if addpath:
                body += struct.pack(">I", item[3])
            body += struct.pack(">H", len(block)) + block
        self.seq += 1
        self.record(TABLE_DUMP_V2, subtype, body)

    def legacy(self, prefix, plen, peer_address, peer_as, path, next_hop, as4_path=None):
        """One legacy TABLE_DUMP record: 2-byte AS numbers (AS_TRANS where a
        number does not fit, the real ones in AS4_PATH)."""
        afi = TD_AFI_IPV6 if len(prefix) == 16 else TD_AFI_IPV4
        block = attributes(path, next_hop, 2, as4_path)
        body = struct.pack(">HH", 0, self.seq & 0xFFFF) + prefix + struct.pack(">BBI", plen, 1, self.when)
        body += peer_address + struct.pack(">HH", peer_as, len(block)) + block
        self.seq += 1
        self.record(TABLE_DUMP, afi, body)
