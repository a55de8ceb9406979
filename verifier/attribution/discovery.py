"""Passive segment discovery: LLDP, CDP and STP frames -> learned devices.

``SegmentDiscovery`` is a control-frame hook of the pipeline (it sees every
non-IP frame) and an attribution source for ``segment-device`` path
elements: ``devices_for(ifindex, vlan, first, last)`` lists the devices
announced on that capture interface and VLAN while a flow was alive.

The parsers (control/segment.py, beside the decoder) are bounded walks over
one frame; a malformed frame ends its own parse and is counted here, never
hangs or raises. What each protocol gives:

- LLDP (ethertype 0x88cc): chassis id (a MAC when subtype 4), port id, TTL,
  system name and description, management addresses;
- CDP (SNAP 00000c/2000): device id, platform, software version, port,
  addresses; hold time as TTL;
- STP/RSTP/MSTP (LLC 42/42): the sending bridge's MAC and the root bridge's
  MAC, both as devices (``role`` bridge / root), max age as TTL.

It also keeps the segment's neighbour table: IP -> MAC bindings announced by
ARP (the sender's pair; probes from 0.0.0.0 teach nothing) and IPv6
neighbour discovery (a solicitation's or advertisement's source address and
source MAC: NDP is never forwarded, so the pair is on-link). The path builder
uses it to attribute an on-link tunnel endpoint — a gNB cabled to the capture
switch — by its own MAC, which the outer frames alone cannot tell apart from
a router's.

Vendor, with its provenance kept in ``matched_by``: the inventory (by
chassis MAC, management address or system name), else the vendor
catalogue's ``descriptions`` phrases over the system description, platform
and software text, else the chassis MAC's OUI.
"""

import ipaddress
import struct

from ..control.segment import CDP_SNAP, ET_LLDP, STP_LLC, parse_arp, parse_cdp, parse_lldp, parse_stp
from ..dependents import NEIGHBOUR, SEGMENT
from ..model import Answer, Evidence
from ..wire import ET_ARP
from .vendors import PhraseMatcher

MAX_DEVICES = 10_000
DISCOVERY_ERRORS = ("lldp", "cdp", "stp", "arp", "ndp")
MAX_NEIGHBOURS = 100_000


class Learned:
    """One device heard on one capture interface and VLAN."""

    __slots__ = ("protocol", "ident", "ifindex", "vlan", "chassis_mac", "name", "description", "platform",
                 "software", "port", "addresses", "role", "first_seen", "last_seen", "ttl", "answer")

    def __init__(self, protocol, ident, ifindex, vlan):
        self.protocol, self.ident, self.ifindex, self.vlan = protocol, ident, ifindex, vlan
        self.chassis_mac = None
        self.name = self.description = self.platform = self.software = self.port = None
        self.addresses = []
        self.role = None
        self.first_seen = self.last_seen = 0.0
        self.ttl = 0
        self.answer = None

    @property
    def subject(self):
        return self.name or (self.chassis_mac.hex(":") if self.chassis_mac else self.ident)

    def as_dict(self):
        a = self.answer
        return {"protocol": self.protocol, "id": self.ident, "name": self.name,
                "chassis_mac": self.chassis_mac.hex(":") if self.chassis_mac else None,
                "port": self.port, "description": self.description, "platform": self.platform,
                "software": self.software, "addresses": list(self.addresses), "role": self.role,
                "vlan": self.vlan if self.vlan >= 0 else None,
                "vendor": a.vendor if a else None, "organization": a.organization if a else None,
                "matched_by": (a.evidence.detail or {}).get("matched_by") if a else None,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "ttl": self.ttl}


