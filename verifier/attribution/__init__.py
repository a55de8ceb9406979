"""Attribution: who made the equipment a flow crosses, with provenance.

Providers share one contract: ``lookup_mac(mac)`` and ``lookup_ip(addr)``
return an ``Answer`` ("found") or ``None`` ("skip to the next provider").
``Attributor`` asks them in order (inventory first, so inventory beats OUI and
ASN answers for the same address) and caches answers per address, negative
ones included, in bounded dicts. Databases are replaced by building a new
``Attributor`` and swapping one reference.

``routes`` (a ``bgp.rib.Rib`` or None) is not a provider: it answers which
route, hence which carriers, lie toward a remote address (attribution/path.py
makes the ``transit-network`` elements from it).
"""

CACHE_LIMIT = 1 << 16
"""Entries each attribution cache holds before it starts afresh (this
module's answers per address, attribution/path.py's elements, transit.py's
carriers). A cache pays for itself on the addresses many flows share
(gateways, busy servers); an address of one flow only costs its entry,
~300-700 bytes with its element. At a million entries an audit of 200,000
flows, each with a remote address of its own, held more in its caches at
the end than its flow table had held open (issue 21: peak memory per flow);
at 65,536 the shared addresses still hit, and a clear costs one lookup per
address still in use."""
_MISSING = object()


class Attributor:
    def __init__(self, providers, inventory=None, routes=None):
        self.providers = tuple(providers)
        self.inventory = inventory
        self.routes = routes
        self._macs = {}
        self._ips = {}
        self._mac_lookups = tuple(p.lookup_mac for p in self.providers)
        self._ip_lookups = tuple(p.lookup_ip for p in self.providers)

    def mac(self, mac):
        answer = self._macs.get(mac, _MISSING)
        return self._first_answer(self._macs, self._mac_lookups, mac) if answer is _MISSING else answer

    def ip(self, addr):
        answer = self._ips.get(addr, _MISSING)
        return self._first_answer(self._ips, self._ip_lookups, addr) if answer is _MISSING else answer

    @staticmethod
    def _first_answer(cache, lookups, query):
        answer = None
        for lookup in lookups:
            answer = lookup(query)
            if answer is not None:
                break
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[query] = answer
        return answer

    def every_answer(self, query, is_mac):
        """(provider, answer) for every provider that answers: ``verifier lookup``."""
        out = []
        for provider in self.providers:
            answer = provider.lookup_mac(query) if is_mac else provider.lookup_ip(query)
            if answer is not None:
                out.append((provider, answer))
        return out

    def segment_devices(self, interface, vlan):
        return self.inventory.segment_devices(interface, vlan) if self.inventory else []

    def describe(self):
        return [p.describe() for p in self.providers] + (self.routes.describe() if self.routes else [])
