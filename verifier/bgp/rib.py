"""A RIB loaded from MRT dumps, answering longest-prefix matches.

In:  ``Rib.load(paths)``: MRT files (mrt.py), each a dump of one router's
     routes toward one or more peers.
Out: ``lookup(addr, peer=None)`` -> the selected ``Route`` for 4 or 16
     address bytes (or None): peer, prefix, AS path, originated time, next
     hop, the dump it came from.

Which route: the longest prefix that holds the address; among the routes
for that prefix (several peers, or ADD-PATH paths of one), the shortest AS
path (RFC 4271's length), then the lowest peer index, then the lowest path
id. A dump carries no LOCAL_PREF decision of the router's for another
peer's routes, so this is the tie-break a reader of a collector's dump can
make; ``peer=`` restricts the choice to one peer (the policy's ``bgp.peer``).

Layout (issue 20's scale: a million IPv4 and 250,000 IPv6 prefixes, two
peers, in well under 150 MiB): columns in ``array.array``s, a prefix row
(network, length, first route: 9 bytes for IPv4) per RIB record and a route
row (peer, path, originated time, next hop: 16 bytes) per peer's route, so
a second peer adds its route rows only; AS paths are interned by their
4-byte wire encoding (a dump's attribute blocks are decoded once each
through a bounded cache) and decoded again only when a lookup returns them.
Each view (best over all peers, or one peer) is chosen with one numpy sort
and flattened into sorted interval starts with the route of each interval,
so a lookup is one ``bisect`` over an array (IPv6: over the top 64 bits,
with the rare prefixes longer than /64 in small per-/64 tables).
"""

import array
import bisect
import ctypes
import os

import numpy as np

from ..errors import DataError
from ..text import ip_text, iso_time
from . import aspath
from .mrt import Damaged, MrtReader, decode_attributes, masked

_NONE = -1
_LOW64 = (1 << 64) - 1
_UNWANTED = np.uint64((1 << 64) - 1)   # the score of a route of a peer not chosen
_DECODED = 4096                     # decoded paths kept (a lookup's path is decoded once)
_BLOCKS = 1 << 16                   # attribute blocks remembered while loading
_CHUNK = 1 << 16                    # prefixes flattened per step (bounds the temporary lists)


class Route:
    """The selected route for an address. Its AS path is decoded when first
    read (``path``); ``path_id`` names it without decoding."""

    __slots__ = ("peer", "prefix", "plen", "path_id", "originated", "next_hop", "feed", "_rib")

    def __init__(self, peer, prefix, plen, path_id, originated, next_hop, feed, rib):
        self.peer, self.prefix, self.plen, self.path_id = peer, prefix, plen, path_id
        self.originated, self.next_hop, self.feed, self._rib = originated, next_hop, feed, rib

    @property
    def path(self):
        return self._rib.path(self.path_id)

    @property
    def prefix_text(self):
        return f"{ip_text(self.prefix)}/{self.plen}"

    def describe(self):
        """The route as evidence: peer, prefix, whole AS path, age, where it
        came from: its ``feed``, the dump or the BMP router's RIB)."""
        return {"peer": f"{ip_text(self.peer.address)} AS{self.peer.asn}", "prefix": self.prefix_text,
                "as_path": aspath.text(self.path), "next_hop": ip_text(self.next_hop) if self.next_hop else None,
                "route_originated": iso_time(self.originated), **self.feed.evidence(),
                "direction": "toward the remote end; the return path is not observed"}


class Dump:
    """One loaded MRT file: its name, newest record time, and what was left
    out. Every feed of routes (this, a BMP router's RIB) names its
    ``source``, ``name`` and ``version`` for evidence, and ``evidence()``."""

    source = "mrt"

    @property
    def version(self):
        return f"dumped {iso_time(self.dumped)}"

    def evidence(self):
        return {"dump": self.name, "dumped_at": iso_time(self.dumped)}

    __slots__ = ("path", "name", "dumped", "routes", "damaged", "peers")

    def __init__(self, path, dumped, routes, damaged):
        self.path, self.name, self.dumped, self.routes = path, os.path.basename(path), dumped, routes
        self.damaged, self.peers = damaged, []


