#!/usr/bin/env python3
"""Flow-flood soak: millions of distinct flows through the daemon with the
default 500,000-flow cap — memory stays bounded and flat, and every flow is
accounted for.

The capture (written here, documentation ranges only): ``--flows`` distinct
TCP flows of one SYN each, from 198.51.100.0/24 (the default policy's
protected zone) to 192.0.2.0/24, 1 us apart, so the table fills within the
first half second of capture time and every later flow pushes older ones out
(eviction reason ``capacity``); no idle timeout can help.

``verifier run --replay FLOOD --speed 0`` (default policy, default
timeouts and cap) reads it flat out. Sampled every 0.25 s: the daemon's
resident memory (/proc), and from /metrics: active flows, evictions by
reason, packets. When the daemon says its input is finished (every open flow
judged), the totals are checked: evictions (capacity + idle + active +
shutdown) equal the number of flows; flows counted by verdict equal it too.

The peer, ``argus -r FLOOD`` (a compiled flow meter, no flow cap), reads the
same file in the same run, given three times our time: its peak RSS and time
(or that it had not finished) are reported beside ours.

Results go to bench/out/flood.json. Targets (issue 22): peak RSS <= 1 GB and
flat once the cap is reached; every eviction counted by reason; no flow lost.

Usage: python bench/flood.py [--flows 5000000]
"""

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
GW, HOST = bytes.fromhex("00000c010203"), bytes.fromhex("0200000000aa")     # a Cisco gateway, a local host


def write_flood(path, flows):
    """``flows`` one-packet TCP flows, each with its own (address, port) pair."""
    eth = GW + HOST + b"\x08\x00"
    ip_head = struct.Struct("!BBHHHBBH4s4s")
    tcp_head = struct.Struct("!HHIIBBHHH")
    rec = struct.Struct("<IIII")
    with open(path, "wb", buffering=8 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(flows):
            src = bytes((198, 51, 100, i & 0xFF))
            dst = bytes((192, 0, 2, (i >> 8) & 0xFF))
            sport = 1024 + (i >> 16) % 64000
            frame = eth + ip_head.pack(0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, dst) + \
                tcp_head.pack(sport, 443, i, 0, 0x50, 0x02, 65535, 0, 0)
            ts = 1_700_000_000_000_000 + i
            fh.write(rec.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)) + frame)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for m in re.finditer(r"^(cleanpath_\w+?)(\{[^}]*\})? (\S+)$", text, re.M):
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def total(sample, name):
    return sum(v for k, v in sample.items() if k == name or k.startswith(name + "{"))


def run_daemon(path, flows):
    port = free_port()
    cmd = [sys.executable, "-m", "verifier", "--data-dir", os.path.join(OUT, "data"), "run", "--replay", path,
           "--speed", "0", "--metrics-addr", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    ready, finished = threading.Event(), threading.Event()

    def read_log():
        for line in proc.stderr:
            lines.append(line.rstrip())
            if "source ready" in line:
                ready.set()
            if "input finished" in line:
                finished.set()
    threading.Thread(target=read_log, daemon=True).start()
    ready.wait(120)
    started = time.monotonic()
    samples = []
    while not finished.is_set() and proc.poll() is None:
        sample = metrics(port)
        samples.append({"t": round(time.monotonic() - started, 2), "rss_mib": rss_mib(proc.pid),
                        "active": sample.get("cleanpath_active_flows"),
                        "packets": total(sample, "cleanpath_packets_total"),
                        "evicted": total(sample, "cleanpath_flow_evictions_total")})
        finished.wait(0.25)
    elapsed = time.monotonic() - started
    final = metrics(port)
    peak = rss_mib(proc.pid)
    proc.terminate()
    proc.wait(60)
    evictions = {m.group(1): v for k, v in final.items()
                 if (m := re.match(r'cleanpath_flow_evictions_total\{reason="(\w+)"\}', k))}
    by_verdict = total(final, "cleanpath_flows_total")
    full = next((s for s in samples if s["active"] and s["active"] >= 499_000), None)
    after = [s["rss_mib"] for s in samples if full and s["t"] >= full["t"] and s["rss_mib"]]
    return {"flows": flows, "seconds": round(elapsed, 1), "packets_per_s": round(flows / elapsed),
            "peak_rss_mib": round(max([s["rss_mib"] or 0 for s in samples] + [peak or 0]), 1),
            "rss_when_full_mib": full["rss_mib"] if full else None,
            "rss_after_full_max_mib": round(max(after), 1) if after else None,
            "evictions": evictions, "evictions_total": sum(evictions.values()),
            "flows_by_verdict_total": by_verdict, "log_tail": lines[-3:], "samples": samples}


def run_argus(path, limit):
    """argus over the same file, stopped after ``limit`` seconds if still running."""
    argus = shutil.which("argus", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if argus is None:
        return None
    out = os.path.join(OUT, "flood.argus")
    started = time.monotonic()
    proc = subprocess.Popen([argus, "-r", path, "-w", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None and time.monotonic() - started < limit:
        peak = max(peak, rss_mib(proc.pid) or 0.0)
        time.sleep(0.25)
    finished = proc.poll() is not None
    if not finished:
        proc.kill()
        proc.wait()
    if os.path.exists(out):
        os.unlink(out)
    return {"seconds": round(time.monotonic() - started, 1), "finished": finished, "peak_rss_mib": round(peak, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=5_000_000)
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"flood-{args.flows}.pcap")
    if not os.path.exists(path):
        write_flood(path, args.flows)
    ours = run_daemon(path, args.flows)
    peer = run_argus(path, limit=3 * ours["seconds"])
    report = {"verifier": ours, "argus": peer}
    with open(os.path.join(OUT, "flood.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    brief = {k: v for k, v in ours.items() if k != "samples"}
    print(json.dumps({"verifier": brief, "argus": peer}, indent=2))
    ok = ours["peak_rss_mib"] <= 1024 and ours["evictions_total"] == args.flows
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
