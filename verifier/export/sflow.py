"""sFlow version 5 datagrams (sflow.org's sflow_version_5.txt), read with ``struct``.

In:  one UDP payload (``read(data, now)``), its agent named inside it
     (agent address and sub-agent id: the exporter identity, never the
     source port).
Out: one ``FlowRecord`` per flow sample: the sampled frame's header goes
     through our own packet decoder (decode.py: MACs, VLANs, tunnels,
     addresses, ports), so a record is what a tap would have seen of that
     one frame, scaled by the sample's rate (``sampling``). Extended records
     add what the switch or router knew: 1001 switch (VLANs), 1002 router
     (next hop), 1003 gateway (BGP next hop, source/destination AS, the AS
     path toward the destination). Counter samples are counted and skipped;
     a frame the decoder cannot read is counted by its reason.

sFlow carries no flow times: a record's first and last time are when its
datagram arrived. The datagram sequence number per agent counts gaps (a
gap lowers what the export covers, it never fails a verdict).
"""

import struct

from ..decode import decode
from ..model import Packet
from .records import Damaged, FlowRecord

SFLOW = "sflow"
FLOW_SAMPLE, COUNTER_SAMPLE, FLOW_SAMPLE_EXPANDED, COUNTER_SAMPLE_EXPANDED = 1, 2, 3, 4
RAW_HEADER, SWITCH, ROUTER, GATEWAY = 1, 1001, 1002, 1003
HEADER_ETHERNET = 1                       # header_protocol: ISO 8802-3 Ethernet
LINKTYPE_ETHERNET = 1
AS_SET, AS_SEQUENCE = 1, 2
_U32 = struct.Struct(">I").unpack_from
_TWO = struct.Struct(">II").unpack_from
_FLOW = struct.Struct(">IIIIIIII").unpack_from           # seq, source id, rate, pool, drops, input, output, records
_FLOW_EXPANDED = struct.Struct(">IIIIIIIIIII").unpack_from
_RAW = struct.Struct(">IIII").unpack_from                # header protocol, frame length, stripped, header length


def address(data, at):
    """(address bytes or None, next offset) of an sFlow address (type 1 IPv4, 2 IPv6, 0 unknown)."""
    kind = _U32(data, at)[0]
    if kind == 1:
        return data[at + 4:at + 8], at + 8
    if kind == 2:
        return data[at + 4:at + 20], at + 20
    if kind == 0:
        return None, at + 4
    raise Damaged(f"address type {kind}")


class Reader:
    """sFlow v5 datagrams into flow records for a ``decode.Collector``, which
    keeps the agents (as exporters: address, sub-agent id) and their gaps."""

    def __init__(self, collector):
        self.collector = collector
        self.undecoded = {}             # decoder reason -> sampled frames it could not read
        self.counter_samples = 0

    def read(self, data, now):
        """The flow records of one sFlow datagram (raises Damaged, struct.error, IndexError)."""
        if _U32(data, 0)[0] != 5:
            raise Damaged("not sFlow version 5")
        agent, at = address(data, 4)
        if agent is None:
            raise Damaged("no agent address")
        sub_agent, seq = _TWO(data, at)
        samples = _U32(data, at + 12)[0]          # after the uptime
        at += 16
        collector = self.collector
        collector.sequence(collector.exporter(agent, sub_agent, SFLOW), SFLOW, seq, 1)
        out = []
        for _ in range(samples):
            kind, length = _TWO(data, at)
            body, at = at + 8, at + 8 + length
            if at > len(data):
                raise Damaged("sample past the datagram's end")
            enterprise, fmt = kind >> 12, kind & 0xFFF
            if enterprise == 0 and fmt in (FLOW_SAMPLE, FLOW_SAMPLE_EXPANDED):
                record = self._flow_sample(data, body, at, fmt == FLOW_SAMPLE_EXPANDED, agent, sub_agent, now)
                if record is not None:
                    out.append(record)
            elif enterprise == 0 and fmt in (COUNTER_SAMPLE, COUNTER_SAMPLE_EXPANDED):
                self.counter_samples += 1
        return out

    def _flow_sample(self, data, at, end, expanded, agent, sub_agent, now):
        if expanded:
            _seq, _stype, _sindex, rate, _pool, _drops, _ifmt, in_if, _ofmt, out_if, records = \
                _FLOW_EXPANDED(data, at)
            at += 44
        else:
            _seq, _source, rate, _pool, _drops, in_if, out_if, records = _FLOW(data, at)
            at += 32
            in_if, out_if = in_if & 0x3FFFFFFF, out_if & 0x3FFFFFFF     # top bits: a format, not the index
        record = FlowRecord(SFLOW, agent, sub_agent)
        record.sampling = max(rate, 1)
        record.in_if, record.out_if = _interface(in_if), _interface(out_if)
        record.first = record.last = now
        framed = False
        for _ in range(records):
            kind, length = _TWO(data, at)
            body, at = at + 8, at + 8 + length
            if at > end:
                raise Damaged("flow record past its sample's end")
            if kind == RAW_HEADER:
                framed = self._raw_header(record, data, body, at)
            elif kind == SWITCH:
                vlan = _U32(data, body)[0]
                if record.vlan is None and vlan:
                    record.vlan = vlan
            elif kind == ROUTER:
                record.next_hop = address(data, body)[0]
            elif kind == GATEWAY:
                _gateway(record, data, body)
        return record if framed else None

    def _raw_header(self, record, data, at, end):
        protocol, frame_length, _stripped, size = _RAW(data, at)
        if protocol != HEADER_ETHERNET:
            self.undecoded["header-protocol"] = self.undecoded.get("header-protocol", 0) + 1
            return False
        if at + 16 + size > end:
            raise Damaged("header past its record's end")
        pkt = decode(data[at + 16:at + 16 + size], LINKTYPE_ETHERNET)
        if not isinstance(pkt, Packet) or not pkt.family:
            reason = pkt if isinstance(pkt, str) else "not-ip"
            self.undecoded[reason] = self.undecoded.get(reason, 0) + 1
            return False
        record.src, record.dst, record.proto = pkt.src, pkt.dst, pkt.proto
        record.sport, record.dport = pkt.sport, pkt.dport
        record.src_mac, record.dst_mac = pkt.src_mac or None, pkt.dst_mac or None
        if pkt.vlan >= 0:
            record.vlan = pkt.vlan
        record.tunnels = pkt.tunnels
        record.packets, record.octets = 1, frame_length
        return True


def _interface(index):
    """An ifIndex, None for 0 and 0x3FFFFFFF (the interface is not known)."""
    return index if index and index != 0x3FFFFFFF else None


def _gateway(record, data, at):
    """Extended gateway: BGP next hop, the router's AS, source AS, source peer AS, the destination AS path."""
    record.bgp_next_hop, at = address(data, at)
    _own, src_as, _peer_as, segments = struct.unpack_from(">IIII", data, at)
    at += 16
    path = []
    for _ in range(segments):
        kind, count = _TWO(data, at)
        asns = struct.unpack_from(f">{count}I", data, at + 8)
        at += 8 + 4 * count
        path.append((kind, asns))
    record.src_as = src_as or None
    record.as_path = tuple(path) or None
    last = path[-1] if path else None
    if last is not None and last[0] == AS_SEQUENCE and last[1]:
        record.dst_as = last[1][-1]
    flat = [asn for _kind, asns in path for asn in asns]
    if flat:
        record.next_as = flat[0]
