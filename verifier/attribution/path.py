"""Flow -> ordered path elements, as seen from one zone's side.

Runs once per flow (at expiry), never per packet; every address answer comes
from the ``Attributor`` cache. The local side is the endpoint inside the zone;
with no zone (``local_side`` None) both sides are treated as remote, so
``zone: any`` rules still see every MAC and network.

Order: endpoint device, segment devices, L2 neighbours, router hops, remote
network: from the zone outwards.
"""

import socket

from ..model import (ENDPOINT_DEVICE, L2_NEIGHBOR, REMOTE_NETWORK, ROUTER_HOP, SEGMENT_DEVICE,
                     Evidence, PathElement, Answer)
from .special import is_special


def mac_text(mac):
    return ":".join(f"{b:02x}" for b in mac)


def ip_text(addr):
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def build_path(flow, local_side, attributor, trust, interface):
    elements = []

    def add(kind, subject, answer, searched):
        if answer is None:
            evidence = Evidence("none", None, None, None, {"searched": searched})
            elements.append(PathElement(kind, subject, None, None, None, trust(None), evidence))
        else:
            elements.append(PathElement(kind, subject, answer.vendor, answer.organization, answer.asn,
                                        trust(answer), answer.evidence))

    mac_sources = "inventory, oui" if attributor.inventory else "oui"
    ip_sources = ", ".join(p.name for p in attributor.providers if p.name != "oui")
    if local_side is not None:
        for mac in sorted(flow.macs[local_side]):
            if not mac[0] & 0x01:                     # group addresses are not equipment
                add(ENDPOINT_DEVICE, mac_text(mac), attributor.mac(mac), mac_sources)
    vlan = flow.vlan if flow.vlan >= 0 else None
    for dev in attributor.segment_devices(interface, vlan):
        answer = Answer(dev.vendor, dev.name, Evidence("inventory", attributor.inventory.path,
                                                       attributor.inventory.version, None, dev.detail()))
        add(SEGMENT_DEVICE, dev.name, answer, "inventory")
    remote_sides = (0, 1) if local_side is None else (1 - local_side,)
    for side in remote_sides:
        for mac in sorted(flow.macs[side]):
            if not mac[0] & 0x01:
                add(L2_NEIGHBOR, mac_text(mac), attributor.mac(mac), mac_sources)
    for hop in sorted(flow.hops):
        add(ROUTER_HOP, ip_text(hop), attributor.ip(hop), ip_sources)
    for side in remote_sides:
        addr = flow.endpoint(side)[0]
        answer = attributor.ip(addr)
        if answer is None and is_special(addr):
            continue                                   # local or reserved: no carrier to judge
        add(REMOTE_NETWORK, ip_text(addr), answer, ip_sources)
    return elements
