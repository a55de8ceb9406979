#!/usr/bin/env python3
"""Generate the demo data shipped in ``verifier/demo/`` (``verifier audit --demo``).

Everything here is invented for the demo, except public facts about who
announces a few well-known prefixes (Google, Cloudflare, China Telecom), which
the demo ASN database records in GeoLite2-ASN shape. The scene:

- ``embassy-lan`` (198.51.100.0/24, 2001:db8:100::/48, VLAN 20) reaches the
  Internet through a Cisco router listed in the inventory, behind a Cisco
  switch declared as the segment device of VLAN 20: every flow CLEAN, the
  zone CERTIFIED;
- ``consular-wifi`` (203.0.113.0/25, VLAN 30) leaves through a router whose
  MAC carries a Huawei OUI (attributed from the IEEE registry data), and one
  guest talks to a China Telecom address: VIOLATION;
- the border router's RIB (``demo-rib.mrt``, TABLE_DUMP_V2) holds the
  embassy ISP's routes (peer 192.0.2.1, AS64500: clean carriers; Fastly's
  /16 crosses AS4134 but the more specific /24 the embassy reaches does not)
  and the guest ISP's (peer 192.0.2.9, AS64511, chosen for consular-wifi),
  whose route to Cloudflare crosses China Unicom (AS4837): a transit-network
  violation of the consular zone.

Run: ``python scripts/make_demo.py`` (needs ``pip install mmdb-writer``).
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from verifier.craft import PcapWriter, ether, icmp, ipv4, ipv6, tcp, udp, ETH_IPV4, ETH_IPV6  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "verifier", "demo")

EMBASSY_GW = "00:00:0c:9f:f0:14"     # Cisco OUI; also in the inventory
CONSULAR_GW = "00:18:82:3a:10:01"    # Huawei Technologies OUI
HOSTS = {"198.51.100.21": "d4:be:d9:10:00:21", "198.51.100.22": "d4:be:d9:10:00:22",   # Dell
         "2001:db8:100::21": "d4:be:d9:10:00:21"}
GUESTS = {"203.0.113.40": "3c:22:fb:00:00:40", "203.0.113.41": "f6:11:22:33:44:41"}   # Apple, randomised
REMOTES = {"8.8.8.8": 53, "1.1.1.1": 443, "2001:4860:4860::8888": 443, "202.97.33.5": 443, "151.101.1.69": 443}

ASN_DB = [("8.8.8.0/24", 15169, "Google LLC"), ("1.1.1.0/24", 13335, "Cloudflare, Inc."),
          ("151.101.0.0/16", 54113, "Fastly, Inc."), ("202.97.0.0/16", 4134, "CHINANET-BACKBONE"),
          ("2001:4860::/32", 15169, "Google LLC")]


def conversation(w, ts, local, lmac, gw, remote, dport, vlan, rounds, proto="tcp", sport=None):
    sport = sport or random.randint(32768, 60999)
    v6 = ":" in local
    for i in range(rounds):
        if proto == "tcp":
            up, down = tcp(sport, dport, b"x" * 60, seq=i + 1), tcp(dport, sport, b"y" * 400, seq=i + 1)
            nxt = 6
        else:
            up, down = udp(sport, dport, b"q" * 40), udp(dport, sport, b"r" * 120)
            nxt = 17
        for src, dst, smac, dmac, l4 in ((local, remote, lmac, gw, up), (remote, local, gw, lmac, down)):
            if v6:
                frame = ether(dmac, smac, ETH_IPV6, ipv6(src, dst, nxt, l4), vlans=(vlan,))
            else:
                frame = ether(dmac, smac, ETH_IPV4, ipv4(src, dst, nxt, l4), vlans=(vlan,))
            w.write(ts, frame)
            ts += 0.013
        ts += 0.4
    return ts


def main():
    random.seed(20261121)
    start = 1_795_000_000.0             # 2026-11-18T11:06:40Z
    path = os.path.join(OUT, "demo.pcap")
    with PcapWriter(path) as w:
        ts = start
        for host, hmac in HOSTS.items():
            for remote, port in REMOTES.items():
                if (":" in host) != (":" in remote) or remote.startswith("202.97"):
                    continue
                ts = conversation(w, ts, host, hmac, EMBASSY_GW, remote, port, 20, 6,
                                  proto="udp" if port == 53 else "tcp")
        for guest, gmac in GUESTS.items():
            for remote in ("1.1.1.1", "202.97.33.5", "151.101.1.69"):
                ts = conversation(w, ts, guest, gmac, CONSULAR_GW, remote, REMOTES[remote], 30, 5)
        # A router on the consular path answers a traceroute probe: an ICMP
        # time-exceeded that quotes the guest's UDP probe.
        probe = ipv4("203.0.113.40", "1.1.1.1", 17, udp(33434, 33435, b"p" * 12), ttl=1)
        w.write(ts, ether(CONSULAR_GW, "3c:22:fb:00:00:40", ETH_IPV4, probe, vlans=(30,)))
        w.write(ts + 0.002, ether("3c:22:fb:00:00:40", CONSULAR_GW, ETH_IPV4,
                                  ipv4("203.0.113.1", "203.0.113.40", 1, icmp(11, 0, probe[:28])[:4] + bytes(4)
                                       + probe[:28]), vlans=(30,)))
    with open(os.path.join(OUT, "inventory.yaml"), "w") as fh:
        fh.write(INVENTORY)
    with open(os.path.join(OUT, "policy.yaml"), "w") as fh:
        fh.write(POLICY)
    write_asn_db(os.path.join(OUT, "demo-asn.mmdb"))
    write_rib(os.path.join(OUT, "demo-rib.mrt"), start)
    print("wrote", OUT)


# The border router's routes: (prefix, AS path) per peer. Documentation ASNs for the two ISPs.
RIB = {("192.0.2.1", 64500): [("8.8.8.0/24", (64500, 3356, 15169)), ("1.1.1.0/24", (64500, 13335)),
                              ("151.101.0.0/16", (64500, 4134, 54113)), ("151.101.1.0/24", (64500, 1299, 54113)),
                              ("202.97.0.0/16", (64500, 4134)), ("2001:4860::/32", (64500, 6939, 15169))],
       ("192.0.2.9", 64511): [("8.8.8.0/24", (64511, 15169)), ("1.1.1.0/24", (64511, 4837, 13335)),
                              ("151.101.0.0/16", (64511, 54113)), ("202.97.0.0/16", (64511, 4134)),
                              ("2001:4860::/32", (64511, 15169))]}


def write_rib(path, when):
    import ipaddress
    from verifier.bgp.aspath import AS_SEQUENCE
    from verifier.bgp.write import MrtWriter
    peers = list(RIB)
    routes = {}
    for index, (addr, _asn) in enumerate(peers):
        for prefix, path_ in RIB[(addr, _asn)]:
            routes.setdefault(prefix, []).append((index, ((AS_SEQUENCE, path_),), ipaddress.ip_address(addr).packed))
    with MrtWriter(path, peers=[(ipaddress.ip_address(a).packed, asn) for a, asn in peers], when=when) as w:
        for prefix in sorted(routes, key=lambda p: (":" in p, ipaddress.ip_network(p))):
            net = ipaddress.ip_network(prefix)
            w.rib(net.network_address.packed, net.prefixlen, routes[prefix])


def write_asn_db(path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Demo-ASN",
                        description="clean-path verifier demo ASN data (GeoLite2-ASN shape)")
    for prefix, asn, org in ASN_DB:
        writer.insert_network(IPSet([prefix]), {"autonomous_system_number": asn,
                                                "autonomous_system_organization": org})
    writer.to_db_file(path)


INVENTORY = """\
# Demo inventory (invented): what the operator knows about its own gear.
devices:
  - name: embassy-gw1
    vendor: cisco
    model: ISR 4451
    site: demo-embassy
    role: router
    macs: ["00:00:0c:9f:f0:14"]
    ips: [198.51.100.1]
  - name: embassy-core-sw
    vendor: cisco
    model: Catalyst 9300
    site: demo-embassy
    role: switch
    interfaces: [{vlan: 20}]
