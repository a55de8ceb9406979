#!/usr/bin/env python3
"""What a sweep of a full flow table costs: the incremental expiry
(flows.FlowTable.sweep with deadlines.py) beside a walk over every flow
(what sweep did before), on the same events in the same run.

    python bench/sweep.py [--flows 500000] [--minutes 20]

A table of ``--flows`` open flows (the daemon's default cap) opened over
the first idle timeout (300 s); then, every 5 s of capture time (the
pipeline's sweep interval), a tenth of the flows see a packet, the flows
that ended are replaced by new ones, and the table is swept. Both tables
see the same flows and the same packets; the benchmark checks they end the
same flows in the same order and prints each one's median and worst sweep
and the ratio of the medians.
"""

import argparse
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from verifier import runtime  # noqa: E402
from verifier.flows import ACTIVE, IDLE, FlowTable  # noqa: E402

STEP = 5.0


class WalkingTable(FlowTable):
    """The sweep as it was: every flow looked at, in table order."""

    def sweep(self, now):
        idle_before, active_before = now - self.idle, now - self.active
        self._publish()
        ended = [f for f in self.flows.values() if f.last < idle_before or f.first < active_before]
        for flow in ended:
            self._end(flow, IDLE if flow.last < idle_before else ACTIVE)


def run(table_class, flows, minutes, seed):
    ended, times = [], []
    table = table_class(lambda flow: ended.append(flow.key), idle_timeout=300.0, active_timeout=1800.0,
                        capacity=2 * flows)
    rnd = random.Random(seed)
    serial = 0

    def open_one(ts):
        nonlocal serial
        serial += 1
        table.renew(None, serial.to_bytes(8, "big") * 4, 0, ts)

    for k in range(flows):
        open_one(300.0 * k / flows)
    now = 300.0
    while now < 300.0 + 60 * minutes:
        now += STEP
        held = list(table.flows.values())
        for flow in rnd.sample(held, len(held) // 10):
            flow.last = now - rnd.random() * STEP
        for _ in range(flows - len(table.flows)):
            open_one(now - rnd.random() * STEP)
        start = time.perf_counter()
        table.sweep(now)
        times.append(time.perf_counter() - start)
    return ended, times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=500_000)
    ap.add_argument("--minutes", type=int, default=20, help="capture time swept, after the first 300 s")
    args = ap.parse_args()
    runtime.quiet_start()
    runtime.tune_for_throughput()              # the daemon's collector settings
    got, fast = run(FlowTable, args.flows, args.minutes, 1)
    want, slow = run(WalkingTable, args.flows, args.minutes, 1)
    if got != want:
        sys.exit("the two sweeps ended different flows")
    print(f"{args.flows:,} open flows, {len(fast)} sweeps {STEP:.0f} s apart, {len(got):,} flows ended by them")
    for name, times in (("incremental (deadlines.py)", fast), ("walk over every flow", slow)):
        print(f"  {name:28s} median {statistics.median(times) * 1000:7.2f} ms, worst {max(times) * 1000:7.2f} ms")
    print(f"  ratio of medians: the walk takes {statistics.median(slow) / statistics.median(fast):.1f}x as long")


if __name__ == "__main__":
    main()
