#!/usr/bin/env python3
"""Live-capture benchmark: the highest rate ``verifier run`` holds with no
kernel drops, next to tshark on the same traffic in the same run; and how
soon a violating flow shows in /metrics at rest, at 100k packets/s and at
that highest rate.

Set-up (root; installs tcpreplay from Debian when missing): a veth pair whose
far end sits in a network namespace made here; tcpreplay, inside that
namespace, replays a documentation-range capture (bench/gen_pcap.py --lab,
frames of at most 128 bytes) at rising packet rates. The daemon captures on
the near end with the socket engine. For each rate: packets sent (tcpreplay's
own count), packets the daemon accounted, kernel drops (from its metrics),
CPU seconds per wall second of the daemon. The peer, ``tshark -i IF -q -z
conv,ip`` (dumpcap + a conversation table: the same job), runs the same
rates; its loss is packets sent minus packets it reports.

Latency (issue 17): a daemon with its default timeouts and a policy with two
zones — the replayed background's (198.51.100.0/24, judged like any traffic)
and a probe zone (2001:db8:77::/48) — while tcpreplay replays the background
at 0, 100k and the highest drop-free rate found above. A sender inside the
namespace sends ``--probes`` violating flows (one UDP packet each, through a
Huawei-OUI gateway MAC, ``--interval`` apart) and prints the CLOCK_MONOTONIC
time of each send (namespaces share that clock); a scraper reads /metrics
every 100 ms. A flow's latency is the time from its send to the first scrape
whose probe-zone violation counter covers it. Target: p99 <= 1 s at every
rate.

Also measured: the time of one scrape of /metrics with the packaged
default policy, whose every zone, rule and vendor series is pre-created.

Results go to bench/out/live.json. Targets (issues): >= 250,000 packets/s
with zero drops; scrape < 50 ms; latency p99 <= 1 s.

Usage: sudo python bench/live.py [--rates 100000,200000,...] [--seconds 4] [--no-tshark]
                                 [--probes 200] [--interval 0.05] [--no-latency]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
NS, NEAR = "cpvbench", "cpvbench0"


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def setup():
    if shutil.which("tcpreplay") is None:
        sh("apt-get", "install", "-y", "-q", "--no-install-recommends", "tcpreplay")
    teardown()
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", NEAR, "type", "veth", "peer", "name", "eth0", "netns", NS)
    sh("sysctl", "-qw", f"net.ipv6.conf.{NEAR}.disable_ipv6=1")
    sh("ip", "link", "set", NEAR, "up")
    sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "eth0", "up")


def teardown():
    sh("ip", "link", "del", NEAR, check=False)
    sh("ip", "netns", "del", NS, check=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def metric(text, name):
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M):
        total += float(m.group(1))
    return total


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcpreplay(pcap, rate, count):
    """tcpreplay inside the namespace: ``count`` packets at ``rate``, the capture preloaded and looped."""
    return ["ip", "netns", "exec", NS, "tcpreplay", "-i", "eth0", "--preload-pcap", f"--pps={rate}",
            f"--limit={count}", "--loop=0", pcap]


def rated(output):
    """The packets/s tcpreplay says it reached."""
    pps = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", output)
    return float(pps.group(1)) if pps else 0.0


def replay(pcap, rate, seconds):
    res = sh(*tcpreplay(pcap, rate, rate * seconds), check=False)
    sent = re.search(r"Actual: (\d+) packets", res.stdout)
    return int(sent.group(1)) if sent else 0, rated(res.stdout)


def start_daemon(data_dir, *args):
    """``verifier run -i NEAR *args``, once its /metrics answers: (process, port)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "--data-dir", data_dir, "run", "-i", NEAR, *args,
                             "--metrics-addr", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL, cwd=ROOT)
    for _ in range(100):
        try:
            scrape(port)
            break
        except OSError:
            time.sleep(0.2)
    return proc, port


