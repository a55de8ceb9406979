"""Live verdicts (issue 17, the pipeline and sinks part): open flows are
judged when first seen and when their path or the policy changes; metrics
count a violation once, at detection; events say "detected" then "ended".
Clocks are injected: nothing here sleeps."""

import io
import json

import numpy as np
import pytest

from verifier.capture.chunk import from_frames
from verifier.craft import ETH_IPV4, ether, icmp, ip, ipv4, tcp
from verifier.model import VIOLATION
from verifier.pipeline import Pipeline
from verifier.sinks.events import EventSink
from verifier.sinks.metrics import MetricsSink

from lab import LAB_POLICY
from test_tunnels import GNB, GNB_MAC, POLICY_HEAD, UPF, UPF_MAC

HUAWEI, CISCO, CLIENT = "00:e0:fc:00:00:01", "00:1b:54:00:00:02", "02:00:00:00:00:10"
LOCAL, REMOTE = "198.51.100.10", "203.0.113.1"


class Source:
    """What Pipeline.feed needs of a capture source: its interfaces."""

    class Interface:
        linktype, name = 1, None

    interfaces = [Interface()]


def packets(gateway, sport, n, start=0.0, proto=6):
    out = []
    for k in range(n):
        body = tcp(sport, 443) if proto == 6 else icmp(8, 0)
        back = tcp(443, sport) if proto == 6 else icmp(0, 0)
        out.append((start + k, 0, 60, ether(gateway, CLIENT, ETH_IPV4, ipv4(LOCAL, REMOTE, proto, body))))
        out.append((start + k + 0.5, 0, 60, ether(CLIENT, gateway, ETH_IPV4, ipv4(REMOTE, LOCAL, proto, back))))
    return out


def feed(pipe, frames):
    pipe.feed(Source, from_frames(frames))


@pytest.fixture
def live(engine, tmp_path, catalogue):
    """A pipeline wired as the daemon wires it (metrics and events as live
    sinks), on each engine (conftest.engine)."""
    return daemon_like(tmp_path, catalogue, LAB_POLICY)


def daemon_like(tmp_path, catalogue, policy_text, inventory_text=None):
    """Pipeline, sinks and producers (segment discovery, control plane) as
    the daemon wires them, on an injected clock."""
    from verifier.attribution.discovery import SegmentDiscovery
    from verifier.attribution.mobile import ControlPlane
    from verifier.cli import App
    from test_daemon import load_policy_text
    app = App(str(tmp_path / "data"))
    policy = load_policy_text(policy_text, catalogue)
    inventory = None
    if inventory_text is not None:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(inventory_text)
    attributor = app.attributor(str(inventory) if inventory else None, [])
    now = [1000.0]
    metrics = MetricsSink(policy, catalogue, clock=lambda: now[0])
    out = io.StringIO()
    events = EventSink("-", clock=lambda: now[0])
    events.fh = _Bytes(out)
    pipe = Pipeline(policy, attributor, [metrics, events], idle_timeout=60, active_timeout=600,
                    discovery=SegmentDiscovery(attributor, catalogue), control_plane=ControlPlane())
    pipe.go_live([metrics, events])
    return pipe, metrics, out, app, catalogue, now


class _Bytes:
    def __init__(self, text):
        self.text = text

    def write(self, data):
        self.text.write(data.decode())

    def flush(self):
        pass


def lines(out):
    return [json.loads(line) for line in out.getvalue().splitlines()]


def violations(metrics, vendor="huawei"):
    return metrics.violations[("embassy-lan", "embassy-clean-path", vendor, "l2-neighbor")]


def test_a_violating_flow_is_counted_at_first_sight_once(live):
    pipe, metrics, out, *_ = live
    feed(pipe, packets(HUAWEI, 40000, 2))
    assert violations(metrics) == 1
    assert metrics.open_flows[("embassy-lan", VIOLATION)] == 1
    assert metrics.certified("embassy-lan", metrics.window()["embassy-lan"]) == 0
    assert metrics.flows[("embassy-lan", VIOLATION)] == 0            # flows are counted when they end
    feed(pipe, packets(HUAWEI, 40000, 3, start=10.0))                 # the same flow goes on
    assert violations(metrics) == 1
    pipe.finish()
    assert violations(metrics) == 1 and metrics.flows[("embassy-lan", VIOLATION)] == 1
    assert metrics.open_flows[("embassy-lan", VIOLATION)] == 0
    events = lines(out)
    assert [(e["phase"], e["end_reason"]) for e in events] == [("detected", None), ("ended", "shutdown")]
    assert events[0]["community_id"] == events[1]["community_id"] and events[1]["packets"] == 10


