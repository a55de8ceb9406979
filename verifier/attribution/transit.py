"""The carriers toward a remote address: ``transit-network`` elements from
the selected BGP route, and the route's word on the ``remote-network``.

In:  a remote address (4 or 16 bytes), the attributor's ``routes`` (a
     ``bgp.rib.Rib``, or None), the remote-network element the ASN
     databases made for it (or None).
Out: ``Carriers.toward(addr, remote)`` -> (transit elements in AS path order,
     the remote-network element to use).

- A route: each AS of its path but the origin becomes a ``transit-network``
  element ``AS<n>`` (aspath.carriers: prepends once, AS_SET members
  included), trusted as the policy trusts that AS; evidence ``mrt`` with the
  peer, prefix, whole AS path, route and dump times, and that the return path
  is not observed.
- The route's origin decides the ``remote-network`` AS: when the ASN
  database says the same AS, its element stays (its organisation name) and
  notes the agreement; when it says another or nothing, the element is the
  origin's, and the database's answer stays in the evidence (``asn_db``).
- No route for a routable address, where BGP data was given or the policy
  judges ``transit-network``: one ``transit-network`` element of unknown
  trust ("no route known is never clean"); a rule over transit networks then
  decides by its ``on_unattributed``.

Elements are cached per address: a dump's RIB does not change under one
``Carriers`` (a reload builds a new one with its path builder); BMP's does,
and ``forget`` drops the caches when it has (the pipeline asks after each
chunk).
"""

from ..model import REMOTE_NETWORK, TRANSIT_NETWORK, Answer, Evidence, PathElement
from ..text import ip_text
from ..bgp import aspath
from . import CACHE_LIMIT



class Carriers:
    def __init__(self, routes, trust, judged, peer=None):
        self.routes = routes              # bgp.rib.Rib or None
        self.trust = trust                # policy.trust
        self.judged = judged              # a rule judges transit-network: no route is an element
        self.peer = peer                  # the address of the peer whose routes are chosen (policy bgp.peer), or None
        self._cache = {}
        self._by_route = {}               # (route's peer, prefix, plen, path id) -> transit elements
        if routes is not None:
            routes.view(peer)             # its lookup tables built now, not at the first flow

    def forget(self):
        """The routes changed: every cached answer goes."""
        self._cache.clear()
        self._by_route.clear()

    @property
    def active(self):
        return self.routes is not None or self.judged

    def toward(self, addr, remote):
        """(transit elements, remote-network element) for ``addr``;
        ``remote`` is the ASN databases' element (or None)."""
        key = (addr, remote)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._toward(addr, remote)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _toward(self, addr, remote):
        route = self.routes.lookup(addr, self.peer) if self.routes is not None else None
        if route is None:
            searched = self.routes.searched if self.routes is not None else "no BGP data given (--bgp-mrt, --bmp)"
            evidence = Evidence("none", None, None, None, {"searched": searched, "address": ip_text(addr)})
            return (PathElement(TRANSIT_NETWORK, f"no route to {ip_text(addr)}", None, None, None,
                                self.trust(None), evidence),), remote
        transit, origin = aspath.carriers(route.path)
        described = route.describe()
        key = (id(route.peer), route.prefix, route.plen, route.path_id)
        elements = self._by_route.get(key)
        if elements is None:
            elements = tuple(self._element(TRANSIT_NETWORK, f"AS{asn}", asn, route,
                                           dict(described, position=k + 1))
                             for k, asn in enumerate(transit))
            if len(self._by_route) >= CACHE_LIMIT:
                self._by_route.clear()
            self._by_route[key] = elements
        return elements, self._remote(addr, remote, origin, route, described)

    def _remote(self, addr, remote, origin, route, described):
        if origin is None:                          # an aggregate ending in an AS_SET: no one origin
            return remote.restated({"bgp_origin": "none (AS_SET aggregate)", "bgp_route": route.prefix_text}) \
                if remote is not None else None
        if remote is not None and remote.asn == origin:
            return remote.restated({"bgp_origin": origin, "bgp_route": route.prefix_text})
        detail = dict(described)
        if remote is not None:
            detail["asn_db"] = {"asn": remote.asn, "organization": remote.organization,
                                "source": remote.evidence.source if remote.evidence else None}
        return self._element(REMOTE_NETWORK, ip_text(addr), origin, route, detail)

    def _element(self, kind, subject, asn, route, detail):
        feed = route.feed
        evidence = Evidence(feed.source, feed.name, feed.version, route.plen, detail)
        answer = Answer(None, None, evidence, asn=asn)
        return PathElement(kind, subject, None, None, asn, self.trust(answer), evidence)
