"""Flow exports as a source: sFlow from pmacct's pmacctd read as tshark reads
it; exported records joined into the flow table; the daemon's listeners
(UDP with kernel drops counted, IPFIX over TCP) and its verdicts on
softflowd's and pmacctd's exports of the demo capture against the packet
audit's of the same capture."""

import csv
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest

from test_export import DEMO, archived, basic, collector_socket, ipfix, sbin_tool, softflowd_datagrams, template
from test_daemon import Daemon, free_port, value
from lab import wait_for
from verifier.craft import ETH_IPV4, PcapWriter, ether, ipv4, udp
from verifier.export.decode import IPFIX, Collector
from verifier.export.listen import ExportListeners
from verifier.export.records import FlowRecord
from verifier.export.sflow import SFLOW

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = "192.0.2.1"


def pmacctd_datagrams(capture, plugin, enough, what, tmp_path):
    """What pmacctd sends for ``capture`` with the ``plugin`` configuration
    lines, as a collector socket received it: read until ``enough(grams)``
    (pmacctd keeps running once its savefile is read, ``pcap_savefile_wait``;
    ending it at the file's end raced its plugin)."""
    binary = sbin_tool("pmacctd", "pmacct")
    sock = collector_socket(0.5)
    conf = tmp_path / "pmacctd.conf"
    conf.write_text(f"daemonize: false\npcap_savefile: {capture}\npcap_savefile_wait: true\n"
                    + plugin.format(port=sock.getsockname()[1]))
    proc = subprocess.Popen([binary, "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    grams = []

    def received():
        if proc.poll() is not None:
            raise AssertionError(f"pmacctd exited: {proc.stderr.read()}")
        try:
            grams.append(sock.recv(65535))
        except socket.timeout:
            return False
        return enough(grams)

    try:
        wait_for(received, 60, every=0, what=what)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        sock.close()
    return grams


def pmacctd_sflow_datagrams(capture, samples, tmp_path, rate=1):
    """pmacctd's sfprobe plugin (one packet in ``rate`` sampled), read until
    ``samples`` flow samples came."""
    plugin = (f"plugins: sfprobe\nsfprobe_receiver: 127.0.0.1:{{port}}\nsfprobe_agentip: {AGENT}\n"
              f"sampling_rate: {rate}\n")
    # samples in a datagram: the word after an IPv4 agent's header
    return pmacctd_datagrams(capture, plugin, lambda grams: sum(struct.unpack_from(">I", g, 24)[0] for g in grams)
                             >= samples, f"{samples} sFlow samples from pmacctd", tmp_path)


def padded_demo(tmp_path, after=1.0, pads=1):
    """The demo capture and, after its end, ``pads`` more flows of 40 frames
    (192.0.2.200 -> 192.0.2.201, then from .201, .202, ...), the k-th
    starting ``after`` x k seconds after the demo's last frame: pmacctd's
    sfprobe holds back its last samples (a datagram not yet full), and these
    are the ones held back instead of the demo's own last packets; its
    nfprobe, reading a savefile, ends flows only when its table overfills,
    which enough pads do. Returns (path, demo frames)."""
    path = tmp_path / "demo-padded.pcap"
    data = open(DEMO, "rb").read()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"                    # classic pcap, microseconds, little-endian
    at, last, frames = 24, 0.0, 0
    with PcapWriter(str(path)) as w:
        while at + 16 <= len(data):
            frames += 1
            sec, usec, incl, orig = struct.unpack_from("<IIII", data, at)
            last = sec + usec / 1e6
            w.write(last, data[at + 16:at + 16 + incl], orig)
            at += 16 + incl
        for pad in range(pads):
            src = str(ipaddress.ip_address("192.0.2.200") + pad)
            for k in range(40):
                w.write(last + after * (pad + 1) + k / 100, ether("02:00:00:00:00:0a", "02:00:00:00:00:0b",
                        ETH_IPV4, ipv4(src, "192.0.2.201", 17, udp(9, 9, b"pad"))))
    return str(path), frames


PADDING = ipaddress.ip_address("192.0.2.200").packed


def tshark_samples(grams, tmp_path):
    """Per flow sample tshark's sflow dissector reads: its fields and the
    sampled header's, each field's values outermost first."""
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    pcap = archived(str(tmp_path / "sflow.pcap"), [(g, 6343) for g in grams])
    out = subprocess.run(["tshark", "-n", "-r", pcap, "-d", "udp.port==6343,sflow", "-T", "json"],
                         capture_output=True, text=True, check=True).stdout
    samples = []

    def pairs(items):                # duplicate keys (outer and inner IP) kept in order
        out = {}
        for k, v in items:
            out.setdefault(k, []).append(v)
        return out

    def flat(node, into):
        for k, vs in node.items():
            for v in vs:
                if isinstance(v, dict):
                    flat(v, into)
                else:
                    into.setdefault(k, []).append(v)
        return into

    for packet in json.loads(out, object_pairs_hook=pairs):
        sflow = packet["_source"][0]["layers"][0]["sflow"][0]
        for name, vs in sflow.items():
            if name.startswith("Flow sample"):
                samples.extend(flat(v, {}) for v in vs)
    return samples


def test_pmacctd_sflow_read_as_tshark_reads_it(tmp_path):
    capture, frames = padded_demo(tmp_path)
    grams = pmacctd_sflow_datagrams(capture, frames, tmp_path)
    collector = Collector()
    ours = [r for gram in grams for r in collector.datagram(gram, b"\x7f\x00\x00\x01", 5.0)]
    assert collector.counts == {(SFLOW, "ok"): len(grams)} and collector.gaps[SFLOW] == 0
    theirs = [s for s in tshark_samples(grams, tmp_path) if "ip.src" in s or "ipv6.src" in s]
    assert len(ours) == len(theirs) > 50
    for r, found in zip(ours, theirs):
        # Our decoder's addresses are a tunnel's inner ones (the outer are its tunnel endpoints), and an
        # ICMP error's own (the packet it quotes is its ``quote``): tshark's innermost, or its outermost.
        at = 0 if r.proto in (1, 58) else -1
        s = {k: vs[at] if k.startswith(("ip.", "ipv6.", "tcp.", "udp.")) else vs[0] for k, vs in found.items()}
        assert ipaddress.ip_address(r.src) == ipaddress.ip_address(s.get("ip.src") or s["ipv6.src"])
        assert ipaddress.ip_address(r.dst) == ipaddress.ip_address(s.get("ip.dst") or s["ipv6.dst"])
        assert r.exporter == ipaddress.ip_address(AGENT).packed and r.domain == 0
        assert r.sampling == int(s["sflow.flow_sample.sampling_rate"])
        assert r.octets == int(s["sflow_245.header.frame_length"]) and r.packets == 1
        assert r.src_mac.hex(":") == s["eth.src"] and r.dst_mac.hex(":") == s["eth.dst"]
        if "vlan.id" in s:
            assert r.vlan == int(s["vlan.id"])
        for proto in ("tcp", "udp"):
            if f"{proto}.srcport" in s and r.proto not in (1, 58):     # an ICMP error's are type and code
                assert (r.sport, r.dport) == (int(s[f"{proto}.srcport"]), int(s[f"{proto}.dstport"]))


def audited_flows(tmp_path, capture):
    """The packet audit's flows of ``capture`` with the demo's policy and
    data: {(zone, conversation): verdict} and per-direction packets."""
    from click.testing import CliRunner
    from verifier.cli import cli
    out = tmp_path / "flows.csv"
    demo = os.path.dirname(DEMO)
    CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "audit", capture, "--csv", str(out), "-q",
                             "--policy", os.path.join(demo, "policy.yaml"),
                             "--inventory", os.path.join(demo, "inventory.yaml"),
                             "--asn-db", os.path.join(demo, "demo-asn.mmdb"),
                             "--bgp-mrt", os.path.join(demo, "demo-rib.mrt")], catch_exceptions=False)
    verdicts, packets = {}, {}
    with open(out) as fh:
        for row in csv.DictReader(fh):
            a, b = ipaddress.ip_address(row["a"]).packed, ipaddress.ip_address(row["b"]).packed
            ap, bp, proto = int(row["a_port"]), int(row["b_port"]), int(row["proto"])
            verdicts[(row["zone"], conversation(a, ap, b, bp, proto))] = row["verdict"]
            for key, count in (((a, ap, b, bp, proto), int(row["packets_a_to_b"])),
                               ((b, bp, a, ap, proto), int(row["packets_b_to_a"]))):
                if count:
                    packets[key] = count
    return verdicts, packets


