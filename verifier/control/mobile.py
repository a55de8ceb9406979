"""GTPv1-C, GTPv2-C and PFCP messages -> (address, TEID, role) facts: the
bounded parsers of the mobile control plane (attribution/mobile.py keeps
what they teach).

Every parser is bounded (each IE must fit in its message, at most
``MAX_IES`` per level, grouped IEs at most ``MAX_DEPTH`` deep); a damaged
message raises ``Malformed`` (or struct.error / IndexError), which the
caller counts.
"""

MAX_IES = 512
MAX_DEPTH = 4

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
