"""Bounded bidirectional flow table.

In:  decoded ``Packet`` records with their timestamp, interface and wire length.
Out: ``Flow`` records handed to ``on_expire(flow)`` when they end: idle or
     active timeout, capacity pressure, or shutdown/end of input.

Key: (interface, VLAN, inner VLAN, protocol, lower endpoint, higher endpoint),
packed in one bytes object (``model.flow_key``),
so both directions share one flow. IPv4/IPv6 fragments after the first join
the flow of their first fragment; an ICMP error joins the flow it quotes and
records the router that sent it.

Invariants: at most ``capacity`` flows are held; every flow that leaves the
table is counted in ``evictions`` by reason. Expiry is ``sweep(now)``, run as
often as the caller decides (the pipeline: every few seconds of capture
time), not a per-packet LRU update: per-packet cost stays one dict lookup.
A sweep looks only at the flows that could be due by now (deadlines.py:
flows listed by a lower bound on their end, listed again when found not
due), so its cost follows what ends, not the table's size; flows a sweep
ends leave in the order they were opened. ``_shed`` (over capacity) ends
the least recently seen tenth found by a partition of the last times in
numpy: O(table), without a sort of it, once per tenth of the table
admitted, so constant per flow. Timestamps come
from the packets, so timeout tests need no sleeping.

``fast`` (a ``FastCounters``: the pipeline's direction indexes,
engine/directions.py) holds the counters the fast path adds to without
decoding (per flow, or per direction of a tunnelled one); this module does
not know how. A flow's entries
are folded into it and released when it ends (``fast.release``); their last
timestamps are carried into the flows before each scan (``fast.publish``).
"""

from collections import OrderedDict
from operator import itemgetter
from typing import Protocol

import numpy as np

from .deadlines import Deadlines
from .model import Flow, MacSets, flow_key

IDLE, ACTIVE, CAPACITY, SHUTDOWN = "idle", "active", "capacity", "shutdown"
EVICTION_REASONS = (IDLE, ACTIVE, CAPACITY, SHUTDOWN)
MAX_FRAGMENTS = 65536
STALE_SLACK = 4096            # entries of ended flows the deadlines may hold beyond a quarter of the table
FRAGMENT_WAIT = 30.0          # seconds a later fragment waits for its first fragment


class FastCounters(Protocol):
    """What counts packets of flows outside the table (the pipeline's
    direction indexes, engine/directions.Directions) and how the table keeps
    them right: a flow whose ``entries`` is set has counts there."""

    def refresh(self, flow):
        """``flow.last`` brought up to what the counters saw."""

    def release(self, flow):
        """The counters folded into ``flow`` and freed; ``flow.entries`` None."""

    def publish(self):
        """Every counted flow's ``last`` brought up to date."""

    def settle_all(self):
        """Every counter folded into its flow and freed."""