def conversation(a, ap, b, bp, proto):
    return (proto,) + tuple(sorted(((a, ap), (b, bp))))


def test_sflow_at_one_in_one_carries_the_packets_the_audit_counts(tmp_path):
    """Every IP packet of the demo sampled once: per direction, the same
    packet counts as the packet audit's flows (ICMP aside: our decoder reads
    an ICMP error as the flow it quotes, and ICMP's ports are type and code)."""
    capture, frames = padded_demo(tmp_path)
    grams = pmacctd_sflow_datagrams(capture, frames, tmp_path)
    collector = Collector()
    sampled = {}
    for gram in grams:
        for r in collector.datagram(gram, b"\x7f\x00\x00\x01", 5.0):
            if r.proto not in (1, 58) and r.src != PADDING:
                key = (r.src, r.sport, r.dst, r.dport, r.proto)
                sampled[key] = sampled.get(key, 0) + r.packets * r.sampling
    _verdicts, packets = audited_flows(tmp_path, capture)
    audited = {k: n for k, n in packets.items() if k[4] not in (1, 58) and k[0] != PADDING and k[2] != PADDING}
    assert sampled == audited and len(audited) > 15


def record(exporter, src, dst, sport, dport, packets, octets, when, protocol=IPFIX, sampling=1, **extra):
    r = FlowRecord(protocol, ipaddress.ip_address(exporter).packed, 1)
    r.src, r.dst = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    r.sport, r.dport, r.proto, r.packets, r.octets = sport, dport, 6, packets, octets
    r.first = r.last = when
    r.sampling = sampling
    for name, v in extra.items():
        setattr(r, name, v)
    return r