def test_known_directions_are_not_judged_again(live, monkeypatch):
    pipe, *_ = live
    calls = []
    real = pipe.judge_open
    monkeypatch.setattr(pipe, "judge_open", lambda flow: calls.append(flow) or real(flow))
    feed(pipe, packets(CISCO, 40001, 1))               # both directions are new: one judgement of the flow
    feed(pipe, packets(CISCO, 40001, 5, start=5.0))    # only known directions: none
    assert len(calls) == 1


def test_a_reload_rejudges_open_flows_and_counts_the_turn_once(live):
    pipe, metrics, out, app, catalogue, now = live
    from test_daemon import load_policy_text
    trusting = load_policy_text(LAB_POLICY.replace("trusted: [cisco]", "trusted: [cisco, huawei]")
                                .replace("untrusted: [huawei, zte]", "untrusted: [zte]")
                                .replace("deny_vendors: [huawei, zte]", "deny_vendors: [zte]"), catalogue)
    strict = pipe.policy
    pipe.use(trusting, pipe.attributor)
    metrics.set_policy(trusting)
    feed(pipe, packets(HUAWEI, 40002, 1))
    assert metrics.open_flows[("embassy-lan", "CLEAN")] == 1 and lines(out) == []
    now[0] = 2000.0
    pipe.use(strict, pipe.attributor)
    metrics.set_policy(strict)
    pipe.rejudge_open()
    assert violations(metrics) == 1
    assert metrics.open_flows[("embassy-lan", "CLEAN")] == 0 and metrics.open_flows[("embassy-lan", VIOLATION)] == 1
    assert metrics.last_violation["embassy-lan"] == 2000.0
    pipe.rejudge_open()                                # nothing changed: nothing told
    pipe.finish()
    assert violations(metrics) == 1
    assert [e["phase"] for e in lines(out)] == ["detected", "ended"]


def test_slow_path_flows_are_judged_at_first_sight_too(live):
    pipe, metrics, out, *_ = live
    feed(pipe, packets(HUAWEI, 0, 1, proto=1))        # ICMP echo: the full decoder's path
    assert metrics.open_flows[("embassy-lan", VIOLATION)] == 1
    assert [e["phase"] for e in lines(out)] == ["detected"]


def test_a_flow_that_gains_an_untrusted_neighbour_turns_while_open(live):
    """A path change the flow's own frames bring: a second gateway MAC (a
    new direction key) makes the clean flow violating while it is open."""
    pipe, metrics, out, *_ = live
    feed(pipe, packets(CISCO, 40003, 1))
    assert metrics.open_flows[("embassy-lan", "CLEAN")] == 1
    feed(pipe, packets(HUAWEI, 40003, 1, start=2.0))
    assert metrics.open_flows[("embassy-lan", "CLEAN")] == 0 and metrics.open_flows[("embassy-lan", VIOLATION)] == 1
    assert violations(metrics) == 1
    pipe.finish()
    assert violations(metrics) == 1 and metrics.flows[("embassy-lan", VIOLATION)] == 1


def test_the_audit_judges_only_at_the_end(tmp_path, catalogue):
    from verifier.cli import App
    from test_daemon import load_policy_text
    app = App(str(tmp_path / "data"))
    metrics = MetricsSink(load_policy_text(LAB_POLICY, catalogue), catalogue, clock=lambda: 0.0)
    pipe = Pipeline(metrics.policy, app.attributor(None, []), [metrics])
    feed(pipe, packets(HUAWEI, 40004, 2))
    assert violations(metrics) == 0 and all(f.verdicts is None for f in pipe.table.flows.values())
    pipe.finish()
    assert violations(metrics) == 1
    assert not np.any([v for v in metrics.open_flows.values()])


# --- path changes from outside a flow's own frames ---------------------------------------------------


