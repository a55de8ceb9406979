"""BGP: the MRT reader against bgpdump, the RIB's longest-prefix match against
a brute force, carriers from AS paths, and flows judged by their carriers."""

import bz2
import gzip
import ipaddress
import json
import random
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from verifier.bgp import aspath
from verifier.bgp.mrt import MrtReader
from verifier.bgp.rib import Rib
from verifier.bgp.write import MrtWriter
from verifier.cli import cli
from verifier.craft import ETH_IPV4, ETH_IPV6, PcapWriter, ether, ipv4, ipv6, tcp
from verifier.errors import DataError

SEQ, SET, CONFED = aspath.AS_SEQUENCE, aspath.AS_SET, aspath.AS_CONFED_SEQUENCE
WHEN = 1_796_000_000


def b(text):
    return ipaddress.ip_address(text).packed


def seq(*asns):
    return ((SEQ, asns),)


def need_bgpdump():
    if shutil.which("bgpdump") is None:
        pytest.skip("needs bgpdump (Debian bgpdump; scripts/test.sh installs it)")


def bgpdump_rows(path):
    """(peer, peer AS, prefix, AS path, ORIGIN, next hop) per route, as bgpdump -m prints them."""
    out = subprocess.run(["bgpdump", "-m", path], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split("|")
        if f[0] == "TABLE_DUMP2_AP":            # ADD-PATH rows carry the path id after the prefix
            del f[6]
        rows.append((f[3], int(f[4]), f[5], f[6], f[7], f[8]))
    return rows


def our_rows(path):
    origins = {0: "IGP", 1: "EGP", 2: "INCOMPLETE"}
    return [(str(ipaddress.ip_address(e.peer.address)), e.peer.asn,
             str(ipaddress.ip_network((e.prefix, e.plen))), aspath.text(e.path), origins.get(e.origin, "?"),
             str(ipaddress.ip_address(e.next_hop)) if e.next_hop else "")
            for e in MrtReader(path).entries()]


def edge_cases(path):
    """Every shape the reader must get right, in one TABLE_DUMP_V2 file and
    one legacy TABLE_DUMP file."""
    peers = [(b("192.0.2.1"), 64500), (b("2001:db8::1"), 64500), (b("192.0.2.9"), 4200000001)]
    with MrtWriter(path, peers=peers, when=WHEN) as w:
        w.rib(b("8.8.8.0"), 24, [(0, seq(64500, 4134, 64501), b("192.0.2.1")),
                                 (2, seq(4200000001, 64501), b("192.0.2.9"))])
        w.rib(b("8.0.0.0"), 8, [(0, seq(64500, 3356, 3356, 3356), b("192.0.2.1"))])          # prepends
        w.rib(b("9.9.0.0"), 16, [(0, ((SEQ, (64500,)), (SET, (4134, 64502))), b("192.0.2.1"))])   # aggregate
        w.rib(b("9.8.0.0"), 15, [(0, ((CONFED, (65001, 65002)), (SEQ, (64500, 64503))), b("192.0.2.1"))])
        w.rib(b("2001:4860::"), 32, [(1, seq(64500, 4809, 64504), b("2001:db8::1"))])
        w.rib(b("2001:4860:0:1::"), 96, [(1, seq(64500, 64504), b("2001:db8::1"))])
        w.rib(b("10.1.0.0"), 23, [(0, seq(64500, 64505), b("192.0.2.1"), 7),
                                  (0, seq(64500, 4134, 64505), b("192.0.2.1"), 8)], addpath=True)
        w.rib(b("0.0.0.0"), 0, [(0, seq(64500), b("192.0.2.1"))])                             # default route
    legacy = str(path) + ".legacy"
    with MrtWriter(legacy, when=WHEN) as w:
        w.legacy(b("11.0.0.0"), 8, b("192.0.2.5"), 23456, seq(23456, 23456, 64506), b("192.0.2.5"),
                 as4_path=seq(65540, 4200000000, 64506))
        w.legacy(b("12.0.0.0"), 8, b("192.0.2.5"), 23456, seq(64507, 64506), b("192.0.2.5"))
    return str(path), legacy


def test_the_reader_agrees_with_bgpdump_record_by_record(tmp_path):
    need_bgpdump()
    for path in edge_cases(tmp_path / "edge.mrt"):
        ours, theirs = our_rows(path), bgpdump_rows(path)
        assert ours == theirs and len(ours) >= 2


def test_compressed_dumps_read_the_same(tmp_path):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    raw = open(path, "rb").read()
    for name, opener in (("edge.mrt.gz", gzip.open), ("edge.mrt.bz2", bz2.open)):
        with opener(tmp_path / name, "wb") as fh:
            fh.write(raw)
        assert our_rows(str(tmp_path / name)) == our_rows(path)


def test_carriers_collapse_prepends_include_sets_and_skip_confederations():
    assert aspath.carriers(seq(64500, 3356, 3356, 3356)) == ((64500,), 3356)
    assert aspath.carriers(((SEQ, (64500,)), (SET, (64502, 4134)))) == ((64500, 4134, 64502), None)
    assert aspath.carriers(((CONFED, (65001,)), (SEQ, (64500, 64503)))) == ((64500,), 64503)
    assert aspath.carriers(seq(64500, 4134, 64500, 64501)) == ((64500, 4134), 64501)     # a loop: once
    assert aspath.carriers(()) == ((), None)
    assert aspath.carriers(seq(64501)) == ((), 64501)


def test_a_received_path_does_not_start_with_the_routers_own_as():
    from verifier.bgp.bmp import _received
    assert _received(seq(64510, 64500, 4134), 64510) == seq(64500, 4134)        # FRR 8.4's prepend, taken off
    assert _received(((SEQ, (64510,)), (SET, (1, 2))), 64510) == ((SET, (1, 2)),)
    assert _received(seq(64500, 64510), 64510) == seq(64500, 64510)            # elsewhere in the path: a loop kept


def test_as4_path_rebuilds_a_two_byte_speakers_path():
    two = seq(64500, 23456, 23456)
    assert aspath.merge_as4(two, seq(4200000000, 4200000001)) == ((SEQ, (64500,)), (SEQ, (4200000000, 4200000001)))
    assert aspath.merge_as4(two, seq(1, 2, 3, 4)) == two              # longer than the path: ignored
    assert aspath.decode(aspath.encode(two), 4) == two


def brute_force(prefixes, addr):
    """The route lookup must give: longest prefix, then shortest path, peer, path id."""
    value = int.from_bytes(addr, "big")
    bits = len(addr) * 8
    best = None
    for net, plen, peer, path, path_id in prefixes:
        if len(net) != len(addr) or (int.from_bytes(net, "big") ^ value) >> (bits - plen) if plen else False:
            continue
        key = (-plen, aspath.length(path), peer, path_id)
        if best is None or key < best[0]:
            best = (key, net, plen, path)
    return None if best is None else (best[1], best[2], best[3])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_longest_prefix_match_agrees_with_a_brute_force(tmp_path, seed):
    rnd = random.Random(seed)
    prefixes = []
    for _ in range(300):
        v6 = rnd.random() < 0.3
        bits = 128 if v6 else 32
        plen = rnd.choice((8, 12, 16, 20, 24, 25, 32) if not v6 else (16, 32, 48, 64, 65, 96, 127, 128))
        top = (0x2001 << 112 | rnd.getrandbits(112)) if v6 else rnd.getrandbits(32)
        if rnd.random() < 0.4 and prefixes:                  # nest inside an earlier prefix
            parent = rnd.choice([p for p in prefixes if len(p[0]) * 8 == bits] or [None])
            if parent is not None and parent[1] < plen:
                mask = (1 << (bits - parent[1])) - 1
                top = (int.from_bytes(parent[0], "big") & ~mask) | (top & mask)
        net = (top >> (bits - plen) << (bits - plen)).to_bytes(bits // 8, "big")
        prefixes.append((net, plen, rnd.randrange(3), seq(*[rnd.randrange(64496, 64512)
                                                            for _ in range(rnd.randint(1, 4))]), rnd.randrange(3)))
    path = str(tmp_path / "random.mrt")
    hops = {4: b("192.0.2.1"), 16: b("2001:db8::1")}
    with MrtWriter(path, peers=[(b(f"192.0.2.{k + 1}"), 64500 + k) for k in range(3)], when=WHEN) as w:
        for net, plen, peer, as_path, path_id in prefixes:
            w.rib(net, plen, [(peer, as_path, hops[len(net)], path_id)], addpath=True)
    rib = Rib.load([path])
    probes = [rnd.getrandbits(32).to_bytes(4, "big") for _ in range(300)]
    probes += [(0x2001 << 112 | rnd.getrandbits(112)).to_bytes(16, "big") for _ in range(100)]
    probes += [net for net, *_ in prefixes]                   # every prefix's first address
    probes += [(int.from_bytes(net, "big") + (1 << (len(net) * 8 - plen)) - 1).to_bytes(len(net), "big")
               for net, plen, *_ in prefixes]                 # and its last
    for addr in probes:
        route = rib.lookup(addr)
        want = brute_force(prefixes, addr)
        got = None if route is None else (route.prefix, route.plen, route.path)
        assert got == want, ipaddress.ip_address(addr)


def test_one_peers_view_chooses_only_that_peers_routes(tmp_path):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    rib = Rib.load([path])
    assert aspath.text(rib.lookup(b("8.8.8.8")).path) == "4200000001 64501"            # the shorter path
    assert aspath.text(rib.lookup(b("8.8.8.8"), b("192.0.2.1")).path) == "64500 4134 64501"
    assert rib.lookup(b("8.8.8.8"), b("203.0.113.1")) is None                         # no such peer
    assert rib.lookup(b("10.1.1.1")).path == seq(64500, 64505)                           # ADD-PATH: shorter
    assert rib.lookup(b("2001:4860:0:1::1")).plen == 96 and rib.lookup(b("2001:4860:0:2::1")).plen == 32
    assert rib.lookup(b("7.7.7.7")).plen == 0                                           # the default route
    assert rib.lookup(b("2001:db9::1")) is None


def test_damaged_records_are_counted_and_the_rest_loads(tmp_path):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    good = open(path, "rb").read()
    bad = str(tmp_path / "bad.mrt")
    with MrtWriter(bad, peers=[(b("192.0.2.1"), 64500)], when=WHEN) as w:
        w.rib(b("8.8.8.0"), 24, [(0, seq(64500, 64501), b("192.0.2.1"))])
        w.rib(b("8.8.9.0"), 24, [(5, seq(64500), b("192.0.2.1"))])                 # no such peer
        w.rib(b("8.8.10.0"), 24, [(0, (), b"", 0, b"\x40\x02\x09\x02\x05\x00")])    # segment past its attribute
        w.rib(b("8.8.11.0"), 33, [(0, seq(64500), b("192.0.2.1"))])                 # /33
        w.rib(b("8.8.13.0"), 24, [])                                                # no routes at all
        w.rib(b("8.8.14.0"), 24, [(0, (), b"", 0, b"\x50\x02\x00")])               # extended length cut
        w.rib(b("8.8.12.0"), 24, [(0, seq(64500, 64502), b("192.0.2.1"))])
    with open(bad, "ab") as fh:
        fh.write(good[:40])                                                         # cut short
    reader = MrtReader(bad)
    routes = list(reader.entries())
    assert [str(ipaddress.ip_network((e.prefix, e.plen))) for e in routes] == ["8.8.8.0/24", "8.8.12.0/24"]
    assert sum(reader.damaged.values()) == 5 and "truncated record" in reader.damaged
    rib = Rib.load([bad])
    assert len(rib) == 2 and rib.lookup(b("8.8.13.1")) is None and rib.lookup(b("8.8.12.1")).plen == 24
    assert sum(rib.dumps[0].damaged.values()) == 5
    with open(tmp_path / "not.mrt", "wb") as fh:
        fh.write(b"hello, this is not MRT")
    with pytest.raises(DataError, match="no MRT record"):
        Rib.load([str(tmp_path / "not.mrt")])
    with pytest.raises(DataError, match="cannot read"):
        Rib.load([str(tmp_path / "missing.mrt")])


# --- judged by carriers -----------------------------------------------------------

POLICY = """\
version: 1
vendors: {trusted: [cisco]}
networks: {untrusted_asns: [4134, 4809]}
zones:
  lan: {prefixes: [198.51.100.0/24, 2001:db8:100::/48]}
rules:
  - {name: clean-carriers, zone: lan, require: clean-path, kinds: [l2-neighbor, transit-network, remote-network]}
"""


def capture(path, remotes):
    with PcapWriter(str(path)) as w:
        for i, remote in enumerate(remotes):
            v6 = ":" in remote
            local = "2001:db8:100::7" if v6 else "198.51.100.7"
            ip = ipv6 if v6 else ipv4
            w.write(1.0 + i, ether("00:00:0c:01:02:03", "00:00:0c:00:00:07", ETH_IPV6 if v6 else ETH_IPV4,
                                   ip(local, remote, 6, tcp(40000 + i, 443))))


def audit(tmp_path, write, dumps, remotes, policy=POLICY):
    cap = tmp_path / "c.pcap"
    capture(cap, remotes)
    args = ["--data-dir", "/nonexistent", "audit", str(cap), "--policy", write("p.yaml", policy),
            "--csv", str(tmp_path / "c.csv"), "--json", str(tmp_path / "c.json")]
    for dump in dumps:
        args += ["--bgp-mrt", dump]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    cert = json.loads((tmp_path / "c.json").read_text()) if (tmp_path / "c.json").exists() else None
    return result, cert


def blamed(cert):
    """destination -> the reasons its violating flow was given."""
    return {v["dst"]: sorted(r["text"] for r in v["reasons"]) for v in cert["violations"]}


def verdicts(tmp_path):
    import csv
    with open(tmp_path / "c.csv") as fh:
        return {row["b"] if row["a"].startswith(("198.51.100.", "2001:db8:100:")) else row["a"]: row["verdict"]
                for row in csv.DictReader(fh)}


def test_a_route_through_an_untrusted_carrier_violates_and_names_it(tmp_path, write):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    result, cert = audit(tmp_path, write, [path], ["8.1.2.3", "9.9.1.1", "2001:4860::5", "10.1.0.9"])
    assert result.exit_code == 1, result.output
    assert verdicts(tmp_path) == {"8.1.2.3": "CLEAN", "9.9.1.1": "VIOLATION", "2001:4860::5": "VIOLATION",
                                  "10.1.0.9": "CLEAN"}
    # an aggregate whose AS_SET holds AS4134; it has no one origin, and no ASN database names one
    assert blamed(cert) == {"9.9.1.1": ["remote-network 9.9.1.1 is unknown", "transit-network AS4134 is untrusted"],
                            "2001:4860::5": ["transit-network AS4809 is untrusted"]}
    path_of = {v["dst"]: v["path"] for v in cert["violations"]}
    kinds = [(el["kind"], el["subject"]) for el in path_of["2001:4860::5"]]
    assert kinds[-3:] == [("transit-network", "AS64500"), ("transit-network", "AS4809"),
                          ("remote-network", "2001:4860::5")]                       # nearest carrier first
    evidence = path_of["2001:4860::5"][-2]["evidence"]
    assert evidence["source"] == "mrt" and evidence["as_path"] == "64500 4809 64504"
    assert evidence["prefix"] == "2001:4860::/32" and "return path is not observed" in evidence["direction"]
    assert path_of["2001:4860::5"][-1]["asn"] == 64504                              # the route's origin
    assert {d["source"] for d in cert["data"]} >= {"mrt"}


def test_no_route_is_never_clean(tmp_path, write):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    no_default = path + ".nodefault"
    with MrtWriter(no_default, peers=[(b("192.0.2.1"), 64500)], when=WHEN) as w:
        w.rib(b("8.0.0.0"), 8, [(0, seq(64500, 3356), b("192.0.2.1"))])
    result, cert = audit(tmp_path, write, [no_default], ["8.1.2.3", "7.7.7.7"])
    assert result.exit_code == 3, result.output                                   # unverified, fail closed
    assert verdicts(tmp_path) == {"8.1.2.3": "CLEAN", "7.7.7.7": "UNVERIFIED"}
    result, _ = audit(tmp_path, write, [], ["8.1.2.3"])                             # no BGP data at all
    assert result.exit_code == 3 and verdicts(tmp_path) == {"8.1.2.3": "UNVERIFIED"}


def test_the_policy_chooses_the_peer_whose_routes_decide(tmp_path, write):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    result, _ = audit(tmp_path, write, [path], ["8.8.8.8"])
    assert verdicts(tmp_path) == {"8.8.8.8": "CLEAN"}                            # best: 4200000001 64501
    chosen = POLICY + "bgp: {peer: 192.0.2.1}\n"
    result, cert = audit(tmp_path, write, [path], ["8.8.8.8"], chosen)
    assert blamed(cert) == {"8.8.8.8": ["transit-network AS4134 is untrusted"]}
    per_zone = POLICY.replace("lan: {prefixes: [198.51.100.0/24, 2001:db8:100::/48]}",
                              "lan: {prefixes: [198.51.100.0/24, 2001:db8:100::/48], bgp: {peer: 192.0.2.1}}")
    result, cert = audit(tmp_path, write, [path], ["8.8.8.8"], per_zone)
    assert result.exit_code == 1
    missing = POLICY + "bgp: {peer: 203.0.113.1}\n"
    result, _ = audit(tmp_path, write, [path], ["8.8.8.8"], missing)
    assert result.exit_code == 2 and "bgp.peer 203.0.113.1 is not a peer of the loaded MRT dumps" in result.output
    result, _ = audit(tmp_path, write, [], ["8.8.8.8"], chosen)                   # no BGP data: no route
    assert result.exit_code == 3 and verdicts(tmp_path) == {"8.8.8.8": "UNVERIFIED"}
    bad = POLICY + "bgp: {peer: not-an-address}\n"
    result, _ = audit(tmp_path, write, [path], ["8.8.8.8"], bad)
    assert result.exit_code == 2 and "p.yaml:8:13: bgp.peer: 'not-an-address' is not an IP address" in result.output


def test_lookup_shows_the_route_and_its_carriers(tmp_path, write):
    path, _ = edge_cases(tmp_path / "edge.mrt")
    policy = write("p.yaml", POLICY + "bgp: {peer: 192.0.2.1}\n")
    result = CliRunner().invoke(cli, ["--data-dir", "/nonexistent", "lookup", "8.8.8.8", "--bgp-mrt", path,
                                      "--policy", policy], catch_exceptions=False)
    assert result.exit_code == 0
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(line.startswith("bgp route  8.8.8.0/24 via 192.0.2.1 AS64500: 64500 4134 64501") for line in lines)
    assert "transit  AS4134       untrusted" in lines and "origin   AS64501      trusted" in lines
    result = CliRunner().invoke(cli, ["--data-dir", "/nonexistent", "lookup", "8.8.8.8", "--json", "--bgp-mrt",
                                      path, "--policy", policy], catch_exceptions=False)
    route = json.loads(result.output)[0]["route"]
    assert route["carriers"] == [{"asn": 64500, "trust": "trusted"}, {"asn": 4134, "trust": "untrusted"}]


# --- real dumps: BIRD 2 in a namespace lab -------------------------------------

LAB_ROUTES = {
    "8.8.8.0/24": [4134, 64501],              # through the untrusted carrier
    "151.101.0.0/16": [4134, 64502],          # the covering route: through it too ...
    "151.101.1.0/24": [64503, 64503, 64502],  # ... but this more specific one is clean (a prepend)
    "1.1.1.0/24": [],                         # the upstream's own: no transit
    "2001:4860::/32": [4809, 64504],          # IPv6, through another untrusted carrier
}


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "addpath"])
def bird_dumps(request, tmp_path_factory):
    from bgplab import BirdLab, require_bird
    require_bird()
    with BirdLab(LAB_ROUTES, tmp_path_factory.mktemp("bird"), addpath=request.param) as lab:
        yield lab.dumps()


