"""The flow table's incremental expiry (verifier/deadlines.py): a sweep ends
exactly the flows, in exactly the order, that a walk over the whole table
ended, and looks at only what could be due."""

import random
from array import array

import numpy as np

from verifier import decode as d
from verifier.craft import ETH_IPV4, ether, ipv4, tcp, udp
from verifier.deadlines import Deadlines
from verifier.export.records import FlowRecord
from verifier.flows import ACTIVE, IDLE, FlowTable
from verifier.model import Flow

C, S = "02:00:00:00:00:01", "00:00:0c:00:00:02"


def _frame(host, sport, proto):
    l4 = tcp(sport, 443) if proto == 6 else udp(sport, 53)
    return d.decode(ether(S, C, ETH_IPV4, ipv4(f"198.51.100.{host}", "192.0.2.80", proto, l4)), d.LT_ETHERNET)


def _walk(table, now):
    """What sweep did before deadlines.py: every flow looked at, in table order."""
    idle_before, active_before = now - table.idle, now - table.active
    ended = [f for f in table.flows.values() if f.last < idle_before or f.first < active_before]
    return [(f.key, IDLE if f.last < idle_before else ACTIVE) for f in ended]


def test_sweeps_end_what_a_walk_of_the_table_ended_in_the_same_order():
    """Random traffic over a few hundred keys, some returning after idling
    (renewed), some long-lived (active timeout), a small table (shed), and
    sweeps at random times: each sweep ends what the full walk would have."""
    rnd = random.Random(7)
    ended = []
    table = FlowTable(ended.append, idle_timeout=30, active_timeout=90, capacity=80)
    frames = [_frame(rnd.randrange(1, 200), rnd.randrange(1024, 1100), rnd.choice((6, 17))) for _ in range(300)]
    now, sweeps, judged = 0.0, 0, 0
    for step in range(6000):
        now += rnd.expovariate(20.0)
        frame = frames[min(int(rnd.paretovariate(0.6)), len(frames)) - 1]
        table.add(frame, now, 0, 60)
        if rnd.random() < 0.01:
            want = _walk(table, now)
            before = len(ended)
            table.sweep(now)
            got = [(f.key, f.end_reason) for f in ended[before:]]
            assert got == want
            sweeps += 1
            judged += len(want)
    assert sweeps > 30 and judged > 100 and all(table.evictions[r] for r in ("idle", "active", "capacity"))


def test_a_sweep_looks_only_at_what_could_be_due():
    """10,000 flows opened within a second: a sweep a minute later (idle
    timeout five minutes) looks at nothing; one past their bounds takes them once."""
    table = FlowTable(lambda flow: None, idle_timeout=300, active_timeout=1800)
    for k in range(10_000):
        table.renew(None, k.to_bytes(4, "big") * 9, 0, 1000.0 + k / 10_000)
    table.sweep(1060.0)
    taken, take = [], table.deadlines.take

    def counted(now):
        flows, numbers = take(now)
        taken.extend(flows)
        return flows, numbers

    table.deadlines.take = counted
    table.sweep(1120.0)
    assert taken == [] and len(table) == 10_000
    table.sweep(1302.0)
    assert len(taken) == 10_000 and len(table) == 0 and table.evictions["idle"] == 10_000


def test_flows_ended_another_way_stay_listed_only_within_a_bound():
    """A flood of new flows into a small table, with no sweep at all: every
    shed lists what is new and lists anew once entries of ended flows pass a
    quarter of the table (plus the slack), so they are not kept alive."""
    table = FlowTable(lambda flow: None, idle_timeout=300, capacity=1000)
    for k in range(40_000):
        table.renew(None, k.to_bytes(4, "big") * 9, 0, float(k) / 1000)
    assert table.evictions["capacity"] > 38_000
    held = table.created + [f for flows, _ in table.deadlines.buckets.values() for f in flows]
    assert len(held) <= len(table) + len(table) // 4 + 4096
    assert sum(f.end_reason is not None for f in held) <= len(table) // 4 + 4096


def test_an_exported_flow_whose_first_time_moves_back_still_ends_on_time():
    """A record that reports an earlier start moves the flow's active bound
    before the one it was listed at: the next sweep lists anew and ends it."""
    ended = []
    table = FlowTable(ended.append, idle_timeout=60, active_timeout=120)

    def record(first, last):
        r = FlowRecord("netflow-v9", "192.0.2.1", 0)
        r.src, r.dst, r.sport, r.dport, r.proto = bytes([198, 51, 100, 5]), bytes([192, 0, 2, 80]), 40000, 443, 6
        r.packets, r.octets, r.first, r.last = 1, 60, first, last
        return r

    table.add_record(record(1000.0, 1000.0), 0)
    table.sweep(1001.0)
    flow, _ = table.add_record(record(1040.0, 1050.0), 0)
    table.add_record(record(900.0, 1055.0), 0)            # the same flow began at 900: active until 1020
    assert flow.first == 900.0 and not ended
    table.sweep(1056.0)
    assert ended == [flow] and flow.end_reason == ACTIVE


def test_a_bound_without_a_timeout_is_never_listed():
    deadlines = Deadlines()
    flow = Flow(b"k", 0.0)
    deadlines.add(flow, float("inf"), 0)
    deadlines.add(flow, 10.0, 1)
    assert len(deadlines) == 1 and deadlines.take(1e12) == ([flow], array('q', [1])) and len(deadlines) == 0


def test_listing_new_flows_at_once_lists_them_as_one_by_one():
    rnd = random.Random(3)
    flows = [Flow(bytes([k % 256, k // 256]), 0.0) for k in range(500)]
    dues = [rnd.choice((float("inf"), rnd.uniform(0, 40))) for _ in flows]
    one, many = Deadlines(), Deadlines()
    one.add(flows[0], 5.0, 0)
    many.add_new(flows[:1], np.array([5.0]))
    for number, (flow, due) in enumerate(zip(flows, dues), 1):
        one.add(flow, due, number)
    many.add_new(flows, np.array(dues))
    assert len(one) == len(many) and many.opened == 501
    (a, an), (b, bn) = one.take(30.0), many.take(30.0)
    assert sorted(zip(an, map(id, a))) == sorted(zip(bn, map(id, b))) and len(one) == len(many) > 0
    assert sorted(one.heap) == sorted(many.heap)
