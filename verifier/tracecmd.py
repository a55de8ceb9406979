"""``verifier trace``: probe, attribute every router, judge the path.

The traced path is judged like a flow from this host (the address the
kernel would send from, which places it in a zone) to the destination:
its elements are the probed router hops (evidence ``probe``) and the
destination's network.
"""

import datetime
import ipaddress

from .attribution.path import PathBuilder
from .model import Flow, flow_key
from .policy.evaluate import evaluate
from .probe import Prober


def run_traces(destinations, policy, attributor, proto, port, max_ttl, timeout, rate, today=None):
    prober = Prober(proto, port, max_ttl, timeout, rate=rate)
    builder = PathBuilder(attributor, policy.trust)
    today = today or datetime.date.today()
    out = []
    for dest in destinations:
        dest = str(ipaddress.ip_address(dest))
        source = _source_address(dest)
        result = prober.trace(dest)
        hops = builder.probe_hops(result)
        remote = builder.remote_network(ipaddress.ip_address(dest).packed)
        path = hops + ([remote] if remote is not None else [])
        src, dst = ipaddress.ip_address(source).packed, ipaddress.ip_address(dest).packed
        flow = Flow(flow_key(0, -1, -1, {"udp": 17, "tcp": 6, "icmp": 1}[proto], src, 0, dst, prober.port), 0.0)
        zone = policy.zone_of(src, -1, -1, None)
        judgement = evaluate(policy, flow, zone, 0, path, today)
        by_address = {el.subject: el for el in hops}
        out.append({
            "destination": dest, "source": source, "proto": proto, "port": prober.port, "zone": zone,
            "reached": result.reached,
            "hops": [dict(h.as_dict(), element=by_address[h.address].as_dict()
                          if h.address in by_address and not h.reached else None) for h in result.hops],
            "verdict": judgement.verdict,
            "reasons": [{"rule": rule, "text": text} for rule, _i, text in judgement.reasons],
            "path": [el.as_dict() for el in path],
        })
    return out


def _source_address(dest):
    """The address the kernel would send from (connecting a UDP socket sends nothing)."""
    import socket
    family = socket.AF_INET6 if ":" in dest else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dest, 9))
        except OSError as exc:
            raise ValueError(f"no route to {dest}: {exc.strerror or exc}") from None
        return s.getsockname()[0]
