#!/usr/bin/env python3
"""Where an audit's memory goes: RSS at start, at the end of input (every
flow still open: the flow table's own cost) and after the final flush and
judging (what bench/run.py's peak RSS also counts: the attribution caches
and report the judging fills), in one process.

    python bench/memory.py [CAPTURE] [--engine numpy]

Default capture: bench/out/bench-10000000-200000.pcap (make it with
``python bench/run.py --packets 10000000 --flows 200000`` or gen_pcap.py).
Per open flow = (RSS at end of input - RSS at start) / open flows.
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
    ended = pipe.finish()
    after, peak = rss_mib()
    print(f"{os.path.basename(args.capture)} ({pipe.engine.name} engine): {flows:,} flows open at the end of input")
    print(f"  RSS at start {start:.0f} MiB, end of input {at_end:.0f} MiB, after flush and judging {after:.0f} MiB"
          f" (peak {peak:.0f} MiB)")
    if flows:
        print(f"  open-flow state: {(at_end - start) * 1048576 / flows:,.0f} bytes per flow; "
              f"judging them: {(after - at_end) * 1048576 / flows:,.0f} more")
    del ended


if __name__ == "__main__":
    main()
