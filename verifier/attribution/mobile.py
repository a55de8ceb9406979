"""Mobile control plane: which node a GTP-U tunnel address belongs to, and its role.

GTP-U frames name their endpoints' addresses and the receiving end's TEID,
not what the nodes are. The control plane that set the tunnels up does:

- GTPv2-C (UDP 2123; Create Session, Modify Bearer, ...): F-TEID IEs (also
  inside Bearer Contexts) carry an interface type — S1-U eNodeB, S1-U SGW,
  S5/S8 PGW, ... — with the TEID and the address;
- GTPv1-C (UDP 2123; Create/Update PDP Context): TEID Data I and the second
  GSN Address are the user-plane TEID and address of the SGSN (requests) or
  the GGSN (responses);
- PFCP (UDP 8805, the 5G N4 / CUPS Sx interface): a Create PDR's PDI with
  source interface Access holds the UPF's own N3 F-TEID (Created PDR in the
  response when the UPF chose it); a Create/Update FAR toward Access holds,
  in Outer Header Creation, the gNB's TEID and address (toward Core: the
  next UPF's).

``ControlPlane`` is fed those UDP payloads by the pipeline and keeps, per
address, the role learned, the TEIDs seen and the protocol that taught them.
The path builder gives that role to a ``tunnel-endpoint`` that the inventory
gives none, so ``roles: [gnb]`` policies work where the inventory is silent;
the vendor still comes from inventory, MAC or ASN.

Every parser is bounded (each IE must fit in its message, at most
``MAX_IES`` per level, grouped IEs at most ``MAX_DEPTH`` deep); a damaged
message is counted in ``errors`` and teaches nothing.
"""

import struct

from ..dependents import NODE
from ..wire import CONTROL_UDP_PORTS, GTPC_PORT, PFCP_PORT  # noqa: F401 - CONTROL_UDP_PORTS: re-exported

PROTOCOLS = ("gtpv1-c", "gtpv2-c", "pfcp")
MAX_IES = 512
MAX_DEPTH = 4
MAX_NODES = 100_000
MAX_TEIDS = 64                  # TEIDs kept per node (evidence, not accounting)

# TS 29.274 8.22: F-TEID interface types that carry user plane, and the role of their owner.
GTPV2_UP_ROLES = {0: "enodeb", 1: "sgw", 2: "rnc", 3: "sgw", 4: "sgw", 5: "pgw", 15: "sgsn", 16: "sgw",
                  19: "enodeb", 20: "enodeb", 21: "rnc", 22: "sgsn", 23: "sgw", 24: "sgw", 25: "upf",
                  26: "upf", 27: "upf", 28: "upf", 29: "upf", 30: "upf", 31: "upf", 32: "upf", 34: "upf",
                  36: "upf", 38: "upf", 40: "upf", 41: "gnb"}
GTPV2_F_TEID, GTPV2_BEARER_CONTEXT = 87, 93
GTPV2_GROUPED = frozenset((GTPV2_BEARER_CONTEXT,))

# TS 29.060 7.7: TV IEs have fixed lengths by type; TLV IEs (type >= 128) carry a 2-byte length.
GTPV1_TV_LENGTHS = {1: 1, 2: 8, 3: 6, 4: 4, 5: 4, 8: 1, 9: 28, 11: 1, 12: 3, 13: 1, 14: 1, 15: 1, 16: 4,
                    17: 4, 18: 5, 19: 1, 20: 1, 21: 1, 22: 9, 23: 1, 24: 1, 25: 2, 26: 2, 27: 2, 28: 2,
                    29: 1, 127: 4}
GTPV1_TEID_DATA, GTPV1_GSN_ADDRESS = 16, 133
GTPV1_ROLES = {16: "sgsn", 18: "sgsn", 17: "ggsn", 19: "ggsn"}  # Create/Update PDP Context request/response

