"""The daemon's /metrics: collectors over the daemon's live state, one per
concern (verdicts, flow table, capture, discovery, probes, configuration,
events), their series named in verifier/series.py.

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
from .. import series as S
from ..bgp.bmp import RESULTS as BMP_RESULTS, TYPE_NAMES
from ..export.decode import PROTOCOLS as EXPORT_PROTOCOLS, RESULTS as EXPORT_RESULTS
from ..flows import EVICTION_REASONS
from ..sinks.events import DROP_REASONS
from ..sinks.metrics import OTHER, UNZONED
from .http import MetricsServer

RELOAD_RESULTS = ("success", "failure")


def family(series, value=None):
    """A metric family for ``series`` (verifier/series.py): its name, help and
    labels; with ``value``, the one sample of an unlabelled series."""
    make = CounterMetricFamily if series.kind == S.COUNTER else GaugeMetricFamily
    if value is not None:
        return make(series.name, series.help, value=value)
    return make(series.name, series.help, labels=list(series.labels))


def _filled(series, items):
    """``series`` with a sample per (labels, value) of ``items``."""
    out = family(series)
    for labels, value in items:
        out.add_metric(list(labels), value)
    return out


class VerdictCollector:
    """What the judged flows say, per zone: counts, open flows, the rolling
    window (certified, coverage) and the last violation (sinks/metrics.py's state)."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        sink, zones = self.daemon.metrics, list(self.daemon.pipeline.policy.zones)
        yield _filled(S.FLOWS, sorted(dict(sink.flows).items()))
        yield _filled(S.BYTES, sorted(dict(sink.octets).items()))
        yield _filled(S.VIOLATIONS, sorted(dict(sink.violations).items()))
        yield _filled(S.OPEN_FLOWS, sorted(dict(sink.open_flows).items()))
        window = sink.window()
        yield _filled(S.ZONE_CERTIFIED, (((z,), sink.certified(z, window[z])) for z in zones))
        yield _filled(S.COVERAGE, (((z,), window[z][1] / window[z][0] if window[z][0] else 0.0) for z in zones))
        yield _filled(S.WINDOW_FLOWS, (((z,), window[z][0]) for z in zones))
        seen = dict(sink.last_violation)
        yield _filled(S.LAST_VIOLATION, (((z,), seen.get(z, 0.0)) for z in zones + [UNZONED]))


class FlowTableCollector:
    """The flow table: flows open, flows ended by reason."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        table = self.daemon.pipeline.table
        yield family(S.ACTIVE_FLOWS, len(table.flows))
        yield _filled(S.EVICTIONS, (((r,), table.evictions[r]) for r in EVICTION_REASONS))


class CaptureCollector:
    """What came in: packets by source kind, decode errors by reason, the kernel's drops and receipts."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        yield _filled(S.PACKETS, [((d.source_kind,), d.pipeline.stats.packets)])
        yield _filled(S.DECODE_ERRORS, (((r,), n) for r, n in sorted(dict(d.pipeline.stats.decode_errors).items())))
        yield _filled(S.CAPTURE_DROPPED, (((name,), n) for name, n in sorted(d.kernel_drops().items())))
        yield _filled(S.CAPTURE_RECEIVED, (((name,), n) for name, n in sorted(d.kernel_received().items())))


class DiscoveryCollector:
    """What the control frames taught: segment devices, and messages read per protocol."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        yield _filled(S.DISCOVERED_DEVICES, (((vendor if vendor in d.catalogue else OTHER, trust, source), n)
                                             for (vendor, trust, source), n in sorted(d.discovered_devices().items())))
        frames = family(S.DISCOVERY_FRAMES)
        for reader in (d.discovery, d.pipeline.control_plane):
            for protocol, n in sorted(reader.frames.items()):
                bad = reader.errors[protocol]
                frames.add_metric([protocol, "ok"], n - bad)
                frames.add_metric([protocol, "malformed"], bad)
        yield frames


class ProbeCollector:
    """Active probes (--probe): nothing when they are off."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        probes = self.daemon.pipeline.probes
        if probes is not None:
            yield family(S.PROBES_SENT, probes.probes_sent)
            yield family(S.PROBE_FAILURES, probes.failures)


class ConfigCollector:
    """What the daemon judges with: policy, reloads, data build times, version."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        yield _filled(S.POLICY_INFO, [((d.pipeline.policy.sha256,), 1)])
        yield _filled(S.POLICY_RELOADS, (((r,), d.reloads[r]) for r in RELOAD_RESULTS))
        yield _filled(S.DATA_BUILD, (((source,), ts) for source, ts in sorted(d.data_build_times().items())))
        yield _filled(S.BUILD_INFO, [((__version__,), 1)])


class BgpCollector:
    """BGP: routes held per source, BMP RIBs up, BMP messages."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        routes = d.pipeline.attributor.routes
        dumps, live = (routes.dumps, routes.live) if routes is not None else (None, None)
        yield _filled(S.BGP_ROUTES, [(("mrt",), len(dumps) if dumps is not None else 0),
                                     (("bmp",), len(live) if live is not None else 0)])
        bmp = d.bmp
        yield family(S.BGP_PEERS_UP, bmp.peers_up if bmp is not None else 0)
        counts = dict(bmp.counts) if bmp is not None else {}
        yield _filled(S.BGP_MESSAGES, (((kind, result), counts.get((kind, result), 0))
                                       for kind in BMP_TYPES for result in BMP_RESULTS))


class FlowExportCollector:
    """Flow exports (--ipfix, --netflow, --sflow): nothing when no listener runs."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        collector = getattr(self.daemon.source, "collector", None)
        if collector is None:
            return
        counts = dict(collector.counts)
        yield _filled(S.FLOW_EXPORT_PACKETS, (((p, r), counts.get((p, r), 0)) for p in EXPORT_PROTOCOLS
                                              for r in EXPORT_RESULTS))
        yield _filled(S.FLOW_EXPORT_RECORDS, (((p,), collector.records[p]) for p in EXPORT_PROTOCOLS))
        yield _filled(S.FLOW_EXPORT_GAPS, (((p,), collector.gaps[p]) for p in EXPORT_PROTOCOLS))
        yield _filled(S.FLOW_EXPORT_TEMPLATES, (((p,), collector.templates(p)) for p in EXPORT_PROTOCOLS))
        heard = {}
        for protocol, _address in list(collector.last_seen):
            heard[protocol] = heard.get(protocol, 0) + 1
        yield _filled(S.FLOW_EXPORT_EXPORTERS, (((p,), heard.get(p, 0)) for p in EXPORT_PROTOCOLS))
        newest = {}
        ip = self.daemon.pipeline.attributor.ip
        for (_protocol, address), when in list(collector.last_seen.items()):
            answer = ip(address)
            name = answer.device.name if answer is not None and answer.device is not None else OTHER
            newest[name] = max(newest.get(name, 0.0), when)
        yield _filled(S.FLOW_EXPORT_LAST_SEEN, sorted(((name,), when) for name, when in newest.items()))


class EventsCollector:
    """The events file: written, and lost by reason."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        events = self.daemon.events
        yield _filled(S.EVENTS_DROPPED, (((r,), events.dropped[r] if events else 0) for r in DROP_REASONS))
        yield family(S.EVENTS, events.written if events else 0)


BMP_TYPES = TYPE_NAMES + ("other",)

# In /metrics order: one collector per concern (prometheus-client's gc_collector way).
COLLECTORS = (VerdictCollector, FlowTableCollector, CaptureCollector, DiscoveryCollector, ProbeCollector,
              ConfigCollector, BgpCollector, FlowExportCollector, EventsCollector)


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
    for collector in COLLECTORS:
        registry.register(collector(daemon))
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

