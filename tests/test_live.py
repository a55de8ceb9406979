"""Live verdicts (issue 17, the pipeline and sinks part): open flows are
judged when first seen and when their path or the policy changes; metrics
count a violation once, at detection; events say "detected" then "ended".
Clocks are injected: nothing here sleeps."""

import io
import json

import numpy as np
import pytest

from verifier import engine
from verifier.capture.chunk import from_frames
from verifier.craft import ETH_IPV4, ether, icmp, ipv4, tcp
from verifier.model import VIOLATION
from verifier.pipeline import Pipeline
from verifier.sinks.events import EventSink
from verifier.sinks.metrics import MetricsSink

from lab import LAB_POLICY

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


@pytest.fixture(params=["compiled", "numpy"])
def live(request, tmp_path, catalogue):
    """A pipeline wired as the daemon wires it: metrics and events as live sinks."""
    if request.param == "compiled" and engine.compiled is None:
        pytest.skip("the compiled module is not built")
    saved = engine.compiled
    if request.param == "numpy":
        engine.compiled = None
    from verifier.cli import App
    from test_daemon import load_policy_text
    app = App(str(tmp_path / "data"))
    policy = load_policy_text(LAB_POLICY, catalogue)
    now = [1000.0]
    metrics = MetricsSink(policy, catalogue, clock=lambda: now[0])
    out = io.StringIO()
    events = EventSink("-", clock=lambda: now[0])
    events.fh = _Bytes(out)
    pipe = Pipeline(policy, app.attributor(None, []), [metrics, events], idle_timeout=60, active_timeout=600)
    pipe.live_sinks = [metrics, events]
    yield pipe, metrics, out, app, catalogue, now
    engine.compiled = saved


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
