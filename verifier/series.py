"""Every ``cleanpath_*`` series, declared once: name, type, help and labels.

The daemon's collectors (daemon/exporter.py) and the scheduled audit's
gauges (publish.py) make their metric families from these, so a name or a
label set is changed in one place and SPEC.md / the README can be checked
against one list (tests/test_deploy.py reads the alert and dashboard
queries against it). Label values come from the policy or fixed enums
(verdicts, reasons, protocols), never from traffic.

Counters are named without ``_total``: prometheus-client adds it.
"""

from dataclasses import dataclass

COUNTER, GAUGE = "counter", "gauge"


@dataclass(frozen=True)
class Series:
    name: str
    kind: str
    help: str
    labels: tuple = ()


def _s(name, kind, help_, *labels):
    return Series(name, kind, help_, labels)


# --- the daemon (verifier run) -------------------------------------------------
FLOWS = _s("cleanpath_flows", COUNTER, "Flows judged, by zone and verdict.", "zone", "verdict")
BYTES = _s("cleanpath_bytes", COUNTER, "Bytes of judged flows, by zone and verdict.", "zone", "verdict")
VIOLATIONS = _s("cleanpath_violations", COUNTER, "Violating flows by zone, rule, vendor and element kind.",
                "zone", "rule", "vendor", "kind")
OPEN_FLOWS = _s("cleanpath_open_flows", GAUGE, "Open flows by zone and current verdict.", "zone", "verdict")
ZONE_CERTIFIED = _s("cleanpath_zone_certified", GAUGE, "1 when the zone's rolling window holds traffic and no "
                    "violation or required-but-unverified flow.", "zone")
COVERAGE = _s("cleanpath_coverage_ratio", GAUGE,
              "Share of the zone's flows in the rolling window whose path is fully attributed.", "zone")
WINDOW_FLOWS = _s("cleanpath_zone_window_flows", GAUGE, "Flows judged in the rolling window.", "zone")
LAST_VIOLATION = _s("cleanpath_last_violation_timestamp_seconds", GAUGE,
                    "When the zone last had a violating flow (0: never since start).", "zone")
ACTIVE_FLOWS = _s("cleanpath_active_flows", GAUGE, "Flows open in the flow table.")
EVICTIONS = _s("cleanpath_flow_evictions", COUNTER, "Flows ended, by reason.", "reason")
PACKETS = _s("cleanpath_packets", COUNTER, "Packets read, by source kind.", "source")
DECODE_ERRORS = _s("cleanpath_decode_errors", COUNTER, "Packets that could not be decoded, by reason.", "reason")
CAPTURE_DROPPED = _s("cleanpath_capture_dropped_packets", COUNTER,
                     "Packets the kernel dropped before the daemon read them.", "interface")
CAPTURE_RECEIVED = _s("cleanpath_capture_received_packets", COUNTER,
                      "Packets the kernel passed the capture filter.", "interface")
DISCOVERED_DEVICES = _s("cleanpath_discovered_devices", GAUGE, "Segment devices known, by vendor, trust and source.",
                        "vendor", "trust", "source")
DISCOVERY_FRAMES = _s("cleanpath_discovery_frames", COUNTER, "LLDP, CDP, STP, ARP, NDP, GTP-C and PFCP "
                      "messages read, by protocol and result.", "protocol", "result")
PROBES_SENT = _s("cleanpath_probes_sent", COUNTER, "Active probes sent (--probe).")
PROBE_FAILURES = _s("cleanpath_probe_failures", COUNTER, "Traces that failed (--probe).")
POLICY_INFO = _s("cleanpath_policy_info", GAUGE, "The policy in force (sha256 of its files).", "sha256")
POLICY_RELOADS = _s("cleanpath_policy_reloads", COUNTER, "SIGHUP reloads by result.", "result")
DATA_BUILD = _s("cleanpath_data_build_timestamp_seconds", GAUGE,
                "Build time of the OUI registry and ASN databases in use (mrt: the oldest BGP dump's time).",
                "source")
