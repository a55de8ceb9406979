#!/usr/bin/env python3
"""Generate the benchmark capture: 1,000,000 packets, ~20,000 flows.

Mix: 80 % IPv4 / 20 % IPv6, two thirds TCP / one third UDP, a quarter of the
flows behind an 802.1Q tag, gateway and host MACs with real vendor OUIs
(Cisco, Huawei, Juniper, Arista, ZTE, Nokia, Dell, Apple), remote ends in the
prefixes of the demo ASN database. Flow sizes are heavy-tailed (Zipf-like)
and packets come in short trains, as on a real link; frames are written with
a 128-byte snap length and their true wire length (``tcpdump -s 128``).

With ``--lab`` every address is in a documentation range (remote ends in
192.0.2.0/24, 203.0.113.0/24, 2001:db8:203::/48): the capture that
bench/live.py replays onto a lab veth.

With ``--tunnelled F`` a share F of the flows is carried in tunnels, half
GTP-U (with a PDU Session Container) between a gNB and a UPF, half VXLAN
between two VTEPs (outer addresses in 192.0.2.0/24).

Usage: python bench/gen_pcap.py OUT.pcap [--packets N] [--flows N] [--seed N] [--lab] [--tunnelled F]
"""

import argparse
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from verifier.craft import ETH_IPV4, ETH_IPV6, ether, gtpu, ipv4, ipv6, tcp, udp, vxlan  # noqa: E402

GATEWAYS = ["00:00:0c:9f:f0:01", "00:18:82:3a:10:01", "00:05:85:00:00:01", "00:1c:73:00:00:01",
            "00:19:c6:00:00:01", "00:1b:c5:00:00:01", "d4:be:d9:00:00:01", "3c:22:fb:00:00:01"]
HOST_OUIS = ["d4:be:d9", "3c:22:fb", "00:00:0c", "00:18:82"]
REMOTE4 = ["8.8.8.", "1.1.1.", "151.101.1.", "202.97.33."]
REMOTE6 = ["2001:4860:4860::"]
LAB_REMOTE4 = ["192.0.2.", "203.0.113."]
LAB_REMOTE6 = ["2001:db8:203::"]
SNAP = 128


def make_flows(n, rnd, remote4=REMOTE4, remote6=REMOTE6, tunnelled=0.0):
    flows = []
    for i in range(n):
        v6 = rnd.random() < 0.2
        proto = 6 if rnd.random() < 2 / 3 else 17
        vlan = (20,) if rnd.random() < 0.25 else ()
        gw = rnd.choice(GATEWAYS)
        host = f"{rnd.choice(HOST_OUIS)}:{i >> 8 & 255:02x}:{i & 255:02x}:{rnd.randrange(256):02x}"
        if v6:
            # Two low groups: 200,000 flows need more than one group's 65,535 (same addresses below that).
            local = f"2001:db8:100::{i >> 16:x}:{i & 0xFFFF:x}"
            remote = rnd.choice(remote6) + f"{rnd.randrange(1, 65535):x}"
        else:
            local, remote = f"198.51.100.{i % 250 + 1}", rnd.choice(remote4) + str(rnd.randrange(1, 255))
        sport, dport = 1024 + (i * 7) % 60000, rnd.choice((443, 80, 53, 123, 8443))
        tunnel = None
        if rnd.random() < tunnelled:
            tunnel = ("gtp" if rnd.random() < 0.5 else "vxlan", 0x1000 + i)
        flows.append((v6, proto, vlan, host, gw, local, remote, sport, dport, tunnel))
    return flows


def frame(flow, reverse, size):
    v6, proto, vlan, host, gw, local, remote, sport, dport, tunnel = flow
    smac, dmac, src, dst, sp, dp = (gw, host, remote, local, dport, sport) if reverse else \
        (host, gw, local, remote, sport, dport)
    l4 = tcp(sp, dp) if proto == 6 else udp(sp, dp)
    body = l4 + bytes(max(0, size - len(l4) - (54 if v6 else 34)))
    packet = ipv6(src, dst, proto, body) if v6 else ipv4(src, dst, proto, body)
    if tunnel is None:
        return ether(dmac, smac, ETH_IPV6 if v6 else ETH_IPV4, packet, vlans=vlan)
    kind, ident = tunnel
    near, far = ("192.0.2.20", "192.0.2.10") if reverse else ("192.0.2.10", "192.0.2.20")
    if kind == "gtp":
        outer = udp(2152, 2152, gtpu(ident * 2 + reverse, packet, qfi=9, uplink=not reverse))
    else:
        inner = ether("02:00:00:00:00:02" if not reverse else "02:00:00:00:00:01",
                      "02:00:00:00:00:01" if not reverse else "02:00:00:00:00:02",
                      ETH_IPV6 if v6 else ETH_IPV4, packet)
        outer = udp(49152 + ident % 16000, 4789, vxlan(ident, inner))
    return ether(dmac, smac, ETH_IPV4, ipv4(near, far, 17, outer), vlans=vlan)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lab", action="store_true", help="documentation-range addresses only")
    ap.add_argument("--tunnelled", type=float, default=0.0, help="share of flows in GTP-U or VXLAN")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    flows = make_flows(args.flows, rnd, *((LAB_REMOTE4, LAB_REMOTE6) if args.lab else (REMOTE4, REMOTE6)),
                       tunnelled=args.tunnelled)
    cum, total = [], 0.0
    for rank in range(len(flows)):               # heavy-tailed popularity
        total += 1.0 / (rank + 1) ** 0.8
        cum.append(total)
    order = list(range(len(flows)))
    cache = {}
    rec = struct.Struct("<IIII")
    ts = 1_795_000_000.0
    written = 0
    # Every flow gets at least one packet; the rest follow popularity.
    firsts = list(range(len(flows)))
    rnd.shuffle(firsts)
    with open(args.out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAP, 1))
        while written < args.packets:
            idx = firsts.pop() if firsts and rnd.random() < 0.3 else rnd.choices(order, cum_weights=cum)[0]
            train = min(args.packets - written, rnd.randint(1, 12))
            for _ in range(train):
                reverse = rnd.random() < 0.45
                size = rnd.choice((64, 64, 90, 576, 1200, 1500))
                key = (idx, reverse, size)
                data = cache.get(key)
                if data is None:
                    full = frame(flows[idx], reverse, size)
                    data = cache[key] = (full[:SNAP], len(full))
                ts += 2e-5
                sec = int(ts)
                fh.write(rec.pack(sec, int((ts - sec) * 1e6), len(data[0]), data[1]) + data[0])
                written += 1
    print(f"wrote {args.out}: {written} packets, {len(flows)} flows")


if __name__ == "__main__":
    main()
