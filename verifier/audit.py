"""``verifier audit``: capture files -> certificate (the pipeline run once).

Each file is opened on its own: a file that cannot be read is recorded in the
certificate with its error and the others still run. File hashes are computed
on a second thread while the packets are read (hashlib releases the GIL), so
the digest costs no wall time on a 2-core machine.
"""

import hashlib
import os
import threading

from .attribution.discovery import SegmentDiscovery
from .attribution.mobile import ControlPlane
from .text import ip_text
from .attribution.vendors import VendorCatalogue
from .capture import expand_paths, open_capture
from .decode import R_LINKTYPE, linktype_name
from .errors import CaptureError
from .pipeline import Pipeline
from .sinks.flowcsv import CsvSink
from .sinks.report import ReportSink, certificate, exit_code
from .text import iso_time


PROGRESS_MIN_BYTES = 50 * 1024 * 1024     # smaller inputs finish before a bar helps


class AuditResult:
    def __init__(self, cert, code):
        self.certificate, self.exit_code = cert, code


def run_audit(paths, policy, attributor, when, csv_fh=None, idle_timeout=300.0, active_timeout=1800.0,
              max_flows=500_000, progress=False, max_violations=1000, catalogue=None, require_ip=True,
              signed_by=None, flow_export_ports=()):
    """Audit ``paths``; ``csv_fh``: a text file object for one CSV row per flow.
    ``require_ip``: a capture whose frames include no IP packet is an input
    error (fail closed: nothing in it could be judged); ``verifier discover``,
    which reads control frames only, turns that off. ``signed_by``: the
    keyid the certificate will be signed with (it names it). ``flow_export_ports``:
    UDP ports whose datagrams are read as flow exports too (their records
    become flows; the certificate gains a ``flow_export`` section when any came)."""
    report = ReportSink(policy, max_violations)
    files = expand_paths(paths)
    bar = _progress_bar(files) if progress else None
    discovery = SegmentDiscovery(attributor, catalogue or VendorCatalogue.load())
    pipe = Pipeline(policy, attributor, [report], idle_timeout, active_timeout, max_flows, today=when.date(),
                    progress=bar.advance if bar else None, discovery=discovery, control_plane=ControlPlane(),
                    flow_export_ports=flow_export_ports)
    if csv_fh is not None:
        pipe.sinks.append(CsvSink(csv_fh, pipe.interfaces))
    captures = []
    try:
        for path in files:
            captures.append(_audit_one(pipe, path, bar, require_ip))
        pipe.finish()
    finally:
        if bar is not None:
            bar.finish()
    expired = [e.describe() for e in policy.exceptions if e.expired(when.date())]
    nodes = [{"address": ip_text(n.address), "role": n.role, "learned_from": n.protocol,
              "teids": sorted(n.teids), "first_seen": iso_time(n.first_seen), "last_seen": iso_time(n.last_seen)}
             for n in sorted(pipe.control_plane.nodes.values(), key=lambda n: n.address)]
    sections = {"discovered_devices": discovered(discovery, policy, pipe.interfaces), "tunnel_nodes": nodes}
    if pipe.exports is not None and pipe.exports.counts:
        sections["flow_export"] = exported(pipe.exports, flow_export_ports)
    cert = certificate(report, policy, pipe.stats, captures, attributor.describe(),
                       when.isoformat().replace("+00:00", "Z"), expired, signed_by, sections=sections)
    return AuditResult(cert, exit_code(cert))


def exported(collector, ports):
    """What the captures' flow-export datagrams held, for the certificate: a
    gap or an undecoded datagram lowers what the export covers (it never
    fails a verdict), so an auditor sees both."""
    datagrams = {}
    for (protocol, result), n in sorted(collector.counts.items()):
        datagrams.setdefault(protocol, {})[result] = n
    exporters = [{"protocol": protocol, "address": ip_text(address), "last_seen": iso_time(when)}
                 for (protocol, address), when in sorted(collector.last_seen.items())]
    sampling = sorted({(p, ip_text(a), d, s) for (a, d, p), e in collector.exporters.items()
                       for s in e.sampling.values() if s > 1})
    return {"ports": list(ports), "datagrams": datagrams,
            "records": {p: n for p, n in collector.records.items() if n},
            "sequence_gaps": {p: n for p, n in collector.gaps.items() if n}, "exporters": exporters,
            "sampling": [{"protocol": p, "exporter": a, "domain": d, "one_in": s} for p, a, d, s in sampling],
            "note": "records of these datagrams are judged as flows (interface flow-export), counters scaled by "
                    "their sampling; the datagrams themselves are flows of the capture too"}


