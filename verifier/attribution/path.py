"""Flow -> ordered path elements, as seen from one zone's side.

Runs once per flow (at expiry), never per packet; finished elements are
cached per kind and address. The local side is the endpoint inside the zone;
with no zone (``local_side`` None) both sides are treated as remote, so
``zone: any`` rules still see every MAC and network.

Order: endpoint device, segment devices, L2 neighbours, tunnel endpoints,
router hops (ICMP errors' senders, then flow exporters and the next hops
their records name, with the AS path they give), then per remote end its transit networks (the BGP route's
carriers, nearest first: attribution/transit.py) and its remote network:
from the zone outwards.
"""

from ..decode import ERSPAN, GENEVE, GRE, GTPU, VXLAN
from ..model import (ENDPOINT_DEVICE, KINDS, L2_NEIGHBOR, REMOTE_NETWORK, ROUTER_HOP, SEGMENT_DEVICE,
                     TRANSIT_NETWORK, TUNNEL_ENDPOINT, Answer, Evidence, PathElement)
from ..text import ip_text, mac_text
from . import CACHE_LIMIT
from .special import is_special
from .transit import Carriers


TUNNEL_ID_NAMES = {GTPU: "teid", VXLAN: "vni", GENEVE: "vni", GRE: "key"}
TOWARD = "toward the remote end, as the exporter's BGP table had it"
BACK = "the AS the remote end's traffic came in from (bgpPrevAdjacentAsNumber): the return path's carrier"
EXPORT_SOURCES = {"netflow-v5": "netflow", "netflow-v9": "netflow", "ipfix": "ipfix", "sflow": "sflow"}
_MISSING = object()