def run_verifier(pcap, rates, seconds, data_dir):
    proc, port = start_daemon(data_dir, "--idle-timeout", "5")
    rows = []
    try:
        for rate in rates:
            before = scrape(port)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            sent, achieved = replay(pcap, rate, seconds)
            time.sleep(1.0)                                   # let the ring drain
            after = scrape(port)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            seen = metric(after, "cleanpath_packets_total") - metric(before, "cleanpath_packets_total")
            drops = metric(after, "cleanpath_capture_dropped_packets_total") - \
                metric(before, "cleanpath_capture_dropped_packets_total")
            rows.append({"rate": rate, "achieved_pps": achieved, "sent": sent, "accounted": int(seen),
                         "kernel_drops": int(drops), "cpu": round(cpu, 2)})
            print(f"verifier  rate {rate:>7}: sent {sent:>8} at {achieved:>9.0f} pps, accounted {int(seen):>8}, "
                  f"kernel drops {int(drops):>7}, cpu {cpu:.2f}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return rows


def run_tshark(pcap, rates, seconds):
    rows = []
    for rate in rates:
        proc = subprocess.Popen(["tshark", "-i", NEAR, "-q", "-z", "conv,ip"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)                                       # dumpcap up
        sent, achieved = replay(pcap, rate, seconds)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=600)
        got = re.search(r"(\d+) packets? captured", err)
        captured = int(got.group(1)) if got else 0
        rows.append({"rate": rate, "achieved_pps": achieved, "sent": sent, "captured": captured,
                     "lost": max(0, sent - captured)})
        print(f"tshark    rate {rate:>7}: sent {sent:>8} at {achieved:>9.0f} pps, captured {captured:>8}, "
              f"lost {max(0, sent - captured):>7}", flush=True)
    return rows


def scrape_time(data_dir):
    """Median of 20 scrapes of a daemon running the packaged default policy."""
    proc, port = start_daemon(data_dir)
    try:
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            text = scrape(port)
            times.append(time.perf_counter() - t0)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        return {"median_ms": round(statistics.median(times) * 1000, 2), "max_ms": round(max(times) * 1000, 2),
                "series": series}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


LATENCY_POLICY = """\
version: 1
vendors:
  trusted: [cisco]
  untrusted: [huawei, zte]
zones:
  lan:
    prefixes: [198.51.100.0/24, 2001:db8:100::/48]
  probe:
    prefixes: [2001:db8:77::/48]
rules:
  - {name: lan-clean-path, zone: lan, require: clean-path, kinds: [l2-neighbor], on_unattributed: unverified}
  - {name: probe-clean-path, zone: probe, require: clean-path, kinds: [l2-neighbor], on_unattributed: unverified}
"""
PROBE_LABELS = {"zone": "probe", "rule": "probe-clean-path", "vendor": "huawei", "kind": "l2-neighbor"}
SENDER = r"""
import socket, sys, time
frames = [bytes.fromhex(line) for line in sys.stdin.read().split()]
interval = float(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
start = time.monotonic()
for i, frame in enumerate(frames):
    delay = start + i * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    t = time.monotonic(); s.send(frame); print(i, repr(t), flush=True)
"""


def probe_frames(n, base_port):
    """``n`` one-packet UDP flows from the probe zone through a Huawei-OUI gateway."""
    sys.path.insert(0, ROOT)
    from verifier.craft import ETH_IPV6, ether, ipv6, udp
    return [ether("00:e0:fc:00:77:01", "02:00:00:00:77:01", ETH_IPV6,
                  ipv6("2001:db8:77::1", "2001:db8:203::77", 17, udp(base_port + i, 443, b"probe")))
            for i in range(n)]


def probe_count(text):
    """The probe zone's violation counter in exposition ``text`` (labels in any order)."""
    for m in re.finditer(r"^cleanpath_violations_total\{([^}]*)\} (\S+)$", text, re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) == PROBE_LABELS:
            return int(float(m.group(2)))
    return 0


def latency_phase(port, pcap, rate, probes, interval, base_port):
    """One rate: background replay (none at 0), ``probes`` violating flows,
    a scrape every 100 ms. Returns the row of figures."""
    import threading
    scrapes = []                       # (monotonic time the scrape returned, probe violations, text)
    stop = threading.Event()

    def scraper():
        while not stop.is_set():
            t0 = time.monotonic()
            text = scrape(port)
            scrapes.append((time.monotonic(), probe_count(text), text))
            stop.wait(max(0.0, 0.1 - (time.monotonic() - t0)))

    base_text = scrape(port)
    base = probe_count(base_text)
    replay_proc = None
    if rate:
        seconds = probes * interval + 4
        replay_proc = subprocess.Popen(tcpreplay(pcap, rate, int(rate * seconds)), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)                                   # the background at its rate before the first probe
    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    frames = probe_frames(probes, base_port)
    sender = subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", SENDER, str(interval)],
                            input="\n".join(f.hex() for f in frames), capture_output=True, text=True, check=True)
    sent = [float(line.split()[1]) for line in sender.stdout.splitlines()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not scrapes or scrapes[-1][1] - base < probes):
        time.sleep(0.1)
    stop.set()
    thread.join()
    achieved = 0.0
    if replay_proc is not None:
        achieved = rated(replay_proc.communicate(timeout=120)[0])
    latencies, missed = [], 0
    for i, t in enumerate(sent):
        seen = next((ts for ts, count, _text in scrapes if ts >= t and count - base > i), None)
        if seen is None:
            missed += 1
        else:
            latencies.append(seen - t)
    latencies.sort()
    last = scrapes[-1][2] if scrapes else base_text
    drops = metric(last, "cleanpath_capture_dropped_packets_total") - \
        metric(base_text, "cleanpath_capture_dropped_packets_total")

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None
    row = {"rate": rate, "achieved_pps": round(achieved), "probes": len(sent), "seen": len(latencies),
           "missed": missed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
           "max_ms": round(latencies[-1] * 1000, 1) if latencies else None, "kernel_drops": int(drops)}
    print(f"latency   rate {rate:>7} (achieved {achieved:>9.0f} pps): {len(latencies)}/{len(sent)} probe flows seen, "
          f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, max {row['max_ms']} ms, kernel drops {int(drops)}",
          flush=True)
    return row


