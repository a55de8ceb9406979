"""Flow export: what routers and switches already say about their flows.

In:  NetFlow v5, NetFlow v9 and IPFIX datagrams (decode.py), one exporter
     at a time, identified by (address with IPv4-mapped folded, observation
     domain / source id), never by its source port, so an exporter restarting
     from another port keeps its templates.
Out: ``FlowRecord``s (records.py): addresses, ports, protocol, counters,
     times, interfaces, MACs, next hops, AS numbers, sampling, as the export
     carries them.

The exporting router is itself on the path: the records are its account of
the flows it forwarded. This package reads and counts; joining the records
to the flow table and the judgement is the pipeline's (issue 18).
"""
