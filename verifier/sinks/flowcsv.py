"""CSV flow records (``verifier audit --csv``): one row per flow and zone.

Rows are written as flows end, so memory does not grow with the capture.
"""

import csv

from ..text import ip_text
from ..communityid import community_id
from ..text import iso_time

COLUMNS = ("community_id", "first_ts", "last_ts", "interface", "vlan", "proto", "a", "a_port", "b", "b_port",
           "packets_a_to_b", "bytes_a_to_b", "packets_b_to_a", "bytes_b_to_a", "zone", "verdict", "rules",
           "path", "end_reason")


class CsvSink:
    def __init__(self, fh, interfaces):
        self.writer = csv.writer(fh)
        self.writer.writerow(COLUMNS)
        self.interfaces = interfaces

    def flow(self, flow, judgements):
        iface = self.interfaces[flow.ifindex][0] if flow.ifindex < len(self.interfaces) else None
        base = [community_id(flow), iso_time(flow.first), iso_time(flow.last), iface or "",
                flow.vlan if flow.vlan >= 0 else "", flow.proto, ip_text(flow.a), flow.ap, ip_text(flow.b), flow.bp,
                flow.pkts[0], flow.octets[0], flow.pkts[1], flow.octets[1]]
        for j in judgements or [None]:
            if j is None:
                tail = ["", "", "", ""]
            else:
                path = " > ".join(f"{el.kind}={_name(el)}" for el in j.path)
                tail = [j.zone or "", j.verdict, ";".join(j.rules), path]
            self.writer.writerow(base + tail + [flow.end_reason])


def _name(el):
    """What names an element in the path column: its vendor, organisation,
    AS (a carrier known by number only), else its trust."""
    return el.vendor or el.organization or (f"AS{el.asn}" if el.asn is not None else el.trust)
