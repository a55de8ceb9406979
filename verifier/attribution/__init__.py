"""Attribution: who made the equipment a flow crosses, with provenance.

Providers share one contract: ``lookup_mac(mac)`` and ``lookup_ip(addr)``
return an ``Answer`` ("found") or ``None`` ("skip to the next provider").
``Attributor`` asks them in order (inventory first, so inventory beats OUI and
ASN answers for the same address) and caches answers per address, negative
ones included, in bounded dicts. Databases are replaced by building a new
``Attributor`` and swapping one reference.
"""

CACHE_LIMIT = 1_000_000


class Attributor:
    def __init__(self, providers, inventory=None):
        self.providers = list(providers)
        self.inventory = inventory
        self._macs = {}
        self._ips = {}

    def mac(self, mac):
        cache = self._macs
        if mac in cache:
            return cache[mac]
        answer = next((a for a in (p.lookup_mac(mac) for p in self.providers) if a is not None), None)
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[mac] = answer
        return answer

    def ip(self, addr):
        cache = self._ips
        if addr in cache:
            return cache[addr]
        answer = next((a for a in (p.lookup_ip(addr) for p in self.providers) if a is not None), None)
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[addr] = answer
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
        return [p.describe() for p in self.providers]
