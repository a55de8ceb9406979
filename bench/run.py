#!/usr/bin/env python3
"""Audit throughput against tshark and argus, measured in the same run.

    python bench/run.py [--packets 1000000] [--runs 3]

Generates ``bench/out/bench.pcap`` (see gen_pcap.py) if missing, then times,
each in a fresh process and each ``--runs`` times (median reported):

- ``verifier audit`` with attribution (OUI + the demo ASN database) and policy
  on, writing the JSON certificate;
- ``tshark`` extracting the same facts per packet — MACs with their OUI
  organization, VLAN, addresses, ports, frame length and source/destination
  ASN from the same MaxMind database (``ip.use_geoip``) — to /dev/null;
- ``argus`` (Debian ``argus-server``) building its flow records from the same
  capture: a compiled flow meter with no attribution, running at about the
  audit issue's target rate (~1M packets/s) on this machine;
- ``softflowd`` (Debian ``softflowd``; ``--no-softflowd`` leaves it out)
  reading the capture into its flow table (every flow held: ``-m`` above the
  capture's flows) and exporting NetFlow to the discard port on loopback as
  they end.

Memory per open flow: each tool also reads a 1,000-packet capture of 10
flows from the same generator; (peak RSS - that baseline) / flows is its
memory per flow. The generator's timestamps advance 20 us a packet, so a
10M-packet capture spans 200 s, under the audit's 300 s idle timeout: every
flow is still open at the end (the #21 measurement: ``--packets 10000000
--flows 200000``).

Each round runs every tool once, back to back, so a slow phase of a shared
machine slows them all; the figure to quote is the median of the per-round
ratios, not any absolute rate. Peak RSS comes from ``wait4``. Results go to
``bench/out/results.json``. Install the peers with
``apt-get install tshark argus-server softflowd``; a missing one is skipped.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
DEMO = os.path.join(ROOT, "verifier", "demo")
TSHARK_FIELDS = ["frame.time_epoch", "frame.len", "eth.src", "eth.dst", "eth.src.oui_resolved",
                 "eth.dst.oui_resolved", "vlan.id", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
                 "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "ip.geoip.src_asnum",
                 "ip.geoip.dst_asnum", "ipv6.geoip.src_asnum", "ipv6.geoip.dst_asnum"]


def timed(cmd, env=None):
    """(wall seconds, peak RSS MiB, exit code) of one child process."""
    # stderr to a file, not a pipe: a tool that writes more than a pipe holds
    # would block on it while we wait for it to exit.
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read()[-4000:].decode(errors="replace")
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), text


def console_script():
    """The ``verifier`` script installed for the Python running the bench
    (next to its interpreter), else the first on PATH. Version managers such
    as pyenv put a shell shim first on PATH that costs ~0.1 s per start on
    this machine; that is the shim's time, not the tool's."""
    here = os.path.join(os.path.dirname(os.path.realpath(sys.executable)), "verifier")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("verifier")


def _key(name):
    """A tool's key in results.json: its program, or ours with what it adds."""
    if name.startswith("verifier") and "+" in name:
        return name.split(" (")[0].replace(" + ", "+").replace(" ", "-")
    return "verifier-lookup" if name.startswith("verifier lookup") else name.split()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--no-softflowd", action="store_true")
    ap.add_argument("--tunnelled", type=float, default=0.0,
                    help="share of flows carried in GTP-U or VXLAN (the path discovery issue asks 0.5)")
    ap.add_argument("--bgp-mrt", help="also audit with this MRT table loaded (bench/bgp.py writes a full one): "
                                      "packets/s beside the plain audit's, the table's load time taken out")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    tag = f"-tun{args.tunnelled:g}" if args.tunnelled else ""
    pcap = os.path.join(OUT, f"bench-{args.packets}-{args.flows}{tag}.pcap")
    if not os.path.exists(pcap):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), pcap, "--packets", str(args.packets),
                        "--flows", str(args.flows), "--tunnelled", str(args.tunnelled)], check=True)
    verifier = console_script() or sys.exit("install the package first (pip install -e .)")
    data_dir = tempfile.mkdtemp(prefix="verifier-bench-")
    audit = [verifier, "--data-dir", data_dir, "audit", pcap, "--policy", os.path.join(DEMO, "policy.yaml"),
             "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"), "--bgp-mrt", os.path.join(DEMO, "demo-rib.mrt"),
             "--json", os.path.join(OUT, "bench-cert.json"), "-q"]
    # Byte-compile the package as a regular (non-editable) pip install does, so
    # no run pays for compiling sources (PYTHONDONTWRITEBYTECODE would otherwise
    # make every run compile them again).
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "verifier")],
                   stdout=subprocess.DEVNULL, check=False)
    subprocess.run(audit, stdout=subprocess.DEVNULL)        # warm the page cache and the OUI table cache
    engine = subprocess.run([sys.executable, "-c", "import verifier.engine as e; print(e.name())"],
                            capture_output=True, text=True).stdout.strip()   # compiled per-frame passes, or numpy
    results = {"packets": args.packets, "flows": args.flows, "tunnelled": args.tunnelled, "capture": pcap,
               "engine": engine, "runs": {}}
    tools = [("verifier audit", audit, None)]
    if args.bgp_mrt:
        # The same audit (the demo's RIB decides, so the verdicts are the same) with a full table loaded too:
        # its load, a start-up cost paid once per audit or daemon, is measured by a lookup with and without it
        # and taken out; what is compared is the per-packet pace with the table in memory.
        lookup = [verifier, "--data-dir", data_dir, "lookup", "8.8.8.8", "--policy", os.path.join(DEMO, "policy.yaml"),
                  "--bgp-mrt", os.path.join(DEMO, "demo-rib.mrt")]
        tools += [("verifier audit + BGP table", audit + ["--bgp-mrt", args.bgp_mrt], None),
                  ("verifier lookup + BGP table (its load)", lookup + ["--bgp-mrt", args.bgp_mrt], None),
                  ("verifier lookup (start-up)", lookup, None)]
    if not args.no_tshark and shutil.which("tshark"):
        config = tempfile.mkdtemp(prefix="ws-config-")
        with open(os.path.join(config, "maxmind_db_paths"), "w") as fh:
            fh.write(f'"{DEMO}"\n')
        cmd = ["tshark", "-n", "-r", pcap, "-o", "ip.use_geoip:TRUE", "-T", "fields"]
        for field in TSHARK_FIELDS:
            cmd += ["-e", field]
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=config)
        tools.append(("tshark (same fields, OUI + MaxMind ASN)", cmd, env))
    argus = shutil.which("argus", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")   # a daemon: in sbin
    if argus:
        records = os.path.join(data_dir, "bench.argus")
        tools.append(("argus (flow records, no attribution)", [argus, "-r", pcap, "-w", records], None))
    else:                                   # the ratio the benchmark exists for: say why it is missing
        print("note: argus is not installed (Debian argus-server): no peer ratio", file=sys.stderr)
    softflowd = shutil.which("softflowd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    # Reads the file, holds every flow (-m above the capture's), prints its summary, exits. ``-c none``: no
    # control socket. Reading a file, softflowd 1.1.0 tests its poll array without having polled (softflowd.c's
    # main loop fills it for live capture only), and with a control socket it could block in accept() for good,
    # depending on what the stack held (the socket's path changed it): what made it hang under this harness.
    if softflowd and not args.no_softflowd:
        tools.append(("softflowd (flow table, no attribution)",
                      [softflowd, "-r", pcap, "-6", "-m", str(max(2 * args.flows, 8192)), "-n", "127.0.0.1:9",
                       "-c", "none", "-p", os.path.join(data_dir, "softflowd.pid")], None))
    runs = {name: [] for name, _cmd, _env in tools}
    for _ in range(args.runs):                     # rounds: every tool once, back to back
        for name, cmd, env in tools:
            runs[name].append(timed(cmd, env))
    codes = {code for _w, _r, code, _e in runs["verifier audit"]}
    if not codes <= {0, 1, 3}:
        sys.exit(f"verifier audit failed: {runs['verifier audit'][0][3]}")
    for name, measured in runs.items():
        results["runs"][_key(name)] = [{"seconds": w, "max_rss_mib": r} for w, r, _c, _e in measured]
    print(f"{args.packets:,} packets, {args.flows:,} flows, {args.runs} round(s), {engine} per-frame passes, median:")
    medians = {}
    for name, measured in runs.items():
        wall = statistics.median(w for w, _r, _c, _e in measured)
        rss = max(r for _w, r, _c, _e in measured)
        medians[_key(name)] = wall
        print(f"  {name:<42} {wall:7.2f} s  {args.packets / wall / 1e6:6.3f} Mpkt/s  peak RSS {rss:6.1f} MiB")
    ours = [w for w, _r, _c, _e in runs["verifier audit"]]
    for name, measured in list(runs.items())[1:]:
        if name.startswith("verifier"):                  # our own variants: compared below
            continue
        peer = name.split()[0]
        ratio = statistics.median(w / o for (w, _r, _c, _e), o in zip(measured, ours))
        results[f"speed_vs_{peer}"] = ratio
        print(f"  verifier audit runs at {ratio:.2f}x {peer}'s speed (median of per-round ratios)")
    results["median_seconds"] = medians
    if args.bgp_mrt:
        with_table = [w for w, _r, _c, _e in runs["verifier audit + BGP table"]]
        load = [a - b for (a, *_), (b, *_) in zip(runs["verifier lookup + BGP table (its load)"],
                                                  runs["verifier lookup (start-up)"])]
        paced = statistics.median(o / (w - l) for o, w, l in zip(ours, with_table, load))
        results["bgp_table"] = {"load_seconds": statistics.median(load), "pace_vs_plain": paced}
        print(f"  with the BGP table: load {statistics.median(load):.2f} s; the rest runs at {paced:.2f}x "
              "the plain audit's speed (median of per-round ratios)")
    small = os.path.join(OUT, "bench-1000-10.pcap")
    if not os.path.exists(small):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), small, "--packets", "1000", "--flows",
                        "10"], check=True, stdout=subprocess.DEVNULL)
    results["bytes_per_flow"] = {}
    for name, cmd, env in tools:
        if pcap not in cmd or "+" in name:              # lookups read no capture; the table variant's baseline
            continue                                     # would hold its table
        base = timed([small if part == pcap else part for part in cmd], env)[1]
        peak = max(r for _w, r, _c, _e in runs[name])
        per_flow = (peak - base) * 1024 * 1024 / args.flows
        results["bytes_per_flow"][_key(name)] = round(per_flow)
        print(f"  {name:<42} {per_flow:7.0f} bytes per flow (peak {peak:.1f} MiB - baseline {base:.1f} MiB)")
    with open(os.path.join(OUT, f"results{tag}.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
