"""Wiring: sources -> decode -> flows -> attribution -> policy -> sinks.

``Pipeline.ingest(source)`` takes the source's chunks; ``Pipeline.judge`` runs
once per flow when the flow table ends it. The audit command and the daemon
both build a ``Pipeline`` and differ only in sources and sinks.

Per chunk (thousands of packets): ``split.split`` groups the common frames
(Ethernet, optionally one 802.1Q tag, IPv4 without options or IPv6, TCP or
UDP, GTP-U and VXLAN around them) by flow direction (in C, or with numpy
where the compiled module is not built); a known direction costs a probe of
the flow table's direction index (engine/directions.py) and its counters are added
in place. A direction seen for the first time has its fields read back from
its key and opens or joins its flow (``split.open_directions``, which learns
its MACs and tunnels); every other frame (ICMP, fragments, other tunnels,
other link types) is decoded one by one. A chunk that spans more than the
idle timeout is decoded packet by packet so timeouts stay exact.

Live verdicts (the daemon: ``go_live``): after each chunk, every flow the
chunk opened, or whose new direction may have brought a new MAC or tunnel,
or that a slow-path packet touched (an ICMP error quoting it among them), is
judged at once; so is every open flow whose path depends on an outside fact
that changed (a device announced on its segment, an ARP/NDP binding or a
mobile-core role of its tunnel endpoints, a finished trace toward its remote
end: ``dependents.py`` indexes open flows by those facts). A flow whose
(zone, verdict, blamed elements) differ from its last judgement
(``Flow.verdicts``, updated first) is handed to each live sink's
``judged(flow, judgements, before)``. Paths and verdicts are cached per
element and per path shape, so a re-judgement that changes nothing costs
lookups. Flows that only add to known directions' counters are not judged
again: their path cannot have changed. ``rejudge_open()`` judges every open
flow (after a reload). The end of a flow is judged as before; its sinks read
``Flow.verdicts`` to know what was already reported.
"""

import datetime

import numpy as np

from .wire import CONTROL_UDP_PORTS
from .attribution.path import PathBuilder
from .text import ip_text
from . import engine as engines
from .engine.directions import Directions
from .engine.split import open_directions, split
from .decode import ERSPAN, LT_ETHERNET, R_INTERNAL, R_LINKTYPE, REASONS, decode
from .engine.frames import PORT_FLAGS, port_flags
from .export.decode import Collector
from .export.records import EXPORT_INTERFACE, Records
from .dependents import NEIGHBOUR, NODE, ROUTE, SEGMENT, TRACE, Dependents
from .flows import FlowTable
from .model import TRANSIT_NETWORK, counted
from .policy.evaluate import Verdicts

SWEEP_EVERY = 10.0           # seconds of capture time between idle/active scans


class Stats:
    """Packet-level counters of one pipeline (audit.py takes per-file differences)."""

    def __init__(self):
        self.packets = 0
        self.octets = 0
        self.non_ip = 0
        self.decode_errors = dict.fromkeys(REASONS, 0)
        self.records = 0                    # flow-export records (they are not packets)
        self.unsupported_linktypes = {}     # link type -> frames (R_LINKTYPE, told apart for the certificate)

    @property
    def ip_packets(self):
        return self.packets - self.non_ip - sum(self.decode_errors.values())


