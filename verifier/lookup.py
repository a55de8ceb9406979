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


def text_lines(res, is_mac, asn_given, bgp_given):
    """``verifier lookup``'s lines for one query's answers (``answers_for``)."""
    out = [res["query"] + (f"  ({res['note']})" if res.get("note") else "")]
    if not res["answers"]:
        hint = "" if is_mac or asn_given or res.get("note") else \
            " (no ASN database given: --asn-db FILE, a MaxMind-format ASN database, answers for IP addresses)"
        out.append("  no source answers: unknown" + hint)
    for a in res["answers"]:
        extra = f" AS{a['asn']}" if a.get("asn") is not None else ""
        out.append(f"  {a['source']:<10} {a['vendor'] or '-':<14} {a['trust']:<14}{extra} "
                   f"{a['organization'] or ''}  [/{a['prefix_len']} {a['database']} {a['version'] or ''}]")
    route = res.get("route")
    if route is not None:
        out.append(f"  bgp route  {route['prefix']} via {route['peer']}: {route['as_path']}  "
                   f"[{route['dump']} dumped {route['dumped_at']}]")
        out += [f"    transit  AS{c['asn']:<10} {c['trust']}" for c in route["carriers"]]
        if route["origin"] is not None:
            out.append(f"    origin   AS{route['origin']['asn']:<10} {route['origin']['trust']}")
    elif bgp_given and not is_mac and not res.get("note"):
        out.append("  bgp route  none: no loaded route holds this address (a transit-network rule is unverified)")
    return out
