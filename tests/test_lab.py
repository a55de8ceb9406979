"""Live capture in a network-namespace lab, scraped by a real Prometheus.

Started here: the lab (tests/lab.py), ``verifier run`` on the client's bridge
port with the socket engine and a second one with the tshark engine, a
Pushgateway holding one scheduled audit's result, and Prometheus (Debian
package) scraping the daemon and the gateway with deploy/prometheus/rules.yml
loaded. Every PromQL expression of the alert rules and of the Grafana
dashboard is then executed against it.

Skips (with the reason) when not root, or when prometheus,
prometheus-pushgateway or dumpcap are missing; scripts/test.sh installs them.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import ROOT, need_tool
from lab import CLI_MAC, GW1_MAC, LAB_POLICY, Lab, require_root_netns, wait_for
from test_daemon import free_port, scrape

DEPLOY = os.path.join(ROOT, "deploy")
DEMO = os.path.join(ROOT, "verifier", "demo")
FLOW_EXPORT = "cleanpath_flow_export_"
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*", "${datasource}": "x"}


class Prometheus:
    def __init__(self, tmp, targets, pushgateway):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [os.path.join(DEPLOY, "prometheus", "rules.yml")],
            "scrape_configs": [
                {"job_name": "cleanpath", "static_configs": [{"targets": targets}]},
                {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [pushgateway]}]},
            ],
        }
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as fh:
            yaml.safe_dump(config, fh)
        self.proc = subprocess.Popen(["prometheus", f"--config.file={path}", f"--storage.tsdb.path={tmp}/tsdb",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, 30, what="Prometheus ready")

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def scalar(self, expr):
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_daemon(tmp, name, capture_if, port, *extra):
    events = os.path.join(tmp, f"{name}-events.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "-m", "verifier", "--data-dir", os.path.join(tmp, "data"), "run", "-i", capture_if, *extra,
         "--policy", os.path.join(tmp, "policy.yaml"), "--inventory", os.path.join(tmp, "inventory.yaml"),
         "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"), "--metrics-addr", f"127.0.0.1:{port}",
         "--idle-timeout", "2", "--events", events, "--events-all"],
        stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _scrapes(port, proc), 30, what=f"{name} daemon up")
    return proc, events


def _scrapes(port, proc):
    if proc.poll() is not None:
        raise AssertionError(proc.stderr.read())
    try:
        return scrape(port)
    except OSError:
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_root_netns()
    for tool in ("prometheus", "prometheus-pushgateway", "dumpcap"):
        need_tool(tool)
    tmp = str(tmp_path_factory.mktemp("site"))
    procs = []
    with Lab() as lab:
        with open(os.path.join(tmp, "policy.yaml"), "w") as fh:
            fh.write(LAB_POLICY)
        with open(os.path.join(tmp, "inventory.yaml"), "w") as fh:
            yaml.safe_dump({"devices": [{"name": "lab-switch", "vendor": "cisco", "role": "switch",
                                         "interfaces": [lab.capture_if]}]}, fh)
        try:
            port = free_port()
            sock, sock_events = start_daemon(tmp, "socket", lab.capture_if, port)
            procs.append(sock)
            tshark, tshark_events = start_daemon(tmp, "tshark", lab.capture_if, free_port(), "--engine", "tshark")
            procs.append(tshark)
            gw_port = free_port()
            procs.append(subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gw_port}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: _scrapes(gw_port, procs[-1]), 20, what="pushgateway up")
            audit = subprocess.run([sys.executable, "-m", "verifier", "audit", "--demo", "-q",
                                    "--pushgateway", f"http://127.0.0.1:{gw_port}"], capture_output=True, text=True)
            assert audit.returncode == 1, audit.stderr
            prom = Prometheus(tmp, [f"127.0.0.1:{port}"], f"127.0.0.1:{gw_port}")
            procs.append(prom.proc)
            wait_for(lambda: prom.query('cleanpath_flows_total{job="cleanpath"}'), 30,
                     what="Prometheus's first scrape of the daemon (the counters at 0)")
            sent = lab.send()
            wait_for(lambda: prom.scalar('sum(cleanpath_flows_total{zone="embassy-lan"})') == 8, 60,
                     what="Prometheus to see the 8 lab flows judged")
            wait_for(lambda: prom.query('ALERTS{alertname="CleanPathViolation",alertstate="firing"}'), 30,
                     what="the violation alert to fire")
            yield {"lab": lab, "prom": prom, "port": port, "sent": sent, "socket_events": sock_events,
                   "tshark_events": tshark_events, "daemons": (sock, tshark)}
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=10)


def test_prometheus_sees_the_untrusted_gateway(site):
    prom = site["prom"]
    assert prom.scalar('cleanpath_flows_total{zone="embassy-lan",verdict="VIOLATION"}') == 4
    assert prom.scalar('cleanpath_flows_total{zone="embassy-lan",verdict="CLEAN"}') == 4
    assert prom.scalar('cleanpath_flows_total{zone="embassy-lan",verdict="UNVERIFIED"}') == 0
    series = prom.query('cleanpath_violations_total{zone="embassy-lan"} > 0')
    got = {(s["metric"]["rule"], s["metric"]["vendor"], s["metric"]["kind"]): float(s["value"][1]) for s in series}
    assert got == {("embassy-clean-path", "huawei", "l2-neighbor"): 4, ("no-untrusted-vendors", "huawei", "l2-neighbor"): 4}
    assert prom.scalar('cleanpath_zone_certified{zone="embassy-lan"}') == 0
    assert prom.scalar('cleanpath_zone_window_flows{zone="embassy-lan"}') == 8
    assert prom.scalar('cleanpath_last_violation_timestamp_seconds{zone="embassy-lan"}') > 0
    assert prom.scalar("cleanpath_capture_dropped_packets_total") == 0
    received = prom.scalar("cleanpath_capture_received_packets_total")
    assert received >= prom.scalar('cleanpath_packets_total{source="interface"}') >= 8 * 2
    assert prom.scalar('cleanpath_discovered_devices{vendor="cisco",trust="trusted",source="inventory"}') == 1
    # Coverage as Prometheus shows it equals the share of fully attributed paths in the events.
    events = [json.loads(line) for line in open(site["socket_events"])]
    zone_events = [e for e in events if e["zone"] == "embassy-lan" and e["phase"] == "ended"]
    attributed = sum(all(el["trust"] not in ("unknown", "unattributable") for el in e["path"]) for e in zone_events)
    assert prom.scalar('cleanpath_coverage_ratio{zone="embassy-lan"}') == pytest.approx(attributed / len(zone_events))
    alerts = prom.query('ALERTS{alertname="CleanPathViolation",alertstate="firing"}')
    assert {a["metric"]["vendor"] for a in alerts} == {"huawei"}


def test_events_name_the_gateway_and_both_engines_agree(site):
    def flows(path, phase):
        out = set()
        for line in open(path):
            e = json.loads(line)
            if e["proto"] not in ("tcp", "udp") or e["phase"] != phase:
                continue            # the kernel's own IGMP/MLD reports, sent whenever it likes
            if phase == "ended":
                out.add((e["proto"], e["src"], e["sport"], e["dst"], e["dport"], e["packets"], e["bytes"],
                         e["verdict"], e["community_id"]))
            else:                   # counters at detection depend on how each engine batches frames
                out.add((e["verdict"], e["community_id"]))
        return out
    sock, tshark = flows(site["socket_events"], "ended"), flows(site["tshark_events"], "ended")
    assert len(sock) == 8
    assert sock == tshark
    detected = flows(site["socket_events"], "detected")
    assert detected == flows(site["tshark_events"], "detected")
    assert detected == {(v, cid) for _p, _s, _sp, _d, _dp, _n, _b, v, cid in sock if v == "VIOLATION"} != set()
    for line in open(site["socket_events"]):
        e = json.loads(line)
        if e["proto"] not in ("tcp", "udp") or e["phase"] != "ended":
            continue
        neighbour = next(el for el in e["path"] if el["kind"] == "l2-neighbor")
        if e["dst"] in ("203.0.113.1", "2001:db8:203::1"):
            assert e["verdict"] == "VIOLATION" and neighbour["subject"] == GW1_MAC and neighbour["vendor"] == "huawei"
        else:
            assert e["verdict"] == "CLEAN" and neighbour["vendor"] == "cisco"
        assert e["macs"]["a"] == [CLI_MAC] or e["macs"]["b"] == [CLI_MAC]
        assert any(el["kind"] == "segment-device" and el["subject"] == "lab-switch" for el in e["path"])


def split_operands(expr):
    """The operands of top-level comparison and set operators of a PromQL expression."""
    parts, depth, start, i = [], 0, 0, 0
    ops = re.compile(r"\s*(==|!=|>=|<=|>|<|\band\b|\bor\b|\bunless\b)\s*")
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == '"':
            i = expr.index('"', i + 1)
        elif depth == 0:
            m = ops.match(expr, i)
            if m and (m.group(1).isalpha() or expr[i:i + 1].strip()):
                parts.append(expr[start:i])
                i = start = m.end()
                continue
        i += 1
    parts.append(expr[start:])
    cleaned = []
    for part in parts:
        part = re.sub(r"^\s*(bool\s*)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?",
                      "", part).strip()
        if part and not re.fullmatch(r"[\d\s.*+/()-]+", part):
            cleaned.append(part)
    return cleaned


def test_split_operands():
    assert split_operands("cleanpath_zone_certified == 0 and on (instance, zone) cleanpath_zone_window_flows > 0") == \
        ["cleanpath_zone_certified", "cleanpath_zone_window_flows"]
    assert split_operands('time() - x{a="b>c"} > 120 * 86400') == ['time() - x{a="b>c"}']
    assert split_operands("max by (zone) (y > 0)") == ["max by (zone) (y > 0)"]


def alert_expressions():
    doc = yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "rules.yml")))
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def dashboard_expressions():
    doc = json.load(open(os.path.join(DEPLOY, "grafana", "dashboards", "cleanpath.json")))
    out = []
    for panel in doc["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, sub in GRAFANA_VARS.items():
                expr = expr.replace(var, sub)
            out.append((f"{panel['title']} [{target['refId']}]", expr))
    return out


def test_every_alert_rule_expression_runs_and_its_operands_return_data(site):
    prom = site["prom"]
    rules = alert_expressions()
    assert len(rules) >= 8
    for name, expr in rules:
        prom.query(expr)                               # executes without error
        if FLOW_EXPORT in expr:
            continue        # a flow-export daemon's: tests/test_flow_export.py runs them against one
        for operand in split_operands(expr):
            assert prom.query(operand), f"alert {name}: '{operand}' returns no data"
    loaded = prom.api("rules")["groups"][0]["rules"]
    assert {r["name"] for r in loaded} == {name for name, _ in rules}
    assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded]


def test_every_dashboard_query_returns_data(site):
    prom = site["prom"]
    exprs = dashboard_expressions()
    assert len(exprs) >= 15
    for name, expr in exprs:
        if FLOW_EXPORT not in expr:                   # tests/test_flow_export.py runs those
            assert prom.query(expr), f"dashboard panel {name}: '{expr}' returns no data"
    instances = prom.api("label/instance/values", **{"match[]": "cleanpath_build_info"})
    assert instances == [f"127.0.0.1:{site['port']}"]


LONG_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], 8081)); s.listen(4)
print("ready", flush=True)
c, _ = s.accept()
while True:
    data = c.recv(4096)
    if not data:
        break
    c.sendall(data)
"""
LONG_CLIENT = r"""
import socket, sys, time
t = socket.create_connection((sys.argv[1], 8081), timeout=5)
print("connected", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    t.sendall(b"busy\n"); t.recv(100); time.sleep(0.1)
print("done", flush=True)
sys.stdin.readline()                      # keep the connection open until told
"""