# TS 29.244 8.1.2 / 8.2: the grouped IEs walked, and the ones read.
PFCP_CREATE_PDR, PFCP_PDI, PFCP_CREATE_FAR, PFCP_FORWARDING, PFCP_DUPLICATING, PFCP_CREATED_PDR = 1, 2, 3, 4, 5, 8
PFCP_UPDATE_PDR, PFCP_UPDATE_FAR, PFCP_UPDATE_FORWARDING, PFCP_UPDATE_DUPLICATING = 9, 10, 11, 105
PFCP_CREATE_TRAFFIC_ENDPOINT, PFCP_CREATED_TRAFFIC_ENDPOINT, PFCP_UPDATE_TRAFFIC_ENDPOINT = 127, 128, 129
PFCP_SOURCE_INTERFACE, PFCP_F_TEID, PFCP_DESTINATION_INTERFACE, PFCP_OUTER_HEADER = 20, 21, 42, 84
# Only the groups where TS 29.244 places F-TEIDs and Outer Header Creations.
PFCP_GROUPED = frozenset((PFCP_CREATE_PDR, PFCP_PDI, PFCP_CREATE_FAR, PFCP_FORWARDING, PFCP_DUPLICATING,
                          PFCP_CREATED_PDR, PFCP_UPDATE_PDR, PFCP_UPDATE_FAR, PFCP_UPDATE_FORWARDING,
                          PFCP_UPDATE_DUPLICATING, PFCP_CREATE_TRAFFIC_ENDPOINT, PFCP_CREATED_TRAFFIC_ENDPOINT,
                          PFCP_UPDATE_TRAFFIC_ENDPOINT))
PFCP_SESSION_MESSAGES = 50                # message types from 50 on are session messages (N4 sessions)
ACCESS, CORE = 0, 1


class Malformed(Exception):
    pass


class Node:
    __slots__ = ("address", "role", "protocol", "teids", "first_seen", "last_seen")

    def __init__(self, address, role, protocol, ts):
        self.address, self.role, self.protocol = address, role, protocol
        self.teids = set()
        self.first_seen = self.last_seen = ts


class ControlPlane:
    def __init__(self):
        self.nodes = {}                   # address bytes -> Node
        self.changes = 0                  # nodes learned, roles or TEIDs added: what caches of ``node`` check
        self.on_change = None             # live verdicts: told (NODE, address) of each such change
        self.frames = dict.fromkeys(PROTOCOLS, 0)
        self.errors = dict.fromkeys(PROTOCOLS, 0)

    def __call__(self, ts, data, pos, sport, dport):
        """One UDP payload (``data[pos:]``) to or from a control-plane port."""
        if dport == PFCP_PORT or sport == PFCP_PORT:
            protocol, parse = "pfcp", parse_pfcp
        elif pos < len(data) and data[pos] >> 5 == 2:
            protocol, parse = "gtpv2-c", parse_gtpv2
        else:
            protocol, parse = "gtpv1-c", parse_gtpv1
        self.frames[protocol] += 1
        try:
            facts = parse(data, pos)
        except (Malformed, struct.error, IndexError):
            self.errors[protocol] += 1
            return
        for address, teid, role in facts:
            self._learn(ts, address, teid, role, protocol)

    def _learn(self, ts, address, teid, role, protocol):
        node = self.nodes.get(address)
        changed = False
        if node is None:
            if len(self.nodes) >= MAX_NODES:
                return
            node = self.nodes[address] = Node(address, role, protocol, ts)
            changed = True
        elif role is not None and (role, protocol) != (node.role, node.protocol):
            node.role, node.protocol = role, protocol
            changed = True
        node.last_seen = max(node.last_seen, ts)
        if teid is not None and len(node.teids) < MAX_TEIDS and teid not in node.teids:
            node.teids.add(teid)
            changed = True
        if changed:
            self.changes += 1
            if self.on_change is not None:
                self.on_change((NODE, address))

    def node(self, address):
        """What the control plane said about ``address`` (a ``Node``), or None."""
        return self.nodes.get(address)


# --- GTPv2-C ---------------------------------------------------------------------

