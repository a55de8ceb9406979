"""The daemon's /metrics: one collector over the daemon's live state.

Registered on a private ``CollectorRegistry`` (no process or platform
collectors from prometheus-client's default registry, so every series is one
we document). The collector reads snapshots at scrape time; nothing here runs
per packet or per flow. Served by http.py (many concurrent scrapers share
one render), with TLS when a certificate and key are given (and client
certificates when a CA is).

Series beyond SPEC.md (documented in the README):
  cleanpath_zone_window_flows{zone}              flows judged in the rolling window
  cleanpath_capture_received_packets_total{interface}  kernel's received count (socket engine)
  cleanpath_events_dropped_total{reason}         events lost to a full disk or I/O error
  cleanpath_events_total                         events written
  cleanpath_discovery_frames_total{protocol,result}  LLDP/CDP/STP frames read (ok, malformed)
  cleanpath_probes_sent_total, cleanpath_probe_failures_total   with --probe
"""

import datetime
import ssl
import threading

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import __version__
from ..flows import EVICTION_REASONS
from ..sinks.events import DROP_REASONS
from ..sinks.metrics import OTHER, UNZONED
from .http import MetricsServer

RELOAD_RESULTS = ("success", "failure")


class DaemonCollector:
    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        sink = d.metrics
        policy = d.pipeline.policy
        zones = list(policy.zones)

        flows = CounterMetricFamily("cleanpath_flows", "Flows judged, by zone and verdict.", labels=["zone", "verdict"])
        octets = CounterMetricFamily("cleanpath_bytes", "Bytes of judged flows, by zone and verdict.",
                                     labels=["zone", "verdict"])
        for (zone, verdict), n in sorted(dict(sink.flows).items()):
            flows.add_metric([zone, verdict], n)
        for (zone, verdict), n in sorted(dict(sink.octets).items()):
            octets.add_metric([zone, verdict], n)
        yield flows
        yield octets

        violations = CounterMetricFamily("cleanpath_violations", "Violating flows by zone, rule, vendor and element kind.",
                                         labels=["zone", "rule", "vendor", "kind"])
        for (zone, rule, vendor, kind), n in sorted(dict(sink.violations).items()):
            violations.add_metric([zone, rule, vendor, kind], n)
        yield violations

        open_flows = GaugeMetricFamily("cleanpath_open_flows", "Open flows by zone and current verdict.",
                                       labels=["zone", "verdict"])
        for (zone, verdict), n in sorted(dict(sink.open_flows).items()):
            open_flows.add_metric([zone, verdict], n)
        yield open_flows

        window = sink.window()
        certified = GaugeMetricFamily("cleanpath_zone_certified",
                                      "1 when the zone's rolling window holds traffic and no violation or "
                                      "required-but-unverified flow.", labels=["zone"])
        coverage = GaugeMetricFamily("cleanpath_coverage_ratio",
                                     "Share of the zone's flows in the rolling window whose path is fully attributed.",
                                     labels=["zone"])
        window_flows = GaugeMetricFamily("cleanpath_zone_window_flows", "Flows judged in the rolling window.",
                                         labels=["zone"])
        for zone in zones:
            totals = window[zone]
            certified.add_metric([zone], sink.certified(zone, totals))
            coverage.add_metric([zone], totals[1] / totals[0] if totals[0] else 0.0)
            window_flows.add_metric([zone], totals[0])
        yield certified
        yield coverage
        yield window_flows

        last = GaugeMetricFamily("cleanpath_last_violation_timestamp_seconds",
                                 "When the zone last had a violating flow (0: never since start).", labels=["zone"])
        seen = dict(sink.last_violation)
        for zone in zones + [UNZONED]:
            last.add_metric([zone], seen.get(zone, 0.0))
        yield last

        table = d.pipeline.table
        yield GaugeMetricFamily("cleanpath_active_flows", "Flows open in the flow table.", value=len(table.flows))
        evictions = CounterMetricFamily("cleanpath_flow_evictions", "Flows ended, by reason.", labels=["reason"])
        for reason in EVICTION_REASONS:
            evictions.add_metric([reason], table.evictions[reason])
        yield evictions

        packets = CounterMetricFamily("cleanpath_packets", "Packets read, by source kind.", labels=["source"])
        packets.add_metric([d.source_kind], d.pipeline.stats.packets)
        yield packets
        errors = CounterMetricFamily("cleanpath_decode_errors", "Packets that could not be decoded, by reason.",
                                     labels=["reason"])
        for reason, n in sorted(dict(d.pipeline.stats.decode_errors).items()):
            errors.add_metric([reason], n)
        yield errors

        dropped = CounterMetricFamily("cleanpath_capture_dropped_packets",
                                      "Packets the kernel dropped before the daemon read them.", labels=["interface"])
        received = CounterMetricFamily("cleanpath_capture_received_packets",
                                       "Packets the kernel passed the capture filter.", labels=["interface"])
        for name, n in sorted(d.kernel_drops().items()):
            dropped.add_metric([name], n)
        for name, n in sorted(d.kernel_received().items()):
            received.add_metric([name], n)
        yield dropped
        yield received

        devices = GaugeMetricFamily("cleanpath_discovered_devices", "Segment devices known, by vendor, trust and source.",
                                    labels=["vendor", "trust", "source"])
        for (vendor, trust, source), n in sorted(d.discovered_devices().items()):
            devices.add_metric([vendor if vendor in d.catalogue else OTHER, trust, source], n)
        yield devices

        frames = CounterMetricFamily("cleanpath_discovery_frames", "LLDP, CDP, STP, ARP, NDP, GTP-C and PFCP "
                                     "messages read, by protocol and result.", labels=["protocol", "result"])
        for reader in (d.discovery, d.pipeline.control_plane):
            for protocol, n in sorted(reader.frames.items()):
                bad = reader.errors[protocol]
                frames.add_metric([protocol, "ok"], n - bad)
                frames.add_metric([protocol, "malformed"], bad)
        yield frames
        probes = d.pipeline.probes
        if probes is not None:
            yield CounterMetricFamily("cleanpath_probes_sent", "Active probes sent (--probe).",
                                      value=probes.prober.probes_sent)
            yield CounterMetricFamily("cleanpath_probe_failures", "Traces that failed (--probe).",
                                      value=probes.failures)

        yield _info("cleanpath_policy_info", "The policy in force (sha256 of its files).", "sha256", policy.sha256)
        reloads = CounterMetricFamily("cleanpath_policy_reloads", "SIGHUP reloads by result.", labels=["result"])
        for result in RELOAD_RESULTS:
            reloads.add_metric([result], d.reloads[result])
        yield reloads

        build = GaugeMetricFamily("cleanpath_data_build_timestamp_seconds",
                                  "Build time of the OUI registry and ASN databases in use.", labels=["source"])
        for source, ts in sorted(d.data_build_times().items()):
            build.add_metric([source], ts)
        yield build
        yield _info("cleanpath_build_info", "Version of the verifier.", "version", __version__)

        events = d.events
        ev_dropped = CounterMetricFamily("cleanpath_events_dropped", "Events lost to a full disk or I/O error.",
                                         labels=["reason"])
        for reason in DROP_REASONS:
            ev_dropped.add_metric([reason], events.dropped[reason] if events else 0)
        yield ev_dropped
        yield CounterMetricFamily("cleanpath_events", "Events written.", value=events.written if events else 0)


def _info(name, doc, label, value):
    family = GaugeMetricFamily(name, doc, labels=[label])
    family.add_metric([value], 1)
    return family


def build_timestamp(build_date):
    """An ISO date or datetime (as the attribution sources describe themselves) -> epoch seconds."""
    if not build_date:
        return None
    try:
        value = datetime.datetime.fromisoformat(str(build_date).replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def serve(daemon, addr, certfile=None, keyfile=None, client_cafile=None):
    """Start the HTTP(S) server (http.py) on ``addr`` ("host:port",
    "[v6]:port") in a thread; returns (registry, server, thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    host, port = split_addr(addr)
    tls = None
    if certfile:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(certfile, keyfile)
        if client_cafile:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(cafile=client_cafile)
    server = MetricsServer(host, port, registry, tls)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return registry, server, thread


def split_addr(addr):
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"'{addr}' is not host:port")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)

