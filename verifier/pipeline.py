"""Wiring: sources -> decode -> flows -> attribution -> policy -> sinks.

``Pipeline.ingest(source)`` takes the source's chunks; ``Pipeline.judge`` runs
once per flow when the flow table ends it. The audit command and the daemon
both build a ``Pipeline`` and differ only in sources and sinks.

Per chunk (thousands of packets): ``batch.split`` groups the common frames
(Ethernet, optionally one 802.1Q tag, IPv4 without options or IPv6, TCP or
UDP) by flow direction with numpy; each group costs one dict lookup in
``FlowTable.fast`` and three counter updates. A direction seen for the first
time has its first packet decoded in full and goes through
``FlowTable.add`` (which learns its MACs); every other frame (ICMP,
fragments, tunnels, other link types) is decoded one by one. A chunk that
spans more than the idle timeout is decoded packet by packet so timeouts stay
exact.
"""

import datetime

import numpy as np

from .attribution.mobile import CONTROL_UDP_PORTS
from .attribution.path import PathBuilder, ip_text
from .batch import packet_from_key, split
from .decode import LT_ETHERNET, REASONS, decode
from .flows import FlowTable
from .policy.evaluate import evaluate

SWEEP_EVERY = 10.0           # seconds of capture time between idle/active scans


class Stats:
    """Packet-level counters of one pipeline (audit.py takes per-file differences)."""

    def __init__(self):
        self.packets = 0
        self.octets = 0
        self.non_ip = 0
        self.decode_errors = dict.fromkeys(REASONS, 0)


