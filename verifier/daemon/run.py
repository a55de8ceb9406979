"""``verifier run``: a source's chunks through the audit's pipeline, forever.

The loop is the audit pipeline fed one chunk at a time::

    source.chunks() -> Pipeline.feed -> FlowTable -> judge -> MetricsSink, EventSink

Sources yield ``None`` when they have been quiet for a poll interval; the
loop then calls ``Pipeline.tick`` so idle flows end on time, and checks for
signals. Signals only set flags (handlers do no work):

- SIGHUP: build a new policy and attributor from the same files, then swap
  them in. Any error keeps the old ones running and counts a failed reload.
- SIGTERM/SIGINT: stop the source, end every open flow through policy and
  sinks (reason ``shutdown``), close the event file, exit 0.

A finite source (``--replay``) that ends has its flows judged, and the
daemon keeps serving metrics until it is stopped.
"""

import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass

from ..attribution.discovery import SegmentDiscovery
from ..attribution.mobile import ControlPlane
from ..decode import R_INTERNAL
from ..errors import VerifierError
from ..pipeline import Pipeline
from ..sinks.events import EventSink
from ..sinks.metrics import MetricsSink
from .exporter import build_timestamp, serve


@dataclass(frozen=True)
class Options:
    """What ``verifier run`` was asked to do (built by the CLI from its
    options, or by tests); an unknown name is a TypeError, not ignored."""

    interfaces: tuple = ()
    engine: str = "socket"                # capture engine: socket or tshark
    bpf_filter: str = None
    watch_dir: str = None
    state_file: str = None
    settle: float = 10.0
    replay: str = None
    speed: float = 1.0
    policies: tuple = ()
    inventory: str = None
    asn_dbs: tuple = ()
    bgp_mrts: tuple = ()
    bmp: str = None                       # HOST:PORT where routers connect with BMP
    ipfix: str = None                     # HOST:PORT of the flow-export listeners (export/listen.py)
    netflow: str = None
    sflow: str = None
    export_rcvbuf: int = 8 << 20
    metrics_addr: str = "127.0.0.1:9108"
    tls_cert: str = None
    tls_key: str = None
    tls_client_ca: str = None
    events: str = None
    events_all: bool = False
    events_max_bytes: int = 100 << 20
    events_keep: int = 5
    idle_timeout: float = 60.0
    active_timeout: float = 600.0
    max_flows: int = 500_000
    window: float = 900.0
    probe: bool = False
    probe_proto: str = "udp"
    probe_rate: float = 10.0
    probe_cache_ttl: float = 3600.0