BUILD_INFO = _s("cleanpath_build_info", GAUGE, "Version of the verifier.", "version")
BGP_ROUTES = _s("cleanpath_bgp_routes", GAUGE, "BGP routes held, by source (mrt: --bgp-mrt dumps; bmp: what "
                "routers report over --bmp).", "source")
BGP_PEERS_UP = _s("cleanpath_bgp_peers_up", GAUGE, "Monitored RIBs up over BMP (a peer's post-policy Adj-RIB-In, "
                  "or a router's Loc-RIB).")
BGP_MESSAGES = _s("cleanpath_bgp_messages", COUNTER, "BMP messages read, by type and result (ok, ignored: "
                  "pre-policy or Adj-RIB-Out, malformed).", "type", "result")
FLOW_EXPORT_PACKETS = _s("cleanpath_flow_export_packets", COUNTER, "Flow-export datagrams (and IPFIX/TCP "
                          "messages) read, by protocol and result (ok, malformed, no_template, unsupported).",
                          "protocol", "result")
FLOW_EXPORT_RECORDS = _s("cleanpath_flow_export_records", COUNTER, "Flow records decoded, by protocol.", "protocol")
FLOW_EXPORT_GAPS = _s("cleanpath_flow_export_sequence_gaps", COUNTER, "Sequence numbers skipped by an exporter "
                      "(datagrams or records lost on the way), by protocol.", "protocol")
FLOW_EXPORT_TEMPLATES = _s("cleanpath_flow_export_templates", GAUGE, "NetFlow v9 and IPFIX templates held, by "
                           "protocol.", "protocol")
FLOW_EXPORT_EXPORTERS = _s("cleanpath_flow_export_exporters", GAUGE, "Exporters heard from, by protocol.",
                           "protocol")
FLOW_EXPORT_LAST_SEEN = _s("cleanpath_flow_export_last_datagram_timestamp_seconds", GAUGE, "When each exporter "
                           "last sent a datagram that decoded, by inventory name (other: not in the inventory; "
                           "the newest of them).", "exporter")
EVENTS_DROPPED = _s("cleanpath_events_dropped", COUNTER, "Events lost to a full disk or I/O error.", "reason")
EVENTS = _s("cleanpath_events", COUNTER, "Events written.")

# --- the scheduled audit (verifier audit --textfile / --pushgateway) -------------
AUDIT_ZONE_STATUS = _s("cleanpath_audit_zone_status", GAUGE, "1 for the zone's status in the last audit.",
                       "zone", "status")
AUDIT_FLOWS = _s("cleanpath_audit_flows", GAUGE, "Flows in the last audit, by zone and verdict.", "zone", "verdict")
AUDIT_BYTES = _s("cleanpath_audit_bytes", GAUGE, "Bytes in the last audit, by zone and verdict.", "zone", "verdict")
AUDIT_COVERAGE = _s("cleanpath_audit_coverage_ratio", GAUGE, "Share of the zone's flows fully attributed.", "zone")
AUDIT_VIOLATIONS = _s("cleanpath_audit_violations", GAUGE, "Violating flows in the last audit.")
AUDIT_PACKETS = _s("cleanpath_audit_packets", GAUGE, "Packets read by the last audit.")
AUDIT_CAPTURE_ERRORS = _s("cleanpath_audit_capture_errors", GAUGE,
                          "Capture files the last audit could not read completely.")
AUDIT_EXIT_CODE = _s("cleanpath_audit_exit_code", GAUGE,
                     "Exit code of the last audit (0 certified, 1 violation, 3 unverified, 2 error).")
AUDIT_DURATION = _s("cleanpath_audit_duration_seconds", GAUGE, "Wall time of the last audit.")
AUDIT_LAST_RUN = _s("cleanpath_audit_last_run_timestamp_seconds", GAUGE, "When the last audit ran.")
AUDIT_LAST_SUCCESS = _s("cleanpath_audit_last_success_timestamp_seconds", GAUGE,
                        "When an audit last read all of its input.")

ALL = tuple(v for v in globals().values() if isinstance(v, Series))
