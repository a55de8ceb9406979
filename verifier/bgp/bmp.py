"""A BMP station (RFC 7854, Loc-RIB per RFC 9069): routers connect and
stream what their RIBs hold.

In:  TCP connections to ``--bmp HOST:PORT`` (FRR ``bgpd -M bmp``, gobgp
     ``[[bmp-servers]]``, Juniper/Cisco/Arista ``bmp`` stanzas).
Out: the ``LiveRib`` (live.py) kept as the routers report: Initiation names
     the router; Peer Up opens a monitored RIB (its OPEN messages say whether
     its routes carry 4-byte AS numbers and ADD-PATH path ids); Route
     Monitoring applies each UPDATE; Peer Down, and the end of the session,
     take the routes away. ``counts``: messages by (type, result).

Kept: Loc-RIB routes and post-policy Adj-RIB-In routes. Pre-policy routes
(what a peer offered, before the router's import policy) and Adj-RIB-Out
are not the router's choice for its own traffic: counted ``ignored``, never
stored. A malformed message is counted ``malformed`` and skipped (its length
says where the next starts); a damaged common header ends the session (the
stream cannot be resynchronised), and so its routes.
"""

import socket
import struct
import threading
import time

from .live import LOC_RIB, POST_POLICY, Router
from .mrt import Damaged
from . import aspath, update as bgp

ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, ROUTE_MIRRORING = range(7)
TYPE_NAMES = ("route-monitoring", "statistics", "peer-down", "peer-up", "initiation", "termination",
              "route-mirroring")
RESULTS = ("ok", "ignored", "malformed")
PEER_LOC_RIB = 3                       # per-peer header peer type (RFC 9069)
FLAG_V6, FLAG_POST_POLICY, FLAG_AS2, FLAG_ADJ_OUT = 0x80, 0x40, 0x20, 0x10
INFO_SYS_NAME = 2
_COMMON = struct.Struct(">BIB")        # version, length, type
_PER_PEER = struct.Struct(">BB8s16sI4sII")    # type, flags, distinguisher, address, AS, BGP id, seconds, microseconds
MAX_MESSAGE = 1 << 20