def parse_gtpv2(data, pos):
    """[(address, TEID, role)] from every F-TEID of the message (and of a piggybacked one)."""
    facts = []
    for _ in range(2):                    # a message, and at most one piggybacked after it
        if pos + 8 > len(data):
            raise Malformed("short header")
        flags = data[pos]
        if flags >> 5 != 2:
            raise Malformed("not version 2")
        length = (data[pos + 2] << 8) | data[pos + 3]
        end = pos + 4 + length
        if end > len(data):
            raise Malformed("length beyond the payload")
        start = pos + (12 if flags & 0x08 else 8)
        if start > end:
            raise Malformed("header longer than the message")
        _gtpv2_ies(data, start, end, facts, 0)
        if not flags & 0x10:              # P: another message follows
            break
        pos = end
    return facts


def _gtpv2_ies(data, pos, end, facts, depth):
    for _ in range(MAX_IES):
        if pos == end:
            return
        if pos + 4 > end:
            raise Malformed("truncated IE header")
        itype, length = data[pos], (data[pos + 1] << 8) | data[pos + 2]
        value, pos = pos + 4, pos + 4 + length
        if pos > end:
            raise Malformed("IE beyond its message")
        if itype == GTPV2_F_TEID:
            facts.extend(_gtpv2_f_teid(data, value, pos))
        elif itype in GTPV2_GROUPED and depth < MAX_DEPTH:
            _gtpv2_ies(data, value, pos, facts, depth + 1)
    raise Malformed("too many IEs")


def _gtpv2_f_teid(data, pos, end):
    if pos + 5 > end:
        raise Malformed("short F-TEID")
    flags = data[pos]
    role = GTPV2_UP_ROLES.get(flags & 0x3F)
    if role is None:                      # a control-plane interface: not a GTP-U endpoint
        return []
    teid = int.from_bytes(data[pos + 1:pos + 5], "big")
    return [(addr, teid, role) for addr in _addresses(data, pos + 5, end, flags & 0x80, flags & 0x40)]


def _addresses(data, pos, end, v4, v6):
    out = []
    if v4:
        if pos + 4 > end:
            raise Malformed("short IPv4 address")
        out.append(bytes(data[pos:pos + 4]))
        pos += 4
    if v6:
        if pos + 16 > end:
            raise Malformed("short IPv6 address")
        out.append(bytes(data[pos:pos + 16]))
    return out


# --- GTPv1-C ---------------------------------------------------------------------

def parse_gtpv1(data, pos):
    """[(address, TEID, role)]: the user-plane TEID and GSN address of a
    Create/Update PDP Context request (the SGSN's) or response (the GGSN's)."""
    if pos + 8 > len(data):
        raise Malformed("short header")
    flags, mtype = data[pos], data[pos + 1]
    if flags >> 5 != 1 or not flags & 0x10:
        raise Malformed("not GTPv1 (PT=1)")
    end = pos + 8 + ((data[pos + 2] << 8) | data[pos + 3])
    if end > len(data):
        raise Malformed("length beyond the payload")
    role = GTPV1_ROLES.get(mtype)
    if role is None:
        return []
    at = pos + (12 if flags & 0x07 else 8)
    if flags & 0x04:                      # extension headers: skip the chain
        next_type = data[at - 1]
        for _ in range(MAX_IES):
            if not next_type:
                break
            if at >= end or not data[at]:
                raise Malformed("bad extension header")
            at += 4 * data[at]
            if at > end:
                raise Malformed("extension header beyond the message")
            next_type = data[at - 1]
    teid, gsns = None, []
    for _ in range(MAX_IES):
        if at >= end:
            break
        itype = data[at]
        if itype < 128:
            size = GTPV1_TV_LENGTHS.get(itype)
            if size is None:
                raise Malformed(f"unknown TV IE {itype}")
            value, nxt = at + 1, at + 1 + size
        else:
            if at + 3 > end:
                raise Malformed("truncated TLV header")
            value, nxt = at + 3, at + 3 + ((data[at + 1] << 8) | data[at + 2])
        if nxt > end:
            raise Malformed("IE beyond its message")
        if itype == GTPV1_TEID_DATA:
            teid = int.from_bytes(data[value:nxt], "big")
        elif itype == GTPV1_GSN_ADDRESS and nxt - value in (4, 16):
            gsns.append(bytes(data[value:nxt]))
        at = nxt
    else:
        raise Malformed("too many IEs")
    # The first GSN address is for signalling, the second for user traffic.
    if len(gsns) < 2:
        return []
    return [(gsns[1], teid, role)]


