#!/usr/bin/env python3
"""Flow-export decoding rate: IPFIX, NetFlow v9 and v5 records per second.

    python bench/export.py [--capture bench/out/bench-1000000-20000.pcap] [--records 1000000]

softflowd (Debian softflowd) exports the capture (every flow expired at its
end) to a local socket, in each version; its datagrams are decoded by our
``Collector`` again and again (templates known after the first pass) until
``--records`` records, on one core, and read once by tshark's cflow
dissector (``-T fields``, the same datagrams in a pcap) as the peer measured
in the same run. Issue 18's target: decoding >= 150,000 records/s per core.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def exported(capture, version):
    softflowd = shutil.which("softflowd", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if softflowd is None:
        sys.exit("softflowd not found (apt-get install softflowd)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    port = sock.getsockname()[1]
    subprocess.run([softflowd, "-r", capture, "-n", f"127.0.0.1:{port}", "-v", str(version), "-T", "ether", "-6",
                    "-d", "-m", "1000000"], check=True, capture_output=True)
    grams = []
    while True:
        try:
            grams.append(sock.recvfrom(65535)[0])
        except socket.timeout:
            return grams, port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default=os.path.join(HERE, "out", "bench-1000000-20000.pcap"))
    ap.add_argument("--records", type=int, default=1_000_000)
    args = ap.parse_args()
    if not os.path.exists(args.capture):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), args.capture], check=True)
    from verifier.craft import ETH_IPV4, PcapWriter, ether, ipv4, udp
    from verifier.export.decode import Collector
    for version in (10, 9, 5):
        grams, port = exported(args.capture, version)
        collector = Collector()
        per_pass = sum(len(collector.datagram(g, b"\x7f\0\0\x01", 0.0)) for g in grams)   # templates learned
        passes = max(1, args.records // max(1, per_pass))
        started = time.perf_counter()
        for k in range(passes):
            for g in grams:
                collector.datagram(g, b"\x7f\0\0\x01", 1.0 + k)
        ours = passes * per_pass / (time.perf_counter() - started)
        line = f"v{version}: {len(grams):,} datagrams, {per_pass:,} records a pass; ours {ours:,.0f} records/s"
        if shutil.which("tshark"):
            with tempfile.TemporaryDirectory() as tmp:
                pcap = os.path.join(tmp, "export.pcap")
                with PcapWriter(pcap) as w:
                    for k, g in enumerate(grams):
                        w.write(1.0 + k, ether("02:00:00:00:00:01", "02:00:00:00:00:02", ETH_IPV4,
                                               ipv4("192.0.2.7", "192.0.2.8", 17, udp(40000, port, g))))
                started = time.perf_counter()
                subprocess.run(["tshark", "-n", "-r", pcap, "-d", f"udp.port=={port},cflow", "-T", "fields",
                                "-e", "cflow.srcaddr", "-e", "cflow.packets"], check=True, stdout=subprocess.DEVNULL)
                theirs = per_pass / (time.perf_counter() - started)
            line += f", tshark {theirs:,.0f} records/s (ours {ours / theirs:.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