class Session:
    """One router's BMP session: bytes in (``feed``), the live RIB kept."""

    def __init__(self, rib, address, counts, clock=time.time):
        self.rib, self.counts = rib, counts
        self.router = Router(address, clock())
        self.peers = {}                # ((peer type, distinguisher, address), LOC_RIB | POST_POLICY) -> LivePeer
        self._addpath = {}             # (peer type, distinguisher, address) -> ADD-PATH families of its routes
        self._local_as = {}            # same key -> the monitored router's own AS on that session (Peer Up)
        self._buffer = b""
        self.closed = False

    def feed(self, data):
        """Take bytes of the stream; apply every whole message. False once
        the stream is beyond repair (the session should end)."""
        buf = self._buffer + data
        at = 0
        while len(buf) - at >= 6:
            version, length, kind = _COMMON.unpack_from(buf, at)
            if version != 3 or length < 6 or length > MAX_MESSAGE:
                self._count("other", "malformed")
                self._buffer = b""
                return False
            if len(buf) - at < length:
                break
            self._message(kind, buf[at + 6:at + length])
            at += length
        self._buffer = buf[at:]
        return True

    def close(self):
        """The session ended: every RIB it reported goes."""
        if not self.closed:
            self.closed = True
            for peer in self.peers.values():
                self.rib.peer_down(peer)
            self.peers.clear()

    def _count(self, kind, result):
        key = (kind, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def _message(self, kind, body):
        name = TYPE_NAMES[kind] if kind < len(TYPE_NAMES) else "other"
        try:
            if kind == INITIATION:
                self._initiation(body)
            elif kind in self._per_peer:
                handle = self._per_peer[kind]
                self._count(name, handle(self, _PER_PEER.unpack_from(body), body[_PER_PEER.size:]))
                return
            elif kind == TERMINATION:
                self.close()
            self._count(name, "ok" if kind in (INITIATION, TERMINATION) else "ignored")
        except (Damaged, struct.error, ValueError, IndexError):
            self._count(name, "malformed")

    def _initiation(self, body):
        at = 0
        while at + 4 <= len(body):
            kind, length = struct.unpack_from(">HH", body, at)
            if kind == INFO_SYS_NAME:
                self.router.sys_name = body[at + 4:at + 4 + length].decode("utf-8", "replace")
            at += 4 + length

    @staticmethod
    def _key(header):
        """A peer as BMP names it: peer type, distinguisher, address."""
        return header[0], header[2], header[3]

    @staticmethod
    def _kept(header):
        """LOC_RIB, POST_POLICY, or None for a RIB that is not the router's choice."""
        ptype, flags = header[0], header[1]
        if ptype == PEER_LOC_RIB:
            return LOC_RIB
        if flags & FLAG_POST_POLICY and not flags & FLAG_ADJ_OUT:
            return POST_POLICY
        return None

    def _address(self, header):
        ptype, flags, _d, address = header[:4]
        if ptype == PEER_LOC_RIB:
            return self.router.address            # the router's own RIB: named by the router
        return address if flags & FLAG_V6 else address[12:]

    def _drop(self, key):
        """Every RIB kept of the peer ``key`` goes."""
        for rib_key in [k for k in self.peers if k[0] == key]:
            self.rib.peer_down(self.peers.pop(rib_key))

    def _peer_up(self, header, rest):
        """A peer's session is up (one Peer Up for its pre- and post-policy
        RIBs): its OPENs say whether its routes carry path ids."""
        _kind, sent, end = bgp.message(rest, 20)       # local address, local port, remote port first
        _kind, received, _end = bgp.message(rest, end)
        local_as, sent_caps = bgp.open_capabilities(sent)
        _peer_as, received_caps = bgp.open_capabilities(received)
        key = self._key(header)
        self._drop(key)                                # up again without a down: start afresh
        self._addpath[key] = bgp.addpath_families(sent_caps, received_caps)
        self._local_as[key] = local_as
        return "ok"

    def _peer_down(self, header, _rest):
        key = self._key(header)
        known = self._addpath.pop(key, None) is not None or any(k[0] == key for k in self.peers)
        self._drop(key)
        return "ok" if known else "ignored"

    def _route_monitoring(self, header, rest):
        kept = self._kept(header)
        if kept is None:
            return "ignored"
        key = self._key(header)
        peer = self.peers.get((key, kept))
        if peer is None:                               # its first route: the RIB opens
            peer = self.peers[(key, kept)] = self.rib.peer_up(self.router, self._address(header), header[4],
                                                              header[5], kept)
        kind, body, _end = bgp.message(rest)
        if kind != bgp.UPDATE:
            return "ignored"
        as_size = 2 if header[1] & FLAG_AS2 and header[0] != PEER_LOC_RIB else 4
        routes = bgp.parse_update(body, as_size, self._addpath.get(key, frozenset()))
        local_as = self._local_as.get(key)
        if kept == POST_POLICY and local_as is not None and local_as != header[4]:
            routes.path = _received(routes.path, local_as)
        self.rib.apply(peer, routes, header[6] + header[7] / 1e6 or time.time())
        return "ok"


def _received(path, local_as):
    """An eBGP peer's route as it was received: its path starts with the
    peer's AS, never with ours. FRR before 10.x (Debian 12's 8.4) builds BMP
    route monitoring with its outbound encoder and puts its own AS in front
    (FRR pull request 21815); that AS is not a carrier toward the remote end
    and is taken off again."""
    if path and path[0][0] == aspath.AS_SEQUENCE and path[0][1] and path[0][1][0] == local_as:
        rest = path[0][1][1:]
        return ((aspath.AS_SEQUENCE, rest),) + path[1:] if rest else path[1:]
    return path


Session._per_peer = {ROUTE_MONITORING: Session._route_monitoring, PEER_UP: Session._peer_up,
                     PEER_DOWN: Session._peer_down}      # the messages after a per-peer header


class Listener:
    """Accepts BMP sessions on (host, port); a thread per router."""

    def __init__(self, host, port, rib, log=print, tap=None):
        self.rib, self.log = rib, log
        self.tap = tap                  # callable(session, bytes) shown every byte read (tests keep the stream)
        self.counts = {}                # (message type, result) -> messages
        self.sessions = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.address = self.sock.getsockname()[:2]
        self._closing = False
        self._thread = threading.Thread(target=self._accept, name="bmp-listener", daemon=True)
        self._thread.start()

    @property
    def peers_up(self):
        return sum(len(s.peers) for s in list(self.sessions) if not s.closed)

    def _accept(self):
        while not self._closing:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            session = Session(self.rib, socket.inet_pton(conn.family, addr[0]), self.counts)
            self.sessions.append(session)
            self.log(f"BMP session from {addr[0]}")
            threading.Thread(target=self._serve, args=(conn, session), name="bmp-session", daemon=True).start()

    def _serve(self, conn, session):
        try:
            with conn:
                while not self._closing:
                    data = conn.recv(1 << 16)
                    if data and self.tap is not None:
                        self.tap(session, data)
                    if not data or not session.feed(data):
                        break
        except OSError:
            pass
        finally:
            session.close()
            self.sessions.remove(session)
            self.log(f"BMP session from {session.router.name} ended: its routes are withdrawn")

    def close(self):
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
