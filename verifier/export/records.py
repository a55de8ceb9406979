"""Information elements and the flow record they fill.

In:  (IE number, value) pairs of one data record, as a template lists them
     (decode.py); NetFlow v9 field types are the same numbers for the IEs we
     read (RFC 3954 and the IANA IPFIX registry agree on 1-128).
Out: ``FlowRecord`` (slotted; ints and bytes, as the hot records of
     model.py): addresses, ports, protocol, counters, times, interfaces,
     MACs, VLAN, next hops, AS numbers, direction, sampler.
"""

from ..capture.files import Interface

# IANA IPFIX information elements (and NetFlow v9 field types of the same numbers)
OCTETS, PACKETS, PROTOCOL, TOS, TCP_FLAGS = 1, 2, 4, 5, 6
SRC_PORT, SRC_V4, SRC_MASK, IN_IF, DST_PORT, DST_V4, DST_MASK, OUT_IF = 7, 8, 9, 10, 11, 12, 13, 14
NEXT_HOP_V4, SRC_AS, DST_AS, BGP_NEXT_HOP_V4 = 15, 16, 17, 18
END_UPTIME, START_UPTIME = 21, 22
SRC_V6, DST_V6 = 27, 28
SAMPLING_INTERVAL, SAMPLING_ALGORITHM, SAMPLER_ID, SAMPLER_MODE, SAMPLER_RANDOM_INTERVAL = 34, 35, 48, 49, 50
SRC_MAC, POST_DST_MAC, VLAN, POST_VLAN, IP_VERSION, DIRECTION = 56, 57, 58, 59, 60, 61
NEXT_HOP_V6, BGP_NEXT_HOP_V6 = 62, 63
DST_MAC, POST_SRC_MAC = 80, 81
BGP_NEXT_AS, BGP_PREV_AS = 128, 129
EXPORTER_V4, EXPORTER_V6 = 130, 131
OCTETS_TOTAL, PACKETS_TOTAL = 85, 86
END_REASON = 136
START_SECONDS, END_SECONDS, START_MS, END_MS = 150, 151, 152, 153
SYSTEM_INIT_MS = 160
DOT1Q_VLAN = 243
SELECTOR_ID, SAMPLING_PACKET_INTERVAL, SAMPLING_PACKET_SPACE = 302, 305, 306
SAMPLING_SIZE, SAMPLING_POPULATION = 309, 310

ADDRESSES = frozenset((SRC_V4, DST_V4, NEXT_HOP_V4, BGP_NEXT_HOP_V4, EXPORTER_V4, SRC_V6, DST_V6, NEXT_HOP_V6,
                       BGP_NEXT_HOP_V6, EXPORTER_V6))
MACS = frozenset((SRC_MAC, POST_DST_MAC, DST_MAC, POST_SRC_MAC))
RAW = ADDRESSES | MACS                 # kept as bytes; every other IE we read is an unsigned integer
SAMPLING = frozenset((SAMPLING_INTERVAL, SAMPLING_ALGORITHM, SAMPLER_ID, SAMPLER_MODE, SAMPLER_RANDOM_INTERVAL,
                      SELECTOR_ID, SAMPLING_PACKET_INTERVAL, SAMPLING_PACKET_SPACE, SAMPLING_SIZE,
                      SAMPLING_POPULATION))
READ = RAW | SAMPLING | frozenset((OCTETS, PACKETS, PROTOCOL, TOS, TCP_FLAGS, SRC_PORT, DST_PORT, IN_IF, OUT_IF,
                                   SRC_AS, DST_AS, END_UPTIME, START_UPTIME, VLAN, POST_VLAN, IP_VERSION,
                                   DIRECTION, BGP_NEXT_AS, BGP_PREV_AS, OCTETS_TOTAL, PACKETS_TOTAL, END_REASON,
                                   START_SECONDS, END_SECONDS, START_MS, END_MS, SYSTEM_INIT_MS, DOT1Q_VLAN,
                                   SRC_MASK, DST_MASK))


class Damaged(ValueError):
    """A datagram, set or sample that does not decode (the reason is the message)."""