class Connection:
    """One TCP connection from the client through ``gw`` (gw1: the Huawei
    gateway, gw2: the Cisco one), kept busy for ``seconds``, then held open
    until ``close``."""

    def __init__(self, lab, gw, seconds):
        from lab import DESTINATIONS
        dest = DESTINATIONS[gw][0]
        self.client = None
        self.server = subprocess.Popen(["ip", "netns", "exec", lab.ns[gw], sys.executable, "-c", LONG_SERVER, dest],
                                       stdout=subprocess.PIPE, text=True)
        assert self.server.stdout.readline().strip() == "ready"
        self.client = subprocess.Popen(["ip", "netns", "exec", lab.ns["cli"], sys.executable, "-c", LONG_CLIENT,
                                        dest, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def said(self):
        return self.client.stdout.readline().strip()

    def close(self):
        if self.client is not None and self.client.poll() is None:
            self.client.stdin.write("\n")
            self.client.stdin.flush()
            self.client.wait(timeout=10)
        for p in (self.client, self.server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


class DefaultDaemon:
    """``verifier run`` on the lab's capture port with its default timeouts
    (idle 60 s, active 600 s), an events file, and ``policy_text``."""

    def __init__(self, tmp_path, lab, policy_text=LAB_POLICY):
        self.policy = tmp_path / "policy.yaml"
        self.policy.write_text(policy_text)
        self.port = free_port()
        self.events = tmp_path / "events.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "data"), "run", "-i", lab.capture_if,
             "--policy", str(self.policy), "--metrics-addr", f"127.0.0.1:{self.port}", "--events", str(self.events)],
            stderr=subprocess.PIPE, text=True)
        wait_for(lambda: _scrapes(self.port, self.proc), 30, what="daemon up")

    def scrape(self):
        return scrape(self.port)

    def scraped(self, tmp_path):
        """A real Prometheus scraping this daemon every second, once it has scraped it."""
        prom = Prometheus(str(tmp_path), [f"127.0.0.1:{self.port}"], "127.0.0.1:1")
        wait_for(lambda: prom.query("cleanpath_violations_total"), 30, what="Prometheus's first scrape")
        return prom

    def wait(self, name, expected, timeout=10, **labels):
        """Wait (polling every 0.1 s) until ``name{labels}`` equals ``expected``;
        returns the seconds it took and the exposition text."""
        import time
        from test_daemon import value
        started = time.monotonic()
        text = wait_for(lambda: (lambda t: t if value(t, name, **labels) == expected else None)(self.scrape()),
                        timeout, every=0.1, what=f"{name}{labels} == {expected}")
        return time.monotonic() - started, text

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def ended_events(self, dport):
        lines = [json.loads(line) for line in self.events.read_text().splitlines()]
        return [e for e in lines if e["proto"] == "tcp" and e["dport"] == dport]


VIOLATING = dict(zone="embassy-lan", rule="embassy-clean-path", vendor="huawei", kind="l2-neighbor")
SEND_FRAME = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0)); s.send(bytes.fromhex(sys.argv[1]))
"""


class LiveSite:
    """A lab, a daemon with default timeouts on it and, when asked, a real
    Prometheus scraping it; connections made through ``connect`` are closed
    with the rest."""

    def __init__(self, lab, daemon, prom):
        self.lab, self.daemon, self.prom = lab, daemon, prom
        self.connections = []

    def connect(self, gw, seconds):
        conn = Connection(self.lab, gw, seconds)
        self.connections.append(conn)
        return conn

    def send_frame(self, frame):
        """One raw frame out of the client's interface (so onto the capture port)."""
        subprocess.run(["ip", "netns", "exec", self.lab.ns["cli"], sys.executable, "-c", SEND_FRAME, frame.hex()],
                       check=True)

    def alerts(self, what):
        return wait_for(lambda: self.prom.query('ALERTS{alertname="CleanPathViolation",alertstate="firing"}'), 30,
                        what=what)