def test_records_join_both_directions_and_every_exporter_without_double_counting(tmp_path):
    from verifier.flows import FlowTable
    from verifier.app import App
    from verifier.attribution.path import PathBuilder
    ended = []
    table = FlowTable(ended.append, idle_timeout=60)
    out = record("192.0.2.1", "198.51.100.10", "203.0.113.5", 40000, 443, 10, 1000, 100.0, sampling=10,
                 in_if=3, out_if=7, next_hop=ipaddress.ip_address("192.0.2.254").packed, next_as=64500)
    back = record("192.0.2.1", "203.0.113.5", "198.51.100.10", 443, 40000, 8, 8000, 101.0, sampling=10,
                  in_if=7, out_if=3, prev_as=64511)
    again = record("192.0.2.2", "198.51.100.10", "203.0.113.5", 40000, 443, 10, 1000, 100.5, protocol=SFLOW)
    owners = [table.add_record(r, 0) for r in (out, back, again)]
    flow = owners[0][0]
    assert all(f is flow for f, _side in owners) and len(table) == 1
    assert [side for _f, side in owners] == [0, 1, 0]
    # Counted once, by the first exporter, scaled by its sampling: the second router saw the same packets.
    assert flow.pkts == (100, 80) and flow.octets == (10000, 80000)
    assert (flow.first, flow.last) == (100.0, 101.0)
    late = record("192.0.2.1", "198.51.100.10", "203.0.113.5", 40000, 443, 1, 100, 200.0)
    assert table.add_record(late, 0)[0] is not flow and ended == [flow]     # past the idle timeout: a new flow

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("devices:\n  - {name: edge-1, vendor: juniper, role: router, ips: [192.0.2.1]}\n"
                         "  - {name: core-2, vendor: huawei, role: router, ips: [192.0.2.2]}\n"
                         "  - {name: floor-3, vendor: zte, role: switch, interfaces: [{exporter: 192.0.2.1, ifindex: 3}]}\n"
                         "  - {name: elsewhere, vendor: cisco, interfaces: [{exporter: 192.0.2.9, ifindex: 3}]}\n")
    app = App(str(tmp_path / "data"))
    attributor = app.attributor(str(inventory), [])
    policy = app.policy([os.path.join(os.path.dirname(DEMO), "policy.yaml")])
    path = PathBuilder(attributor, policy.trust).build(flow, 0, "flow-export")
    hops = [(e.kind, e.subject, e.vendor, e.evidence.source) for e in path]
    assert ("router-hop", "192.0.2.1", "juniper", "ipfix") in hops
    assert ("router-hop", "192.0.2.2", "huawei", "sflow") in hops
    assert ("router-hop", "192.0.2.254", None, "ipfix") in hops          # the next hop its record names
    assert ("transit-network", "AS64500", None, "ipfix") in hops          # bgpNextAdjacentAsNumber
    assert ("transit-network", "AS64511", None, "ipfix") in hops          # bgpPrevAdjacentAsNumber, coming back
    # The switch the inventory says is cabled at edge-1's ifIndex 3 (the one at another exporter is not).
    assert ("segment-device", "floor-3", "zte", "inventory") in hops and "elsewhere" not in {h[1] for h in hops}
    edge = next(e for e in path if e.subject == "192.0.2.1")
    assert edge.evidence.detail["interfaces"] == [{"direction": "a->b", "in": 3, "out": 7},
                                                  {"direction": "b->a", "in": 7, "out": 3}]
    assert edge.evidence.detail["sampling"] == "1 in 10" and edge.evidence.detail["attributed_by"] == "inventory"