def spy(pipe, monkeypatch):
    """The flows ``judge_open`` is called for, in order."""
    calls = []
    real = pipe.judge_open
    monkeypatch.setattr(pipe, "judge_open", lambda flow: calls.append(flow) or real(flow))
    return calls


def lldp_frame(chassis, description, ttl=120, vlan=None):
    """An LLDP frame made by scapy (not by us) announcing a switch."""
    from scapy.contrib.lldp import (LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUPortID, LLDPDUSystemDescription,
                                    LLDPDUSystemName, LLDPDUTimeToLive)
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import raw
    head = Ether(dst="01:80:c2:00:00:0e", src=chassis)
    head = head / Dot1Q(vlan=vlan, type=0x88CC) if vlan is not None else Ether(dst=head.dst, src=chassis, type=0x88CC)
    return raw(head / LLDPDUChassisID(subtype=4, id=chassis) / LLDPDUPortID(subtype=5, id="Gi0/1") /
               LLDPDUTimeToLive(ttl=ttl) / LLDPDUSystemName(system_name="access-sw") /
               LLDPDUSystemDescription(description=description) / LLDPDUEndOfLLDPDU())


def test_an_lldp_announcement_turns_the_open_flows_of_its_segment_only(live, monkeypatch):
    """Three clean open flows, two untagged and one on VLAN 10; an untrusted
    switch announced by LLDP on the untagged segment turns those two, and
    judges no other flow. A periodic announcement that says nothing new judges
    nothing; one after the device had lapsed (past its TTL) judges again."""
    pipe, metrics, out, *_ = live
    tagged = [(ts, ifx, n, frame[:12] + b"\x81\x00\x00\x0a" + frame[12:])      # one 802.1Q tag, VLAN 10
              for ts, ifx, n, frame in packets(CISCO, 40012, 1)]
    feed(pipe, packets(CISCO, 40010, 1) + packets(CISCO, 40011, 1) + tagged)
    assert metrics.open_flows[("embassy-lan", "CLEAN")] == 3
    untagged = {f for f in pipe.table.flows.values() if f.vlan < 0}
    calls = spy(pipe, monkeypatch)
    feed(pipe, [(5.0, 0, 120, lldp_frame(HUAWEI, "Huawei Versatile Routing Platform Software", ttl=30))])
    assert set(calls) == untagged and len(calls) == 2
    assert metrics.open_flows[("embassy-lan", VIOLATION)] == 2 and metrics.open_flows[("embassy-lan", "CLEAN")] == 1
    assert metrics.violations[("embassy-lan", "no-untrusted-vendors", "huawei", "segment-device")] == 2
    assert [e["phase"] for e in lines(out)] == ["detected", "detected"]
    calls.clear()
    feed(pipe, [(20.0, 0, 120, lldp_frame(HUAWEI, "Huawei Versatile Routing Platform Software", ttl=30))])
    assert calls == []                                         # nothing new: no flow judged
    feed(pipe, packets(CISCO, 40010, 1, start=21.0) + packets(CISCO, 40011, 1, start=21.0))   # keeps them open
    feed(pipe, [(60.0, 0, 120, lldp_frame(HUAWEI, "Huawei Versatile Routing Platform Software", ttl=30))])
    assert set(calls) == untagged                              # lapsed at 50 s, announced again: judged again
    assert metrics.violations[("embassy-lan", "no-untrusted-vendors", "huawei", "segment-device")] == 2


N3_POLICY_HEAD = POLICY_HEAD + "rules:\n"        # the tunnel tests' vendors and UE zone
OTHER_GNB, OTHER_UPF, HUAWEI_GNB_MAC = "192.0.2.11", "192.0.2.21", "00:e0:fc:00:00:10"


def n3(gnb, ue, sport, start=0.0, upf=UPF):
    """An uplink and a downlink G-PDU of one UE flow through ``gnb`` and ``upf``."""
    from verifier.craft import gtpu, udp
    up = ipv4(gnb, upf, 17, udp(2152, 2152, gtpu(0x1001, ipv4(ue, REMOTE, 6, tcp(sport, 443)))))
    down = ipv4(upf, gnb, 17, udp(2152, 2152, gtpu(0x2002, ipv4(REMOTE, ue, 6, tcp(443, sport)))))
    return [(start, 0, 90, ether(UPF_MAC, GNB_MAC, ETH_IPV4, up)),
            (start + 0.1, 0, 90, ether(GNB_MAC, UPF_MAC, ETH_IPV4, down))]