class RibPeer:
    __slots__ = ("index", "address", "asn", "dump")

    def __init__(self, index, address, asn, dump):
        self.index, self.address, self.asn, self.dump = index, address, asn, dump


class _Family:
    """The prefix rows of one address family and their route rows."""

    def __init__(self, size):
        self.size = size
        self.nets = array.array("I" if size == 4 else "Q")   # IPv4: the address; IPv6: its top 64 bits
        self.lows = array.array("Q") if size == 16 else None
        self.plens = array.array("B")
        self.firsts = array.array("I")        # prefix row -> its first route row (rows are in order)
        self.peers = array.array("H")         # route row -> peer index
        self.paths = array.array("I")         # route row -> path id
        self.times = array.array("I")         # route row -> originated time
        self.hops = array.array("I")          # route row -> next hop id
        self.path_ids = {}                    # route row -> ADD-PATH path id, where not 0


class Rib:
    """Routes of one or more MRT dumps; see the module docstring."""

    searched = "mrt"

    def __init__(self):
        self.dumps = []
        self.peers = []
        self._paths = {}                      # 4-byte AS_PATH encoding -> path id
        self._raw = []                        # path id -> that encoding
        self._lengths = array.array("H")      # path id -> its length for route selection
        self._decoded = {}
        self._hops = {None: 0}                # next hop bytes -> id
        self._hop_list = [None]
        self._families = {4: _Family(4), 16: _Family(16)}
        self._views = {}                      # (size, peer or None) -> (starts, routes, long prefixes)

    @classmethod
    def load(cls, paths):
        rib = cls()
        for path in paths:
            rib.add_dump(path)
        return rib

    def __len__(self):
        return sum(len(f.peers) for f in self._families.values())

    # --- loading ----------------------------------------------------------

    def add_dump(self, path):
        """Load one MRT file's routes (its damaged records counted, not loaded)."""
        reader = MrtReader(path)
        count = 0
        peers = {}                            # the reader's peer -> ours
        blocks = {}                           # attribute block -> (path id, next hop id)
        for prefix, plen, size, routes in reader.prefixes():
            try:
                rows = [(peers.get(peer) or self._peer(peers, reader, peer, path), originated, path_id,
                         blocks.get(block) or self._block(blocks, block, size))
                        for peer, originated, path_id, block in routes]
            except (Damaged, aspath.PathError) as exc:
                reader.damaged[str(exc)] = reader.damaged.get(str(exc), 0) + 1
                continue
            if not rows:                      # a record of no routes: no prefix row (each row holds one at least)
                continue
            fam = self._families[len(prefix)]
            if fam.size == 4:
                fam.nets.append(int.from_bytes(prefix, "big"))
            else:
                fam.nets.append(int.from_bytes(prefix[:8], "big"))
                fam.lows.append(int.from_bytes(prefix[8:], "big"))
            fam.plens.append(plen)
            fam.firsts.append(len(fam.peers))
            for peer, originated, path_id, (pid, hid) in rows:
                if path_id:
                    fam.path_ids[len(fam.peers)] = path_id
                fam.peers.append(peer.index)
                fam.paths.append(pid)
                fam.times.append(originated)
                fam.hops.append(hid)
            count += len(rows)
        dump = Dump(path, reader.dumped, count, dict(reader.damaged))
        dump.peers = sorted(peers.values(), key=lambda p: p.index)
        for peer in dump.peers:
            peer.dump = dump
        self.dumps.append(dump)
        self._views.clear()
        return dump

    def _peer(self, peers, reader, mrt_peer, path):
        """Ours for a peer of the dump: made for the dump's peers up to it
        at once, so our indexes keep the dump's order (selection ties go to
        the lower one)."""
        for each in reader.peers:
            if each not in peers:
                if len(self.peers) >= 65535:
                    raise DataError(f"{path}: more than 65,535 BGP peers")
                peers[each] = RibPeer(len(self.peers), each.address, each.asn, None)
                self.peers.append(peers[each])
            if each is mrt_peer:
                break
        return peers[mrt_peer]

    def _block(self, blocks, block, size):
        """(path id, next hop id) of an attribute block seen for the first time."""
        path, raw, next_hop, _origin = decode_attributes(block, size)
        pid = self._paths.get(raw)
        if pid is None:
            pid = self._paths[raw] = len(self._raw)
            self._raw.append(raw)
            self._lengths.append(min(aspath.length(path), 65535))
        hid = self._hops.get(next_hop)
        if hid is None:
            hid = self._hops[next_hop] = len(self._hop_list)
            self._hop_list.append(next_hop)
        if len(blocks) >= _BLOCKS:
            blocks.clear()
        found = blocks[block] = (pid, hid)
        return found

    # --- lookups ----------------------------------------------------------

    def view(self, peer_address=None):
        """Build (once) the tables ``lookup`` reads for a peer choice: done
        when a path builder is made (start-up, reload), never mid-traffic."""
        peer = self.peer_named(peer_address) if peer_address is not None else None
        if peer_address is not None and peer is None:
            return
        for size in (4, 16):
            if (size, peer) not in self._views:
                self._views[(size, peer)] = self._build_view(size, peer)
        _trim()

    def lookup(self, addr, peer_address=None):
        """The selected route for ``addr`` (4 or 16 bytes), or None;
        ``peer_address``: the peer whose routes alone are chosen from (none
        when the dumps hold no such peer)."""
        size = len(addr)
        peer = None
        if peer_address is not None:
            peer = self.peer_named(peer_address)
            if peer is None:
                return None
        view = self._views.get((size, peer))
        if view is None:
            view = self._views[(size, peer)] = self._build_view(size, peer)
        starts, routes, plens, long_prefixes = view
        value = int.from_bytes(addr, "big")
        if size == 4:
            key = value
        else:
            key = value >> 64
            sub = long_prefixes.get(key)
            if sub is not None:
                at = bisect.bisect_right(sub[0], value & _LOW64) - 1
                if at >= 0 and sub[1][at] != _NONE:
                    return self._route(addr, sub[1][at], sub[2][at] + 64)
        at = bisect.bisect_right(starts, key) - 1
        if at < 0 or routes[at] == _NONE:
            return None
        return self._route(addr, routes[at], plens[at])

    def peer_named(self, address):
        """The first peer with ``address`` (bytes), or None."""
        return next((p for p in self.peers if p.address == address), None)

    def may_hold(self, address):
        """Whether routes of the peer at ``address`` are (or may come) here."""
        return self.peer_named(address) is not None

    def changes(self):
        """What changed since the last call: nothing, a dump never changes
        (a new one is a reload)."""
        return ()

    def _route(self, addr, route, plen):
        fam = self._families[len(addr)]
        peer = self.peers[fam.peers[route]]
        return Route(peer, masked(addr, plen), plen, fam.paths[route], fam.times[route], self._hop_list[fam.hops[route]],
                     peer.dump, self)

    def path(self, pid):
        """The decoded AS path of path id ``pid`` (a bounded cache of them)."""
        path = self._decoded.get(pid)
        if path is None:
            if len(self._decoded) >= _DECODED:
                self._decoded.clear()
            path = self._decoded[pid] = aspath.decode(self._raw[pid], 4)
        return path

    def _build_view(self, size, peer):
        """Interval tables for one family and peer choice. Each prefix row's
        best route first (a pass per route slot: rows hold a few routes),
        then the rows sorted by (prefix, that route's score) and the first
        of each prefix kept, then flattened. Scores order routes as the
        module docstring says: (path length, peer, path id) in one uint64."""
        fam = self._families[size]
        nrows, nroutes = len(fam.plens), len(fam.peers)
        empty = (array.array("I" if size == 4 else "Q"), array.array("i"), array.array("B"), {})
        if not nrows:
            return empty
        firsts = np.frombuffer(fam.firsts, np.uint32).astype(np.int64)
        counts = np.diff(np.append(firsts, nroutes))
        peers = np.frombuffer(fam.peers, np.uint16)
        score = np.frombuffer(self._lengths, np.uint16)[np.frombuffer(fam.paths, np.uint32)].astype(np.uint64) << 48
        score |= peers.astype(np.uint64) << 32
        for route, path_id in fam.path_ids.items():
            score[route] |= path_id
        if peer is not None:
            score[peers != peer.index] = _UNWANTED
        best = firsts.copy()
        best_score = score[firsts]
        for k in range(1, int(counts.max())):
            rows = np.flatnonzero(counts > k)
            candidate = firsts[rows] + k
            better = score[candidate] < best_score[rows]
            best[rows[better]] = candidate[better]
            best_score[rows[better]] = score[candidate[better]]
        del score
        wanted = np.flatnonzero(best_score != _UNWANTED)
        nets = np.frombuffer(fam.nets, np.uint32 if size == 4 else np.uint64)[wanted]
        lows = np.frombuffer(fam.lows, np.uint64)[wanted] if size == 16 else None
        plens = np.frombuffer(fam.plens, np.uint8)[wanted]
        keys = (best_score[wanted], plens, lows, nets) if size == 16 else (best_score[wanted], plens, nets)
        order = np.lexsort(keys)
        del keys
        nets, plens, chosen = nets[order], plens[order], best[wanted][order]
        lows = lows[order] if lows is not None else None
        first = np.ones(len(order), bool)
        first[1:] = (nets[1:] != nets[:-1]) | (plens[1:] != plens[:-1])
        if lows is not None:
            first[1:] |= lows[1:] != lows[:-1]
        nets, plens, chosen = nets[first], plens[first], chosen[first]
        if size == 4:
            return (*_flatten(nets, plens, chosen, 32, "I"), {})
        lows = lows[first]
        short = plens <= 64
        starts, routes, lengths = _flatten(nets[short], plens[short], chosen[short], 64, "Q")
        long_prefixes = {}
        rest = np.flatnonzero(~short)
        for hi in np.unique(nets[rest]).tolist():
            mine = rest[nets[rest] == hi]
            long_prefixes[hi] = _flatten(lows[mine], plens[mine] - 64, chosen[mine], 64, "Q")
        return starts, routes, lengths, long_prefixes

    def describe(self):
        """One data-source entry per dump (as the certificate lists its
        databases): path, what it held, when it was dumped."""
        return [{"source": "mrt", "path": d.path, "version": f"{d.routes} routes from {len(d.peers)} peer(s)",
                 "build_date": iso_time(d.dumped), "routes": d.routes,
                 "peers": [f"{ip_text(p.address)} AS{p.asn}" for p in d.peers],
                 "damaged_records": dict(sorted(d.damaged.items()))} for d in self.dumps]


