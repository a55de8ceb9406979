#!/usr/bin/env python3
"""Flow exports end to end: the daemon listening for IPFIX, beside nfacctd.

    python bench/export_live.py [--capture bench/out/bench-1000000-20000.pcap]
                                [--sustain-seconds 20] [--rate 20000] [--records 600000]

softflowd (Debian softflowd) exports the capture's flows as IPFIX once; a
replaying exporter (this script) then sends those datagrams again and
again, each pass with its sequence numbers moved on, so the stream is one
exporter's continuous export:

1. sustained: ``--rate`` records/s for ``--sustain-seconds`` to ``verifier
   run --ipfix``; every record must be decoded, with no kernel drop and no
   sequence gap (``cleanpath_flow_export_*`` and
   ``cleanpath_capture_dropped_packets_total`` scraped from the daemon);
2. flat out: ``--records`` records as fast as the sender goes, into a
   receive buffer that holds them all (as root, net.core.rmem_max is raised
   for the run and restored), to the daemon and to pmacct's nfacctd (print
   plugin; Debian pmacct) in turn: records per CPU second of each
   (its process and children, from /proc), the daemon's wall-clock rate from
   first datagram to last record decoded (decode, flow table, live judging,
   metrics), and peak RSS of each.

Issue 18's targets: >= 50,000 records/s end to end in the daemon; zero loss
at 20,000 records/s sustained. Results go to bench/out/export_live.json.
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
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "verifier", "demo")
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            if line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
    return total


def family(pid):
    """``pid`` and its children (nfacctd's plugins are processes of their own)."""
    try:
        return [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return [pid]


def proc_cpu(pid):
    """CPU seconds of ``pid`` and its children (live and reaped)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in family(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick     # utime stime cutime cstime
    return total


def peak_rss_mib(pid):
    out = 0
    for p in family(pid):
        try:
            status = open(f"/proc/{p}/status").read()
        except OSError:
            continue
        found = re.search(r"VmHWM:\s+(\d+)", status)
        out += int(found.group(1)) if found else 0
    return out / 1024


class Replayer:
    """softflowd's datagrams as one exporter's endless stream: templates
    first, then the data datagrams pass after pass, sequence numbers moved
    on by each pass's records."""

    def __init__(self, grams):
        from verifier.export.decode import IPFIX, Collector
        collector = Collector()
        decoded = [collector.datagram(g, b"\x7f\0\0\x01", 0.0) for g in grams]
        self.counts = [len(d) for d in decoded]
        self.packets = sum(r.packets for d in decoded for r in d)
        self.grams = grams
        self.per_pass = sum(self.counts)
        # A pass moves the numbers on by what the collector expects after it, less where it began.
        (exporter,) = [e for (_a, _d, p), e in collector.exporters.items() if p == IPFIX]
        self.shift = (exporter.next_seq - struct.unpack_from(">I", grams[0], 8)[0]) & 0xFFFFFFFF
        self.passes = 0

    def datagrams(self):
        """(datagram, records in it) forever."""
        while True:
            shift = self.passes * self.shift
            for gram, n in zip(self.grams, self.counts):
                seq = (struct.unpack_from(">I", gram, 8)[0] + shift) & 0xFFFFFFFF
                yield gram[:8] + struct.pack(">I", seq) + gram[12:], n
            self.passes += 1


def send(stream, port, records, rate=None):
    """Send ``records`` records' datagrams (about) to ``port``, paced to
    ``rate`` records/s if given; returns (datagrams, records sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sent = grams = 0
    start = time.monotonic()
    for gram, n in stream:
        if sent >= records:
            break
        sock.sendto(gram, ("127.0.0.1", port))
        sent += n
        grams += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    sock.close()
    return grams, sent


def start_daemon(tmp, port, metrics_port, rcvbuf):
    proc = subprocess.Popen(
        [sys.executable, "-m", "verifier", "--data-dir", os.path.join(tmp, "data"), "run",
         "--ipfix", f"127.0.0.1:{port}", "--export-rcvbuf", str(rcvbuf),
         "--policy", os.path.join(DEMO, "policy.yaml"), "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"),
         "--metrics-addr", f"127.0.0.1:{metrics_port}", "--idle-timeout", "3600", "--active-timeout", "36000"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"daemon exited: {proc.stderr.read()}")
        try:
            scrape(metrics_port)
            return proc
        except OSError:
            time.sleep(0.2)
    sys.exit("daemon did not come up")


def wait_records(metrics_port, target, timeout=600):
    """Scrape until the daemon decoded ``target`` records; returns (the time it got there, the scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(metrics_port)
        if metric(text, "cleanpath_flow_export_records_total", protocol="ipfix") >= target:
            return time.monotonic(), text
        if time.monotonic() > deadline:
            return None, text
        time.sleep(0.05)


def run_nfacctd(tmp, stream, records, rcvbuf, packets_per_record):
    """The same flat-out stream to nfacctd (print plugin, appending every
    second); done when the packets it printed add up to what was sent (or
    its CPU has been still for 5 s: then ``complete`` says what it kept)."""
    binary = shutil.which("nfacctd", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if binary is None:
        return {"skipped": "nfacctd not found (apt-get install pmacct)"}
    port = free_port(socket.SOCK_DGRAM)
    out = os.path.join(tmp, "nfacctd.csv")
    conf = os.path.join(tmp, "nfacctd.conf")
    with open(conf, "w") as fh:
        fh.write(f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_pipe_size: {rcvbuf}\n"
                 f"plugins: print\naggregate: src_host, dst_host, src_port, dst_port, proto\n"
                 f"print_output: csv\nprint_output_file: {out}\nprint_output_file_append: true\n"
                 f"print_refresh_time: 1\nplugin_buffer_size: 1048576\nplugin_pipe_size: {rcvbuf}\n")
    proc = subprocess.Popen([binary, "-f", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                     # nfacctd prints no ready line; its socket is bound within this
    cpu0 = proc_cpu(proc.pid)
    grams, sent = send(stream, port, records)
    expected = round(sent * packets_per_record)
    last, still, printed = proc_cpu(proc.pid), 0, 0
    while still < 10 and printed < expected:
        time.sleep(0.5)
        now = proc_cpu(proc.pid)
        still = still + 1 if now - last < 0.01 else 0
        last = now
        printed = _printed_packets(out)
    cpu = last - cpu0
    rss = peak_rss_mib(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:       # its plugins may hold it past SIGTERM
        proc.kill()
        proc.wait(timeout=10)
    return {"datagrams": grams, "records": sent, "cpu_seconds": round(cpu, 2),
            "records_per_cpu_second": round(sent / cpu) if cpu else None, "peak_rss_mib": round(rss, 1),
            "complete": round(printed / expected, 4) if expected else None}


def _printed_packets(path):
    total = 0
    try:
        with open(path) as fh:
            for line in fh:
                cells = line.rstrip("\n").split(",")
                if len(cells) >= 7 and cells[5].isdigit():
                    total += int(cells[5])
    except OSError:
        pass
    return total


def _raised_rmem_max(size):
    """net.core.rmem_max at least ``size`` for the run (root), so every
    collector can have the buffer it asks for; returns the old value to restore."""
    path = "/proc/sys/net/core/rmem_max"
    try:
        old = int(open(path).read())
        if old < size:
            with open(path, "w") as fh:
                fh.write(str(size))
        return old
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default=os.path.join(HERE, "out", "bench-1000000-20000.pcap"))
    ap.add_argument("--sustain-seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=20000.0)
    ap.add_argument("--records", type=int, default=600_000)
    ap.add_argument("--rcvbuf", type=int, default=256 << 20)
    args = ap.parse_args()
    if not os.path.exists(args.capture):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), args.capture], check=True)
    from export import exported
    grams, _port = exported(args.capture, 10)
    replay = Replayer(grams)
    print(f"softflowd: {len(grams)} IPFIX datagrams, {replay.per_pass:,} records per pass", flush=True)
    result = {"capture": os.path.basename(args.capture), "records_per_pass": replay.per_pass}
    with tempfile.TemporaryDirectory() as tmp:
        port, metrics_port = free_port(socket.SOCK_DGRAM), free_port()
        daemon = start_daemon(tmp, port, metrics_port, args.rcvbuf)
        stream = replay.datagrams()
        try:
            total = 0
            sustained = int(args.rate * args.sustain_seconds)
            grams_sent, sent = send(stream, port, sustained, rate=args.rate)
            total += sent
            _at, text = wait_records(metrics_port, total)
            result["sustained"] = {
                "rate": args.rate, "seconds": args.sustain_seconds, "records_sent": sent,
                "records_decoded": int(metric(text, "cleanpath_flow_export_records_total", protocol="ipfix")),
                "kernel_drops": int(metric(text, "cleanpath_capture_dropped_packets_total")),
                "sequence_gaps": int(metric(text, "cleanpath_flow_export_sequence_gaps_total")),
                "datagrams_sent": grams_sent,
                "datagrams_ok": int(metric(text, "cleanpath_flow_export_packets_total", protocol="ipfix",
                                           result="ok"))}
            print(f"sustained {args.rate:,.0f} records/s for {args.sustain_seconds:.0f} s: "
                  f"{json.dumps(result['sustained'])}", flush=True)
            cpu0 = proc_cpu(daemon.pid)
            started = time.monotonic()
            grams_sent, sent = send(stream, port, args.records)
            total += sent
            done, text = wait_records(metrics_port, total)
            cpu = proc_cpu(daemon.pid) - cpu0
            result["daemon"] = {
                "records": sent, "datagrams": grams_sent,
                "wall_seconds": round(done - started, 2) if done else None,
                "records_per_second": round(sent / (done - started)) if done else None,
                "cpu_seconds": round(cpu, 2), "records_per_cpu_second": round(sent / cpu) if cpu else None,
                "kernel_drops": int(metric(text, "cleanpath_capture_dropped_packets_total")),
                "open_flows": int(metric(text, "cleanpath_active_flows")),
                "peak_rss_mib": round(peak_rss_mib(daemon.pid), 1)}
            print(f"daemon, flat out: {json.dumps(result['daemon'])}", flush=True)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        packets_per_record = replay.packets / replay.per_pass
        old = _raised_rmem_max(args.rcvbuf)
        try:
            result["nfacctd"] = run_nfacctd(tmp, stream, args.records, args.rcvbuf, packets_per_record)
        finally:
            if old is not None:
                with open("/proc/sys/net/core/rmem_max", "w") as fh:
                    fh.write(str(old))
        print(f"nfacctd, flat out: {json.dumps(result['nfacctd'])}", flush=True)
    ours, theirs = result["daemon"].get("records_per_cpu_second"), result["nfacctd"].get("records_per_cpu_second")
    if ours and theirs:
        result["ratio_daemon_to_nfacctd_per_cpu_second"] = round(ours / theirs, 3)
        print(f"records per CPU second, daemon / nfacctd: {ours / theirs:.2f}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "export_live.json"), "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