"""

POLICY = """\
# Demo policy for `verifier audit --demo` (see rules/default-policy.yaml for
# the commented starting point).
version: 1
vendors:
  trusted:   [ericsson, nokia, cisco, juniper, arista, samsung, dell, apple]
  untrusted: [huawei, zte]
networks:
  untrusted_asns: [4134, 4809, 4837, 9808, 9929]
  default: trusted
bgp:
  peer: 192.0.2.1              # the embassy ISP's routes decide (demo-rib.mrt)
zones:
  embassy-lan:
    prefixes: [198.51.100.0/24, 2001:db8:100::/48]
    vlans: [20]
  consular-wifi:
    prefixes: [203.0.113.0/25]
    vlans: [30]
    bgp: {peer: 192.0.2.9}     # the guests leave through another ISP
rules:
  - name: embassy-clean-path
    zone: embassy-lan
    require: clean-path
    kinds: [l2-neighbor, segment-device, transit-network, remote-network]
    on_unattributed: unverified
  - name: no-untrusted-vendors
    zone: any
    deny_vendors: [huawei, zte]
  - name: no-prc-carriers
    zone: consular-wifi
    deny_asns: [4134, 4837, 9808]
exceptions:
  - rule: embassy-clean-path
    match: {remote: 192.0.2.10/32, port: 53}
    reason: "local ISP resolver, ticket NOC-1234"
    expires: 2026-06-30
"""

if __name__ == "__main__":
    main()
