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

The parsers are control/mobile.py's, beside the decoder; each is bounded, and
a damaged message is counted in ``errors`` and teaches nothing.
"""

import struct

from ..control.mobile import Malformed, parse_gtpv1, parse_gtpv2, parse_pfcp
from ..dependents import NODE
from ..wire import CONTROL_UDP_PORTS, GTPC_PORT, PFCP_PORT  # noqa: F401 - CONTROL_UDP_PORTS: re-exported

PROTOCOLS = ("gtpv1-c", "gtpv2-c", "pfcp")
MAX_NODES = 100_000
MAX_TEIDS = 64                  # TEIDs kept per node (evidence, not accounting)


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
