"""Routes that change: what BMP routers report, and the one view of all
routes the path builder asks.

In:  ``LiveRib``: from the BMP sessions (bmp.py), peer up/down and each
     UPDATE's announced and withdrawn prefixes for a monitored RIB.
Out: ``lookup(addr, peer_address)`` as ``Rib.lookup`` answers it, and
     ``changes()``: the prefixes changed since the last call, so the
     pipeline re-judges the open flows they hold.

Only a router's choice decides: its Loc-RIB (RFC 9069) or the post-policy
Adj-RIB-In of a peer. Pre-policy and Adj-RIB-Out routes are counted by the
session and never stored. A peer that goes down takes its routes with it; a
router whose session ends takes all of its peers' (a reconnecting router
rebuilds its state from its new session, never merged with the old).

Prefixes are kept per peer in one dict per prefix length (network >> host
bits -> {path id: (path, next hop, time)}); a lookup tries the lengths
present, longest first. Fine for the routes a site's routers monitor; the
full-table scale is the MRT RIB's (rib.py). A lock guards the tables: the
listener threads write, the pipeline reads.

``Routes`` joins an MRT ``Rib`` and a ``LiveRib``: the longest prefix of
either, then the shorter AS path, the live one on a tie.
"""

import threading

from ..text import ip_text, iso_time
from . import aspath
from .mrt import masked
from .rib import Route

LOC_RIB, POST_POLICY = "loc-rib", "post-policy"


class LivePeer:
    """One monitored RIB of one router: a peer's post-policy Adj-RIB-In, or
    the router's Loc-RIB (``address`` the router's own, as BMP names it)."""

    source = "bmp"

    def __init__(self, index, router, address, asn, bgp_id, rib):
        self.index, self.router, self.address, self.asn, self.bgp_id = index, router, address, asn, bgp_id
        self.rib = rib                                # LOC_RIB or POST_POLICY
        self.tables = {4: {}, 16: {}}                 # size -> {plen: {net >> host bits: {path id: route}}}
        self.lengths = {4: [], 16: []}                # size -> the lengths present, longest first
        self.count = 0

    @property
    def name(self):
        return f"bmp {self.router.name}"

    @property
    def version(self):
        return f"{self.rib} since {iso_time(self.router.since)}"

    def evidence(self):
        return {"bmp_router": self.router.name, "rib": self.rib, "router_up_since": iso_time(self.router.since)}


class Router:
    """A BMP session's router: its address, sysName (Initiation) and start."""

    def __init__(self, address, since):
        self.address, self.since, self.sys_name = address, since, None

    @property
    def name(self):
        return f"{self.sys_name} ({ip_text(self.address)})" if self.sys_name else ip_text(self.address)


class LiveRib:
    searched = "bmp"

    def __init__(self):
        self.lock = threading.Lock()
        self.peers = []
        self._changed = []
        self._paths = {}                              # path -> itself: one tuple per distinct path

    def __len__(self):
        return sum(p.count for p in self.peers)

    def peer_up(self, router, address, asn, bgp_id, rib):
        with self.lock:
            peer = LivePeer(len(self.peers), router, address, asn, bgp_id, rib)
            self.peers.append(peer)
            return peer

    def peer_down(self, peer):
        """The peer's routes go (a changed prefix each), and the peer."""
        with self.lock:
            if peer not in self.peers:
                return
            for size, tables in peer.tables.items():
                for plen, table in tables.items():
                    shift = size * 8 - plen
                    self._changed.extend((size, net << shift, plen) for net in table)
            self.peers.remove(peer)
            for k, each in enumerate(self.peers):
                each.index = k

    def apply(self, peer, update, when):
        """An UPDATE's withdrawals, then its announcements, into ``peer``'s RIB."""
        with self.lock:
            path = self._paths.setdefault(update.path, update.path)
            for raw, plen, path_id in update.withdrawn:
                self._set(peer, raw, plen, path_id, None)
            for raw, plen, path_id in update.announced:
                self._set(peer, raw, plen, path_id, (path, update.next_hop, when))

    def _set(self, peer, raw, plen, path_id, route):
        size = len(raw)
        shift = size * 8 - plen
        net = int.from_bytes(raw, "big") >> shift
        tables = peer.tables[size]
        table = tables.get(plen)
        if table is None:
            if route is None:
                return
            table = tables[plen] = {}
            peer.lengths[size] = sorted(tables, reverse=True)
        held = table.get(net)
        key = path_id or 0
        if route is None:
            if held is None or held.pop(key, None) is None:
                return
            peer.count -= 1
            if not held:
                del table[net]
        else:
            if held is None:
                held = table[net] = {}
            if key not in held:
                peer.count += 1
            held[key] = route
        self._changed.append((size, net << shift, plen))

    def changes(self):
        """(size, network int, length) of every prefix changed since the last call."""
        with self.lock:
            out, self._changed = self._changed, []
        return out

    def may_hold(self, address):
        return True                                   # a router may bring the peer up at any time

    def peer_named(self, address):
        return next((p for p in self.peers if p.address == address), None)

    def view(self, peer_address=None):
        """Nothing to build: the tables are the view."""

    def lookup(self, addr, peer_address=None):
        size, value = len(addr), int.from_bytes(addr, "big")
        bits = size * 8
        best = None
        with self.lock:
            for peer in self.peers:
                if peer_address is not None and peer.address != peer_address:
                    continue
                tables = peer.tables[size]
                for plen in peer.lengths[size]:
                    if best is not None and plen < best[0][0]:
                        break
                    held = tables[plen].get(value >> (bits - plen))
                    if held:
                        for path_id, (path, hop, when) in held.items():
                            score = (plen, -aspath.length(path), -peer.index, -path_id)
                            if best is None or score > best[0]:
                                best = (score, peer, plen, path, hop, when)
                        break
        if best is None:
            return None
        _score, peer, plen, path, hop, when = best
        return Route(peer, masked(addr, plen), plen, path, int(when), hop, peer, _GIVEN)   # the path is its own id

    def describe(self):
        with self.lock:
            return [{"source": "bmp", "path": p.router.name, "version": f"{p.rib} of {ip_text(p.address)} AS{p.asn}",
                     "build_date": iso_time(p.router.since), "routes": p.count} for p in self.peers]


class _Given:
    """``Route`` asks its RIB for the path of a path id; a live route's id is its path."""

    @staticmethod
    def path(pid):
        return pid


_GIVEN = _Given()


class Routes:
    """An MRT ``Rib`` and a ``LiveRib`` (either may be None) as one."""

    def __init__(self, dumps=None, live=None):
        self.dumps, self.live = dumps, live
        self.changing = live is not None              # dumps change by a reload only, which re-judges all
        self.parts = [p for p in (live, dumps) if p is not None]
        self.searched = ", ".join(p.searched for p in self.parts)

    def __len__(self):
        return sum(len(p) for p in self.parts)

    @property
    def peers(self):
        return [peer for part in self.parts for peer in part.peers]

    def may_hold(self, address):
        return any(p.may_hold(address) for p in self.parts)

    def view(self, peer_address=None):
        for part in self.parts:
            part.view(peer_address)

    def lookup(self, addr, peer_address=None):
        best = None
        for part in self.parts:                       # the live one first: it wins a tie
            route = part.lookup(addr, peer_address)
            if route is not None and (best is None or (route.plen, -aspath.length(route.path))
                                      > (best.plen, -aspath.length(best.path))):
                best = route
        return best

    def changes(self):
        return [c for part in self.parts for c in part.changes()]

    def describe(self):
        return [entry for part in self.parts for entry in part.describe()]