class Pipeline:
    def __init__(self, policy, attributor, sinks, idle_timeout=300.0, active_timeout=1800.0,
                 capacity=500_000, today=None, progress=None, discovery=None, control_plane=None):
        self.policy = policy
        self.attributor = attributor
        self.discovery = discovery    # SegmentDiscovery: LLDP/CDP/STP devices become segment-device elements
        self.control_plane = control_plane   # ControlPlane: GTP-C/PFCP teach tunnel endpoints' roles
        self.paths = PathBuilder(attributor, policy.trust, discovery, control_plane)
        self.sinks = list(sinks)
        self.table = FlowTable(self.judge, idle_timeout, active_timeout, capacity)
        self.today = today or datetime.date.today()
        self.stats = Stats()
        self.interfaces = []          # global index -> (name, linktype)
        self._iface_ids = {}
        self.progress = progress
        self.probes = None            # ProbeService (daemon --probe): traced router hops join the paths
        self.control_frame_hooks = [discovery] if discovery is not None else []
        # ^ callables(ts, ifindex, packet, data) for non-IP frames
        self._next_sweep = float("-inf")
        self._sweep_every = min(SWEEP_EVERY, self.table.idle / 2)

    # --- per packet ---------------------------------------------------------

    def _global_ifaces(self, source):
        """Map a source's interface indexes to pipeline-wide ones.

        Unnamed interfaces of the same link type are one capture point, so
        flows continue across rotated files.
        """
        out = []
        for iface in source.interfaces:
            ident = (iface.name, iface.linktype)
            if ident not in self._iface_ids:
                self._iface_ids[ident] = len(self.interfaces)
                self.interfaces.append(ident)
            out.append(self._iface_ids[ident])
        return out

    def ingest(self, source):
        """Account every frame of ``source``. Returns (packets, first_ts, last_ts)."""
        n = 0
        first = last = None
        for chunk in source.chunks():
            if not len(chunk):
                continue
            self.feed(source, chunk)
            n += len(chunk)
            first = float(chunk.ts[0]) if first is None else first
            last = float(chunk.ts[-1])
            if self.progress is not None:
                self.progress(source)
        return n, first, last

    def feed(self, source, chunk):
        """Account one non-empty chunk of ``source`` (the daemon's entry point)."""
        stats = self.stats
        gmap = self._global_ifaces(source)
        linktypes = [i.linktype for i in source.interfaces]
        stats.packets += len(chunk)
        stats.octets += int(chunk.orig.sum())
        start = float(chunk.ts[0])
        if start >= self._next_sweep or start < self._next_sweep - 2 * self._sweep_every:
            self.table.sweep(start)
            self._next_sweep = start + self._sweep_every
        if float(chunk.ts.max() - chunk.ts.min()) < self.table.idle:
            ethernet = np.array([lt == LT_ETHERNET for lt in linktypes], bool)
            groups, slow = split(chunk, ethernet)
        else:
            # The chunk spans an idle timeout: packet by packet keeps timeouts exact.
            groups, slow = None, np.arange(len(chunk))
        if groups is not None:
            self._account_groups(chunk, groups, gmap, linktypes)
        self._decode_rows(chunk, slow, gmap, linktypes)

    def tick(self, now):
        """No traffic for a while: end the flows that are idle as of ``now``
        (same clock as the packets' timestamps)."""
        if now >= self._next_sweep:
            self.table.sweep(now)
            self._next_sweep = now + self._sweep_every

    def _account_groups(self, chunk, groups, gmap, linktypes):
        """One dict lookup per flow direction per chunk; new directions go
        through ``FlowTable.add`` with a packet rebuilt from their key."""
        fasts, idle, table = self.table.fast, self.table.idle, self.table
        first_rows = groups.first
        for i, (key, ifx, count, octets, first_ts, last_ts) in enumerate(zip(
                groups.keys, groups.ifx, groups.count, groups.octets, groups.first_ts, groups.last_ts)):
            gifx = gmap[ifx]
            cache = fasts.get(gifx)
            if cache is None:
                cache = fasts[gifx] = {}
            hit = cache.get(key)
            if hit is not None:
                flow, side = hit
                if flow.end_reason is None and first_ts - flow.last <= idle:
                    flow.pkts[side] += count
                    flow.octets[side] += octets
                    if last_ts > flow.last:
                        flow.last = last_ts
                    continue
            row = first_rows[i]
            wirelen = int(chunk.orig[row])
            flow, side = table.add(packet_from_key(key, groups.classes[i]), first_ts, gifx, wirelen)
            cache[key] = (flow, side)
            if count > 1:
                flow.pkts[side] += count - 1
                flow.octets[side] += octets - wirelen
                if last_ts > flow.last:
                    flow.last = last_ts

    def _decode_rows(self, chunk, rows, gmap, linktypes):
        """The full decoder, one packet at a time, in arrival order.

        ``rows``: int array of chunk rows; only their facts become Python values."""
        if not len(rows):
            return
        table, stats = self.table, self.stats
        errors = stats.decode_errors
        buf = chunk.buf
        columns = (chunk.ts[rows], chunk.ifx[rows], chunk.off[rows], chunk.incl[rows], chunk.orig[rows])
        for ts, ifx, off, incl, orig in zip(*(c.tolist() for c in columns)):
            data = buf[off:off + incl]
            pkt = decode(data, linktypes[ifx])
            if pkt.__class__ is str:
                errors[pkt] += 1
            elif not pkt.family:
                stats.non_ip += 1
                for hook in self.control_frame_hooks:
                    hook(ts, gmap[ifx], pkt, data)
            else:
                table.add(pkt, ts, gmap[ifx], orig)
                if pkt.proto == 17:
                    if self.control_plane is not None and (pkt.dport in CONTROL_UDP_PORTS
                                                           or pkt.sport in CONTROL_UDP_PORTS):
                        self.control_plane(ts, data, pkt.payload, pkt.sport, pkt.dport)   # GTP-C, PFCP
                elif pkt.proto == 58 and (pkt.sport == 135 or pkt.sport == 136) and self.discovery is not None:
                    self.discovery.ndp(ts, gmap[ifx], pkt)        # neighbour solicitation/advertisement

    # --- per flow -----------------------------------------------------------

    def judge(self, flow):
        """Zones -> path -> verdict for one ended flow; feed every sink."""
        policy = self.policy
        iface = self.interfaces[flow.ifindex][0] if flow.ifindex < len(self.interfaces) else None
        za = policy.zone_of(flow.a, flow.vlan, flow.vlan2, iface)
        zb = policy.zone_of(flow.b, flow.vlan, flow.vlan2, iface)
        places = []
        if za is not None:
            places.append((za, 0))
        if zb is not None and zb != za:
            places.append((zb, 1))
        if not places and policy.rules_for[None]:
            places.append((None, None))
        judgements = []
        probes = self.probes
        for zone, side in places:
            path = self.paths.build(flow, side, iface)
            if probes is not None and side is not None and zone in probes.zones:
                trace = probes.lookup(ip_text(flow.endpoint(1 - side)[0]))
                if trace is not None:
                    path = path + self.paths.probe_hops(trace)
            judgements.append(evaluate(policy, flow, zone, side, path, self.today))
        for sink in self.sinks:
            sink.flow(flow, judgements)

    def finish(self):
        """End of input: end every open flow through policy and sinks."""
        self.table.flush()
