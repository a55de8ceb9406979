"""Compiled policy: typed and validated once at load, then only read: a
reload builds a new ``Policy`` and swaps it in whole (these are plain
classes, not frozen ones; nothing changes them after load).

``Policy.zone_of`` places an endpoint in a zone (by prefix, then VLAN and
capture interface constraints); ``Policy.trust`` turns an attribution answer
into a trust class. Both are pure and cached per input.
"""

from ..errors import DataError
from ..model import TRUSTED, UNTRUSTED, UNKNOWN, UNATTRIBUTABLE
from ..text import ip_text

ANY_ZONE = "any"
UNZONED = "unzoned"           # the metrics' zone label of flows with no endpoint in a zone (a reserved name)
CLEAN_PATH = "clean-path"
ON_UNATTRIBUTED = ("unverified", "violation", "ignore")


class PrefixSet:
    """Longest-prefix membership for IPv4 and IPv6 networks."""

    __slots__ = ("tables", "plens", "texts", "first_bytes")

    def __init__(self, networks):
        self.tables = {4: {}, 6: {}}
        self.texts = [str(n) for n in networks]
        # first_bytes[family][b] is 1 when some prefix can hold an address starting with byte b.
        self.first_bytes = {4: bytearray(256), 6: bytearray(256)}
        for net in networks:
            bits = net.max_prefixlen
            self.tables[net.version].setdefault(net.prefixlen, set()).add(
                int(net.network_address) >> (bits - net.prefixlen))
            first = net.network_address.packed[0]
            for b in range(first, first + (1 << max(0, 8 - net.prefixlen))):
                self.first_bytes[net.version][b] = 1
        self.plens = {fam: sorted(t, reverse=True) for fam, t in self.tables.items()}

    def __contains__(self, addr):
        fam, bits = (4, 32) if len(addr) == 4 else (6, 128)
        if not self.first_bytes[fam][addr[0]]:
            return False
        value = int.from_bytes(addr, "big")
        table = self.tables[fam]
        for plen in self.plens[fam]:
            if value >> (bits - plen) in table[plen]:
                return True
        return False

    def __bool__(self):
        return bool(self.texts)


class Zone:
    __slots__ = ("name", "prefixes", "vlans", "interfaces", "bgp")

    def __init__(self, name, prefixes, vlans, interfaces, bgp=None):
        self.name, self.prefixes = name, prefixes
        self.vlans, self.interfaces = frozenset(vlans), frozenset(interfaces)
        self.bgp = bgp              # (peer address bytes, "file:line:column"): whose routes decide, or None

    def holds(self, addr, vlans, interface):
        if addr not in self.prefixes:
            return False
        if self.vlans and not (self.vlans & vlans):
            return False
        return not self.interfaces or interface in self.interfaces


class Rule:
    __slots__ = ("name", "zone", "require", "kinds", "on_unattributed", "deny_vendors", "deny_asns",
                 "description", "where", "roles")

    def __init__(self, name, zone, require, kinds, on_unattributed, deny_vendors, deny_asns, description, where,
                 roles=()):
        self.name, self.zone, self.require, self.kinds = name, zone, require, frozenset(kinds)
        self.roles = frozenset(r.lower() for r in roles)     # empty: every element; else inventory roles only
        self.on_unattributed = on_unattributed
        self.deny_vendors, self.deny_asns = frozenset(deny_vendors), frozenset(deny_asns)
        self.description, self.where = description, where


class Exception_:
    """A waiver of one rule for matching flows, with a reason and an expiry date."""

    __slots__ = ("rule", "remote", "local", "ports", "local_ports", "protos", "vlans", "reason", "expires", "where")

    def __init__(self, rule, remote, local, ports, local_ports, protos, vlans, reason, expires, where):
        self.rule, self.remote, self.local = rule, remote, local
        self.ports, self.local_ports = frozenset(ports), frozenset(local_ports)
        self.protos, self.vlans = frozenset(protos), frozenset(vlans)
        self.reason, self.expires, self.where = reason, expires, where

    def expired(self, today):
        return self.expires is not None and today > self.expires

    def matches(self, flow, local_side):
        """True when the flow fits every given condition (no condition: every flow)."""
        if local_side is None:
            sides = (0, 1)
        else:
            sides = (1 - local_side,)
        if self.protos and flow.proto not in self.protos:
            return False
        if self.vlans and flow.vlan not in self.vlans and flow.vlan2 not in self.vlans:
            return False
        for remote in sides:
            addr, port = flow.endpoint(remote)
            laddr, lport = flow.endpoint(1 - remote)
            if self.remote and addr not in self.remote:
                continue
            if self.local and laddr not in self.local:
                continue
            if self.ports and port not in self.ports:
                continue
            if self.local_ports and lport not in self.local_ports:
                continue
            return True
        return False

    def describe(self):
        return {"rule": self.rule, "reason": self.reason,
                "expires": self.expires.isoformat() if self.expires else None, "where": self.where}