def _flatten(nets, plens, routes, bits, code):
    """Sorted interval starts (``array(code)``), the route of each interval
    (``array('i')``, -1: none) and its prefix length (``array('B')``) for
    prefixes sorted by (network, length) over a ``bits``-wide space: a
    longest-prefix match becomes one bisect. A stack holds the prefixes that
    contain the current point."""
    starts, values, lengths = array.array(code), array.array("i"), array.array("B")
    top = 1 << bits
    stack = []                                 # (end, route, length)

    def mark(at, route, plen):
        if at >= top:
            return
        if starts and starts[-1] == at:
            values[-1], lengths[-1] = route, plen
        elif not values or values[-1] != route:
            starts.append(at)
            values.append(route)
            lengths.append(plen)

    for begin in range(0, len(nets), _CHUNK):
        piece = slice(begin, begin + _CHUNK)
        for net, plen, route in zip(nets[piece].tolist(), plens[piece].tolist(), routes[piece].tolist()):
            while stack and stack[-1][0] <= net:
                end = stack.pop()[0]
                mark(end, *(stack[-1][1:] if stack else (_NONE, 0)))
            mark(net, route, plen)
            stack.append((net + (1 << (bits - plen)), route, plen))
    while stack:
        end = stack.pop()[0]
        mark(end, *(stack[-1][1:] if stack else (_NONE, 0)))
    return starts, values, lengths


def _trim():
    """Give the kernel back the heap the view's temporaries used (glibc;
    elsewhere nothing): a full table's sort needs ~100 MiB for a moment."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