class PathBuilder:
    """Builds flows' paths for one policy and attributor.

    An element depends only on its kind and address (and the policy's trust
    classes), so finished elements are cached: a busy neighbour or carrier is
    attributed once, not once per flow. Build a new ``PathBuilder`` when the
    policy or the attributor changes.
    """

    CACHE_LIMIT = CACHE_LIMIT          # attribution.CACHE_LIMIT: entries per cache

    def __init__(self, attributor, trust, discovery=None, control_plane=None, transit_judged=False, bgp_peers=None):
        self.attributor = attributor
        self.trust = trust
        # Carriers per BGP peer choice: ``bgp_peers`` (Policy.bgp_peers) maps zones to the peer whose routes
        # decide, None to the default; one Carriers per distinct peer.
        self._zone_carriers, self._by_peer = {}, {}
        if attributor.routes is not None or transit_judged:
            for zone, peer in (bgp_peers or {None: None}).items():
                if peer not in self._by_peer:
                    self._by_peer[peer] = Carriers(attributor.routes, trust, transit_judged, peer)
                self._zone_carriers[zone] = self._by_peer[peer]
        self.carriers = self._zone_carriers.get(None)
        self.discovery = discovery
        self.control_plane = control_plane
        self._caches = {kind: {} for kind in KINDS}    # kind -> address -> element (or None)
        self._elements = {}                            # composite keys: learned and restated elements
        self._endpoints = {}                           # (address, ifindex, vlan) -> tunnel-endpoint element
        self._endpoints_as_of = None                   # the neighbour and control-plane changes they saw
        self._models = {kind: {} for kind in KINDS}    # kind -> answer -> an element made from it
        inventory = attributor.inventory
        self._segments = bool(inventory and inventory.has_segment_devices())
        self._ports = bool(inventory and inventory.ports)
        self._mac_sources = "inventory, oui" if attributor.inventory else "oui"
        self._ip_sources = ", ".join(p.name for p in attributor.providers if p.name != "oui")

    def build(self, flow, local_side, interface, zone=None):
        elements = []
        add = elements.append
        macs = (flow.macs_a, flow.macs_b)
        ifindex, vlan, _vlan2, _proto, _ap, _bp, a, b = flow.unpacked()     # the key read once, not per field
        caches = self._caches
        if local_side is not None:
            cache = caches[ENDPOINT_DEVICE]
            for mac in _ordered(macs[local_side]):
                if not mac[0] & 0x01:                     # group addresses are not equipment
                    el = cache.get(mac)
                    add(el if el is not None else self._new(ENDPOINT_DEVICE, mac))
        if self._segments:
            for dev in self.attributor.segment_devices(interface, vlan if vlan >= 0 else None):
                add(self._segment_device(dev))
        discovery = self.discovery
        if discovery is not None and discovery.by_segment:
            for dev in discovery.devices_for(ifindex, vlan, flow.first, flow.last):
                add(self._learned_device(dev))
        remote_sides = (0, 1) if local_side is None else (1 - local_side,)
        cache = caches[L2_NEIGHBOR]
        for side in remote_sides:
            for mac in _ordered(macs[side]):
                if not mac[0] & 0x01:
                    el = cache.get(mac)
                    add(el if el is not None else self._new(L2_NEIGHBOR, mac))
        if flow.tunnels:
            elements.extend(self._tunnel_endpoints(flow.tunnels, ifindex, vlan))
        rare = flow.rare                       # ICMP errors' routers and export records: few flows have any
        exports = None if rare is None else rare.exports
        if rare is not None and rare.hops:
            for hop in sorted(rare.hops):
                add(self._element(ROUTER_HOP, hop))
        if exports:
            elements.extend(self._exported(exports, local_side, a, b))
        cache = caches[REMOTE_NETWORK]
        carriers = self._zone_carriers.get(zone, self.carriers) if zone is not None else self.carriers
        for side in remote_sides:
            addr = b if side else a
            el = cache.get(addr, _MISSING)
            if el is _MISSING:
                el = self._new(REMOTE_NETWORK, addr)
            if carriers is not None and not is_special(addr):
                transit, el = carriers.toward(addr, el)
                elements.extend(transit)
            if exports and el is not None and el.asn is None:
                el = self._exported_origin(exports, side, addr, el)
            if el is not None:
                add(el)
        return elements

    def _exported_origin(self, exports, side, addr, el):
        """The remote network an exporter's BGP table names (bgpDestinationAs
        of the record toward it, bgpSourceAs of the record from it, sFlow's
        gateway AS path), where the ASN databases and BGP data had no answer."""
        for (protocol, exporter, _domain), sides in exports.items():
            toward, back = sides[1 - side], sides[side]
            asn = (toward.dst_as if toward is not None else None) or (back.src_as if back is not None else None)
            if asn:
                family = EXPORT_SOURCES.get(protocol, protocol)
                evidence = Evidence(family, None, None, None,
                                    {"exporter": ip_text(exporter), "address": ip_text(addr),
                                     "searched": el.evidence.detail.get("searched") if el.evidence.detail else None,
                                     "note": "the origin AS in the exporter's BGP table"})
                return PathElement(REMOTE_NETWORK, el.subject, None, None, asn,
                                   self.trust(Answer(None, None, evidence, asn=asn)), evidence)
        return el

    def _exported(self, exports, local_side, a, b):
        """What flow-export records say the flow crossed, per exporter in the
        order they reported it: the exporter itself as a ``router-hop`` (its
        interfaces and sampling as evidence) and the ``segment-device``s the
        inventory declares cabled at those interfaces; the next hops and BGP
        next hops its records name, as ``router-hop``s; the adjacent or whole
        AS path toward the remote end (IE 128, sFlow's gateway record), and
        the AS the remote end's records came in from (IE 129), as
        ``transit-network`` elements, nearest first. ``seen`` keeps each
        address, device and AS once."""
        out, seen = [], set()
        for (protocol, exporter, domain), sides in exports.items():
            family = EXPORT_SOURCES.get(protocol, protocol)
            records = [r for r in sides if r is not None]
            interfaces = tuple(sorted(((_direction(r, a, b), r.in_if, r.out_if) for r in records),
                                      key=lambda t: (t[0], t[1] or 0, t[2] or 0)))
            if exporter not in seen:
                seen.add(exporter)
                out.append(self._exporter_hop(protocol, family, exporter, domain, interfaces,
                                              max(r.sampling for r in records)))
                out.extend(self._cabled(exporter, interfaces, seen))
            for r in records:
                for hop, what in ((r.next_hop, "next_hop_of"), (r.bgp_next_hop, "bgp_next_hop_of")):
                    if hop and any(hop) and hop not in seen:
                        seen.add(hop)
                        base = self._element(ROUTER_HOP, hop)
                        out.append(_restated(base, source=family, attributed_by=base.evidence.source,
                                             **{what: ip_text(exporter)}))
            toward = [sides[local_side]] if local_side is not None else records
            for r in toward:
                if r is not None:
                    path = [asn for _kind, asns in r.as_path for asn in asns] if r.as_path else \
                        ([r.next_as] if r.next_as else [])
                    origin = path.pop() if r.as_path and path else None
                    out.extend(self._carriers(path, origin, family, exporter, seen, TOWARD))
            back = [sides[1 - local_side]] if local_side is not None else records
            for r in back:
                if r is not None and r.prev_as:             # IE 129: where the remote end's traffic came in
                    out.extend(self._carriers([r.prev_as], None, family, exporter, seen, BACK))
        return out

    def _exporter_hop(self, protocol, family, exporter, domain, interfaces, sampling):
        key = (ROUTER_HOP, protocol, exporter, domain, interfaces, sampling)
        el = self._elements.get(key)
        if el is None:
            base = self._element(ROUTER_HOP, exporter)
            detail = {"exporter": ip_text(exporter), "observation_domain": domain,
                      "attributed_by": base.evidence.source,
                      "interfaces": [{"direction": d, "in": i, "out": o} for d, i, o in interfaces]}
            if sampling > 1:
                detail["sampling"] = f"1 in {sampling}"
            el = self._remember(key, _restated(base, source=family, **detail))
        return el

    def _cabled(self, exporter, interfaces, seen):
        """Inventory devices declared at the exporter's interfaces the records name."""
        if not self._ports:
            return []
        port_devices, out = self.attributor.inventory.port_devices, []
        for ifindex in dict.fromkeys(i for _d, in_if, out_if in interfaces for i in (in_if, out_if)):
            for dev in port_devices(exporter, ifindex) if ifindex is not None else ():
                if ("device", dev.name) not in seen:
                    seen.add(("device", dev.name))
                    out.append(self._segment_device(dev))
        return out

    def _carriers(self, path, origin, family, exporter, seen, note):
        """``transit-network`` elements of the ASes of ``path`` (the origin left out), nearest first."""
        out = []
        for k, asn in enumerate(dict.fromkeys(path)):
            if ("AS", asn) not in seen and asn != origin:
                seen.add(("AS", asn))
                evidence = Evidence(family, None, None, None,
                                    {"exporter": ip_text(exporter), "position": k + 1,
                                     "as_path": path + [origin] if origin is not None else path, "note": note})
                out.append(PathElement(TRANSIT_NETWORK, f"AS{asn}", None, None, asn,
                                       self.trust(Answer(None, None, evidence, asn=asn)), evidence))
        return out

    def routes_changed(self):
        """BGP routes changed (BMP): what was made from the old ones goes."""
        for carriers in self._by_peer.values():
            carriers.forget()

    def _element(self, kind, raw):
        el = self._caches[kind].get(raw, _MISSING)
        return self._new(kind, raw) if el is _MISSING else el

    def _new(self, kind, raw):
        """Attribute and cache the element of ``raw`` (None, no element, is cached too)."""
        cache = self._caches[kind]
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        el = cache[raw] = self._make(kind, raw)
        return el

    def _make(self, kind, raw):
        if len(raw) == 6:
            return self._modelled(kind, mac_text(raw), self.attributor.mac(raw), self._mac_sources)
        answer = self.attributor.ip(raw)
        if answer is None and kind == REMOTE_NETWORK and is_special(raw):
            return None                                     # local or reserved: no carrier to judge
        return self._modelled(kind, ip_text(raw), answer, self._ip_sources)

    def _modelled(self, kind, subject, answer, searched):
        """The element of ``subject`` given its ``answer``. Answers are shared
        (one per OUI block, AS and prefix length, inventory device, kind of
        unattributable address), so the first element made from an answer is
        the model the next subjects with it are copied from."""
        models = self._models[kind]
        model = models.get(answer) if answer is not None else None
        if model is not None:
            return model.about(subject)
        el = self._from_answer(kind, subject, answer, searched)
        if answer is not None:
            if len(models) >= self.CACHE_LIMIT:
                models.clear()
            models[answer] = el
        return el

    def _tunnel_endpoints(self, tunnels, ifindex, vlan):
        """Outer addresses of the tunnels a flow was carried in, outermost
        first, each with the tunnel ids seen (TEIDs, VNIs, GRE keys) as
        evidence. ERSPAN is a mirroring transport the traffic itself never
        crossed: not an element. Attribution: see ``_tunnel_endpoint``; its
        elements are kept per address and segment until ARP/NDP or the
        control plane teach something new."""
        ids = {}
        for kind, src, dst, ident in sorted(tunnels):
            if kind == ERSPAN:
                continue
            for addr in (src, dst):
                seen = ids.setdefault((kind, addr), set())
                # A TEID is chosen by the receiving end; VNIs and keys name the tunnel itself.
                if ident >= 0 and (addr == dst or kind != GTPU):
                    seen.add(ident)
        as_of = (self.discovery.neighbour_changes if self.discovery is not None else 0,
                 self.control_plane.changes if self.control_plane is not None else 0)
        endpoints = self._endpoints
        if as_of != self._endpoints_as_of or len(endpoints) >= self.CACHE_LIMIT:
            endpoints.clear()
            self._endpoints_as_of = as_of
        out = []
        for (kind, addr), idents in ids.items():
            detail = {"tunnel": kind}
            if idents:
                detail[TUNNEL_ID_NAMES.get(kind, "id")] = sorted(idents)
            el = endpoints.get((addr, ifindex, vlan))
            if el is None:
                el = endpoints[(addr, ifindex, vlan)] = self._tunnel_endpoint(addr, ifindex, vlan)
            out.append(el.restated(detail))
        return out

    def _tunnel_endpoint(self, addr, ifindex, vlan):
        """Inventory by address first. Else, when ARP or NDP on the segment
        bound the address to a MAC (the endpoint is on-link), that MAC's
        answer (inventory, then OUI) names the equipment itself; the outer
        frames alone cannot, their MAC may be a router's (an l2-neighbor
        anyway). Else the address's ASN answer. A role the inventory does not
        give may come from the mobile control plane (GTP-C, PFCP)."""
        el = self._element(TUNNEL_ENDPOINT, addr)
        from_inventory = el.evidence is not None and el.evidence.source == "inventory"
        heard = self.discovery.neighbour(ifindex, vlan, addr) if self.discovery and not from_inventory else None
        node = self.control_plane.node(addr) if self.control_plane is not None and el.role is None else None
        if heard is None and (node is None or node.role is None):
            return el
        key = (TUNNEL_ENDPOINT, addr, heard, node.role if node else None)
        cached = self._elements.get(key)
        if cached is not None:
            return cached
        if heard is not None:
            mac, protocol = heard
            answer = self.attributor.mac(mac)
            if answer is not None and not answer.unattributable:
                el = _restated(self._from_answer(TUNNEL_ENDPOINT, ip_text(addr), answer, None),
                               mac=mac_text(mac), mac_learned_from=protocol)
        if node is not None and node.role is not None and el.role is None:
            detail = {"role_learned_from": node.protocol}
            if node.teids:
                detail["role_teids"] = sorted(node.teids)
            el = _restated(el, role=node.role, **detail)
        return self._remember(key, el)

    def remote_network(self, addr):
        """The ``remote-network`` element of one address (None for special-purpose ranges)."""
        return self._element(REMOTE_NETWORK, addr)

    def probe_hops(self, trace):
        """Router hops an active trace found, in order, with evidence ``probe``
        (the attribution's own source kept as ``attributed_by``)."""
        import ipaddress
        out = []
        for hop in trace.hops:
            if hop.address is None or hop.reached:
                continue
            base = self._element(ROUTER_HOP, ipaddress.ip_address(hop.address).packed)
            out.append(_restated(base, source="probe", attributed_by=base.evidence.source, ttl=hop.ttl,
                                 protocol=trace.proto, destination=trace.destination))
        return out

    def _learned_device(self, dev):
        """A device heard through LLDP/CDP/STP (its attribution may improve as it
        announces more, so the element is cached per answer)."""
        key = (SEGMENT_DEVICE, id(dev), id(dev.answer))
        el = self._elements.get(key)
        if el is None:
            answer = dev.answer
            if answer is None:
                evidence = Evidence(dev.protocol, None, None, None,
                                    {"protocol": dev.protocol, "id": dev.ident, "matched_by": None,
                                     "searched": "inventory, descriptions, oui"})
                el = PathElement(SEGMENT_DEVICE, dev.subject, None, None, None, self.trust(None), evidence)
            else:
                el = self._from_answer(SEGMENT_DEVICE, dev.subject, answer, dev.protocol)
            self._remember(key, el)
        return el

    def _segment_device(self, dev):
        key = (SEGMENT_DEVICE, dev.name)
        el = self._elements.get(key)
        if el is None:
            answer = self.attributor.inventory.answer(dev)
            el = self._remember(key, self._from_answer(SEGMENT_DEVICE, dev.name, answer, "inventory"))
        return el

    def _remember(self, key, el):
        if len(self._elements) >= self.CACHE_LIMIT:
            self._elements.clear()
        self._elements[key] = el
        return el

    def _from_answer(self, kind, subject, answer, searched):
        if answer is None:
            evidence = Evidence("none", None, None, None, {"searched": searched})
            return PathElement(kind, subject, None, None, None, self.trust(None), evidence)
        role = answer.device.role if answer.device is not None else None
        return PathElement(kind, subject, answer.vendor, answer.organization, answer.asn,
                           self.trust(answer), answer.evidence, role.lower() if role else None)


def _direction(record, a, b):
    """Which way a record counted, as the flow's endpoints read: "a->b" or "b->a"."""
    return "a->b" if record.src == a and record.dst == b else "b->a"


def _ordered(macs):
    """A flow side's MACs (``Flow.macs_a``/``macs_b``: one MAC, or a
    frozenset) in a stable order."""
    if macs.__class__ is bytes:
        return (macs,)
    return macs if len(macs) < 2 else sorted(macs)


def _restated(el, source=None, role=None, **detail):
    """A copy of ``el`` whose evidence adds ``detail`` (and names another
    source, or gives a role): elements are shared, so never changed in place."""
    evidence = el.evidence.adding(detail, source)
    if role is not None and role != el.role:
        return PathElement(el.kind, el.subject, el.vendor, el.organization, el.asn, el.trust, evidence, role)
    out = el.about(el.subject)                  # same attribution and class: a copy, evidence aside
    out.evidence = evidence
    return out