def test_an_arp_binding_of_a_tunnel_endpoint_rejudges_the_flows_through_it_only(engine, tmp_path, catalogue, monkeypatch):
    """GTP-U flows through two gNBs, unattributed (UNVERIFIED). ARP binds one
    gNB's address to a Huawei MAC on the tap's segment: the flows through that
    gNB, and no others, are judged again and turn VIOLATION."""
    from verifier.craft import ETH_ARP, arp
    policy = N3_POLICY_HEAD + """\
  - {name: trusted-radio-path, zone: ue-pool, require: clean-path, kinds: [tunnel-endpoint],
     on_unattributed: unverified}
"""
    pipe, metrics, *_ = daemon_like(tmp_path, catalogue, policy)
    feed(pipe, n3(GNB, "198.51.100.7", 40000) + n3(GNB, "198.51.100.8", 40001) + n3(OTHER_GNB, "198.51.100.9", 40002))
    assert metrics.open_flows[("ue-pool", "UNVERIFIED")] == 3
    through = {f for f in pipe.table.flows.values() if f.a in (ip(f"198.51.100.{n}") for n in (7, 8))
               or f.b in (ip(f"198.51.100.{n}") for n in (7, 8))}
    assert len(through) == 2
    calls = spy(pipe, monkeypatch)
    feed(pipe, [(3.0, 0, 60, ether("ff:ff:ff:ff:ff:ff", HUAWEI_GNB_MAC, ETH_ARP,
                                   arp(1, HUAWEI_GNB_MAC, GNB, "00:00:00:00:00:00", UPF)))])
    assert set(calls) == through and len(calls) == 2
    assert metrics.open_flows[("ue-pool", VIOLATION)] == 2 and metrics.open_flows[("ue-pool", "UNVERIFIED")] == 1
    calls.clear()
    feed(pipe, [(4.0, 0, 60, ether("ff:ff:ff:ff:ff:ff", HUAWEI_GNB_MAC, ETH_ARP,
                                   arp(1, HUAWEI_GNB_MAC, GNB, "00:00:00:00:00:00", UPF)))])
    assert calls == []                                         # the same binding again: nothing new


def test_a_pfcp_role_rejudges_the_flows_through_that_endpoint_only(live, tmp_path, catalogue, monkeypatch):
    """The inventory names both gNBs (Ericsson, trusted) but no role, so a
    ``roles: [gNB]`` rule finds none: VIOLATION. PFCP seen on the tap teaches
    that one of them is a gNB (and its peer a UPF): the flows through that
    pair turn CLEAN; those through another gNB and UPF are not judged."""
    from verifier.craft import pfcp_session_establishment, udp
    policy = N3_POLICY_HEAD + """\
  - {name: trusted-radio-nodes, zone: ue-pool, require: clean-path, kinds: [tunnel-endpoint], roles: [gNB],
     on_unattributed: violation}
"""
    inventory = f"devices:\n  - {{name: radio-1, vendor: ericsson, ips: [{GNB}]}}\n" \
                f"  - {{name: radio-2, vendor: ericsson, ips: [{OTHER_GNB}]}}\n"
    pipe, metrics, *_ = daemon_like(tmp_path, catalogue, policy, inventory)
    feed(pipe, n3(GNB, "198.51.100.7", 40000) + n3(OTHER_GNB, "198.51.100.9", 40002, upf=OTHER_UPF))
    assert metrics.open_flows[("ue-pool", VIOLATION)] == 2
    (mine,) = [f for f in pipe.table.flows.values() if ip("198.51.100.7") in (f.a, f.b)]
    calls = spy(pipe, monkeypatch)
    pfcp = ether(UPF_MAC, GNB_MAC, ETH_IPV4, ipv4("192.0.2.30", UPF, 17, udp(8805, 8805, pfcp_session_establishment(
        7, UPF, 0x1001, GNB, 0x2002))))
    feed(pipe, [(3.0, 0, 120, pfcp)])
    assert mine in calls and all(ip("198.51.100.9") not in (f.a, f.b) for f in calls)
    assert metrics.open_flows[("ue-pool", "CLEAN")] == 1 and metrics.open_flows[("ue-pool", VIOLATION)] == 1


