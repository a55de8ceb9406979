"""Wiring: sources -> decode -> flows -> attribution -> policy -> sinks.

``Pipeline.ingest(source)`` runs the per-packet loop; ``Pipeline.judge`` runs
once per flow when the flow table ends it. The audit command and the daemon
both build a ``Pipeline`` and differ only in sources and sinks.

Per-packet work is kept to: one record read, one header-bytes slice, one dict
lookup and three counter updates. For Ethernet frames carrying IPv4 (no
options, not fragmented) or IPv6 (no extension headers) with TCP or UDP,
possibly behind one 802.1Q tag, the raw header bytes of a flow direction
(MACs, tag, protocol, addresses, ports) are a stable key: the first packet is
decoded in full and the key cached in ``FlowTable.fast``; later packets of
that direction skip the decoder. Everything else goes through ``decode``.
"""

import datetime

from .attribution.path import build_path
from .decode import LT_ETHERNET, REASONS, decode
from .flows import FlowTable
from .policy.evaluate import evaluate

SWEEP_EVERY = 10.0           # seconds of capture time between idle/active scans
CHECK_MASK = 0x3FFF          # look at the clock/progress every 16384 packets
FAST_PROTOS = b"\x06\x11"


class Stats:
    """Packet-level counters of one pipeline (per capture in ``per_source``)."""

    def __init__(self):
        self.packets = 0
        self.octets = 0
        self.non_ip = 0
        self.decode_errors = dict.fromkeys(REASONS, 0)


class Pipeline:
    def __init__(self, policy, attributor, sinks, idle_timeout=300.0, active_timeout=1800.0,
                 capacity=500_000, today=None, progress=None):
        self.policy = policy
        self.attributor = attributor
        self.sinks = list(sinks)
        self.table = FlowTable(self.judge, idle_timeout, active_timeout, capacity)
        self.today = today or datetime.date.today()
        self.stats = Stats()
        self.interfaces = []          # global index -> (name, linktype)
        self._iface_ids = {}
        self.progress = progress
        self.control_frame_hooks = []  # callables(ts, ifindex, packet, data) for non-IP frames

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
        table, stats = self.table, self.stats
        errors = stats.decode_errors
        idle = table.idle
        gmap = []
        linktypes = []
        fasts = table.fast
        n = octets = 0
        first = None
        cur = -1
        fastd = lt = gifx = None
        next_check = 0.0
        progress = self.progress
        for ts, ifx, wlen, data in source.frames():
            n += 1
            octets += wlen
            if ifx != cur:
                if first is None:
                    first = ts
                if ifx >= len(gmap):
                    gmap = self._global_ifaces(source)
                    linktypes = [i.linktype for i in source.interfaces]
                cur, gifx, lt = ifx, gmap[ifx], linktypes[ifx]
                fastd = fasts.setdefault(gifx, {})
            if not n & CHECK_MASK:
                if ts >= next_check:
                    table.sweep(ts)
                    fasts = table.fast
                    fastd = fasts.setdefault(gifx, {})
                    next_check = ts + SWEEP_EVERY
                if progress is not None:
                    progress(source)
            fk = None
            if lt == LT_ETHERNET and len(data) >= 42:
                # Length first: a slice past the end is b"", and b"" is "in" any bytes.
                et = data[12:14]
                if et == b"\x08\x00":
                    if data[14] == 0x45 and data[23:24] in FAST_PROTOS and not (data[20] & 0x3F or data[21]):
                        fk = data[0:12] + data[23:24] + data[26:38]
                elif et == b"\x86\xdd":
                    if data[20:21] in FAST_PROTOS and len(data) >= 58:
                        fk = data[0:12] + data[20:21] + data[22:58]
                elif et == b"\x81\x00":
                    et = data[16:18]
                    if et == b"\x08\x00":
                        if data[18] == 0x45 and data[27:28] in FAST_PROTOS and not (data[24] & 0x3F or data[25]):
                            fk = data[0:16] + data[27:28] + data[30:42]
                    elif et == b"\x86\xdd" and len(data) >= 62 and data[24:25] in FAST_PROTOS:
                        fk = data[0:16] + data[24:25] + data[26:62]
                if fk is not None:
                    hit = fastd.get(fk)
                    if hit is not None:
                        flow, side = hit
                        if ts - flow.last <= idle:
                            flow.pkts[side] += 1
                            flow.octets[side] += wlen
                            if ts > flow.last:
                                flow.last = ts
                            continue
            pkt = decode(data, lt)
            if pkt.__class__ is str:
                errors[pkt] += 1
                continue
            if not pkt.family:
                stats.non_ip += 1
                for hook in self.control_frame_hooks:
                    hook(ts, gifx, pkt, data)
                continue
            flow, side = table.add(pkt, ts, gifx, wlen)
            if fk is not None and side >= 0:
                fastd[fk] = (flow, side)
        last = ts if n else None      # noqa: F821 (the loop variable)
        stats.packets += n
        stats.octets += octets
        return n, first, last

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
        for zone, side in places:
            path = build_path(flow, side, self.attributor, policy.trust, iface)
            judgements.append(evaluate(policy, flow, zone, side, path, self.today))
        for sink in self.sinks:
            sink.flow(flow, judgements)

    def finish(self):
        """End of input: end every open flow through policy and sinks."""
        self.table.flush()