def test_ipfix_over_tcp_is_framed_by_message_and_a_broken_stream_is_closed():
    listeners = ExportListeners(ipfix=f"127.0.0.1:{free_port()}", poll_interval=0.05)
    port = listeners.udp[0].address[1]
    messages = [ipfix(0, [(2, template(256, basic_fields()))]),
                ipfix(1, [(256, basic("192.0.2.10", "198.51.100.20", 1234, 80, 3, 300))]),
                ipfix(2, [(256, basic("192.0.2.11", "198.51.100.20", 1235, 80, 4, 400))])]
    stream = b"".join(messages)
    try:
        conn = socket.create_connection(("127.0.0.1", port))
        chunks = listeners.chunks()
        got = []
        for piece in (stream[:7], stream[7:40], stream[40:]):       # split across and inside messages
            conn.sendall(piece)
        wait_for(lambda: got.extend(next(chunks) or ()) or len(got) >= 2, 10, what="two records over TCP")
        assert [(r.sport, r.packets) for r in got] == [(1234, 3), (1235, 4)]
        assert listeners.collector.counts[(IPFIX, "ok")] == 3
        conn.sendall(b"\x00\x09garbage-not-ipfix")
        wait_for(lambda: next(chunks) is None and (IPFIX, "malformed") in listeners.collector.counts, 10,
                 what="the broken stream counted")
        conn.settimeout(5)
        assert conn.recv(10) == b""                                 # closed by us
        conn.close()
    finally:
        listeners.close()


def basic_fields():
    from verifier.export.records import DST_PORT, DST_V4, OCTETS, PACKETS, PROTOCOL, SRC_PORT, SRC_V4
    return [(SRC_V4, 4), (DST_V4, 4), (SRC_PORT, 2), (DST_PORT, 2), (PROTOCOL, 1), (PACKETS, 4), (OCTETS, 4)]


def test_kernel_drops_are_counted_from_so_rxq_ovfl():
    listeners = ExportListeners(netflow=f"127.0.0.1:{free_port()}", rcvbuf=4096, poll_interval=0.05)
    udp_listener = listeners.udp[0]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        gram = struct.pack(">HHIIIIBBH", 5, 0, 0, 0, 0, 0, 0, 0, 0)      # a v5 header of no records
        for _ in range(2000):                                       # far past a 4 KiB buffer, unread
            sender.sendto(gram, udp_listener.address)
        chunks = listeners.chunks()
        name = f"netflow:{udp_listener.address[1]}"
        wait_for(lambda: next(chunks) is None, 10, what="the queue read")
        assert listeners.drops()[name] == 0       # a datagram tells the drops before it queued: none yet
        sender.sendto(gram, udp_listener.address)   # the next one, queued after the drops, tells them
        wait_for(lambda: next(chunks) is None and listeners.received()[name] > 0 and listeners.drops()[name], 10,
                 what="the kernel's drop count")
        assert listeners.drops()[name] + listeners.received()[name] == 2001
    finally:
        sender.close()
        listeners.close()