class Probes:
    """What the pipeline asks of the daemon's prober: zones, cached traces,
    and the destinations traced since it last looked."""

    def __init__(self, zones):
        import collections
        self.zones = frozenset(zones)
        self.traces = {}
        self.traced = collections.deque()

    def lookup(self, address):
        return self.traces.get(address)


def test_a_finished_trace_rejudges_the_flows_toward_its_destination_only(live, monkeypatch):
    """Two destinations; the trace toward one finishes (on the prober's
    thread): its flows, and no others, are judged again at the next chunk or
    idle tick, and their paths now hold the traced router hops."""
    from verifier.probe import Hop, Trace
    pipe, metrics, *_ = live
    pipe.probes = probes = Probes(["embassy-lan"])
    feed(pipe, packets(CISCO, 40020, 1) + packets(CISCO, 40021, 1))
    other = [(ts, ifx, n, frame.replace(ip(REMOTE), ip("203.0.113.2"))) for ts, ifx, n, frame in
             packets(CISCO, 40022, 1)]
    feed(pipe, other)
    toward = {f for f in pipe.table.flows.values() if ip(REMOTE) in (f.a, f.b)}
    assert len(toward) == 2 and len(pipe.table) == 3
    calls = spy(pipe, monkeypatch)
    probes.traces[REMOTE] = Trace(REMOTE, "udp", 33434, [Hop(1, "192.0.2.1", 0.001, False),
                                                         Hop(2, REMOTE, 0.002, True)], 0.0)
    probes.traced.append(REMOTE)
    pipe.tick(5.0)
    assert set(calls) == toward and len(calls) == 2
    (flow, *_rest) = toward
    (judgement,) = pipe.judgements(flow)
    assert [el.subject for el in judgement.path if el.kind == "router-hop"] == ["192.0.2.1"]


def test_an_icmp_error_quoting_a_flow_rejudges_that_flow_only(live, monkeypatch):
    """A router's time-exceeded quoting one open flow adds the router as a hop
    of that flow: it is judged again, the other open flow is not."""
    pipe, metrics, *_ = live
    feed(pipe, packets(CISCO, 40030, 1) + packets(CISCO, 40031, 1))
    (quoted,) = [f for f in pipe.table.flows.values() if 40030 in (f.ap, f.bp)]
    calls = spy(pipe, monkeypatch)
    original = ipv4(LOCAL, REMOTE, 6, tcp(40030, 443))
    error = ether(CLIENT, CISCO, ETH_IPV4, ipv4("192.0.2.1", LOCAL, 1, icmp(11, 0, original[:28], ident=0, seq=0)))
    feed(pipe, [(3.0, 0, 90, error)])
    assert calls == [quoted]
    assert quoted.hops == {ip("192.0.2.1")}


def test_ended_flows_leave_the_index(live):
    pipe, metrics, *_ = live
    feed(pipe, packets(CISCO, 40040, 1))
    assert pipe.dependents.flows                                # the segment key holds the open flow
    pipe.finish()
    assert not pipe.dependents.flows and all(f.depends is None for f in pipe.table.flows.values())


def test_the_index_follows_a_flow_whose_keys_change():
    """A flow that gains a tunnel endpoint follows its key from then on;
    keys it no longer has stop reaching it; an ended flow leaves every key."""
    from verifier.dependents import NODE, SEGMENT, Dependents

    class Open:
        depends = None

    index, a, b = Dependents(), Open(), Open()
    seg, gnb = (SEGMENT, 0, -1), (NODE, ip(GNB))
    index.follow(a, (seg,))
    index.follow(b, (seg,))
    assert a.depends is b.depends                             # one interned tuple for the segment's flows
    index.follow(a, (seg, gnb))
    index.changed_fact(gnb)
    index.changed_fact((NODE, ip(UPF)))                       # no open flow depends on it: nothing to do
    assert index.take() == [a] and index.take() == []
    index.changed_fact(seg)
    assert index.take() == [a, b]
    index.follow(a, (seg,))
    index.changed_fact(gnb)
    assert index.take() == []
    index.forget(a)
    index.forget(b)
    assert len(index) == 0 and a.depends is None
