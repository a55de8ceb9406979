#!/usr/bin/env python3
"""Where an audit's memory goes: RSS at start, at the end of input (every
flow still open: the flow table's own cost) and after the final flush and
judging (what bench/run.py's peak RSS also counts: the attribution caches
and report the judging fills), in one process.

    python bench/memory.py [CAPTURE] [--engine numpy]

Default capture: bench/out/bench-10000000-200000.pcap (make it with
``python bench/run.py --packets 10000000 --flows 200000`` or gen_pcap.py).
Per open flow = (RSS at end of input - RSS at start) / open flows.
``--breakdown`` adds what the open flows' objects and arrays take, per flow,
by part (``sys.getsizeof`` of each distinct object, ``nbytes`` of each
array): where the next saving is. The parts do not add up to the RSS figure:
allocator slack and what reading the capture holds are not any flow's (and
its own bookkeeping raises the peak and the judging figure).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "verifier", "demo")


def rss_mib():
    """(current, peak) resident set of this process, MiB (Linux /proc)."""
    with open("/proc/self/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?", default=os.path.join(HERE, "out", "bench-10000000-200000.pcap"))
    parser.add_argument("--engine", choices=["compiled", "numpy"], default="compiled")
    parser.add_argument("--breakdown", action="store_true", help="bytes per open flow by part")
    args = parser.parse_args()
    if args.engine == "numpy":
        os.environ["CLEANPATH_ENGINE"] = "numpy"      # chosen before the package is imported
    sys.path.insert(0, ROOT)
    from verifier import runtime
    runtime.quiet_start()
    from verifier.capture import open_capture
    from verifier.cli import App, default_data_dir
    from verifier.pipeline import Pipeline
    from verifier.sinks.report import ReportSink
    app = App(default_data_dir())
    policy = app.policy([os.path.join(DEMO, "policy.yaml")])
    attributor = app.attributor(None, [os.path.join(DEMO, "demo-asn.mmdb")])
    pipe = Pipeline(policy, attributor, [ReportSink(policy, 1000)], 300.0, 1800.0, 500_000)
    runtime.tune_for_throughput(finite=True)
    start, _ = rss_mib()
    pipe.ingest(open_capture(args.capture))
    flows = len(pipe.table.flows)
    at_end, _ = rss_mib()
    parts = breakdown(pipe) if args.breakdown and flows else None
    ended = pipe.finish()
    after, peak = rss_mib()
    print(f"{os.path.basename(args.capture)} ({pipe.engine.name} engine): {flows:,} flows open at the end of input")
    print(f"  RSS at start {start:.0f} MiB, end of input {at_end:.0f} MiB, after flush and judging {after:.0f} MiB"
          f" (peak {peak:.0f} MiB)")
    if flows:
        print(f"  open-flow state: {(at_end - start) * 1048576 / flows:,.0f} bytes per flow; "
              f"judging them: {(after - at_end) * 1048576 / flows:,.0f} more")
    if parts:
        print("  by part (bytes per open flow):")
        for name, size in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"    {name:36s} {size / flows:7.1f}")
        print(f"    {'(sum)':36s} {sum(parts.values()) / flows:7.1f}")
    del ended


def breakdown(pipe):
    """{part: bytes} of the open flows: each distinct object counted once."""
    from verifier.engine.directions import COLUMNS
    seen, parts = set(), {}

    def count(part, obj):
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            parts[part] = parts.get(part, 0) + sys.getsizeof(obj)

    from verifier.model import _SlottedFlow
    table = pipe.table
    parts["flow table dict"] = sys.getsizeof(table.flows)
    for flow in table.flows.values():
        count("Flow objects", flow)
        count("keys (bytes)", flow.key)
        slotted = type(flow) is _SlottedFlow       # else times, counters, handle and a lone MAC live in the flow
        if slotted:
            count("first/last (floats)", flow.first)
            count("first/last (floats)", flow.last)
            for counter in (flow.pkts_a, flow.pkts_b, flow.octets_a, flow.octets_b):
                count("counters (ints)", counter)
            count("entry handles (ints)", flow.entries)
        for macs in (flow.macs_a, flow.macs_b):
            if slotted or macs.__class__ is not bytes:
                count("MACs and MAC sets", macs)
        for name in ("rare", "tunnels", "verdicts", "depends"):
            count("rare state", getattr(flow, name))
    for index in pipe.directions.by_width.values():
        tag = f"directions ({index.width} words)"
        for name in COLUMNS:
            parts[f"{tag} {name}"] = getattr(index, name).nbytes
        parts[f"{tag} hash table"] = index._slots.nbytes
        parts[f"{tag} owners"] = sys.getsizeof(index.owner) + sys.getsizeof(index.free)
    return parts


if __name__ == "__main__":
    main()
