#!/usr/bin/env python3
"""Instructions the audit executes, per thread: a noise-free A/B measure.

    python bench/instructions.py [--tunnelled 0.5] [--packets 1000000]

Wall time on a shared machine swings by a third from run to run; the number
of instructions a run executes does not. This runs the same audit as
bench/run.py once under ``valgrind --tool=callgrind --separate-threads=yes``
(Debian ``valgrind``; ~50x slower than a normal run, about a minute for the
1M-packet capture), after one plain run that fills the data directory's
caches as bench/run.py's warm-up does, and prints the instructions of each thread: the main
thread does the packets and flows, the other hashes the capture for
the certificate (SHA-256; under valgrind without the CPU's SHA extensions,
so its count says little). Compare the main thread's count before and after
a change; it tracks time for the Python-bound parts, not for page faults or
cache misses.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "verifier", "demo")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=20_000)
    ap.add_argument("--tunnelled", type=float, default=0.0)
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    tag = f"-tun{args.tunnelled:g}" if args.tunnelled else ""
    pcap = os.path.join(HERE, "out", f"bench-{args.packets}-{args.flows}{tag}.pcap")
    if not os.path.exists(pcap):
        os.makedirs(os.path.dirname(pcap), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), pcap, "--packets", str(args.packets),
                        "--flows", str(args.flows), "--tunnelled", str(args.tunnelled)], check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "verifier")], check=False,
                   stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="verifier-callgrind-")
    audit = [sys.executable, "-m", "verifier", "--data-dir", work, "audit", pcap,
             "--policy", os.path.join(DEMO, "policy.yaml"), "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"),
             "--json", os.path.join(work, "cert.json"), "-q"]
    subprocess.run(audit, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)     # fills the OUI table cache
    out = os.path.join(work, "callgrind.out")
    subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
                   + audit, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    counts = []
    for path in sorted(glob.glob(out + "*")):
        with open(path) as fh:
            total = next((int(m.group(1)) for m in map(re.compile(r"^totals: (\d+)").match, fh) if m), None)
        if total is not None:
            counts.append(total)
    if not counts:
        sys.exit("callgrind wrote no counts")
    print(f"{os.path.basename(pcap)}: instructions per thread (main first)")
    for n, total in enumerate(counts, 1):
        print(f"  thread {n}: {total:,}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
