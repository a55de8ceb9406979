"""``verifier lookup``: every source's answer for a MAC or IP, with evidence."""

import ipaddress

from .attribution.inventory import parse_mac
from .attribution.special import is_special


def parse_query(text):
    """(packed bytes, is_mac) for a MAC or IP address; ValueError otherwise."""
    try:
        return ipaddress.ip_address(text).packed, False
    except ValueError:
        pass
    try:
        value, plen = parse_mac(text)
    except ValueError:
        raise ValueError(f"'{text}' is neither a MAC nor an IP address") from None
    if plen != 48:
        raise ValueError(f"'{text}': give a whole MAC address, not a block")
    return value.to_bytes(6, "big"), True


def answers_for(query, raw, is_mac, attributor, policy):
    answers = []
    for provider, ans in attributor.every_answer(raw, is_mac):
        ev = ans.evidence
        row = {"source": ev.source, "vendor": ans.vendor, "organization": ans.organization,
               "trust": policy.trust(ans), "prefix_len": ev.prefix_len, "database": ev.database,
               "version": ev.version}
        if ans.asn is not None:
            row["asn"] = ans.asn
        if ev.detail:
            row["detail"] = ev.detail
        answers.append(row)
    out = {"query": query, "answers": answers}
    if not is_mac and is_special(raw):
        out["note"] = "special-purpose address: local, never looked up in ASN databases"
    elif not is_mac and attributor.routes is not None:
        out["route"] = _route(raw, attributor.routes, policy)
    return out


def _route(raw, routes, policy):
    """The route the default BGP peer choice selects toward ``raw``, its
    carriers and origin with their trust, or None."""
    from .bgp import aspath
    from .model import Answer
    route = routes.lookup(raw, policy.bgp_peers(routes).get(None))
    if route is None:
        return None
    transit, origin = aspath.carriers(route.path)

    def judged(asn):
        return {"asn": asn, "trust": policy.trust(Answer(None, None, None, asn=asn))}
    return dict(route.describe(), carriers=[judged(a) for a in transit],
                origin=judged(origin) if origin is not None else None)