@contextlib.contextmanager
def live_site(tmp_path, prometheus=False):
    require_root_netns()
    if prometheus:
        need_tool("prometheus")
    with Lab() as lab:
        daemon = DefaultDaemon(tmp_path, lab)
        site = None
        try:
            site = LiveSite(lab, daemon, daemon.scraped(tmp_path) if prometheus else None)
            yield site
        finally:
            for part in (site.connections if site else []) + ([site.prom] if site and site.prom else []):
                part.close()
            daemon.close()


def test_a_long_lived_connection_is_counted_while_open_with_default_timeouts(tmp_path):
    """Issue 17: with the daemon's default timeouts, one TCP connection
    through the Huawei gateway, kept busy, is counted in /metrics within 2 s
    of its first packet, exactly once, and not again when it ends (at
    shutdown); events say detected, then ended. A real Prometheus scraping
    the daemon fires CleanPathViolation while the connection is still open."""
    from test_daemon import value
    with live_site(tmp_path, prometheus=True) as site:
        daemon = site.daemon
        assert value(daemon.scrape(), "cleanpath_violations_total", **VIOLATING) == 0
        conn = site.connect("gw1", 4)                   # timed from before its first packet
        took, text = daemon.wait("cleanpath_violations_total", 1, **VIOLATING)
        print(f"counted {took:.2f} s after the client started")
        assert took <= 2.0, took
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="VIOLATION") == 1
        assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="VIOLATION") == 0
        assert value(text, "cleanpath_zone_certified", zone="embassy-lan") == 0
        assert conn.said() == "connected"
        alert = site.alerts("the violation alert to fire while the connection is open")
        assert {(a["metric"]["rule"], a["metric"]["vendor"]) for a in alert} >= {("embassy-clean-path", "huawei")}
        assert site.prom.scalar('sum(cleanpath_open_flows{zone="embassy-lan",verdict="VIOLATION"})') == 1
        assert conn.client.poll() is None                        # still open
        assert conn.said() == "done"                             # 4 s busy, still counted once
        assert value(daemon.scrape(), "cleanpath_violations_total", **VIOLATING) == 1
        conn.close()
    mine = daemon.ended_events(8081)
    assert [e["phase"] for e in mine] == ["detected", "ended"]
    assert mine[0]["community_id"] == mine[1]["community_id"] and mine[1]["end_reason"] == "shutdown"