# --- PFCP ------------------------------------------------------------------------

def parse_pfcp(data, pos):
    """[(address, TEID, role)] from the F-TEIDs and Outer Header Creations of
    a session message's PDRs and FARs."""
    if pos + 8 > len(data):
        raise Malformed("short header")
    flags = data[pos]
    if flags >> 5 != 1:
        raise Malformed("not PFCP version 1")
    end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
    if end > len(data):
        raise Malformed("length beyond the payload")
    start = pos + (16 if flags & 0x01 else 8)
    if start > end:
        raise Malformed("header longer than the message")
    facts = []
    if data[pos + 1] >= PFCP_SESSION_MESSAGES:   # node messages (heartbeat, association, ...) set up no tunnels
        _pfcp_ies(data, start, end, facts, 0)
    return facts


def _pfcp_ies(data, pos, end, facts, depth):
    """Walk one level; F-TEIDs and Outer Header Creations learn a role from
    the interface their group names (source interface in a PDI, destination
    interface in forwarding parameters)."""
    found, interface = [], None
    for _ in range(MAX_IES):
        if pos == end:
            break
        if pos + 4 > end:
            raise Malformed("truncated IE header")
        itype, length = (data[pos] << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
        value, pos = pos + 4, pos + 4 + length
        if pos > end:
            raise Malformed("IE beyond its message")
        if itype & 0x8000:                 # vendor-specific: enterprise id first
            continue
        if itype in PFCP_GROUPED and depth < MAX_DEPTH:
            _pfcp_ies(data, value, pos, facts, depth + 1)
        elif itype in (PFCP_SOURCE_INTERFACE, PFCP_DESTINATION_INTERFACE) and length:
            interface = data[value] & 0x0F
        elif itype == PFCP_F_TEID:
            found.extend(("local", f) for f in _pfcp_f_teid(data, value, pos))
        elif itype == PFCP_OUTER_HEADER:
            found.extend(("peer", f) for f in _pfcp_outer_header(data, value, pos))
    else:
        raise Malformed("too many IEs")
    for which, (addr, teid) in found:
        if which == "local":               # the UPF's own end (PDI toward Access, or a Created PDR)
            role = "upf"
        else:                              # where the UPF sends: the gNB toward Access, a UPF toward Core
            role = {ACCESS: "gnb", CORE: "upf"}.get(interface)
        facts.append((addr, teid, role))


def _pfcp_f_teid(data, pos, end):
    if pos + 1 > end:
        raise Malformed("short F-TEID")
    flags = data[pos]
    if flags & 0x04:                       # CH: the UPF is asked to choose; nothing to learn yet
        return []
    if pos + 5 > end:
        raise Malformed("short F-TEID")
    teid = int.from_bytes(data[pos + 1:pos + 5], "big")
    return [(addr, teid) for addr in _addresses(data, pos + 5, end, flags & 0x01, flags & 0x02)]


def _pfcp_outer_header(data, pos, end):
    if pos + 2 > end:
        raise Malformed("short Outer Header Creation")
    desc = data[pos]
    if not desc & 0x03:                    # not GTP-U: no tunnel endpoint
        return []
    if pos + 6 > end:
        raise Malformed("short Outer Header Creation")
    teid = int.from_bytes(data[pos + 2:pos + 6], "big")
    return [(addr, teid) for addr in _addresses(data, pos + 6, end, desc & 0x01, desc & 0x02)]