def nothing_decoded(packets, unsupported, decode_errors, non_ip):
    """Why a capture gave no IP packet to judge, for its certificate entry."""
    if not packets:
        return "no packets: nothing to audit"
    parts = [f"{n:,} frame{'s' * (n != 1)} of link type {linktype_name(lt)} ({lt}), which this version does not decode"
             for lt, n in sorted(unsupported.items()) if n]
    malformed = {k: n for k, n in decode_errors.items() if k != R_LINKTYPE}
    if malformed:
        parts.append(f"{sum(malformed.values()):,} malformed (" +
                     ", ".join(f"{k}: {n:,}" for k, n in sorted(malformed.items())) + ")")
    if non_ip:
        parts.append(f"{non_ip:,} not IP (ARP, LLDP, STP, ...)")
    return f"no frame of its {packets:,} decodes as IP, so nothing in it could be judged: " + "; ".join(parts)


def discovered(discovery, policy, interfaces):
    """Devices learned from LLDP/CDP/STP, for the certificate and ``verifier discover``."""
    out = []
    for dev in sorted(discovery.all_devices(), key=lambda d: (d.ifindex, d.vlan, d.protocol, d.ident)):
        entry = dev.as_dict()
        entry["interface"] = interfaces[dev.ifindex][0] if dev.ifindex < len(interfaces) else None
        entry["trust"] = policy.trust(dev.answer)
        entry["first_seen"], entry["last_seen"] = iso_time(dev.first_seen), iso_time(dev.last_seen)
        out.append(entry)
    return out


def _audit_one(pipe, path, bar, require_ip):
    digest = _Digest(path)
    entry = {"path": path, "format": None, "packets": 0, "first_ts": None, "last_ts": None, "errors": []}
    try:
        source = open_capture(path)
    except CaptureError as exc:
        entry["errors"].append(str(exc))
    else:
        entry["format"] = source.format + (".gz" if source.compressed else "")
        stats = pipe.stats
        before, non_ip, ip_packets = dict(stats.decode_errors), stats.non_ip, stats.ip_packets
        unsupported = dict(stats.unsupported_linktypes)
        packets, first, last = pipe.ingest(source)
        entry.update(packets=packets, first_ts=iso_time(first), last_ts=iso_time(last),
                     interfaces=[{"linktype": i.linktype, "name": i.name} for i in source.interfaces])
        entry["decode_errors"] = {k: v - before[k] for k, v in stats.decode_errors.items() if v - before[k]}
        entry["errors"].extend(f"{path}: {e}" for e in source.errors)
        if require_ip and stats.ip_packets == ip_packets and (packets or not entry["errors"]):
            lost = {lt: n - unsupported.get(lt, 0) for lt, n in stats.unsupported_linktypes.items()}
            why = nothing_decoded(packets, lost, entry["decode_errors"], stats.non_ip - non_ip)
            entry["errors"].append(f"{path}: {why}")
    entry["sha256"] = digest.result()
    if bar is not None:
        bar.file_done(path)
    return entry


class _Digest:
    def __init__(self, path):
        self.value = None
        self.thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self.thread.start()

    def _run(self, path):
        try:
            with open(path, "rb") as fh:
                self.value = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            self.value = None

    def result(self):
        self.thread.join()
        return self.value


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _progress_bar(files):
    """A click progress bar over the input bytes, for large inputs only."""
    total = sum(_size(p) for p in files)
    if total < PROGRESS_MIN_BYTES:
        return None
    return _Progress(total)


class _Progress:
    """Advances with each chunk read (reader byte position), then by whole
    files, so one large capture moves the bar as well as many small ones."""

    def __init__(self, total):
        import sys
        import click
        self.bar = click.progressbar(length=total, label="auditing", file=sys.stderr)
        self.bar.render_progress()
        self.done = 0          # bytes of finished files
        self.shown = 0

    def _show(self, value):
        value = min(value, self.bar.length)
        if value > self.shown:
            self.bar.update(value - self.shown)
            self.shown = value

    def advance(self, source):
        self._show(self.done + min(source.position, _size(source.path)))

    def file_done(self, path):
        self.done += _size(path)
        self._show(self.done)

    def finish(self):
        self.bar.render_finish()
