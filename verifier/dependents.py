"""Open flows by the outside facts their paths depend on (live verdicts).

A flow's path comes from its own packets and from facts other frames teach:
the devices announced on its segment (LLDP, CDP, STP), the ARP/NDP binding
and the GTP-C/PFCP role of each of its tunnel endpoints, the active trace
toward its remote end. When one of these facts changes, the open flows that
depend on it, and no others, are judged again: each fact is a key, and each
key holds the open flows that depend on it.

Keys (tuples, compared by value):

- ``(SEGMENT, ifindex, vlan)``: devices announced on that capture
  interface and VLAN (a device's expiry changes no open flow: it was on the
  path of every flow open while it was announced);
- ``(NEIGHBOUR, ifindex, vlan, address)``: the MAC bound to a tunnel
  endpoint's address on that segment;
- ``(NODE, address)``: the mobile-core role of a tunnel endpoint;
- ``(TRACE, address text)``: the probe trace toward a remote end;
- ``(ROUTE, address bytes)``: the BGP route toward a remote end (BMP:
  ``routes_changed`` names the addresses a changed prefix holds).

The producers (``SegmentDiscovery``, ``ControlPlane``, the prober's worker
thread) only name the key that changed (``changed``); the pipeline takes
the concerned flows after each chunk or idle tick (``take``) and judges
them. A flow's keys live in its ``depends`` slot (one interned tuple shared
by the flows of a segment), so forgetting an ended flow needs no lookup of
what it followed.
"""

SEGMENT, NEIGHBOUR, NODE, TRACE, ROUTE = "segment", "neighbour", "node", "trace", "route"
INTERN_LIMIT = 65536


class Dependents:
    def __init__(self):
        self.flows = {}          # key -> {flow: None}: open flows depending on it, in the order they came
        self.changed = set()     # keys changed since the last ``take``
        self._interned = {}

    def __len__(self):
        return len(self.flows)

    def follow(self, flow, keys):
        """``flow`` depends on ``keys`` (a tuple) from now on."""
        old = flow.depends
        if old == keys:
            return
        interned = self._interned
        keys = interned.setdefault(keys, keys)
        if len(interned) > INTERN_LIMIT:
            interned.clear()
        flows = self.flows
        if old:
            for key in old:
                if key not in keys:
                    self._drop(key, flow)
        for key in keys:
            if not old or key not in old:
                group = flows.get(key)
                if group is None:
                    group = flows[key] = {}
                group[flow] = None
        flow.depends = keys

    def forget(self, flow):
        """``flow`` has ended."""
        for key in flow.depends or ():
            self._drop(key, flow)
        flow.depends = None

    def _drop(self, key, flow):
        group = self.flows.get(key)
        if group is not None:
            group.pop(flow, None)
            if not group:
                del self.flows[key]

    def changed_fact(self, key):
        """A producer learned something new about ``key``."""
        if key in self.flows:
            self.changed.add(key)

    def routes_changed(self, prefixes):
        """Routes changed for ``prefixes`` ((size, network int, length)):
        every followed remote address one of them holds has changed."""
        masks = {}
        for size, net, plen in prefixes:
            shift = size * 8 - plen
            masks.setdefault((size, shift), set()).add(net >> shift)
        for key in [k for k in self.flows if k[0] == ROUTE]:
            addr = key[1]
            value, size = int.from_bytes(addr, "big"), len(addr)
            if any(value >> shift in nets for (sz, shift), nets in masks.items() if sz == size):
                self.changed.add(key)

    def take(self):
        """The open flows concerned by what changed since the last call, each once."""
        if not self.changed:
            return []
        out = {}
        for key in self.changed:
            out.update(self.flows.get(key, ()))
        self.changed.clear()
        return list(out)