def test_an_lldp_announced_switch_turns_an_open_clean_connection_violating(tmp_path):
    """A clean connection (through the Cisco gateway) is open; a switch on
    the client's segment announces itself by LLDP (a frame made by scapy) as
    a Huawei device: the open connection turns VIOLATION within 2 s, counted
    once, under the segment-device kind."""
    from test_daemon import value
    from test_live import lldp_frame
    with live_site(tmp_path) as site:
        daemon = site.daemon
        conn = site.connect("gw2", 1)
        daemon.wait("cleanpath_open_flows", 1, zone="embassy-lan", verdict="CLEAN")
        assert conn.said() == "connected"
        site.send_frame(lldp_frame("00:e0:fc:00:00:99", "Huawei Versatile Routing Platform Software"))
        labels = dict(zone="embassy-lan", rule="no-untrusted-vendors", vendor="huawei", kind="segment-device")
        took, text = daemon.wait("cleanpath_violations_total", 1, **labels)
        print(f"turned {took:.2f} s after the LLDP frame")
        assert took <= 2.0, took
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="VIOLATION") == 1
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="CLEAN") == 0
        assert value(text, "cleanpath_discovered_devices", vendor="huawei", trust="untrusted", source="lldp") == 1
        conn.close()
    mine = daemon.ended_events(8081)
    assert [e["phase"] for e in mine] == ["detected", "ended"]
    assert any(el["kind"] == "segment-device" and el["vendor"] == "huawei" for el in mine[0]["path"])