class Policy:
    def __init__(self, files, sha256, trusted, untrusted, trusted_asns, untrusted_asns, network_default,
                 zones, rules, exceptions):
        self.files, self.sha256 = files, sha256
        self.trusted, self.untrusted = frozenset(trusted), frozenset(untrusted)
        self.trusted_asns, self.untrusted_asns = frozenset(trusted_asns), frozenset(untrusted_asns)
        self.network_default = network_default
        self.zones = zones                        # name -> Zone, in file order
        self.rules = rules
        self.exceptions = exceptions
        self.rules_for = {name: [r for r in rules if r.zone in (name, ANY_ZONE)] for name in zones}
        self.rules_for[None] = [r for r in rules if r.zone == ANY_ZONE]
        self.waivable = frozenset(e.rule for e in exceptions)    # rules some exception names
        self.warnings = []                        # positioned Problems that did not stop the load (load.py)
        self.site = None                          # the policy's site: block ({name, operator, ...}) or None
        self.bgp = None                           # (peer address bytes, "file:line:column") of bgp.peer, or None
        self._zone_cache = {}

    def zone_of(self, addr, vlan, vlan2, interface):
        return self.zones_of(addr, addr, vlan, vlan2, interface)[0]

    def zones_of(self, a, b, vlan, vlan2, interface):
        """(zone of ``a``, zone of ``b``) for a flow's two ends: cached per
        (VLANs, interface), then per address."""
        where = (vlan, vlan2, interface)
        cache = self._zone_cache.get(where)
        if cache is None:
            if len(self._zone_cache) > 10_000:
                self._zone_cache.clear()
            cache = self._zone_cache[where] = {}
        za = cache.get(a, False)
        if za is False:
            za = self._place(cache, a, vlan, vlan2, interface)
        zb = cache.get(b, False)
        if zb is False:
            zb = self._place(cache, b, vlan, vlan2, interface)
        return za, zb

    def _place(self, cache, addr, vlan, vlan2, interface):
        vlans = {vlan, vlan2}
        hit = None
        for zone in self.zones.values():
            if zone.holds(addr, vlans, interface):
                hit = zone.name
                break
        if len(cache) > 1_000_000:
            cache.clear()
        cache[addr] = hit
        return hit

    def judges(self, kind):
        """Whether a clean-path rule looks at elements of ``kind``."""
        return any(r.require == CLEAN_PATH and kind in r.kinds for r in self.rules)

    def bgp_peers(self, routes):
        """{zone name or None (the default): the address of the peer whose
        routes decide, or None (the best route over all peers)}. A peer the
        policy names that the loaded dumps do not hold is an error (unless
        BMP may bring it up later): falling back to another router's routes
        would judge a path the zone's traffic may not take. Without BGP data
        there is nothing to choose ({}): every lookup finds no route."""
        wanted = {None: self.bgp} | {z.name: z.bgp or self.bgp for z in self.zones.values()}
        if not any(wanted.values()) or routes is None:
            return {}
        for choice in {c for c in wanted.values() if c is not None}:
            address, where = choice
            if not routes.may_hold(address):
                held = ", ".join(sorted({ip_text(p.address) for p in routes.peers})) or "none"
                raise DataError(f"{where}: bgp.peer {ip_text(address)} is not a peer of the loaded MRT dumps"
                                f" (they hold {held})")
        return {zone: choice[0] if choice else None for zone, choice in wanted.items()}

    def requires_attribution(self, zone):
        return any(r.require == CLEAN_PATH and r.on_unattributed == "unverified" for r in self.rules_for[zone])

    def trust(self, answer):
        """Trust class of one attribution answer (None: no source answered)."""
        if answer is None:
            return UNKNOWN
        if answer.unattributable:
            return UNATTRIBUTABLE
        if answer.asn is not None and answer.vendor is None:
            if answer.asn in self.untrusted_asns:
                return UNTRUSTED
            if answer.asn in self.trusted_asns:
                return TRUSTED
            return TRUSTED if self.network_default == "trusted" else UNKNOWN
        if answer.vendor in self.untrusted:
            return UNTRUSTED
        if answer.vendor in self.trusted:
            return TRUSTED
        return UNKNOWN