class FlowRecord:
    """One exported flow (one direction, as exporters count them)."""

    __slots__ = ("protocol", "exporter", "domain", "src", "dst", "sport", "dport", "proto", "octets", "packets", "first",
                 "last", "in_if", "out_if", "src_mac", "dst_mac", "vlan", "next_hop", "bgp_next_hop", "src_as",
                 "dst_as", "prev_as", "next_as", "direction", "sampling", "tunnels", "as_path")

    def __init__(self, protocol, exporter, domain):
        self.protocol = protocol           # what carried it: decode.PROTOCOLS
        self.exporter, self.domain = exporter, domain
        self.src = self.dst = self.src_mac = self.dst_mac = self.next_hop = self.bgp_next_hop = None
        self.sport = self.dport = self.proto = self.octets = self.packets = 0
        self.first = self.last = None
        self.in_if = self.out_if = self.vlan = self.src_as = self.dst_as = self.prev_as = self.next_as = None
        self.direction = None
        self.sampling = 1                  # one packet in N was counted: the counters are not scaled here
        self.tunnels = None                # sFlow: the sampled frame's tunnels, as decode.py finds them
        self.as_path = None                # sFlow gateway: ((segment type, (AS, ...)), ...) toward dst

    def __repr__(self):
        return (f"FlowRecord({self.src!r}:{self.sport} -> {self.dst!r}:{self.dport} proto {self.proto}, "
                f"{self.packets} pkts {self.octets} B)")


EXPORT_INTERFACE = Interface(-1, "flow-export")   # the records' pseudo capture interface (no frames, no link type)


class Records(list):
    """The flow records (records.FlowRecord) of one pass over the listeners, read at ``now``."""

    __slots__ = ("now",)

    def __init__(self, items, now):
        super().__init__(items)
        self.now = now


def fill(record, fields, boot=None, export_time=None):
    """Set ``record`` from ``fields`` ({IE: value} of one data record).
    ``boot``: the exporter's boot time in epoch seconds, for the uptime-based
    times of NetFlow v9 (and IPFIX exporters that send them)."""
    get = fields.get
    record.src = get(SRC_V4) or get(SRC_V6)
    record.dst = get(DST_V4) or get(DST_V6)
    record.sport, record.dport, record.proto = get(SRC_PORT, 0), get(DST_PORT, 0), get(PROTOCOL, 0)
    record.octets = get(OCTETS, get(OCTETS_TOTAL, 0))
    record.packets = get(PACKETS, get(PACKETS_TOTAL, 0))
    record.in_if, record.out_if = get(IN_IF), get(OUT_IF)
    record.src_mac = get(SRC_MAC) or get(POST_SRC_MAC)
    record.dst_mac = get(DST_MAC) or get(POST_DST_MAC)
    record.vlan = get(VLAN, get(DOT1Q_VLAN))
    record.next_hop = get(NEXT_HOP_V4) or get(NEXT_HOP_V6)
    record.bgp_next_hop = get(BGP_NEXT_HOP_V4) or get(BGP_NEXT_HOP_V6)
    record.src_as, record.dst_as = get(SRC_AS), get(DST_AS)
    record.prev_as, record.next_as = get(BGP_PREV_AS), get(BGP_NEXT_AS)
    record.direction = get(DIRECTION)
    if START_MS in fields:
        record.first, record.last = fields[START_MS] / 1000.0, get(END_MS, fields[START_MS]) / 1000.0
    elif START_SECONDS in fields:
        record.first, record.last = float(fields[START_SECONDS]), float(get(END_SECONDS, fields[START_SECONDS]))
    elif START_UPTIME in fields:
        base = get(SYSTEM_INIT_MS) / 1000.0 if SYSTEM_INIT_MS in fields else boot
        if base is not None:
            record.first = base + fields[START_UPTIME] / 1000.0
            record.last = base + get(END_UPTIME, fields[START_UPTIME]) / 1000.0
    if record.first is None and export_time is not None:
        record.first = record.last = float(export_time)
    return record