class FlowTable:
    """The contract the engine relies on: ``flows`` (key -> Flow, the
    lookup), ``renew(flow or None, key, side, ts)`` (the live flow for a key,
    a new one when none or idle; may end flows), ``idle`` (seconds),
    ``capacity`` (flows held at most), ``mac_sets``, ``created`` (a flow
    added to ``flows`` other than through ``renew`` is appended to it, in
    the same order), and ``on_expire(flow)``, the end hook every flow
    leaving the table passes through once."""

    def __init__(self, on_expire, idle_timeout=300.0, active_timeout=1800.0, capacity=500_000,
                 fast: FastCounters = None):
        self.on_expire = on_expire
        self.idle = float(idle_timeout)
        self.active = float(active_timeout)
        self.capacity = int(capacity)
        self.flows = {}
        self.fast = fast                 # FastCounters, or None: every packet comes through add()
        self.frags = OrderedDict()       # (src, dst, proto, id) -> flow key; bounded
        self.pending = OrderedDict()     # (src, dst, proto, id) -> [(ts, ifindex, wirelen, pkt)]: first fragment unseen
        self.evictions = dict.fromkeys(EVICTION_REASONS, 0)
        self.mac_sets = MacSets()        # the MACs and frozensets flows' ``macs`` share
        self.created = []                # flows opened since the last look, in order: _prune lists them
        self.deadlines = Deadlines()     # the flows opened before, by when they could end (deadlines.py)
        self._backdated = False          # a flow's first time moved back past its listed bound: list anew

    def __len__(self):
        return len(self.flows)

    def add(self, pkt, ts, ifindex, wirelen):
        """Account one IP packet; return (flow, side)."""
        if pkt.quote is not None:
            hit = self._quoted_flow(pkt, ifindex)
            if hit is not None:
                hit.icmp_errors += 1
                if hit.hops is None:
                    hit.hops = set()
                hit.hops.add(pkt.src)
                if ts > hit.last:
                    hit.last = ts
                return hit, -1
        if pkt.frag_offset:
            fkey = (pkt.src, pkt.dst, pkt.proto, pkt.frag_id)
            key = self.frags.get(fkey)
            flow = self.flows.get(key) if key is not None else None
            if flow is not None:
                side = 0 if flow.a == pkt.src else 1
                self._count(flow, side, ts, wirelen, pkt)
                return flow, side
            # The first fragment (with the ports) has not arrived yet: hold this
            # one until it does, or until FRAGMENT_WAIT ends it as a port-less flow.
            self.pending.setdefault(fkey, []).append((ts, ifindex, wirelen, pkt))
            if len(self.pending) > MAX_FRAGMENTS:
                self._release(*self.pending.popitem(last=False))
            return None, -1
        return self._account(pkt, ts, ifindex, wirelen)

    def _account(self, pkt, ts, ifindex, wirelen):
        src, dst, sport, dport = pkt.src, pkt.dst, pkt.sport, pkt.dport
        flow, side, key = self._flow_for(ifindex, pkt.vlan, pkt.vlan2, pkt.proto, src, sport, dst, dport, ts)
        self._count(flow, side, ts, wirelen, pkt)
        if pkt.frag_id >= 0 and not pkt.frag_offset:
            fkey = (src, dst, pkt.proto, pkt.frag_id)
            self._remember_fragment(fkey, key)
            for _ts, _ifx, wlen, frag in self.pending.pop(fkey, ()):
                self._count(flow, side, _ts, wlen, frag)
        return flow, side

    def add_record(self, record, ifindex):
        """Account one flow-export record (export/records.FlowRecord, one
        direction as its exporter counted it); return (flow, side).

        Keyed as a packet of that direction on capture interface ``ifindex``
        (the pipeline's flow-export interface) and the record's VLAN, so the
        two directions' records join one flow, and the records of one flow
        from several exporters too (when they report the same VLAN, or none).
        Counters, scaled by the record's sampling, come from the first
        exporter that reported the flow: two routers on one path count the
        same packets, and adding them would double the flow. Every
        exporter's latest record per side stays in ``flow.exports`` (the
        path builder makes its router hops from them)."""
        vlan = record.vlan if record.vlan is not None else -1
        first = record.first if record.first is not None else record.last
        flow, side, _key = self._flow_for(ifindex, vlan, -1, record.proto, record.src, record.sport, record.dst,
                                          record.dport, first)
        held = flow.exports
        if held is None:
            held = flow.exports = {}
        seen = (record.protocol, record.exporter, record.domain)
        sides = held.get(seen)
        if sides is None:
            sides = held[seen] = [None, None]
        sides[side] = record
        if seen == next(iter(held)):
            flow.count(side, record.packets * record.sampling, record.octets * record.sampling)
        if first < flow.first:
            flow.first = first                   # records arrive when their exporter ends them, not in order
            # Its listed bound stays one while the idle timeout comes first; else the next sweep lists anew.
            self._backdated = self._backdated or first + self.active < flow.last + self.idle
        if record.last > flow.last:
            flow.last = record.last
        self._learn(flow, side, record.src_mac, record.dst_mac, record.tunnels)
        return flow, side

    def add_directions(self, items):
        """Account the fast path's new directions, ``count`` packets each, in
        order: ``items`` yields (ifindex, fields, first_ts, last_ts, count,
        octets), ``fields`` as ``split.fields_from_key`` gives them. Returns
        their (flow, side) owners.

        The same steps as ``_flow_for`` and ``_count`` in one loop: a flow
        found live costs a dict lookup and a few additions. Fast-path frames
        are Ethernet, so both MACs are always there. The compiled module's
        ``open_directions`` (verifier/engine/_fastpath.c, through
        ``split.open_directions``) takes these steps when it is built; this
        loop is the reference tests hold it to."""
        flows, idle = self.flows, self.idle
        owners = []
        for ifindex, fields, first_ts, last_ts, count, octets in items:
            vlan, proto, src, sport, dst, dport, src_mac, dst_mac, tunnels = fields
            key, side = keyed(ifindex, vlan, -1, proto, src, sport, dst, dport)
            flow = flows.get(key)
            if flow is None or first_ts - flow.last > idle:
                flow = self.renew(flow, key, side, first_ts)
            flow.count(side, count, octets)
            if last_ts > flow.last:
                flow.last = last_ts
            self._learn(flow, side, src_mac, dst_mac, tunnels)
            owners.append((flow, side))
        return owners

    def _flow_for(self, ifindex, vlan, vlan2, proto, src, sport, dst, dport, ts):
        """(flow, side, key) for a packet from src to dst at ``ts``: the live
        flow, or a new one when there is none or it has been idle too long."""
        key, side = keyed(ifindex, vlan, vlan2, proto, src, sport, dst, dport)
        flow = self.flows.get(key)
        if flow is None or ts - flow.last > self.idle:
            flow = self.renew(flow, key, side, ts)
        return flow, side, key

    def renew(self, flow, key, side, ts):
        """The flow for ``key`` at ``ts`` when the table holds none (``flow``
        None) or one that looks idle: that one if the fast path saw it since,
        else a new flow (the idle one ends)."""
        if flow is not None:
            if flow.entries is not None:            # the fast path may have seen it since
                self.fast.refresh(flow)
            if ts - flow.last <= self.idle:
                return flow
            self._end(flow, IDLE)
        flow = self.flows[key] = Flow(key, ts)
        flow.origin = side
        self.created.append(flow)
        if len(self.flows) > self.capacity:
            self._shed()
        return flow

    def _release(self, fkey, items):
        """Account held fragments whose first fragment never came, port-less."""
        for ts, ifindex, wirelen, pkt in items:
            self._account(pkt, ts, ifindex, wirelen)

    def _count(self, flow, side, ts, wirelen, pkt):
        flow.count(side, 1, wirelen)
        if ts > flow.last:
            flow.last = ts
        self._learn(flow, side, pkt.src_mac, pkt.dst_mac, pkt.tunnels)

    def _learn(self, flow, side, src_mac, dst_mac, tunnels):
        """MACs adjacent to each side, and the tunnels (``_carried``)."""
        add = self.mac_sets.add
        a_mac, b_mac = (dst_mac, src_mac) if side else (src_mac, dst_mac)
        if a_mac:
            flow.macs_a = add(flow.macs_a, a_mac)
        if b_mac:
            flow.macs_b = add(flow.macs_b, b_mac)
        if tunnels is not None:
            _carried(flow, tunnels)

    def _quoted_flow(self, pkt, ifindex):
        q = pkt.quote
        # The quoted packet went from q.src to q.dst; the key is direction-free.
        return self.flows.get(keyed(ifindex, pkt.vlan, pkt.vlan2, q.proto, q.src, q.sport, q.dst, q.dport)[0])

    def _remember_fragment(self, fkey, key):
        frags = self.frags
        frags[fkey] = key
        if len(frags) > MAX_FRAGMENTS:
            frags.popitem(last=False)

    def sweep(self, now):
        """End flows idle longer than the idle timeout or older than the
        active one, in the order they were opened."""
        idle_before, active_before = now - self.idle, now - self.active
        self._publish()
        while self.pending:
            fkey, items = next(iter(self.pending.items()))
            if items[0][0] >= now - FRAGMENT_WAIT:
                break
            del self.pending[fkey]
            self._release(fkey, items)
        self._prune()
        deadlines = self.deadlines
        ended = []
        taken, numbers = deadlines.take(now)
        add, idle, active = deadlines.add, self.idle, self.active
        for flow, number in zip(taken, numbers):
            if flow.end_reason is not None:                # ended since it was listed
                continue
            last, first = flow.last, flow.first
            if last < idle_before or first < active_before:
                ended.append((number, flow))
            else:
                add(flow, min(last + idle, first + active), number)
        del taken
        ended.sort(key=itemgetter(0))           # opening order
        for _number, flow in ended:
            self._end(flow, IDLE if flow.last < idle_before else ACTIVE)

    def _prune(self):
        """List the flows opened since the last look (those still open), and
        list every open flow anew when the deadlines hold more entries of
        ended flows (shed, renewed) than the bound allows, or a flow's first
        time moved back: the deadlines keep no ended flow alive for long."""
        created = [f for f in self.created if f.end_reason is None]
        self.created.clear()                       # in place: the compiled module may be appending to it
        flows = self.flows
        if self._backdated or len(self.deadlines) + len(created) > len(flows) + len(flows) // 4 + STALE_SLACK:
            self._backdated = False
            self.deadlines = Deadlines()
            created = list(flows.values())         # numbered afresh in table order: the order stays the same
        if created:
            first = np.fromiter((f.first for f in created), np.float64, len(created))
            last = np.fromiter((f.last for f in created), np.float64, len(created))
            self.deadlines.add_new(created, np.minimum(last + self.idle, first + self.active))

    def flush(self, reason=SHUTDOWN):
        """End every flow (end of input or shutdown), in table order; returns
        how many. Each flow is let go once its end hook has run, so what
        judging it allocates (paths, cache entries) reuses the memory of the
        flows before it instead of adding to the table's: the peak of an
        audit is its open flows, not its open flows and their judging."""
        while self.pending:
            self._release(*self.pending.popitem(last=False))
        if self.fast is not None:
            self.fast.settle_all()
        ending = list(self.flows.values())
        self.flows.clear()
        self.created.clear()
        self.deadlines = Deadlines()
        self._backdated = False
        self.evictions[reason] += len(ending)
        on_expire = self.on_expire
        for k, flow in enumerate(ending):   # ``_end`` without its per-flow bookkeeping
            ending[k] = None
            flow.end_reason = reason
            on_expire(flow)
        self.frags.clear()
        return len(ending)

    def _shed(self):
        """Over capacity: end the least recently seen tenth of the table,
        oldest first (ties in table order: what a stable sort by last time
        gives), found by a partition of the last times instead of a sort of
        the table: one pass in numpy, then a sort of the victims only."""
        self._publish()
        flows = list(self.flows.values())
        count = min(len(flows), max(1, self.capacity // 10))
        last = np.fromiter((f.last for f in flows), np.float64, len(flows))
        if count < len(flows):
            bound = np.partition(last, count - 1)[count - 1]        # the count-th smallest last time
            older = np.flatnonzero(last < bound)
            ties = np.flatnonzero(last == bound)[:count - len(older)]
            picked = np.concatenate((older, ties))
        else:
            picked = np.arange(len(flows))
        for k in picked[np.argsort(last[picked], kind="stable")].tolist() if len(picked) else ():
            self._end(flows[k], CAPACITY)
        del flows
        self._prune()                              # what it ended may not stay listed

    def _end(self, flow, reason):
        if flow.entries is not None:
            self.fast.release(flow)
        del self.flows[flow.key]
        flow.end_reason = reason
        self.evictions[reason] += 1
        self.on_expire(flow)

    def _publish(self):
        if self.fast is not None:
            self.fast.publish()


def keyed(ifindex, vlan, vlan2, proto, src, sport, dst, dport):
    """(key, side) of a packet from (src, sport) to (dst, dport): the lower
    endpoint is the key's side 0, so both directions share one key (the
    compiled module's ``open_one`` orders them the same way)."""
    if src < dst or (src == dst and sport <= dport):
        return flow_key(ifindex, vlan, vlan2, proto, src, sport, dst, dport), 0
    return flow_key(ifindex, vlan, vlan2, proto, dst, dport, src, sport), 1


def _carried(flow, tunnels):
    """The tunnels the flow was carried in."""
    if flow.tunnels is None:
        flow.tunnels = set()
    flow.tunnels.update(tunnels)
