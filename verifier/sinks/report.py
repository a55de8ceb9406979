"""Audit report: judged flows -> the certificate (SPEC "Audit certificate").

``ReportSink.flow(flow, judgements)`` accumulates per-zone counts, coverage,
the zone x vendor matrix and the violation records (strings are made here,
once per violating flow). ``certificate(...)`` assembles the JSON document;
the HTML report and the exit code are derived from that document alone.
"""

from .. import __version__
from ..communityid import community_id
from ..model import CLEAN, DEVICE_COLUMN, UNVERIFIED, VIOLATION, VERDICTS
from ..text import ip_text, iso_time, mac_text

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
MAX_VIOLATIONS = 1000         # flows listed in the certificate; counts are always exact, the CSV has all
CERTIFIED, NOT_CERTIFIED, ZONE_UNVERIFIED, NO_TRAFFIC = "CERTIFIED", "NOT_CERTIFIED", "UNVERIFIED", "NO_TRAFFIC"


class ZoneTally:
    __slots__ = ("flows", "octets", "attributed_flows", "attributed_octets", "vendors", "devices", "shapes")

    def __init__(self):
        self.flows = dict.fromkeys(VERDICTS, 0)
        self.octets = dict.fromkeys(VERDICTS, 0)
        self.attributed_flows = 0
        self.attributed_octets = 0
        self.vendors = {}             # vendor id (or "unattributed") -> flows that crossed its equipment
        self.devices = {}             # vendor id (or "unattributed") -> flows of the zone's own devices of it
        self.shapes = {}              # a path's equipment columns (tuple) -> flows; folded into vendors when read


class ReportSink:
    def __init__(self, policy, max_violations=MAX_VIOLATIONS):
        self.policy = policy
        self.max_violations = max_violations
        self.zones = {name: ZoneTally() for name in policy.zones}
        self.unzoned = ZoneTally()
        self.flows = 0
        self.by_proto = {"tcp": 0, "udp": 0, "icmp": 0, "other": 0}
        self.violations = []
        self.violation_count = 0
        self.excepted = {}            # (rule, reason) -> flows waived

    def flow(self, flow, judgements):
        self.flows += 1
        self.by_proto[PROTO_NAMES.get(flow.proto, "other")] += 1
        octets = flow.octets_a + flow.octets_b
        for j in judgements:
            tally = self.zones[j.zone] if j.zone is not None else self.unzoned
            tally.flows[j.verdict] += 1
            tally.octets[j.verdict] += octets
            outcome = j.outcome                     # shared by the path's shape: read it, not the properties
            if outcome.attributed if outcome is not None else j.attributed:
                tally.attributed_flows += 1
                tally.attributed_octets += octets
            shapes, vendors = tally.shapes, outcome.vendors if outcome is not None else j.vendors
            shapes[vendors] = shapes.get(vendors, 0) + 1
            for rule, reason in j.excepted:
                self.excepted[(rule, reason)] = self.excepted.get((rule, reason), 0) + 1
            if j.verdict == VIOLATION:
                self.violation_count += 1
                if len(self.violations) < self.max_violations:
                    self.violations.append(violation_record(flow, j))

    def zone_entries(self):
        out = []
        for name, t in self.zones.items():
            for vendors, flows in t.shapes.items():
                for vendor in vendors:
                    if vendor.startswith(DEVICE_COLUMN):
                        vendor = vendor[len(DEVICE_COLUMN):]
                        t.devices[vendor] = t.devices.get(vendor, 0) + flows
                    else:
                        t.vendors[vendor] = t.vendors.get(vendor, 0) + flows
            t.shapes.clear()
            total = sum(t.flows.values())
            total_octets = sum(t.octets.values())
            if total == 0:
                status = NO_TRAFFIC
            elif t.flows[VIOLATION]:
                status = NOT_CERTIFIED
            elif t.flows[UNVERIFIED]:
                status = ZONE_UNVERIFIED
            else:
                status = CERTIFIED
            out.append({
                "name": name, "status": status,
                "flows": dict(t.flows), "bytes": dict(t.octets),
                "coverage": {"flows": round(t.attributed_flows / total, 6) if total else None,
                             "bytes": round(t.attributed_octets / total_octets, 6) if total_octets else None},
                "requires_attribution": self.policy.requires_attribution(name),
                "vendors": dict(sorted(t.vendors.items(), key=lambda kv: (-kv[1], kv[0]))),
                "endpoint_vendors": dict(sorted(t.devices.items(), key=lambda kv: (-kv[1], kv[0]))),
            })
        return out