def test_birds_dumps_read_as_bgpdump_reads_them(bird_dumps):
    from bgplab import bgpdump
    for path in bird_dumps:
        ours, theirs = our_rows(path), bgpdump_rows(path)
        assert ours == theirs and ours
        assert {row[3] for row in ours} <= {"64500 4134 64501", "64500 4134 64502", "64500 64503 64503 64502",
                                             "64500", "64500 4809 64504"}
        kinds = {line.split("|")[0] for line in bgpdump(path)}
        assert kinds in ({"TABLE_DUMP2"}, {"TABLE_DUMP2_AP"})


def test_flows_are_judged_by_the_carriers_bird_learned(bird_dumps, tmp_path, write):
    remotes = ["8.8.8.8", "151.101.1.5", "151.101.2.5", "1.1.1.1", "2001:4860::8"]
    result, cert = audit(tmp_path, write, list(bird_dumps), remotes)
    assert result.exit_code == 1, result.output
    assert verdicts(tmp_path) == {"8.8.8.8": "VIOLATION", "151.101.1.5": "CLEAN", "151.101.2.5": "VIOLATION",
                                  "1.1.1.1": "CLEAN", "2001:4860::8": "VIOLATION"}
    assert blamed(cert) == {"8.8.8.8": ["transit-network AS4134 is untrusted"],
                            "151.101.2.5": ["transit-network AS4134 is untrusted"],
                            "2001:4860::8": ["transit-network AS4809 is untrusted"]}
    route = [el for el in {v["dst"]: v for v in cert["violations"]}["151.101.2.5"]["path"]
             if el["kind"] == "transit-network"][0]["evidence"]
    assert route["prefix"] == "151.101.0.0/16" and route["peer"] == "192.0.2.1 AS64500"