class SegmentDiscovery:
    def __init__(self, attributor, catalogue):
        self.attributor = attributor
        self.catalogue = catalogue
        self.devices = {}                 # (ifindex, vlan, protocol, ident) -> Learned
        self.by_segment = {}              # (ifindex, vlan) -> [Learned]
        self.errors = dict.fromkeys(DISCOVERY_ERRORS, 0)
        self.frames = dict.fromkeys(DISCOVERY_ERRORS, 0)
        self.neighbours = {}              # (ifindex, vlan, IP bytes) -> (MAC, protocol, last seen)
        self.neighbour_changes = 0        # bindings made or changed: what caches of ``neighbour`` check
        self.on_change = None             # live verdicts: told (SEGMENT, ifindex, vlan) when a device is
        # announced anew or says something new, (NEIGHBOUR, ifindex, vlan, address) when a binding changes
        self._match = PhraseMatcher((phrase, vid) for vid, entry in catalogue.vendors.items()
                                    for phrase in entry.get("descriptions", ()) or ())

    # --- the pipeline hook -------------------------------------------------

    def __call__(self, ts, ifindex, pkt, data):
        et, pos = pkt.ethertype, pkt.l2_payload
        if et == ET_LLDP:
            self._heard("lldp", ts, ifindex, pkt.vlan, parse_lldp, data, pos)
        elif et == ET_ARP:
            self.frames["arp"] += 1
            sender = parse_arp(data, pos)
            if sender is None:
                self.errors["arp"] += 1
                return
            mac, addr = sender
            if any(addr) and any(mac) and not mac[0] & 0x01:
                self._neighbour(ts, ifindex, pkt.vlan, addr, mac, "arp")
        elif et < 0x0600:                             # 802.3 length: an LLC frame
            end = min(len(data), pos + et)
            body = data[pos:end]
            if body[:8] == CDP_SNAP:
                self._heard("cdp", ts, ifindex, pkt.vlan, parse_cdp, body, 8)
            elif body[:3] == STP_LLC:
                self._heard("stp", ts, ifindex, pkt.vlan, parse_stp, body, 3)

    def ndp(self, ts, ifindex, pkt):
        """An IPv6 neighbour solicitation or advertisement (the pipeline calls
        this for ICMPv6 types 135/136): its source address is on-link at its
        source MAC."""
        self.frames["ndp"] += 1
        mac = pkt.src_mac
        if len(mac) == 6 and any(pkt.src) and any(mac) and not mac[0] & 0x01:
            self._neighbour(ts, ifindex, pkt.vlan, pkt.src, mac, "ndp")

    def _neighbour(self, ts, ifindex, vlan, addr, mac, protocol):
        key = (ifindex, vlan, addr)
        held = self.neighbours.get(key)
        if held is not None or len(self.neighbours) < MAX_NEIGHBOURS:
            self.neighbours[key] = (mac, protocol, ts)
            if held is None or held[:2] != (mac, protocol):
                self.neighbour_changes += 1
                if self.on_change is not None:
                    self.on_change((NEIGHBOUR, ifindex, vlan, addr))

    def neighbour(self, ifindex, vlan, addr):
        """(MAC, protocol) last announced for ``addr`` on that segment, or None."""
        hit = self.neighbours.get((ifindex, vlan, addr))
        return hit[:2] if hit is not None else None

    def _heard(self, protocol, ts, ifindex, vlan, parse, data, pos):
        self.frames[protocol] += 1
        try:
            facts = parse(data, pos)
        except (struct.error, IndexError, ValueError):
            facts = None
        if facts is None:
            self.errors[protocol] += 1
            return
        for fact in facts:
            self._learn(protocol, ts, ifindex, vlan, fact)

    def _learn(self, protocol, ts, ifindex, vlan, fact):
        key = (ifindex, vlan, protocol, fact["id"])
        dev = self.devices.get(key)
        if dev is None:
            if len(self.devices) >= MAX_DEVICES:
                return
            dev = self.devices[key] = Learned(protocol, fact["id"], ifindex, vlan)
            dev.first_seen = ts
            self.by_segment.setdefault((ifindex, vlan), []).append(dev)
            said, lapsed = None, False
        else:
            said, lapsed = _said(dev), ts > dev.last_seen + dev.ttl
        for field in ("chassis_mac", "name", "description", "platform", "software", "port", "role"):
            if fact.get(field) is not None:
                setattr(dev, field, fact[field])
        for addr in fact.get("addresses", ()):
            if addr not in dev.addresses:
                dev.addresses.append(addr)
        dev.last_seen = max(dev.last_seen, ts)
        dev.ttl = fact.get("ttl") or dev.ttl
        # A periodic announcement that says nothing new keeps the device's
        # answer (and the path elements cached on it) and judges no flow again.
        if said is None or _said(dev) != said:
            dev.answer = self._attribute(dev)
        elif not lapsed:
            return
        if self.on_change is not None:
            self.on_change((SEGMENT, ifindex, vlan))

    # --- attribution --------------------------------------------------------

    def _attribute(self, dev):
        detail = {"protocol": dev.protocol, "id": dev.ident}
        for field in ("name", "port", "platform", "role"):
            value = getattr(dev, field)
            if value:
                detail[field] = value
        if dev.chassis_mac:
            detail["chassis_mac"] = dev.chassis_mac.hex(":")
        inventory = self.attributor.inventory
        if inventory is not None:
            found = None
            if dev.chassis_mac:
                found = inventory.lookup_mac(dev.chassis_mac)
            for addr in dev.addresses:
                found = found or inventory.lookup_ip(ipaddress.ip_address(addr).packed)
            if found is None and dev.name:
                found = inventory.answer_by_name(dev.name)
            if found is not None:
                return _with(found, dev.protocol, dict(detail, matched_by="inventory",
                                                       device=found.organization))
        text = " ".join(t for t in (dev.description, dev.platform, dev.software) if t)
        vendor = self._match_description(text)
        if vendor:
            return Answer(vendor, self.catalogue.vendors[vendor].get("name", vendor),
                          Evidence(dev.protocol, f"{dev.protocol} system text", None, None,
                                   dict(detail, matched_by="description")))
        if dev.chassis_mac:
            answer = self.attributor.mac(dev.chassis_mac)
            if answer is not None:
                return _with(answer, dev.protocol, dict(detail, matched_by=answer.evidence.source))
        return None

    def _match_description(self, text):
        if not text:
            return None
        return self._match(text)

    def reattribute(self, attributor):
        """New inventory or databases (SIGHUP): keep what was heard, attribute it again."""
        self.attributor = attributor
        for dev in self.devices.values():
            dev.answer = self._attribute(dev)

    # --- what the path builder and reports ask ---------------------------------

    def devices_for(self, ifindex, vlan, first, last):
        """Devices of the segment announced while a flow ran (within their TTL)."""
        out = []
        for dev in self.by_segment.get((ifindex, vlan), ()):
            if dev.last_seen + dev.ttl >= first and dev.first_seen - dev.ttl <= last:
                out.append(dev)
        return out

    def all_devices(self):
        return list(self.devices.values())


def _said(dev):
    """What a device's announcements told so far (what its answer is made from)."""
    return (dev.chassis_mac, dev.name, dev.description, dev.platform, dev.software, dev.port, dev.role,
            tuple(dev.addresses), dev.ttl)


def _with(answer, protocol, detail):
    """The same attribution, with evidence saying it came through ``protocol``."""
    ev = answer.evidence
    merged = dict(ev.detail or {})
    merged.update(detail)
    merged["attributed_by"] = ev.source
    return Answer(answer.vendor, answer.organization,
                  Evidence(protocol, ev.database, ev.version, ev.prefix_len, merged),
                  asn=answer.asn, unattributable=answer.unattributable, device=answer.device)