def run_latency(pcap, rates, probes, interval, data_dir):
    policy = os.path.join(OUT, "latency-policy.yaml")
    with open(policy, "w") as fh:
        fh.write(LATENCY_POLICY)
    proc, port = start_daemon(data_dir, "--policy", policy)
    try:
        return [latency_phase(port, pcap, rate, probes, interval, 20000 + 1000 * k) for k, rate in enumerate(rates)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def best(rows, lost_key):
    """The highest rate actually delivered (tcpreplay's count) with nothing lost.

    On a 2-core machine tcpreplay itself tops out near 300k packets/s; rows
    where it fell short of the asked rate still count at the rate it reached."""
    return max((r["achieved_pps"] for r in rows if r[lost_key] == 0), default=0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100000,200000,250000,300000,400000,600000")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--probes", type=int, default=200, help="violating flows per latency phase")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between probe flows")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/live.py needs root (network namespace, veth, packet capture)")
    rates = [int(r) for r in args.rates.split(",")]
    os.makedirs(OUT, exist_ok=True)
    pcap = os.path.join(OUT, "lab-200000.pcap")
    if not os.path.exists(pcap):
        sh(sys.executable, os.path.join(HERE, "gen_pcap.py"), pcap, "--packets", "200000", "--flows", "5000", "--lab")
    data_dir = os.path.join(OUT, "data")
    setup()
    try:
        result = {"rates": rates, "seconds": args.seconds, "verifier": run_verifier(pcap, rates, args.seconds,
                                                                                     data_dir)}
        if not args.no_tshark and shutil.which("tshark"):
            result["tshark"] = run_tshark(pcap, rates, args.seconds)
        result["scrape"] = scrape_time(data_dir)
        if not args.no_latency:
            # The highest asked rate the sweep held without drops (tcpreplay may deliver less).
            top = max((r["rate"] for r in result["verifier"] if r["kernel_drops"] == 0), default=0)
            result["latency"] = run_latency(pcap, [0, 100_000] + ([top] if top > 100_000 else []), args.probes,
                                            args.interval, data_dir)
    finally:
        teardown()
    result["verifier_best_pps"] = best(result["verifier"], "kernel_drops")
    if "tshark" in result:
        result["tshark_best_pps"] = best(result["tshark"], "lost")
        if result["tshark_best_pps"]:
            result["ratio_vs_tshark"] = round(result["verifier_best_pps"] / result["tshark_best_pps"], 2)
    with open(os.path.join(OUT, "live.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"highest drop-free rate: verifier {result['verifier_best_pps']:.0f} pps"
          + (f", tshark {result['tshark_best_pps']:.0f} pps (ratio {result.get('ratio_vs_tshark')})"
             if "tshark" in result else ""))
    print(f"/metrics scrape: median {result['scrape']['median_ms']} ms, max {result['scrape']['max_ms']} ms, "
          f"{result['scrape']['series']} series")


if __name__ == "__main__":
    main()
