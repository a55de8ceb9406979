"""BGP: the routes a site's routers chose, and the carriers they cross.

In:  MRT RIB dumps (mrt.py: TABLE_DUMP_V2 with RFC 8050 ADD-PATH, legacy
     TABLE_DUMP; plain, gzip or bzip2), as BIRD, gobgp, FRR and the route
     collectors write them.
Out: a ``Rib`` (rib.py) answering, for a remote address, the selected route:
     peer, prefix, AS path, age; ``aspath.carriers`` turns its AS path into
     the transit ASes (``transit-network`` elements) and the origin
     (``remote-network``).

The route describes the traffic toward the remote end only: a flow's return
path is chosen by other routers' policies and is never observed here.
"""