def test_a_sighup_that_distrusts_a_vendor_rejudges_open_connections(tmp_path):
    """A clean connection through the Cisco gateway is open; the policy file
    is rewritten to distrust Cisco and the daemon gets SIGHUP: the open
    connection is judged again by the new policy and counted at once. The
    counter of that (rule, vendor) is born at 1 (no series existed for a
    trusted vendor): Prometheus's alert fires all the same."""
    import signal
    from test_daemon import value
    with live_site(tmp_path, prometheus=True) as site:
        daemon = site.daemon
        conn = site.connect("gw2", 1)
        daemon.wait("cleanpath_open_flows", 1, zone="embassy-lan", verdict="CLEAN")
        assert conn.said() == "connected"
        daemon.policy.write_text(LAB_POLICY.replace("trusted: [cisco]", "trusted: []")
                                 .replace("untrusted: [huawei, zte]", "untrusted: [huawei, zte, cisco]"))
        daemon.proc.send_signal(signal.SIGHUP)
        labels = dict(zone="embassy-lan", rule="embassy-clean-path", vendor="cisco", kind="l2-neighbor")
        took, text = daemon.wait("cleanpath_violations_total", 1, **labels)
        print(f"re-judged {took:.2f} s after SIGHUP")
        assert value(text, "cleanpath_policy_reloads_total", result="success") == 1
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="VIOLATION") == 1
        assert value(text, "cleanpath_open_flows", zone="embassy-lan", verdict="CLEAN") == 0
        assert value(text, "cleanpath_flows_total", zone="embassy-lan", verdict="VIOLATION") == 0
        alert = site.alerts("the violation alert to fire for the newly distrusted vendor")
        assert {(a["metric"]["rule"], a["metric"]["vendor"]) for a in alert} == {("embassy-clean-path", "cisco")}