def test_the_daemon_judges_exported_flows_as_the_packet_audit_judges_packets(tmp_path):
    """softflowd's IPFIX and pmacctd's sFlow of the demo capture, into one
    daemon listening for both: every conversation the audit judges (ICMP
    aside, see above) gets the same verdict per zone, and each path names
    both exporters as router hops. The exporters are in the inventory (an
    exporter nobody vouches for is an unattributed router-hop: fail closed)."""
    demo = os.path.dirname(DEMO)
    capture, frames = padded_demo(tmp_path)
    ipfix_grams, _port = softflowd_datagrams(capture, 10)
    sflow_grams = pmacctd_sflow_datagrams(capture, frames, tmp_path)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(open(os.path.join(demo, "inventory.yaml")).read()
                         + "  - {name: edge-router, vendor: juniper, role: router, ips: [127.0.0.1]}\n"
                         + f"  - {{name: access-switch, vendor: arista, role: switch, ips: [{AGENT}]}}\n")
    ipfix_at, sflow_at = free_port(), free_port()
    d = Daemon(tmp_path, "--ipfix", f"127.0.0.1:{ipfix_at}", "--sflow", f"127.0.0.1:{sflow_at}",
               "--inventory", str(inventory), "--asn-db", os.path.join(demo, "demo-asn.mmdb"),
               "--bgp-mrt", os.path.join(demo, "demo-rib.mrt"),
               policy_text=open(os.path.join(demo, "policy.yaml")).read())
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for gram in ipfix_grams:
            sender.sendto(gram, ("127.0.0.1", ipfix_at))
        d.until(lambda t: value(t, "cleanpath_flow_export_packets_total", protocol="ipfix", result="ok")
                == len(ipfix_grams), "the IPFIX read")
        for gram in sflow_grams:
            sender.sendto(gram, ("127.0.0.1", sflow_at))
        text = d.until(lambda t: value(t, "cleanpath_flow_export_packets_total", protocol="sflow", result="ok")
                       == len(sflow_grams), "the sFlow read")
    finally:
        sender.close()
        _took, log = d.stop()
    assert "listening for ipfix on udp" in log and "listening for sflow on udp" in log
    assert value(text, "cleanpath_flow_export_exporters", protocol="ipfix") == 1
    assert value(text, "cleanpath_flow_export_sequence_gaps_total", protocol="sflow") == 0
    assert value(text, "cleanpath_flow_export_last_datagram_timestamp_seconds", exporter="edge-router") > 0
    ended = [e for e in d.events_list() if e["phase"] == "ended"]
    judged = {}
    for e in ended:
        if e["proto"] in ("icmp", "ipv6-icmp") or e["src"] == "192.0.2.200":
            continue                 # ICMP: see above; the padding: pmacctd lost its samples at the end
        a, b = ipaddress.ip_address(e["src"]).packed, ipaddress.ip_address(e["dst"]).packed
        judged[(e["zone"], conversation(a, e["sport"], b, e["dport"], PROTOS[e["proto"]]))] = e["verdict"]
        exporters = {el["subject"] for el in e["path"] if el["kind"] == "router-hop"}
        assert {"127.0.0.1", AGENT} <= exporters, e["path"]
    verdicts, _packets = audited_flows(tmp_path, capture)
    audited = {k: v for k, v in verdicts.items() if k[1][0] not in (1, 58) and k[1][1][0] != PADDING}
    assert judged == audited and len(audited) >= 14
    assert {"CLEAN", "VIOLATION"} <= set(audited.values())          # clean and violating paths alike


PROTOS = {"tcp": 6, "udp": 17}


def test_an_audit_of_archived_exports_judges_their_flows_as_the_packet_audit(tmp_path):
    """The datagrams softflowd (IPFIX, port 4739) and pmacctd (sFlow, 6343)
    sent for the demo capture, archived in a pcap, audited: their records
    are judged as the packets were, and the certificate says what the
    exports held."""
    capture, frames = padded_demo(tmp_path)
    ipfix_grams, _port = softflowd_datagrams(capture, 10)
    sflow_grams = pmacctd_sflow_datagrams(capture, frames, tmp_path)
    archive = archived(str(tmp_path / "exports.pcap"), [(g, 4739) for g in ipfix_grams]
                       + [(g, 6343) for g in sflow_grams], start=1_790_000_000.0)
    demo = os.path.dirname(DEMO)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(open(os.path.join(demo, "inventory.yaml")).read()
                         + "  - {name: edge-router, vendor: juniper, role: router, ips: [192.0.2.7]}\n"
                         + f"  - {{name: access-switch, vendor: arista, role: switch, ips: [{AGENT}]}}\n")
    out, cert_path = tmp_path / "exports.csv", tmp_path / "exports.json"
    done = subprocess.run([sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "data"), "audit", archive,
                           "--csv", str(out), "--json", str(cert_path), "-q",
                           "--policy", os.path.join(demo, "policy.yaml"), "--inventory", str(inventory),
                           "--asn-db", os.path.join(demo, "demo-asn.mmdb"),
                           "--bgp-mrt", os.path.join(demo, "demo-rib.mrt")], capture_output=True, text=True,
                          cwd=os.path.dirname(HERE))
    assert done.returncode in (0, 1, 3), done.stderr
    judged = {}
    with open(out) as fh:
        for row in csv.DictReader(fh):
            a, b = ipaddress.ip_address(row["a"]).packed, ipaddress.ip_address(row["b"]).packed
            proto = int(row["proto"])
            if row["interface"] != "flow-export" or proto in (1, 58) or PADDING in (a, b):
                continue              # the datagrams' own flow (192.0.2.7 -> .8), ICMP, the padding: see above
            judged[(row["zone"], conversation(a, int(row["a_port"]), b, int(row["b_port"]), proto))] = row["verdict"]
            assert "router-hop=juniper" in row["path"] and "router-hop=arista" in row["path"], row["path"]
    verdicts, _packets = audited_flows(tmp_path, capture)
    audited = {k: v for k, v in verdicts.items() if k[1][0] not in (1, 58) and k[1][1][0] != PADDING}
    assert judged == audited and len(audited) >= 14
    section = json.loads(cert_path.read_text())["flow_export"]
    assert section["ports"] == [2055, 4739, 6343]
    assert section["datagrams"] == {"ipfix": {"ok": len(ipfix_grams)}, "sflow": {"ok": len(sflow_grams)}}
    assert section["sequence_gaps"] == {} and section["records"]["sflow"] >= frames - 10
    assert {(e["protocol"], e["address"]) for e in section["exporters"]} == {("ipfix", "192.0.2.7"),
                                                                             ("sflow", "192.0.2.7")}


