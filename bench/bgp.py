#!/usr/bin/env python3
"""The BGP table at Internet scale: MRT load rate, RIB memory, lookup time.

    python bench/bgp.py [--v4 1000000] [--v6 250000] [--paths 250000] [--peers 2]

Writes a generated full table (bench/out/fulltable-*.mrt: IPv4 and IPv6
prefixes with the Internet's nesting, heavy-tailed AS paths shared between
peers, each peer's own path to a prefix drawn from the shared pool), then in
fresh processes:

- ``bgpdump -m`` (Debian ``bgpdump``) reading the same file to /dev/null:
  the peer the load rate is reported against, in the same run;
- our ``Rib.load``: prefixes/s, RSS of the RIB (RSS after load minus RSS
  before, and the process peak), and the mean lookup time of a million
  addresses (half inside routed prefixes) after the first lookup built the
  view.

Issue 20's targets: RIB RSS <= 150 MiB, load >= 100,000 prefixes/s,
lookup <= 3 us.
"""

import argparse
import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
sys.path.insert(0, ROOT)

MEASURE = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
def rss():
    with open("/proc/self/status") as fh:
        f = dict(l.split(":", 1) for l in fh)
    return int(f["VmRSS"].split()[0]) / 1024, int(f["VmHWM"].split()[0]) / 1024
from verifier.bgp.rib import Rib
before, _ = rss()
t = time.perf_counter()
rib = Rib.load([sys.argv[2]])
loaded = time.perf_counter() - t
rib.view()                                                  # the lookup tables, as a path builder asks
built = time.perf_counter() - t
after, peak = rss()
rnd = random.Random(7)
addrs = [rnd.randbytes(4) for _ in range(800_000)] + [b"\x20\x01" + rnd.randbytes(14) for _ in range(200_000)]
t = time.perf_counter()
found = sum(1 for a in addrs if rib.lookup(a) is not None)
per = (time.perf_counter() - t) / len(addrs)
print(json.dumps({"routes": len(rib), "load_s": loaded, "load_and_views_s": built, "rss_mib": after - before,
                  "peak_mib": peak, "lookup_us": per * 1e6, "found": found, "paths": len(rib._raw)}))
"""


def generate(path, v4, v6, paths, peers, seed=1):
    """A full table: prefixes nested as the Internet's are (a /16 or /12 often
    holds /24s), paths drawn heavy-tailed from a pool of ``paths`` paths;
    the second peer's route is the first's path four times in five."""
    from verifier.bgp import aspath
    from verifier.bgp.write import MrtWriter, attributes
    rnd = random.Random(seed)
    pool = []
    for _ in range(paths):
        hops = [rnd.choice((3356, 174, 1299, 2914, 6939, 4134, 3257)) if rnd.random() < 0.6 else
                rnd.randrange(1000, 400000) for _ in range(rnd.randint(1, 6))]
        pool.append(((aspath.AS_SEQUENCE, tuple(hops)),))
    weights = [1.0 / (k + 1) ** 0.6 for k in range(paths)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    peer_list = [(ipaddress.ip_address(f"192.0.2.{k + 1}").packed, 64500 + k) for k in range(peers)]
    hops = [p for p, _ in peer_list]
    prefixes = set()
    while len(prefixes) < v4:
        plen = rnd.choice((24,) * 12 + (23, 22, 21, 20, 19, 18, 17, 16, 12))
        net = rnd.randrange(1, 224 << 24) >> (32 - plen) << (32 - plen)
        prefixes.add((net.to_bytes(4, "big"), plen))
    while len(prefixes) < v4 + v6:
        plen = rnd.choice((48,) * 8 + (32, 36, 40, 44, 29, 64))
        net = ((0x2000 << 112) | rnd.getrandbits(112)) >> (128 - plen) << (128 - plen)
        prefixes.add((net.to_bytes(16, "big"), plen))
    blocks = {}
    with MrtWriter(path, peers=peer_list, when=1_796_000_000) as out:
        for prefix, plen in sorted(prefixes, key=lambda p: (len(p[0]), p)):
            base = rnd.choices(range(paths), cum_weights=cum)[0]
            entries = []
            for index in range(peers):
                choice = base if index == 0 or rnd.random() < 0.8 else rnd.choices(range(paths), cum_weights=cum)[0]
                path = pool[choice]             # both peers' upstreams: the same carriers' paths
                hop = hops[index] if len(prefix) == 4 else b"\x20\x01\x0d\xb8" + bytes(11) + bytes((index + 1,))
                key = (choice, index, len(prefix))
                block = blocks.get(key)
                if block is None:
                    block = blocks[key] = attributes(path, hop)
                entries.append((index, path, hop, 0, block))
            out.rib(prefix, plen, entries)
    return len(prefixes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=250_000)
    ap.add_argument("--paths", type=int, default=250_000)
    ap.add_argument("--peers", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"fulltable-{args.v4}-{args.v6}-{args.paths}-{args.peers}.mrt")
    prefixes = args.v4 + args.v6
    if not os.path.exists(path):
        t = time.perf_counter()
        generate(path + ".part", args.v4, args.v6, args.paths, args.peers)
        os.replace(path + ".part", path)
        print(f"wrote {path} ({os.path.getsize(path) / 1048576:.0f} MiB) in {time.perf_counter() - t:.0f} s")
    results = {"prefixes": prefixes, "peers": args.peers, "file_mib": os.path.getsize(path) / 1048576}
    bgpdump = shutil.which("bgpdump")
    if bgpdump:
        t = time.perf_counter()
        subprocess.run([bgpdump, "-m", "-O", "/dev/null", path], check=True, stderr=subprocess.DEVNULL)
        results["bgpdump_s"] = time.perf_counter() - t
    else:
        print("bgpdump not found (apt-get install bgpdump): no peer to compare the load rate with")
    ours = json.loads(subprocess.run([sys.executable, "-c", MEASURE, ROOT, path], check=True,
                                     capture_output=True, text=True).stdout)
    results.update(ours)
    rate = prefixes / ours["load_and_views_s"]
    print(f"{prefixes:,} prefixes x {args.peers} peers, {ours['paths']:,} distinct paths:")
    print(f"  load + views {ours['load_and_views_s']:.1f} s = {rate:,.0f} prefixes/s (target >= 100,000)"
          + (f"; bgpdump -m {results['bgpdump_s']:.1f} s (ours {ours['load_and_views_s'] / results['bgpdump_s']:.2f}x"
             " its time)" if "bgpdump_s" in results else ""))
    print(f"  RIB RSS {ours['rss_mib']:.0f} MiB (target <= 150), process peak {ours['peak_mib']:.0f} MiB")
    print(f"  lookup {ours['lookup_us']:.2f} us (target <= 3), {ours['found']:,} of 1,000,000 addresses routed")
    with open(os.path.join(OUT, "bgp.json"), "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