class Daemon:
    def __init__(self, app, options, log=None):
        self.app = app
        self.options = options
        self.log = log or (lambda text: print(f"verifier: {text}", file=sys.stderr, flush=True))
        self.catalogue = app.catalogue
        self.reloads = {"success": 0, "failure": 0}
        self._dumps_seen, self._dumps_checked = None, float("-inf")
        self._reload_wanted = False
        self._stop_wanted = False
        self.source = None
        self.server = None
        self.bmp = None                       # the BMP listener (start), feeding live_routes
        self.live_routes = None
        if options.bmp:
            from ..bgp.live import LiveRib
            self.live_routes = LiveRib()
        policy, attributor = self._load()
        self.metrics = MetricsSink(policy, self.catalogue, options.window)
        self.events = EventSink(options.events, options.events_all, options.events_max_bytes,
                                options.events_keep) if options.events else None
        sinks = [self.metrics] + ([self.events] if self.events else [])
        self.discovery = SegmentDiscovery(attributor, self.catalogue)
        self.pipeline = Pipeline(policy, attributor, sinks, options.idle_timeout, options.active_timeout,
                                 options.max_flows, discovery=self.discovery, control_plane=ControlPlane())
        self.pipeline.survive_bugs = self._bug
        self.pipeline.go_live(sinks)          # verdicts at first sight and on change, not only at the end
        self.bugs = 0
        self.source_kind = _source_kind(options)
        if options.probe:
            self._start_prober(policy)

    def _start_prober(self, policy):
        from ..probe import Prober, ProbeService
        zones = protected_zones(policy)
        if not zones:
            self.log("--probe: no zone has a clean-path rule covering router-hop; nothing will be traced")
        prober = Prober(self.options.probe_proto, rate=self.options.probe_rate,
                        cache_ttl=self.options.probe_cache_ttl)
        self.pipeline.probes = ProbeService(prober, zones, log=self.log)

    # --- set-up ---------------------------------------------------------

    def _load(self):
        o = self.options
        self._dumps_seen = _stamps(o.bgp_mrts)
        return self.app.policy(o.policies), self.app.attributor(o.inventory, o.asn_dbs, o.bgp_mrts, self.live_routes)

    def open_source(self):
        o = self.options
        if o.ipfix or o.netflow or o.sflow:
            from ..export.listen import ExportListeners
            try:
                source = ExportListeners(o.ipfix, o.netflow, o.sflow, o.export_rcvbuf, log=self.log,
                                         state_path=os.path.join(self.app.data_dir, "flow-export", "state.json"))
            except ValueError as exc:
                raise VerifierError(str(exc)) from None
            except OSError as exc:
                raise VerifierError(f"cannot listen for flow exports: {exc.strerror or exc}") from None
            for line in source.describe():
                self.log(f"listening for {line}")
            return source
        if o.replay:
            from ..capture.replay import Replay
            return Replay(o.replay, o.speed)
        if o.watch_dir:
            from ..capture.watch import WatchDir
            state = o.state_file or os.path.join(self.app.data_dir, "watch", _slug(o.watch_dir) + ".json")
            return WatchDir(o.watch_dir, state, o.settle)
        if o.engine == "tshark":
            from ..capture.tshark import TsharkCapture
            return TsharkCapture(o.interfaces, o.bpf_filter)
        from ..capture.live import LiveInterfaces
        return LiveInterfaces(o.interfaces, o.bpf_filter)

    def start(self):
        """Open the source and the metrics endpoint; raise VerifierError/OSError with one clear line."""
        o = self.options
        self.source = self.open_source()
        try:
            self.registry, self.server, _thread = serve(self, o.metrics_addr, o.tls_cert, o.tls_key, o.tls_client_ca)
        except OSError as exc:
            self.source.close()
            raise VerifierError(f"cannot serve metrics on {o.metrics_addr}: {exc.strerror or exc}") from None
        except ValueError as exc:
            self.source.close()
            raise VerifierError(f"--metrics-addr: {exc}") from None
        if o.bmp:
            from ..bgp.bmp import Listener
            host, _, port = o.bmp.rpartition(":")
            try:
                self.bmp = Listener(host.strip("[]"), int(port), self.live_routes, self.log)
            except (OSError, ValueError) as exc:
                self.source.close()
                self.close_server()
                raise VerifierError(f"cannot listen for BMP on {o.bmp}: {getattr(exc, 'strerror', None) or exc}") \
                    from None
            self.log(f"BMP listening on {o.bmp}")
        scheme = "https" if o.tls_cert else "http"
        self.log(f"{self.source_kind} source ready; metrics on {scheme}://{o.metrics_addr}/metrics; "
                 f"policy {self.pipeline.policy.sha256[:12]}")

    def install_signals(self):
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def _on_hup(self, _signum, _frame):
        self._reload_wanted = True

    def _on_stop(self, _signum, _frame):
        self._stop_wanted = True
        if self.source is not None:
            self.source.close()          # ends the source's loop at its next poll

    # --- the loop -------------------------------------------------------

    def run(self):
        pipe, source = self.pipeline, self.source
        try:
            for chunk in source.chunks():
                if chunk is not None and len(chunk):
                    self._feed(pipe, source, chunk)
                else:
                    pipe.tick(source.now())
                self._check_dumps()
                if self._reload_wanted:
                    self.reload()
                if self._stop_wanted:
                    break
            else:
                if not self._stop_wanted:
                    self._drained()
        finally:
            self.shutdown()

    def _feed(self, pipe, source, chunk):
        """A bug in a chunk's fast path costs that chunk (counted as
        ``internal-error``), not the daemon; one in a packet's decode costs
        that packet (Pipeline.survive_bugs)."""
        try:
            pipe.feed(source, chunk)
        except Exception as exc:           # noqa: BLE001 - counted and logged, never fatal
            pipe.stats.decode_errors[R_INTERNAL] += len(chunk)
            self._bug(exc)

    def _bug(self, exc):
        """Log the first bug with its traceback, then one line at the 2nd, 4th,
        8th ... and every 1000th: a bug that repeats per packet cannot flood the log."""
        self.bugs += 1
        if self.bugs & (self.bugs - 1) == 0 or self.bugs % 1000 == 0:
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            self.log(f"internal error #{self.bugs} (counted as decode error 'internal-error', capture goes on): "
                     f"{type(exc).__name__}: {exc}" + (f" at {os.path.basename(where.filename)}:{where.lineno}"
                                                        if where else ""))
            if self.bugs == 1:
                self.log("".join(traceback.format_exception(exc)).rstrip())

    def _drained(self):
        """A finite source (a replay) has ended: judge what is open, keep serving until stopped."""
        self.pipeline.finish()
        self.log("input finished; every flow judged; serving metrics until SIGTERM")
        while not self._stop_wanted:
            time.sleep(0.2)
            self._check_dumps()
            if self._reload_wanted:
                self.reload()

    def stop(self):
        self._on_stop(None, None)

    def _check_dumps(self):
        """A ``--bgp-mrt`` file replaced (routers and cron jobs write a new
        dump and rename it over the old) asks for a reload, once per change:
        checked at most once a second, by inode, size and mtime."""
        if not self.options.bgp_mrts:
            return
        now = time.monotonic()
        if now < self._dumps_checked + 1.0:
            return
        self._dumps_checked = now
        stamps = _stamps(self.options.bgp_mrts)
        if stamps != self._dumps_seen:
            self._dumps_seen = stamps
            self.log("a --bgp-mrt dump changed on disk: reloading")
            self._reload_wanted = True

    def reload(self):
        self._reload_wanted = False
        try:
            policy, attributor = self._load()
        except (VerifierError, OSError) as exc:
            self.reloads["failure"] += 1
            for line in _lines(exc):
                self.log(f"reload failed, keeping policy {self.pipeline.policy.sha256[:12]}: {line}")
            return False
        pipe = self.pipeline
        self.discovery.reattribute(attributor)
        pipe.use(policy, attributor)
        pipe.rejudge_open()                   # open flows are judged by the new policy at once
        self.metrics.set_policy(policy)
        if pipe.probes is not None:
            pipe.probes.zones = frozenset(protected_zones(policy))
        self.reloads["success"] += 1
        routes = f", {len(attributor.routes):,} BGP routes" if attributor.routes is not None else ""
        self.log(f"reloaded: policy {policy.sha256[:12]}, {len(policy.zones)} zone(s), {len(policy.rules)} rule(s)"
                 + routes)
        return True

    def shutdown(self):
        started = time.monotonic()
        if self.source is not None:
            self.source.close()
        if self.pipeline.probes is not None:
            self.pipeline.probes.close()
        open_flows = len(self.pipeline.table)
        self.pipeline.finish()
        if self.events is not None:
            self.events.close()
        self.log(f"stopped: {open_flows} open flow(s) judged at shutdown in {time.monotonic() - started:.2f}s; "
                 f"{self.pipeline.stats.packets} packets in total")

    def close_server(self):
        if self.bmp is not None:
            self.bmp.close()
            self.bmp = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # --- what the exporter reads ------------------------------------------

    def kernel_drops(self):
        return self.source.drops() if self.source is not None else {}

    def kernel_received(self):
        return self.source.received() if self.source is not None else {}

    def discovered_devices(self):
        """(vendor, trust, source) -> segment devices known: declared in the
        inventory for a capture segment, or heard (lldp, cdp, stp) within their TTL."""
        policy = self.pipeline.policy
        out = {}
        inventory = self.pipeline.attributor.inventory
        if inventory is not None:
            seen = set()
            for devices in list(inventory.segments.values()):
                for dev in devices:
                    if id(dev) not in seen:
                        seen.add(id(dev))
                        key = (dev.vendor or "other", policy.trust(inventory.answer(dev)), "inventory")
                        out[key] = out.get(key, 0) + 1
        now = self.source.now() if self.source is not None else time.time()
        for dev in self.discovery.all_devices():
            if dev.last_seen + dev.ttl < now:
                continue                                  # not re-announced: expired
            answer = dev.answer
            key = ((answer.vendor if answer else None) or "other", policy.trust(answer), dev.protocol)
            out[key] = out.get(key, 0) + 1
        return out

    def data_build_times(self):
        out = {}
        for entry in self.pipeline.attributor.describe():
            ts = build_timestamp(entry.get("build_date"))
            source = entry["source"]
            if ts is not None and source in ("oui", "asn", "mrt"):
                out[source] = min(out.get(source, ts), ts)      # the oldest database of a kind is the stale one
        return out


def _stamps(paths):
    """(inode, size, mtime) per path (None where it cannot be read)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def protected_zones(policy):
    """Zones with a clean-path rule that covers router hops: their flows' remote ends are probed."""
    from ..model import ROUTER_HOP
    from ..policy.model import CLEAN_PATH
    return [z for z in policy.zones
            if any(r.require == CLEAN_PATH and ROUTER_HOP in r.kinds for r in policy.rules_for[z])]


def _source_kind(o):
    if o.ipfix or o.netflow or o.sflow:
        return "flow-export"
    if o.replay:
        return "replay"
    if o.watch_dir:
        return "watch-dir"
    return "tshark" if o.engine == "tshark" else "interface"


def _slug(path):
    import hashlib
    full = os.path.abspath(path)
    return os.path.basename(full.rstrip("/")) + "-" + hashlib.sha256(full.encode()).hexdigest()[:12]


def _lines(exc):
    problems = getattr(exc, "problems", None)
    return [str(p) for p in problems] if problems else [str(exc)]