class Pipeline:
    def __init__(self, policy, attributor, sinks, idle_timeout=300.0, active_timeout=1800.0,
                 capacity=500_000, today=None, progress=None, discovery=None, control_plane=None, engine=None,
                 flow_export_ports=()):
        self.discovery = discovery    # SegmentDiscovery: LLDP/CDP/STP devices become segment-device elements
        self.control_plane = control_plane   # ControlPlane: GTP-C/PFCP teach tunnel endpoints' roles
        self.use(policy, attributor)
        self.sinks = list(sinks)
        self.engine = engine or engines.DEFAULT
        self.directions = Directions(self.engine)     # the fast path's counters, per key width
        self.table = FlowTable(self.judge, idle_timeout, active_timeout, capacity, fast=self.directions)
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
        self.live_sinks = []          # sinks told of open flows' verdicts as they change (the daemon: go_live)
        self.dependents = None        # live: open flows by the outside facts their paths depend on
        self._touched = None          # live: flows to judge after the chunk
        self._states = {}             # interned Flow.verdicts tuples (most flows share one)
        # Flow exports inside the capture (an audit of archived export datagrams): UDP to these ports is
        # decoded as NetFlow/IPFIX/sFlow too, its records joined into the flow table as the daemon's listeners do.
        self.export_ports = frozenset(flow_export_ports)
        self.exports = Collector() if self.export_ports else None
        self.port_flags = port_flags(self.export_ports) if self.export_ports else PORT_FLAGS
        self.survive_bugs = None      # the daemon: a callable(exc) told of a bug met in one packet, which is
        # counted (R_INTERNAL) and skipped; None (the audit): the bug ends the run (exit 4)

    def go_live(self, sinks):
        """Judge open flows as they appear and change, telling ``sinks``
        (the daemon; the audit judges flows at their end only)."""
        self.live_sinks = list(sinks)
        self.dependents = Dependents()
        for producer in (self.discovery, self.control_plane):
            if producer is not None:
                producer.on_change = self.dependents.changed_fact

    def use(self, policy, attributor):
        """Judge with ``policy`` and ``attributor`` from now on (start-up, and a
        daemon's reload): what caches their answers (paths, verdicts) is built
        new, then swapped in."""
        paths = PathBuilder(attributor, policy.trust, self.discovery, self.control_plane,
                            transit_judged=policy.judges(TRANSIT_NETWORK), bgp_peers=policy.bgp_peers(attributor.routes))
        verdicts = Verdicts(policy)
        self.policy, self.attributor, self.paths, self.verdicts = policy, attributor, paths, verdicts

    # --- per packet ---------------------------------------------------------

    def _global_ifaces(self, source):
        """Map a source's interface indexes to pipeline-wide ones.

        Unnamed interfaces of the same link type are one capture point, so
        flows continue across rotated files.
        """
        return [self._interface_index(iface) for iface in source.interfaces]

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
        """Account one non-empty chunk of ``source`` (the daemon's entry point):
        frames, or flow-export records (export/listen.Records)."""
        if chunk.__class__ is Records:
            return self.feed_records(source, chunk)
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
            parts, slow = split(chunk, ethernet, gmap, engine=self.engine, port_flags=self.port_flags)
        else:
            # The chunk spans an idle timeout: packet by packet keeps timeouts exact.
            parts, slow = [], np.arange(len(chunk))
        if self.live_sinks:
            self._touched = []
        if parts:
            self._account_groups(chunk, parts)
        self._decode_rows(chunk, slow, gmap, linktypes)
        if self.live_sinks:
            touched, self._touched = self._touched, None
            self._judge_live(touched)

    def feed_records(self, source, records):
        """Account flow-export records (export/listen.py) as the flow table's
        ``add_record`` joins them into flows; live, judge what they opened or changed."""
        self._sweep_due(records.now)
        owners = self._add_records(records, self._global_ifaces(source)[0])
        if self.live_sinks:
            self._judge_live(owners)

    def _add_records(self, records, ifindex):
        """Flow-export records into the flow table; their (flow, side) owners."""
        self.stats.records += len(records)
        add = self.table.add_record
        return [add(record, ifindex) for record in records if record.src]

    def _sweep_due(self, now):
        if now >= self._next_sweep:
            self.table.sweep(now)
            self._next_sweep = now + self._sweep_every

    def tick(self, now):
        """No traffic for a while: end the flows that are idle as of ``now``
        (same clock as the packets' timestamps)."""
        self._sweep_due(now)
        if self.live_sinks:
            self._judge_live(())

    def _account_groups(self, chunk, parts):
        """Known directions: their sums added to their fast-path counters.
        New or unsure ones, in arrival order: opened in the flow table
        (``split.open_directions``, which learns their MACs and tunnels),
        then each given a counter entry of its own."""
        table = self.table
        opened = []
        for g in parts:
            rest = self.directions.index(g.width).account(g, table.idle)
            if len(rest):
                opened.append((g, rest))
        if not opened:
            return
        # Owners first, then entries (no flow can end in between).
        touched = self._touched
        for (g, rest), owners in zip(opened, open_directions(table, opened, self.engine)):
            # keyed as account() keyed them (split.entry_keys: a plain flow's two directions share an entry)
            self.directions.index(g.width).bind(owners, g.entry_hashes[rest], g.entry_keys[rest], g.last_ts[rest],
                                                g.flips[rest])
            if touched is not None:
                touched.extend(owners)

    def _decode_rows(self, chunk, rows, gmap, linktypes):
        """The full decoder, one packet at a time, in arrival order.

        ``rows``: int array of chunk rows; only their facts become Python values."""
        if not len(rows):
            return
        errors = self.stats.decode_errors
        buf = chunk.buf
        columns = (chunk.ts[rows], chunk.ifx[rows], chunk.off[rows], chunk.incl[rows], chunk.orig[rows])
        for ts, ifx, off, incl, orig in zip(*(c.tolist() for c in columns)):
            try:
                self._decode_one(ts, buf[off:off + incl], gmap[ifx], linktypes[ifx], orig)
            except Exception as exc:         # noqa: BLE001 - a bug; see survive_bugs
                if self.survive_bugs is None:
                    raise
                errors[R_INTERNAL] += 1
                self.survive_bugs(exc)

    def _decode_one(self, ts, data, ifindex, linktype, orig):
        """One frame through the decoder, into the flow table or a control-frame consumer."""
        stats = self.stats
        pkt = decode(data, linktype)
        if pkt.__class__ is str:
            stats.decode_errors[pkt] += 1
            if pkt is R_LINKTYPE:
                stats.unsupported_linktypes[linktype] = stats.unsupported_linktypes.get(linktype, 0) + 1
        elif not pkt.family:
            stats.non_ip += 1
            for hook in self.control_frame_hooks:
                hook(ts, ifindex, pkt, data)
        else:
            owner = self.table.add(pkt, ts, ifindex, orig)
            if self._touched is not None and owner[0] is not None:
                self._touched.append(owner)
            if pkt.proto == 17:
                if self.control_plane is not None and (pkt.dport in CONTROL_UDP_PORTS
                                                       or pkt.sport in CONTROL_UDP_PORTS):
                    self.control_plane(ts, data, pkt.payload, pkt.sport, pkt.dport)   # GTP-C, PFCP
                elif pkt.dport in self.export_ports and pkt.tunnels is None and not pkt.frag_offset:
                    self._exported(ts, data[pkt.payload:], pkt.src)
            elif pkt.proto == 58 and (pkt.sport == 135 or pkt.sport == 136) and self.discovery is not None:
                self.discovery.ndp(ts, ifindex, pkt)        # neighbour solicitation/advertisement

    def _exported(self, ts, datagram, exporter):
        """A flow-export datagram seen in the capture: its records join the
        flow table on the flow-export interface (the datagram itself stays
        a flow of the capture: it crossed the tapped link too)."""
        records = self.exports.datagram(datagram, exporter, ts)
        if records:
            owners = self._add_records(records, self._interface_index(EXPORT_INTERFACE))
            if self._touched is not None:
                self._touched.extend(owners)

    def _interface_index(self, iface):
        ident = (iface.name, iface.linktype)
        if ident not in self._iface_ids:
            self._iface_ids[ident] = len(self.interfaces)
            self.interfaces.append(ident)
        return self._iface_ids[ident]

    # --- per flow -----------------------------------------------------------

    def judge(self, flow):
        """Zones -> path -> verdict for one ended flow; feed every sink."""
        if flow.depends is not None:
            self.dependents.forget(flow)
        judgements = self.judgements(flow)
        for sink in self.sinks:
            sink.flow(flow, judgements)

    def _judge_live(self, owners):
        """Live: judge once each open flow of ``owners`` ((flow, side) pairs)
        and each one whose outside facts changed."""
        probes, dependents = self.probes, self.dependents
        if probes is not None:
            traced = probes.traced
            while traced:
                dependents.changed_fact((TRACE, traced.popleft()))
        routes = self.attributor.routes
        if routes is not None:
            changed = routes.changes()               # BMP: prefixes announced or withdrawn since the last look
            if changed:
                self.paths.routes_changed()
                dependents.routes_changed(changed)
        concerned = dependents.take()
        if not owners and not concerned:
            return
        seen = set()
        for flow in [f for f, _side in owners] + concerned:
            if flow.end_reason is None and id(flow) not in seen:
                seen.add(id(flow))
                self.judge_open(flow)

    def rejudge_open(self):
        """Live: judge every open flow (a reload changed policy, inventory or databases)."""
        for flow in list(self.table.flows.values()):
            self.judge_open(flow)

    def judge_open(self, flow):
        """Live: judge an open flow, note what its path depends on, and tell
        the live sinks if its verdicts changed."""
        iface, places = self._places(flow)
        judgements = self._judge_places(flow, iface, places)
        self.dependents.follow(flow, self._depends(flow, places))
        before = flow.verdicts
        state = tuple((j.zone, j.verdict, j.blamed() | counted(before, j.zone)) for j in judgements)
        if state == before:
            return
        state = self._states.setdefault(state, state)
        if len(self._states) > 65536:
            self._states.clear()
        flow.verdicts = state
        for sink in self.live_sinks:
            sink.judged(flow, judgements, before)

    def _depends(self, flow, places):
        """The ``dependents`` keys of an open flow's path (see dependents.py)."""
        keys = []
        discovery, control_plane, probes = self.discovery, self.control_plane, self.probes
        if discovery is not None:
            keys.append((SEGMENT, flow.ifindex, flow.vlan))
        if flow.tunnels:
            for kind, src, dst, _ident in flow.tunnels:
                if kind != ERSPAN:
                    for addr in (src, dst):
                        if discovery is not None:
                            keys.append((NEIGHBOUR, flow.ifindex, flow.vlan, addr))
                        if control_plane is not None:
                            keys.append((NODE, addr))
        if probes is not None:
            for zone, side in places:
                if side is not None and zone in probes.zones:
                    keys.append((TRACE, ip_text(flow.endpoint(1 - side)[0])))
        routes = self.attributor.routes
        if self.paths.carriers is not None and routes is not None and routes.changing:
            for _zone, side in places:
                for remote in ((0, 1) if side is None else (1 - side,)):
                    keys.append((ROUTE, flow.endpoint(remote)[0]))
        return tuple(dict.fromkeys(keys)) if len(keys) > 1 else tuple(keys)

    def judgements(self, flow):
        """Zones -> path -> verdict: one Judgement per zone of the flow."""
        iface, places = self._places(flow)
        return self._judge_places(flow, iface, places)

    def _places(self, flow):
        """The flow's capture interface name, and its (zone, local side) pairs
        (side None: a ``zone: any`` rule judges a flow of no zone)."""
        policy = self.policy
        ifindex, vlan, vlan2, _proto, _ap, _bp, a, b = flow.unpacked()
        iface = self.interfaces[ifindex][0] if ifindex < len(self.interfaces) else None
        za, zb = policy.zones_of(a, b, vlan, vlan2, iface)
        if za is not None:
            places = ((za, 0),) if zb is None or zb == za else ((za, 0), (zb, 1))
        elif zb is not None:
            places = ((zb, 1),)
        else:
            places = ((None, None),) if policy.rules_for[None] else ()
        return iface, places

    def _judge_places(self, flow, iface, places):
        judgements = []
        probes = self.probes
        build, verdict, today = self.paths.build, self.verdicts.judge, self.today
        for zone, side in places:
            path = build(flow, side, iface, zone)
            if probes is not None and side is not None and zone in probes.zones:
                trace = probes.lookup(ip_text(flow.endpoint(1 - side)[0]))
                if trace is not None:
                    path = path + self.paths.probe_hops(trace)
            judgements.append(verdict(flow, zone, side, path, today))
        return judgements

    def finish(self):
        """End of input: end every open flow through policy and sinks; returns how many."""
        return self.table.flush()

