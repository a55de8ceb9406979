"""``verifier run`` without root: replay and watch-dir sources, metrics,
events, SIGHUP/SIGTERM, audit publishing, TLS. (Live capture: test_lab.py.)"""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import need_tool, self_signed
from lab import LAB_POLICY, wait_for
from verifier.capture.replay import Replay
from verifier.capture.watch import WatchDir
from verifier.craft import ETH_IPV4, PcapWriter, ether, ipv4, tcp
from verifier.model import Flow, Judgement, PathElement, flow_key
from verifier.sinks.events import EventSink
from verifier.sinks.metrics import MetricsSink

HERE = os.path.dirname(__file__)
DEMO = os.path.join(os.path.dirname(HERE), "verifier", "demo")
HUAWEI, CISCO, CLIENT = "00:e0:fc:00:00:01", "00:1b:54:00:00:02", "02:00:00:00:00:10"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, scheme="http", context=None):
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/metrics", timeout=5, context=context) as resp:
        return resp.read().decode()


def value(text, name, **labels):
    """The sample ``name{labels}`` in exposition ``text`` (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def write_capture(path, flows, start=1_700_000_000.0, gateway=HUAWEI):
    """One TCP packet pair per (sport, dport) toward 203.0.113.1 through ``gateway``."""
    with PcapWriter(path) as w:
        t = start
        for sport, dport in flows:
            out = ipv4("198.51.100.10", "203.0.113.1", 6, tcp(sport, dport))
            back = ipv4("203.0.113.1", "198.51.100.10", 6, tcp(dport, sport))
            w.write(t, ether(gateway, CLIENT, ETH_IPV4, out))
            w.write(t + 0.01, ether(CLIENT, gateway, ETH_IPV4, back))
            t += 0.1


class Daemon:
    """``verifier run`` as a subprocess with its own metrics port."""

    def __init__(self, tmp_path, *args, policy_text=LAB_POLICY):
        self.policy = tmp_path / "policy.yaml"
        if not self.policy.exists():
            self.policy.write_text(policy_text)
        self.port = free_port()
        self.events = tmp_path / "events.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "data"), "run", *args,
             "--policy", str(self.policy), "--metrics-addr", f"127.0.0.1:{self.port}",
             "--events", str(self.events), "--events-all"],
            stderr=subprocess.PIPE, text=True)
        wait_for(self._up, 20, what="the daemon's /metrics")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited: {self.proc.stderr.read()}")
        try:
            return scrape(self.port)
        except OSError:
            return None

    def metrics(self):
        return scrape(self.port)

    def until(self, check, what, timeout=20):
        """Scrape until ``check(text)`` holds; return that scrape."""
        def once():
            text = self.metrics()
            return text if check(text) else None
        return wait_for(once, timeout, what=what)

    def events_list(self):
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines()]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        self.proc.wait(timeout=10)
        return time.monotonic() - started, self.proc.stderr.read()


# --- sinks -----------------------------------------------------------------------

def judged(zone, verdict, elements, rules=(), reasons=()):
    flow = Flow(flow_key(0, -1, -1, 6, bytes([198, 51, 100, 10]), 40000, bytes([203, 0, 113, 1]), 443), 100.0)
    flow.pkts_a = flow.pkts_b = 2
    flow.octets_a, flow.octets_b = 100, 200
    return flow, [Judgement(zone, verdict, list(rules), elements, list(reasons))]


def test_metrics_sink_window_coverage_and_labels(catalogue):
    policy = load_policy_text(LAB_POLICY, catalogue)
    now = [1000.0]
    sink = MetricsSink(policy, catalogue, window=60, clock=lambda: now[0])
    huawei = PathElement("l2-neighbor", "00:e0:fc:00:00:01", "huawei", "Huawei", None, "untrusted", None)
    odd = PathElement("l2-neighbor", "02:00:00:00:00:01", None, None, None, "unattributable", None)
    assert sink.flows[("embassy-lan", "CLEAN")] == 0            # pre-created series
    sink.flow(*judged("embassy-lan", "VIOLATION", [huawei], ["embassy-clean-path"],
                      [("embassy-clean-path", 0, "untrusted")]))
    sink.flow(*judged("embassy-lan", "UNVERIFIED", [odd], ["embassy-clean-path"],
                      [("embassy-clean-path", 0, "unattributable")]))
    sink.flow(*judged(None, "CLEAN", []))
    sink.flow(*judged("embassy-lan", "VIOLATION", [], ["embassy-clean-path"],
                      [("embassy-clean-path", None, "no gnb (tunnel-endpoint) identified on the path")]))
    assert sink.flows[("embassy-lan", "VIOLATION")] == 2 and sink.flows[("unzoned", "CLEAN")] == 1
    assert sink.octets[("embassy-lan", "VIOLATION")] == 600
    assert {k: v for k, v in sink.violations.items() if v} == {
        ("embassy-lan", "embassy-clean-path", "huawei", "l2-neighbor"): 1,
        ("embassy-lan", "embassy-clean-path", "other", "missing"): 1}      # a rule with roles found none
    # Every way a rule can be broken has its series from the start, so increase() sees the first one.
    assert sink.violations[("embassy-lan", "embassy-clean-path", "zte", "l2-neighbor")] == 0
    assert sink.violations[("embassy-lan", "no-untrusted-vendors", "zte", "router-hop")] == 0
    assert sink.violations[("unzoned", "no-untrusted-vendors", "huawei", "endpoint-device")] == 0
    assert ("embassy-lan", "embassy-clean-path", "huawei", "router-hop") not in sink.violations  # not in its kinds
    totals = sink.window()["embassy-lan"]
    assert totals == [3, 1, 2, 1]
    assert sink.certified("embassy-lan", totals) == 0
    now[0] += 61                                              # the window has moved past both flows
    assert sink.window()["embassy-lan"] == [0, 0, 0, 0]
    assert sink.certified("embassy-lan", [0, 0, 0, 0]) == 0   # no traffic is not certified
    assert sink.certified("embassy-lan", [3, 3, 0, 0]) == 1
    assert sink.certified("embassy-lan", [3, 2, 0, 1]) == 0   # the rule requires attribution


def load_policy_text(text, catalogue):
    import tempfile
    from verifier.policy.load import load_policy
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "policy.yaml")
        with open(path, "w") as fh:
            fh.write(text)
        return load_policy([path], catalogue)


def test_event_sink_rotates_and_counts_a_full_disk(tmp_path):
    huawei = PathElement("l2-neighbor", "00:e0:fc:00:00:01", "huawei", "Huawei", None, "untrusted", None)
    args = judged("embassy-lan", "VIOLATION", [huawei], ["embassy-clean-path"], [("embassy-clean-path", 0, "x")])
    path = tmp_path / "ev.jsonl"
    sink = EventSink(str(path), max_bytes=2000, keep=2)
    for _ in range(20):
        sink.flow(*args)
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ev.jsonl", "ev.jsonl.1", "ev.jsonl.2"]
    lines = [json.loads(line) for p in tmp_path.iterdir() for line in p.read_text().splitlines()]
    assert all(e["community_id"].startswith("1:") and e["rule"] == "embassy-clean-path" for e in lines)
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert sink.written == 20

    full = EventSink("/dev/full")
    for _ in range(3):
        full.flow(*args)
    assert full.dropped["disk_full"] == 3 and full.written == 0
    clean = judged("embassy-lan", "CLEAN", [])
    full.flow(*clean)                                          # clean flows are not events by default
    assert full.dropped["disk_full"] == 3


# --- sources ---------------------------------------------------------------------

def test_replay_keeps_the_recorded_pace(tmp_path):
    path = tmp_path / "c.pcap"
    write_capture(str(path), [(40000 + i, 443) for i in range(10)])       # 20 packets over ~0.91 s
    clock = [5000.0]
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s
    replay = Replay(str(path), speed=2.0, clock=lambda: clock[0], sleep=sleep)
    stamps = []
    for chunk in replay.chunks():
        if chunk is not None:
            stamps.extend(chunk.ts.tolist())
    assert len(stamps) == 20
    assert stamps[0] == pytest.approx(5000.0)
    assert stamps[-1] - stamps[0] == pytest.approx(0.91 / 2, abs=1e-5)    # twice as fast
    assert sum(slept) == pytest.approx(0.91 / 2, abs=0.06)


def test_watch_dir_reads_closed_files_once_across_restarts(tmp_path):
    cap = tmp_path / "spool"
    cap.mkdir()
    state = str(tmp_path / "state.json")
    write_capture(str(cap / "cap_00001.pcap"), [(40000, 443)])
    write_capture(str(cap / "cap_00002.pcap"), [(40001, 443)], start=1_700_000_010)
    os.utime(cap / "cap_00001.pcap", ns=(1, 1_000_000_000))
    os.utime(cap / "cap_00002.pcap", ns=(1, 2_000_000_000))

    def take(watcher):
        out = []
        for chunk in watcher.chunks():
            if chunk is None:
                break
            out.append(len(chunk))
        return out

    w = WatchDir(str(cap), state, settle=3600, clock=lambda: 100.0)
    # cap_00002 is the newest and may still be written (settle not over): only the first is ready.
    assert w.ready() == ["cap_00001.pcap"]
    assert take(w) == [2]
    assert w.ready() == []
    write_capture(str(cap / "cap_00010.pcap"), [(40002, 443)], start=1_700_000_020)  # the writer moved on
    os.utime(cap / "cap_00010.pcap", ns=(1, 3_000_000_000))
    assert take(w) == [2]                            # cap_00002 now, in order
    # A restart: what was read is not read again; the settle time passes for the last file.
    w2 = WatchDir(str(cap), state, settle=3600, clock=lambda: 100.0 + 7200)
    assert w2.ready() == ["cap_00010.pcap"]
    os.unlink(cap / "cap_00001.pcap")                # rotation deleted a file: the state forgets it
    assert take(w2) == [2]
    assert set(json.load(open(state))["files"]) == {"cap_00002.pcap", "cap_00010.pcap"}


def test_watch_dir_daemon_sigterm_judges_open_flows_and_sighup_keeps_a_good_policy(tmp_path):
    cap = tmp_path / "spool"
    cap.mkdir()
    write_capture(str(cap / "a.pcap"), [(40000 + i, 443) for i in range(5)])
    write_capture(str(cap / "b.pcap"), [(41000, 443)], start=1_700_000_001)
    os.utime(cap / "a.pcap", ns=(1, 1_000_000_000))
    d = Daemon(tmp_path, "--watch-dir", str(cap), "--settle", "3600", "--idle-timeout", "3600")
    try:
        text = d.until(lambda t: value(t, "cleanpath_packets_total", source="watch-dir") == 10, "a.pcap read")
        assert value(text, "cleanpath_active_flows") == 5
        assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="VIOLATION") == 0
        # judged at first sight: counted while open, and the zone is not certified
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="VIOLATION") == 5
        assert value(text, "cleanpath_violations_total", zone="embassy-lan", rule="embassy-clean-path",
                     vendor="huawei", kind="l2-neighbor") == 5
        assert value(text, "cleanpath_zone_certified", zone="embassy-lan") == 0
        old_sha = re.search(r'cleanpath_policy_info\{sha256="(\w+)"', text).group(1)

        d.policy.write_text(LAB_POLICY.replace("require: clean-path", "require: clean-pth"))
        d.proc.send_signal(signal.SIGHUP)
        text = d.until(lambda t: value(t, "cleanpath_policy_reloads_total", result="failure"), "failed reload")
        assert value(text, "cleanpath_policy_info", sha256=old_sha) == 1
        assert value(text, "cleanpath_policy_reloads_total", result="success") == 0

        d.policy.write_text(LAB_POLICY.replace("trusted: [cisco]", "trusted: [cisco, nokia]"))
        d.proc.send_signal(signal.SIGHUP)
        text = d.until(lambda t: value(t, "cleanpath_policy_reloads_total", result="success"), "good reload")
        assert value(text, "cleanpath_policy_info", sha256=old_sha) is None
    finally:
        took, stderr = d.stop()
    assert took < 5, stderr
    assert d.proc.returncode == 0, stderr
    assert "reload failed" in stderr and "clean-pth" in stderr
    events = d.events_list()
    detected = [e for e in events if e["phase"] == "detected"]
    ended = [e for e in events if e["phase"] == "ended"]
    assert len(detected) == len(ended) == 5 and len(events) == 10
    assert {e["end_reason"] for e in ended} == {"shutdown"} and {e["end_reason"] for e in detected} == {None}
    assert {e["verdict"] for e in events} == {"VIOLATION"}
    assert sorted(e["sport"] for e in ended) == [40000 + i for i in range(5)]
    assert {e["community_id"] for e in detected} == {e["community_id"] for e in ended}
    # b.pcap was never complete (newest, not settled): a restart will read it; a.pcap it will not.
    state = json.load(open(os.path.join(tmp_path, "data", "watch",
                                        os.listdir(os.path.join(tmp_path, "data", "watch"))[0])))
    assert list(state["files"]) == ["a.pcap"]


def test_replay_daemon_metrics_pass_promtool_and_match_the_audit(tmp_path):
    # --demo: the demo capture replayed with the demo inventory and ASN database (and here the demo policy's text).
    d = Daemon(tmp_path, "--demo", "--speed", "0", policy_text=open(os.path.join(DEMO, "policy.yaml")).read())
    try:
        text = d.until(lambda t: value(t, "cleanpath_active_flows") == 0
                       and value(t, "cleanpath_packets_total", source="replay"), "replay done")
    finally:
        d.stop()
    audit = subprocess.run([sys.executable, "-m", "verifier", "audit", "--demo", "--json", str(tmp_path / "c.json"),
                            "-q"], capture_output=True)
    cert = json.loads((tmp_path / "c.json").read_text())
    assert audit.returncode == 1
    for zone in cert["zones"]:
        for verdict, n in zone["flows"].items():
            assert value(text, "cleanpath_flows_total", zone=zone["name"], verdict=verdict) == n
    assert value(text, "cleanpath_packets_total", source="replay") == cert["summary"]["packets"]
    assert value(text, "cleanpath_build_info") == 1
    assert value(text, "cleanpath_discovery_frames_total", protocol="lldp", result="malformed") == 0
    assert value(text, "cleanpath_discovered_devices", vendor="cisco", trust="trusted", source="inventory") == 1
    # Label values only from the policy, the catalogue and fixed enums: no address ever appears.
    assert not re.search(r'="[^"]*(\d+\.\d+\.\d+\.\d+|[0-9a-f]{2}:[0-9a-f]{2}:)', text)
    need_tool("promtool")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_metrics_over_tls(tmp_path):
    key, cert = self_signed(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(LAB_POLICY)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "d"), "run",
                             "--replay", os.path.join(DEMO, "demo.pcap"), "--policy", str(policy),
                             "--metrics-addr", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key)],
                            stderr=subprocess.PIPE, text=True)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        text = wait_for(lambda: _try(lambda: scrape(port, "https", context)), 20, what="https /metrics")
        assert "cleanpath_build_info" in text
        with pytest.raises(OSError):
            scrape(port)                               # plain HTTP is not served
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def test_run_startup_errors_are_one_line(tmp_path):
    base = [sys.executable, "-m", "verifier", "--data-dir", str(tmp_path), "run"]
    res = subprocess.run(base + ["--watch-dir", str(tmp_path / "missing")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "not a directory" in res.stderr
    res = subprocess.run(base + ["--replay", "x.pcap", "--watch-dir", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "exactly one source" in res.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = subprocess.run(base + ["--replay", os.path.join(DEMO, "demo.pcap"), "--metrics-addr",
                                     f"127.0.0.1:{busy.getsockname()[1]}"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("error: cannot serve metrics")


# --- scheduled audits ------------------------------------------------------------

def audit_cmd(tmp_path, *extra, captures=None):
    return subprocess.run([sys.executable, "-m", "verifier", "audit", "-q",
                           *(captures or []), *(["--demo"] if captures is None else []), *extra],
                          capture_output=True, text=True)


def test_audit_textfile_is_atomic_and_keeps_the_last_success(tmp_path):
    res = audit_cmd(tmp_path, "--textfile", str(tmp_path))
    assert res.returncode == 1, res.stderr
    text = (tmp_path / "cleanpath_audit.prom").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["cleanpath_audit.prom"]      # no temp file left behind
    assert value(text, "cleanpath_audit_zone_status", zone="consular-wifi", status="NOT_CERTIFIED") == 1
    assert value(text, "cleanpath_audit_zone_status", zone="embassy-lan", status="CERTIFIED") == 1
    assert value(text, "cleanpath_audit_exit_code") == 1
    success = value(text, "cleanpath_audit_last_success_timestamp_seconds")
    assert abs(success - time.time()) < 60
    # A failed audit (unreadable capture) reports itself but keeps the previous success time.
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    res = audit_cmd(tmp_path, "--textfile", str(tmp_path), captures=[str(bad)])
    assert res.returncode == 2
    text = (tmp_path / "cleanpath_audit.prom").read_text()
    assert value(text, "cleanpath_audit_exit_code") == 2
    assert value(text, "cleanpath_audit_capture_errors") == 1
    assert value(text, "cleanpath_audit_last_success_timestamp_seconds") == success
    need_tool("promtool")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_audit_pushes_to_a_real_pushgateway(tmp_path):
    need_tool("prometheus-pushgateway")
    port = free_port()
    gw = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _try(lambda: scrape(port)), 20, what="pushgateway")
        res = audit_cmd(tmp_path, "--pushgateway", f"http://127.0.0.1:{port}", "--job", "nightly")
        assert res.returncode == 1, res.stderr
        text = scrape(port)
        assert value(text, "cleanpath_audit_violations", job="nightly") == 7
        success = value(text, "cleanpath_audit_last_success_timestamp_seconds", job="nightly")
        bad = tmp_path / "bad.pcap"
        bad.write_bytes(b"junk")
        res = audit_cmd(tmp_path, "--pushgateway", f"http://127.0.0.1:{port}", "--job", "nightly",
                        captures=[str(bad)])
        assert res.returncode == 2
        text = scrape(port)
        assert value(text, "cleanpath_audit_exit_code", job="nightly") == 2
        assert value(text, "cleanpath_audit_last_success_timestamp_seconds", job="nightly") == success
    finally:
        gw.terminate()
        gw.wait()
    res = audit_cmd(tmp_path, "--pushgateway", f"http://127.0.0.1:{port}")
    assert res.returncode == 2 and "cannot publish audit metrics" in res.stderr


def test_stop_judges_open_flows_into_the_metrics(tmp_path, catalogue):
    """In-process: what SIGTERM does (stop -> every open flow through policy and sinks)."""
    import threading
    from prometheus_client import generate_latest
    from verifier.cli import App
    from verifier.daemon.run import Daemon as RunDaemon, Options
    cap = tmp_path / "spool"
    cap.mkdir()
    write_capture(str(cap / "a.pcap"), [(40000 + i, 443) for i in range(3)])
    write_capture(str(cap / "b.pcap"), [(40100, 443)], start=1_700_000_001, gateway=CISCO)
    policy = tmp_path / "policy.yaml"
    policy.write_text(LAB_POLICY)
    options = Options(watch_dir=str(cap), settle=0.0, policies=[str(policy)], idle_timeout=3600,
                      metrics_addr=f"127.0.0.1:{free_port()}", state_file=str(tmp_path / "state.json"))
    daemon = RunDaemon(App(str(tmp_path / "data")), options, log=lambda text: None)
    daemon.start()
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        wait_for(lambda: daemon.pipeline.stats.packets == 8, 20, what="both files read")
        text = generate_latest(daemon.registry).decode()
        assert value(text, "cleanpath_active_flows") == 4
        assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="VIOLATION") == 0
        daemon.stop()
        thread.join(5)
        assert not thread.is_alive()
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
        daemon.close_server()
    assert value(text, "cleanpath_active_flows") == 0
    assert value(text, "cleanpath_flow_evictions_total", reason="shutdown") == 4
    assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="VIOLATION") == 3
    assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="CLEAN") == 1
    assert value(text, "cleanpath_violations_total", zone="embassy-lan", rule="embassy-clean-path", vendor="huawei",
                 kind="l2-neighbor") == 3


def test_a_reload_judges_with_the_new_policy_at_once(tmp_path, catalogue):
    """``Pipeline.use`` (the daemon's reload) replaces everything that
    remembers the old policy's answers: the next flows of the same path shape
    get the new verdict."""
    from verifier.capture import open_capture
    from verifier.cli import App
    from verifier.pipeline import Pipeline
    verdicts = []

    class Sink:
        def flow(self, flow, judgements):
            verdicts.extend(j.verdict for j in judgements)

    app = App(str(tmp_path / "data"))
    attributor = app.attributor(None, [])
    strict = load_policy_text(LAB_POLICY, catalogue)
    trusting = load_policy_text(LAB_POLICY.replace("trusted: [cisco]", "trusted: [cisco, huawei]")
                                .replace("untrusted: [huawei, zte]", "untrusted: [zte]")
                                .replace("deny_vendors: [huawei, zte]", "deny_vendors: [zte]"), catalogue)
    pipe = Pipeline(strict, attributor, [Sink()])
    for name, policy, port in (("a.pcap", None, 40000), ("b.pcap", trusting, 41000)):
        if policy is not None:
            pipe.use(policy, attributor)
        write_capture(str(tmp_path / name), [(port, 443)])
        pipe.ingest(open_capture(str(tmp_path / name)))
        pipe.finish()
    assert verdicts == ["VIOLATION", "CLEAN"]