def test_the_route_origin_and_the_asn_database_both_stay_in_the_evidence(tmp_path, write):
    import os
    mmdb = os.path.join(os.path.dirname(os.path.dirname(__file__)), "verifier", "demo", "demo-asn.mmdb")
    dump = str(tmp_path / "origins.mrt")
    with MrtWriter(dump, peers=[(b("192.0.2.1"), 64500)], when=WHEN) as w:
        w.rib(b("8.8.8.0"), 24, [(0, seq(64500, 15169), b("192.0.2.1"))])         # the database's AS too
        w.rib(b("1.1.1.0"), 24, [(0, seq(64500, 4134), b("192.0.2.1"))])          # another AS announces it
    cap = tmp_path / "c.pcap"
    capture(cap, ["8.8.8.8", "1.1.1.1"])
    out = tmp_path / "c.json"
    policy = write("p.yaml", POLICY.replace("kinds: [l2-neighbor, transit-network, remote-network]",
                                            "kinds: [remote-network]") + "  - {name: all, zone: any, deny_asns: [0]}\n")
    result = CliRunner().invoke(cli, ["--data-dir", "/nonexistent", "audit", str(cap), "--policy", policy,
                                      "--asn-db", mmdb, "--bgp-mrt", dump, "--json", str(out),
                                      "--csv", str(tmp_path / "c.csv")], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    import csv
    with open(tmp_path / "c.csv") as fh:
        agreed = [row for row in csv.DictReader(fh) if row["b"] == "8.8.8.8" or row["a"] == "8.8.8.8"]
    assert agreed[0]["verdict"] == "CLEAN" and agreed[0]["path"].endswith("remote-network=Google LLC")
    cert = json.loads(out.read_text())
    (hijacked,) = cert["violations"]
    remote = hijacked["path"][-1]
    assert hijacked["dst"] == "1.1.1.1" and remote["kind"] == "remote-network" and remote["asn"] == 4134
    assert remote["evidence"]["source"] == "mrt"
    assert remote["evidence"]["asn_db"] == {"asn": 13335, "organization": "Cloudflare, Inc.", "source": "asn"}
    assert [r["text"] for r in hijacked["reasons"]] == ["remote-network 1.1.1.1 is untrusted"]


def test_the_daemon_rejudges_open_flows_when_the_dump_is_replaced(tmp_path):
    import os
    from test_daemon import Daemon, value
    spool = tmp_path / "spool"
    spool.mkdir()
    capture(spool / "a.pcap", ["8.8.8.8"])
    os.utime(spool / "a.pcap", ns=(1, 1_000_000_000))           # settled long ago: read at once
    dump = str(tmp_path / "rib.mrt")

    def write_dump(target, path):
        with MrtWriter(target, peers=[(b("192.0.2.1"), 64500)], when=WHEN) as w:
            w.rib(b("8.8.8.0"), 24, [(0, path, b("192.0.2.1"))])

    write_dump(dump, seq(64500, 15169))
    (tmp_path / "policy.yaml").write_text(POLICY)
    d = Daemon(tmp_path, "--watch-dir", str(spool), "--settle", "3600", "--idle-timeout", "3600",
               "--bgp-mrt", dump)
    try:
        text = d.until(lambda t: value(t, "cleanpath_open_flows", zone="lan", verdict="CLEAN") == 1, "judged clean")
        assert value(text, "cleanpath_bgp_routes", source="mrt") == 1
        assert value(text, "cleanpath_data_build_timestamp_seconds", source="mrt") == WHEN
        write_dump(dump + ".new", seq(64500, 4134, 15169))           # a new dump renamed over the old
        os.replace(dump + ".new", dump)
        text = d.until(lambda t: value(t, "cleanpath_open_flows", zone="lan", verdict="VIOLATION") == 1,
                       "re-judged through AS4134")
        assert value(text, "cleanpath_violations_total", zone="lan", rule="clean-carriers", vendor="other",
                     kind="transit-network") == 1
        with open(dump + ".new", "wb") as fh:
            fh.write(b"not an MRT file")
        os.replace(dump + ".new", dump)
        text = d.until(lambda t: value(t, "cleanpath_policy_reloads_total", result="failure") == 1, "failed reload")
        assert value(text, "cleanpath_bgp_routes", source="mrt") == 1                 # the old routes kept
        assert value(text, "cleanpath_policy_reloads_total", result="success") == 1
    finally:
        _took, stderr = d.stop()
    assert "a --bgp-mrt dump changed on disk: reloading" in stderr and "no MRT record in the file" in stderr


# --- BMP: gobgpd streams its RIB to the daemon -----------------------------------

@pytest.mark.parametrize("router,monitoring", [("gobgp", "post-policy"), ("gobgp", "local-rib"),
                                               ("frr", "post-policy")])
def test_bmp_routes_judge_open_flows_and_their_changes_rejudge_them(tmp_path, router, monitoring):
    import os
    from bgplab import BMP_STATION, BirdLab, require_bird
    from test_daemon import Daemon, free_port, value
    require_bird("gobgpd") if router == "gobgp" else require_bird()
    if router == "frr" and not os.path.exists("/usr/lib/frr/bgpd"):
        pytest.skip("needs FRR (Debian frr; scripts/test.sh installs it)")
    spool = tmp_path / "spool"
    spool.mkdir()
    capture(spool / "a.pcap", ["8.8.8.8", "151.101.1.5", "151.101.2.5", "2001:4860::8"])
    os.utime(spool / "a.pcap", ns=(1, 1_000_000_000))
    (tmp_path / "policy.yaml").write_text(POLICY)
    port = free_port()
    with BirdLab(LAB_ROUTES, tmp_path / "lab", bmp=(port, monitoring, router)) as lab:
        d = Daemon(tmp_path, "--watch-dir", str(spool), "--settle", "3600", "--idle-timeout", "3600",
                   "--bmp", f"{BMP_STATION}:{port}")
        try:
            def open_flows(t):
                return {v: value(t, "cleanpath_open_flows", zone="lan", verdict=v)
                        for v in ("CLEAN", "VIOLATION", "UNVERIFIED")}
            if router == "frr":
                # FRR 8.4 (Debian 12) reports a peer's IPv6 routes as withdrawn in its initial BMP table sync
                # (its IPv4 ones right; later changes right): the route stays unknown, the flow UNVERIFIED,
                # until BIRD sends it again and FRR streams it live.
                import time
                nudged = [0.0]

                def every_route(t):
                    held = value(t, "cleanpath_bgp_routes", source="bmp")
                    if held == len(LAB_ROUTES):
                        return True
                    if held >= 4 and time.monotonic() - nudged[0] > 3:      # the IPv6 session may come up late
                        lab.birdc("up", "reload", "out", "b6")
                        nudged[0] = time.monotonic()
                    return False
                d.until(every_route, "FRR's routes, IPv6 sent again", timeout=60)
            text = d.until(lambda t: open_flows(t) == {"CLEAN": 1, "VIOLATION": 3, "UNVERIFIED": 0},
                           "routes learned over BMP", timeout=60)
            assert value(text, "cleanpath_bgp_routes", source="bmp") == len(LAB_ROUTES)
            assert value(text, "cleanpath_bgp_peers_up") == (2 if monitoring == "post-policy" else 1)
            assert value(text, "cleanpath_bgp_messages_total", type="route-monitoring", result="ok") >= 5
            # 8.8.8.0/24 withdrawn: its flow has no route (fail closed)
            lab.announce({p: path for p, path in LAB_ROUTES.items() if p != "8.8.8.0/24"})
            d.until(lambda t: open_flows(t) == {"CLEAN": 1, "VIOLATION": 2, "UNVERIFIED": 1}, "a withdrawal")
            # a clean more specific route for 151.101.2.0/24 wins over the /16 through AS4134
            lab.announce({**{p: path for p, path in LAB_ROUTES.items() if p != "8.8.8.0/24"},
                          "151.101.2.0/24": [64502]})
            d.until(lambda t: open_flows(t) == {"CLEAN": 2, "VIOLATION": 1, "UNVERIFIED": 1}, "a more specific route")
            # the IPv6 session goes down: its routes with it
            lab.birdc("up", "disable", "b6")
            d.until(lambda t: open_flows(t) == {"CLEAN": 2, "VIOLATION": 0, "UNVERIFIED": 2}, "a peer down")
            # the router goes: every route it reported
            lab.stop_border()
            text = d.until(lambda t: open_flows(t) == {"CLEAN": 0, "VIOLATION": 0, "UNVERIFIED": 4}, "a router gone")
            assert value(text, "cleanpath_bgp_routes", source="bmp") == 0
            if router == "gobgp":
                # it comes back: its state is what its new session reports (IPv6 session up again too)
                lab.birdc("up", "enable", "b6")
                lab.start_gobgp()
                d.until(lambda t: open_flows(t) == {"CLEAN": 2, "VIOLATION": 1, "UNVERIFIED": 1}, "a router back",
                        timeout=60)
        finally:
            _took, stderr = d.stop()
    assert "BMP session from" in stderr and "its routes are withdrawn" in stderr


def bmp_messages(stream):
    """A BMP byte stream cut at its messages' boundaries (their common headers)."""
    import struct
    out, at = [], 0
    while at + 6 <= len(stream):
        (length,) = struct.unpack_from(">I", stream, at + 1)
        if at + length > len(stream):
            break                                   # cut short: the snapshot ended inside it
        out.append(stream[at:at + length])
        at += length
    return out


def test_the_bmp_reader_agrees_with_tsharks_dissector(tmp_path):
    """gobgpd's real BMP stream (pre-, post-policy and Loc-RIB), kept as it
    arrived, read by tshark's BMP and BGP dissectors and by ours."""
    import threading
    import time
    from bgplab import BMP_STATION, BirdLab, require_bird
    from conftest import need_tool
    from test_daemon import free_port
    from verifier.bgp.bmp import Listener
    from verifier.bgp.live import LiveRib
    require_bird("gobgpd")
    need_tool("tshark")
    port, stream, lock = free_port(), bytearray(), threading.Lock()

    def keep(_session, data):
        with lock:
            stream.extend(data)
    rib = LiveRib()
    with BirdLab(LAB_ROUTES, tmp_path / "lab", bmp=(port, "all")) as lab:
        listener = Listener(BMP_STATION, port, rib, log=lambda _t: None, tap=keep)   # gobgpd retries until it is up
        try:
            deadline = time.monotonic() + 60
            while len(rib) < 2 * len(LAB_ROUTES) and time.monotonic() < deadline:   # post-policy and Loc-RIB
                time.sleep(0.2)
            with lock:
                snapshot = bytes(stream)                 # every route announced, none withdrawn yet
            lab.stop_border()
            while listener.sessions and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            listener.close()
    assert len(rib) == 0                                   # the session ended: every route went
    counts = dict(listener.counts)
    assert counts[("route-monitoring", "ignored")] >= len(LAB_ROUTES)   # the pre-policy copies
    pcap = tmp_path / "bmp.pcap"
    seq = 1
    with PcapWriter(str(pcap)) as w:
        for k, msg in enumerate(bmp_messages(snapshot)):
            w.write(1.0 + k * 0.001, ether("02:00:00:00:00:01", "02:00:00:00:00:02", ETH_IPV4,
                                           ipv4("203.0.113.2", BMP_STATION, 6, tcp(40000, port, msg, seq=seq))))
            seq += len(msg)
    fields = ["bmp.peer.type", "bmp.peer.flags.post_policy", "bgp.nlri_prefix", "bgp.mp_reach_nlri_ipv6_prefix",
              "bgp.prefix_length", "bgp.update.path_attribute.as_path_segment.as4"]
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-d", f"tcp.port=={port},bmp", "-Y", "bmp.type == 0",
                          "-T", "fields", "-E", "separator=|"] + sum((["-e", f] for f in fields), []),
                         capture_output=True, text=True, check=True).stdout
    theirs = set()
    for line in out.splitlines():
        ptype, post, v4, v6, plen, asns = line.split("|")
        if not (v4 or v6) or not (ptype == "3" or post in ("1", "True")):
            continue                                       # a withdrawal, or a pre-policy copy
        kind = "loc-rib" if ptype == "3" else "post-policy"
        theirs.add((kind, f"{v4 or v6}/{plen.split(',')[-1]}", " ".join(asns.split(","))))
    # ours: the same stream fed to a session of our own, read back before its end
    from verifier.bgp.bmp import Session
    ours_rib = LiveRib()
    session = Session(ours_rib, b"\xcb\x00\x71\x02", {})
    assert session.feed(b"".join(bmp_messages(snapshot)))
    ours = set()
    for peer in ours_rib.peers:
        for size, tables in peer.tables.items():
            for plen, table in tables.items():
                for net, held in table.items():
                    for path, _hop, _when in held.values():
                        prefix = ipaddress.ip_address((net << (size * 8 - plen)).to_bytes(size, "big"))
                        ours.add((peer.rib, f"{prefix}/{plen}", aspath.text(path)))
    assert ours == theirs and len(ours) == 2 * len(LAB_ROUTES)