def test_templates_and_sampling_survive_a_restart(tmp_path):
    """A restarted daemon decodes an exporter's data at once: what its
    collector learnt is saved when the listeners stop, and loaded when they start."""
    path = str(tmp_path / "flow-export" / "state.json")
    first = ExportListeners(ipfix=f"127.0.0.1:{free_port()}", poll_interval=0.05, state_path=path)
    collector = first.collector
    collector.datagram(ipfix(0, [(2, template(256, basic_fields()))]), b"\xc0\x00\x02\x07", 100.0)
    collector.exporter(b"\xc0\x00\x02\x07", 7, IPFIX).sampling[None] = 100
    chunks = first.chunks()
    assert next(chunks) is None
    first.close()
    assert list(chunks) == [] and os.path.exists(path)       # the reading ended, and saved on its way out
    logged = []
    second = ExportListeners(ipfix=f"127.0.0.1:{free_port()}", poll_interval=0.05, state_path=path,
                             log=logged.append)
    try:
        records = second.collector.datagram(ipfix(1, [(256, basic("192.0.2.10", "198.51.100.20", 1234, 80, 3, 300))]),
                                            b"\xc0\x00\x02\x07", 200.0)
        assert [(r.sport, r.packets, r.sampling) for r in records] == [(1234, 3, 100)]
        assert logged == [f"1 flow-export template(s) restored from {path}"]
    finally:
        second.close()
    with open(path, "w") as fh:
        fh.write("{not json")
    logged.clear()
    third = ExportListeners(ipfix=f"127.0.0.1:{free_port()}", state_path=path, log=logged.append)
    third.close()
    assert len(logged) == 1 and logged[0].startswith("flow-export state not loaded")


def test_prometheus_runs_every_flow_export_panel_and_alert_against_the_daemon(tmp_path):
    """A real Prometheus scrapes a daemon fed softflowd's IPFIX, with
    deploy/prometheus/rules.yml loaded: every flow-export query of the
    dashboard and every operand of the flow-export alerts returns data (the
    netns lab, tests/test_lab.py, runs the rest against a capture daemon)."""
    from conftest import need_tool
    from test_lab import FLOW_EXPORT, Prometheus, alert_expressions, dashboard_expressions, split_operands
    need_tool("prometheus")
    grams, _port = softflowd_datagrams(DEMO, 10)
    at = free_port()
    d = Daemon(tmp_path, "--ipfix", f"127.0.0.1:{at}", policy_text=open(os.path.join(os.path.dirname(DEMO),
                                                                                      "policy.yaml")).read())
    prom = None
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        prom = Prometheus(str(tmp_path), [f"127.0.0.1:{d.port}"], f"127.0.0.1:{free_port()}")
        for gram in grams:
            sender.sendto(gram, ("127.0.0.1", at))
        # The records scraped, and two scrapes in all: a rate has its two points.
        wait_for(lambda: prom.query("cleanpath_flow_export_records_total > 0")
                 and prom.query("rate(cleanpath_flow_export_records_total[1m])"), 60, what="the records scraped")
        exprs = [(n, e) for n, e in dashboard_expressions() if FLOW_EXPORT in e]
        assert len(exprs) >= 5
        for name, expr in exprs:
            assert prom.query(expr), f"dashboard panel {name}: '{expr}' returns no data"
        rules = [(n, e) for n, e in alert_expressions() if FLOW_EXPORT in e]
        assert {n for n, _e in rules} == {"CleanPathFlowExporterSilent", "CleanPathFlowExportLoss"}
        for name, expr in rules:
            prom.query(expr)
            for operand in split_operands(expr):
                assert prom.query(operand), f"alert {name}: '{operand}' returns no data"
        heard = prom.query("cleanpath_flow_export_last_datagram_timestamp_seconds")
        assert [s["metric"]["exporter"] for s in heard] == ["other"]   # 127.0.0.1 is in no inventory here
    finally:
        sender.close()
        if prom is not None:
            prom.close()
        d.stop()