def violation_record(flow, judgement):
    src, sport = flow.endpoint(flow.origin)
    dst, dport = flow.endpoint(1 - flow.origin)
    return {
        "community_id": community_id(flow),
        "zone": judgement.zone,
        "rule": judgement.rules[0] if judgement.rules else None,
        "rules": list(judgement.rules),
        "first_ts": iso_time(flow.first), "last_ts": iso_time(flow.last),
        "src": ip_text(src), "dst": ip_text(dst), "sport": sport, "dport": dport,
        "proto": PROTO_NAMES.get(flow.proto, str(flow.proto)) if flow.proto != 58 else "icmpv6",
        "vlan": flow.vlan if flow.vlan >= 0 else None,
        "packets": flow.pkts[0] + flow.pkts[1], "bytes": flow.octets[0] + flow.octets[1],
        "macs": {"a": sorted(mac_text(m) for m in flow.macs[0]), "b": sorted(mac_text(m) for m in flow.macs[1])},
        "path": [el.as_dict() for el in judgement.path],
        "reasons": [{"rule": rule, "element": index, "text": text} for rule, index, text in judgement.reasons],
    }


def certificate(report, policy, stats, captures, data_sources, generated_at, expired, signed_by=None, sections=None):
    """The audit certificate as plain data (JSON-ready). ``signed_by``: the
    keyid of the key that will sign it (``verifier audit --sign-key``);
    ``sections``: further top-level entries, in order (what the audit
    learned beside the flows: discovered devices, tunnel nodes)."""
    zones = report.zone_entries()
    starts = [c["first_ts"] for c in captures if c.get("first_ts")]
    ends = [c["last_ts"] for c in captures if c.get("last_ts")]
    cert = {
        "generated_at": generated_at,
        "tool_version": __version__,
        "result": RESULTS[_code(report.violation_count, zones, captures)],
        "site": policy.site,
        "period": {"start": min(starts) if starts else None, "end": max(ends) if ends else None},
        "policy": {"files": policy.files, "sha256": policy.sha256},
        "data": data_sources,
        "captures": captures,
        "zones": zones,
        "summary": {
            "packets": stats.packets, "bytes": stats.octets, "flows": report.flows,
            "flows_by_proto": dict(report.by_proto),
            "non_ip_packets": stats.non_ip,
            "decode_errors": {k: v for k, v in stats.decode_errors.items() if v},
            "unzoned_flows": dict(report.unzoned.flows),
            "violations": report.violation_count,
            "violations_listed": len(report.violations),
        },
        "violations": report.violations,
        "exceptions_applied": [{"rule": r, "reason": why, "flows": n} for (r, why), n in sorted(report.excepted.items())],
        "expired_exceptions": expired,
    }
    if signed_by is not None:
        cert["signed_by"] = {"algorithm": "ed25519", "keyid": signed_by}
    cert.update(sections or {})
    return cert


def to_json(cert):
    """Pretty-printed when small; compact (C encoder, ~20x faster) when a
    certificate lists many violations."""
    import json
    if len(cert["violations"]) <= 100:
        return json.dumps(cert, indent=2) + "\n"
    return json.dumps(cert, separators=(",", ":")) + "\n"


RESULTS = {0: "CERTIFIED", 1: "VIOLATION", 2: "INCOMPLETE", 3: "UNVERIFIED"}    # by exit code


def exit_code(cert):
    """SPEC exit codes: 0 certified, 1 violation, 3 unverified where
    attribution is required, 2 a capture not read completely (when nothing
    was violated: an incompletely read capture cannot be certified)."""
    return _code(cert["summary"]["violations"], cert["zones"], cert["captures"])


def _code(violations, zones, captures):
    if violations:
        return 1
    if any(c["errors"] for c in captures):
        return 2
    if any(z["status"] == ZONE_UNVERIFIED and z["requires_attribution"] for z in zones):
        return 3
    return 0


__all__ = ["ReportSink", "certificate", "exit_code", "CLEAN", "RESULTS"]
