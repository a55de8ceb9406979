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
        return self._first_answer(self._macs, "lookup_mac", mac)

    def ip(self, addr):
        return self._first_answer(self._ips, "lookup_ip", addr)

    def _first_answer(self, cache, method, query):
        if query in cache:
            return cache[query]
        answer = None
        for provider in self.providers:
            answer = getattr(provider, method)(query)
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
        return [p.describe() for p in self.providers]