def test_sflow_extended_records_name_next_hops_vlans_and_the_as_path(tmp_path):
    from fuzz import sflow_datagram
    from verifier.flows import FlowTable
    from verifier.app import App
    from verifier.attribution.path import PathBuilder
    collector = Collector()
    records = collector.datagram(sflow_datagram(seq=1), b"\x7f\x00\x00\x01", 50.0)
    assert collector.datagram(sflow_datagram(seq=5), b"\x7f\x00\x00\x01", 51.0) and collector.gaps[SFLOW] == 1
    assert collector.sflow.counter_samples == 2
    assert len(records) == 2                                  # the flow sample and the expanded one
    compact, expanded = records
    assert (compact.in_if, compact.out_if, expanded.in_if, expanded.out_if) == (3, 7, 4, 8)
    for r in records:
        assert (r.vlan, r.sampling, r.packets, r.octets, r.first) == (20, 64, 1, 70, 50.0)
        assert r.next_hop == bytes((192, 0, 2, 254)) and r.bgp_next_hop == bytes((192, 0, 2, 253))
        assert (r.src_as, r.next_as, r.dst_as) == (None, 64500, 64501)       # no source AS given
        assert r.as_path == ((2, (64500, 4134, 64501)),)
    table = FlowTable(lambda flow: None)
    flow, side = table.add_record(compact, 0)
    assert flow.pkts == (64, 0) and flow.vlan == 20
    app = App(str(tmp_path / "data"))
    policy = app.policy([os.path.join(os.path.dirname(DEMO), "policy.yaml")])
    path = PathBuilder(app.attributor(None, []), policy.trust).build(flow, 0, "flow-export")
    transit = [(e.subject, e.trust) for e in path if e.kind == "transit-network"]
    assert transit == [("AS64500", "trusted"), ("AS4134", "untrusted")]     # the origin is not a carrier
    hops = {e.subject for e in path if e.kind == "router-hop"}
    assert hops == {"192.0.2.1", "192.0.2.254", "192.0.2.253"}


def test_an_exporter_interface_in_the_inventory_is_checked(tmp_path):
    from verifier.app import App
    from verifier.errors import ConfigError
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("devices:\n"
                         "  - {name: a, vendor: cisco, interfaces: [{exporter: 192.0.2.1}]}\n"
                         "  - {name: b, vendor: cisco, interfaces: [{exporter: 192.0.2.0/24, ifindex: 3}]}\n"
                         "  - {name: c, vendor: cisco, interfaces: [{exporter: 192.0.2.1, ifindex: 3, vlan: 4}]}\n")
    with pytest.raises(ConfigError) as caught:
        App(str(tmp_path / "data")).attributor(str(inventory), [])
    text = str(caught.value)
    assert f"{inventory}:2:" in text and f"{inventory}:3:" in text and f"{inventory}:4:" in text
    assert "is a prefix, not one address" in text


def test_a_message_numbered_by_its_own_records_too_is_no_gap():
    """softflowd numbers an IPFIX message by the records up to and including
    its own (RFC 7011: those before it); either way, only a real loss is a gap."""
    collector = Collector()
    sets = [(2, template(256, basic_fields()))]
    collector.datagram(ipfix(0, sets), b"\xc0\x00\x02\x07", 1.0)
    one = basic("192.0.2.10", "198.51.100.20", 1, 80, 1, 100)
    for seq, records in ((2, 2), (5, 3), (6, 1)):           # softflowd's numbering: 2, 2+3, 5+1
        collector.datagram(ipfix(seq, [(256, one * records)]), b"\xc0\x00\x02\x07", 2.0)
    assert collector.gaps[IPFIX] == 0
    collector.datagram(ipfix(20, [(256, one)]), b"\xc0\x00\x02\x07", 3.0)     # 7 expected: records lost
    assert collector.gaps[IPFIX] == 1


def sampling_rates(grams):
    """{(src, dst, sport, dport): the sampling rate} of our records of ``grams``."""
    collector = Collector()
    return {(str(ipaddress.ip_address(r.src)), str(ipaddress.ip_address(r.dst)), r.sport, r.dport): r.sampling
            for gram in grams for r in collector.datagram(gram, b"\x7f\x00\x00\x01", 0.0)}


