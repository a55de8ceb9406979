"""Flow -> ordered path elements, as seen from one zone's side.

Runs once per flow (at expiry), never per packet; finished elements are
cached per (kind, address). The local side is the endpoint inside the zone;
with no zone (``local_side`` None) both sides are treated as remote, so
``zone: any`` rules still see every MAC and network.

Order: endpoint device, segment devices, L2 neighbours, router hops, remote
network: from the zone outwards.
"""

import socket

from ..model import (ENDPOINT_DEVICE, L2_NEIGHBOR, REMOTE_NETWORK, ROUTER_HOP, SEGMENT_DEVICE,
                     Evidence, PathElement)
from .special import is_special


def mac_text(mac):
    return mac.hex(":")


def ip_text(addr):
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


class PathBuilder:
    """Builds flows' paths for one policy and attributor.

    An element depends only on its kind and address (and the policy's trust
    classes), so finished elements are cached: a busy neighbour or carrier is
    attributed once, not once per flow. Build a new ``PathBuilder`` when the
    policy or the attributor changes.
    """

    CACHE_LIMIT = 500_000

    def __init__(self, attributor, trust):
        self.attributor = attributor
        self.trust = trust
        self._elements = {}
        self._mac_sources = "inventory, oui" if attributor.inventory else "oui"
        self._ip_sources = ", ".join(p.name for p in attributor.providers if p.name != "oui")

    def build(self, flow, local_side, interface):
        elements = []
        add = elements.append
        element = self._element
        if local_side is not None:
            for mac in sorted(flow.macs[local_side]):
                if not mac[0] & 0x01:                     # group addresses are not equipment
                    add(element(ENDPOINT_DEVICE, mac))
        vlan = flow.vlan if flow.vlan >= 0 else None
        for dev in self.attributor.segment_devices(interface, vlan):
            add(self._segment_device(dev))
        remote_sides = (0, 1) if local_side is None else (1 - local_side,)
        for side in remote_sides:
            for mac in sorted(flow.macs[side]):
                if not mac[0] & 0x01:
                    add(element(L2_NEIGHBOR, mac))
        for hop in sorted(flow.hops):
            add(element(ROUTER_HOP, hop))
        for side in remote_sides:
            el = element(REMOTE_NETWORK, flow.endpoint(side)[0])
            if el is not None:
                add(el)
        return elements

    def _element(self, kind, raw):
        key = (kind, raw)
        el = self._elements.get(key)
        if el is None:
            if len(self._elements) >= self.CACHE_LIMIT:
                self._elements.clear()
            el = self._elements[key] = self._make(kind, raw)
        return el

    def _make(self, kind, raw):
        if len(raw) == 6:
            return self._from_answer(kind, mac_text(raw), self.attributor.mac(raw), self._mac_sources)
        answer = self.attributor.ip(raw)
        if answer is None and kind == REMOTE_NETWORK and is_special(raw):
            return None                                     # local or reserved: no carrier to judge
        return self._from_answer(kind, ip_text(raw), answer, self._ip_sources)

    def _segment_device(self, dev):
        key = (SEGMENT_DEVICE, dev.name)
        el = self._elements.get(key)
        if el is None:
            answer = self.attributor.inventory.answer(dev)
            el = self._elements[key] = self._from_answer(SEGMENT_DEVICE, dev.name, answer, "inventory")
        return el

    def _from_answer(self, kind, subject, answer, searched):
        if answer is None:
            evidence = Evidence("none", None, None, None, {"searched": searched})
            return PathElement(kind, subject, None, None, None, self.trust(None), evidence)
        return PathElement(kind, subject, answer.vendor, answer.organization, answer.asn,
                           self.trust(answer), answer.evidence)