def pmacct_rates(daemon, grams, wanted, tmp_path):
    """What pmacct's ``nfacctd`` or ``sfacctd`` (print plugin, aggregated by
    conversation and sampling_rate) says each conversation's sampling rate
    is, once it has printed every one of ``wanted``."""
    binary = sbin_tool(daemon, "pmacct")
    port = free_port()
    out, conf = tmp_path / f"{daemon}.csv", tmp_path / f"{daemon}.conf"
    conf.write_text(f"daemonize: false\n{daemon}_ip: 127.0.0.1\n{daemon}_port: {port}\nplugins: print\n"
                    "aggregate: src_host, dst_host, src_port, dst_port, proto, sampling_rate\n"
                    f"print_output: csv\nprint_output_file: {out}\nprint_output_file_append: true\n"
                    "print_refresh_time: 1\n")
    proc = subprocess.Popen([binary, "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    theirs = {}

    def printed():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        for gram in grams:                  # again until it has them: it binds its socket when it likes
            sender.sendto(gram, ("127.0.0.1", port))
        if out.exists():
            for row in csv.DictReader(open(out)):
                if row.get("SRC_IP") and row["SRC_IP"] != "SRC_IP":
                    theirs[(row["SRC_IP"], row["DST_IP"], int(row["SRC_PORT"]), int(row["DST_PORT"]))] = \
                        int(row["SAMPLING_RATE"])
        return set(theirs) >= set(wanted)

    try:
        wait_for(printed, 30, every=1.0, what=f"{daemon} to print every conversation")
    finally:
        sender.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return theirs


@pytest.mark.parametrize("version", [9, 10])
def test_netflow_sampling_is_read_as_nfacctd_reads_it(tmp_path, version):
    """softflowd sampling one in 10 says so in an options template; pmacct's
    nfacctd is the oracle for the rate each record carries (nfdump 1.7.1
    shows these records unsampled: not trusted here)."""
    grams, _port = softflowd_datagrams(DEMO, version, "-s", "10")
    ours = sampling_rates(grams)
    theirs = pmacct_rates("nfacctd", grams, ours, tmp_path)
    assert ours and set(ours.values()) == {10}
    assert {k: theirs[k] for k in ours} == ours


def test_sflow_sampling_is_read_as_sfacctd_reads_it(tmp_path):
    """pmacctd sampling one packet in 4 into sFlow; pmacct's sfacctd is the
    oracle for the rate each sample carries."""
    capture, frames = padded_demo(tmp_path)
    grams = pmacctd_sflow_datagrams(capture, frames // 4 - 10, tmp_path, rate=4)
    ours = sampling_rates(grams)
    theirs = pmacct_rates("sfacctd", grams, ours, tmp_path)
    assert len(ours) > 10 and set(ours.values()) == {4}
    assert {k: theirs[k] for k in ours} == ours


@pytest.mark.parametrize("version", [9, 10])
def test_pmacctd_nfprobe_sampling_is_read_as_nfacctd_reads_it(tmp_path, version):
    """pmacctd's nfprobe sampling one packet in 4 into NetFlow v9 or IPFIX
    (its sampler in an options template); pmacct's nfacctd is the oracle
    for the rate each record carries. Reading a savefile, nfprobe ends flows
    only when its table is full: 32 pads (two hours apart, so oldest first
    whatever their protocol's timeout) overfill a table of 30 after the
    demo, and the first pad's record shows every demo flow was sent."""
    capture, _frames = padded_demo(tmp_path, after=7200.0, pads=32)
    collector = Collector()

    def pad_seen(grams):
        return any(r.src == PADDING for r in collector.datagram(grams[-1], b"\x7f\x00\x00\x01", 0.0))

    plugin = (f"plugins: nfprobe\nnfprobe_receiver: 127.0.0.1:{{port}}\nnfprobe_version: {version}\n"
              "nfprobe_maxflows: 30\nsampling_rate: 4\n")
    grams = pmacctd_datagrams(capture, plugin, pad_seen, "nfprobe's record of the first pad", tmp_path)
    ours = sampling_rates(grams)
    theirs = pmacct_rates("nfacctd", grams, ours, tmp_path)
    demo = {k for k in ours if not k[0].startswith("192.0.2.20")}
    assert len(demo) > 15 and set(ours.values()) == {4}
    assert {k: theirs[k] for k in ours} == ours


def test_the_exporters_bgp_origin_names_a_remote_network_nothing_else_knows(tmp_path):
    from verifier.flows import FlowTable
    from verifier.app import App
    from verifier.attribution.path import PathBuilder
    table = FlowTable(lambda flow: None)
    out = record("192.0.2.1", "198.51.100.10", "9.9.9.9", 40000, 443, 1, 100, 10.0, dst_as=4134)
    flow, local = table.add_record(out, 0)                   # the record's source is the local side
    app = App(str(tmp_path / "data"))
    policy = app.policy([os.path.join(os.path.dirname(DEMO), "policy.yaml")])
    path = PathBuilder(app.attributor(None, []), policy.trust).build(flow, local, "flow-export")
    remote = path[-1]
    assert (remote.kind, remote.subject, remote.asn, remote.trust, remote.evidence.source) == \
        ("remote-network", "9.9.9.9", 4134, "untrusted", "ipfix")       # the demo policy distrusts AS4134
