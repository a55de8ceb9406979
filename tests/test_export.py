"""Flow export decoding: softflowd's NetFlow v5, v9 and IPFIX of a capture,
read by us and by tshark's cflow dissector, record by record; templates'
edge cases (data before template, redefinition, withdrawal, variable length,
enterprise fields, restarts, gaps) on crafted IPFIX."""

import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess

import pytest

from verifier.craft import ETH_IPV4, PcapWriter, ether, ipv4, udp
from verifier.export.decode import IPFIX, V5, V9, Collector

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(os.path.dirname(HERE), "verifier", "demo", "demo.pcap")
EXPORTER = b"\x7f\x00\x00\x01"


def sbin_tool(name, package):
    """The path of a Debian tool that may live in /usr/sbin, or a skip naming its package."""
    binary = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")
    if binary is None:
        pytest.skip(f"needs {name} (Debian {package}; scripts/test.sh installs it)")
    return binary


def collector_socket(timeout):
    """A UDP socket on a free loopback port, as an export collector's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(timeout)
    return sock


def softflowd_datagrams(capture, version, *extra):
    """What softflowd exports for ``capture`` (read from the file, every flow
    expired at its end; ``extra``: more of its options, ``-s N`` to sample),
    as the datagrams a collector socket received."""
    binary = sbin_tool("softflowd", "softflowd")
    sock = collector_socket(3)
    port = sock.getsockname()[1]
    done = subprocess.run([binary, "-r", capture, "-n", f"127.0.0.1:{port}", "-v", str(version), "-T", "ether",
                           "-6", "-d", *extra], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    grams = []
    while True:                     # softflowd has exited: every datagram it sent is in the socket's buffer
        try:
            grams.append(sock.recvfrom(65535)[0])
        except socket.timeout:
            break
    sock.close()
    return grams, port


def archived(path, grams, start=1.0):
    """``grams`` [(datagram, UDP port)] written to a pcap as 192.0.2.7 sent them
    to 192.0.2.8, a second apart: what a capture of a collector's link holds."""
    with PcapWriter(path) as w:
        for k, (gram, port) in enumerate(grams):
            w.write(start + k, ether("02:00:00:00:00:01", "02:00:00:00:00:02", ETH_IPV4,
                                     ipv4("192.0.2.7", "192.0.2.8", 17, udp(40000, port, gram))))
    return path


def tshark_flows(grams, port, tmp_path):
    """Every flow record tshark's cflow dissector reads from the datagrams, in order."""
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    pcap = archived(str(tmp_path / "export.pcap"), [(g, port) for g in grams])
    out = subprocess.run(["tshark", "-n", "-r", pcap, "-d", f"udp.port=={port},cflow", "-T", "json"],
                         capture_output=True, text=True, check=True).stdout
    flows = []

    def walk(node):
        if isinstance(node, dict):
            if "cflow.packets" in node and "cflow.protocol" in node:
                flows.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for frame in json.loads(out):
        walk(frame["_source"]["layers"].get("cflow", {}))
    return flows


def ours(record):
    mac = (lambda m: ":".join(f"{b:02x}" for b in m) if m else None)
    return (str(ipaddress.ip_address(record.src)), str(ipaddress.ip_address(record.dst)), record.sport,
            record.dport, record.proto, record.packets, record.octets, mac(record.src_mac), mac(record.dst_mac),
            record.vlan)


def theirs(flow):
    src = flow.get("cflow.srcaddr") or flow.get("cflow.srcaddrv6")
    dst = flow.get("cflow.dstaddr") or flow.get("cflow.dstaddrv6")
    vlan = flow.get("cflow.vlanid")
    icmp = "cflow.srcport" not in flow
    return (src, dst, int(flow.get("cflow.srcport", 0)), int(flow.get("cflow.dstport", 0)),
            int(flow["cflow.protocol"]), int(flow["cflow.packets"]), int(flow["cflow.octets"]),
            flow.get("cflow.srcmac"), flow.get("cflow.dstmac") or flow.get("cflow.post_dstmac"),
            int(vlan) if vlan is not None else None), icmp


@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_exports_read_as_tshark_reads_them(tmp_path, version):
    grams, port = softflowd_datagrams(DEMO, version)
    collector = Collector()
    records = [r for g in grams for r in collector.datagram(g, EXPORTER, 0.0)]
    protocol = {5: V5, 9: V9, 10: IPFIX}[version]
    assert collector.counts == {(protocol, "ok"): len(grams)} and collector.gaps[protocol] == 0
    flows = tshark_flows(grams, port, tmp_path)
    assert len(records) == len(flows) > 20
    for record, flow in zip(records, flows):
        want, icmp = theirs(flow)
        got = ours(record)
        if icmp:                     # tshark shows ICMP's type and code instead of ports
            got = got[:2] + (0, 0) + got[4:]
        assert got == want


def test_the_export_carries_the_flows_the_packet_audit_finds(tmp_path):
    """softflowd's IPFIX of the demo capture against our own flows of it:
    the same conversations, directions and packet counts (softflowd counts IP
    bytes, we count frames: octets differ by the link header)."""
    from click.testing import CliRunner
    from verifier.cli import cli
    grams, _port = softflowd_datagrams(DEMO, 10)
    collector = Collector()
    exported = {}
    for gram in grams:
        for r in collector.datagram(gram, EXPORTER, 0.0):
            key = (r.src, r.sport, r.dst, r.dport, r.proto)
            exported[key] = exported.get(key, 0) + r.packets
    out = tmp_path / "flows.csv"
    CliRunner().invoke(cli, ["--data-dir", "/nonexistent", "audit", "--demo", "--csv", str(out), "-q"],
                       catch_exceptions=False)
    import csv
    audited = {}
    with open(out) as fh:
        for row in csv.DictReader(fh):
            a, b = ipaddress.ip_address(row["a"]).packed, ipaddress.ip_address(row["b"]).packed
            ap, bp, proto = int(row["a_port"]), int(row["b_port"]), int(row["proto"])
            if proto in (1, 58):
                ap = bp = 0
            for key, count in (((a, ap, b, bp, proto), int(row["packets_a_to_b"])),
                               ((b, bp, a, ap, proto), int(row["packets_b_to_a"]))):
                if count:
                    audited[key] = count       # a flow in two zones has one row per zone: the same counts
    # The one difference: the router's ICMP time-exceeded (203.0.113.1 -> 203.0.113.40) is a flow of its
    # own to softflowd; to us it joins the flow it quotes, naming that router as a router-hop.
    icmp_error = (ipaddress.ip_address("203.0.113.1").packed, 0, ipaddress.ip_address("203.0.113.40").packed, 0, 1)
    assert exported.pop(icmp_error) == 1
    assert exported == audited and len(audited) > 20


# --- templates' edge cases, on crafted IPFIX -------------------------------------

def ipfix(seq, sets, domain=7, when=1_796_000_000):
    body = b"".join(struct.pack(">HH", set_id, 4 + len(data)) + data for set_id, data in sets)
    return struct.pack(">HHIII", 10, 16 + len(body), when, seq, domain) + body


def template(tid, fields):
    """A template record: ``fields`` are (IE, length) or (IE, length, PEN)."""
    out = struct.pack(">HH", tid, len(fields))
    for f in fields:
        if len(f) == 3:
            out += struct.pack(">HHI", f[0] | 0x8000, f[1], f[2])
        else:
            out += struct.pack(">HH", *f)
    return out


BASIC = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 8)]


def basic(src, dst, sport, dport, packets, octets):
    return (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
            + struct.pack(">HHBIQ", sport, dport, 6, packets, octets))


def summary(records):
    return [(str(ipaddress.ip_address(r.src)), r.sport, r.packets, r.octets) for r in records]


def test_data_before_its_template_waits_then_decodes():
    c = Collector()
    assert c.datagram(ipfix(0, [(300, basic("198.51.100.1", "8.8.8.8", 1000, 443, 3, 300))]), EXPORTER, 0.0) == []
    assert c.counts[(IPFIX, "no_template")] == 1
    got = c.datagram(ipfix(1, [(2, template(300, BASIC))]), EXPORTER, 1.0)
    assert summary(got) == [("198.51.100.1", 1000, 3, 300)]
    late = c.datagram(ipfix(1, [(301, basic("198.51.100.2", "8.8.8.8", 1, 2, 1, 1))]), EXPORTER, 2.0)
    assert late == [] and c.datagram(ipfix(1, [(2, template(301, BASIC))]), EXPORTER, 100.0) == []   # held too long


def test_a_reused_template_id_replaces_the_old_fields_and_a_withdrawal_removes_it():
    c = Collector()
    c.datagram(ipfix(0, [(2, template(300, BASIC))]), EXPORTER, 0.0)
    assert summary(c.datagram(ipfix(0, [(300, basic("198.51.100.1", "8.8.8.8", 1, 2, 5, 50))]), EXPORTER, 0.0)) \
        == [("198.51.100.1", 1, 5, 50)]
    swapped = [(12, 4), (8, 4), (2, 4), (1, 8), (7, 2), (11, 2), (4, 1)]          # same id, other layout
    data = ipaddress.ip_address("8.8.8.8").packed + ipaddress.ip_address("198.51.100.9").packed + \
        struct.pack(">IQHHB", 9, 90, 7, 8, 17)
    assert summary(c.datagram(ipfix(1, [(2, template(300, swapped)), (300, data)]), EXPORTER, 1.0)) \
        == [("198.51.100.9", 7, 9, 90)]
    c.datagram(ipfix(2, [(2, struct.pack(">HH", 300, 0))]), EXPORTER, 2.0)              # withdrawn
    assert c.datagram(ipfix(2, [(300, data)]), EXPORTER, 2.0) == [] and c.templates(IPFIX) == 0


def test_variable_length_and_enterprise_fields_are_read_or_skipped_by_length():
    c = Collector()
    fields = [(8, 4), (82, 65535), (12, 4), (999, 6, 29305), (2, 4), (1, 4)]     # interfaceName, a PEN field
    record = (ipaddress.ip_address("198.51.100.1").packed + b"\x04eth0" + ipaddress.ip_address("8.8.8.8").packed
              + b"ABCDEF" + struct.pack(">II", 4, 400))
    long_name = (ipaddress.ip_address("198.51.100.2").packed + b"\xff\x01\x2c" + b"n" * 300
                 + ipaddress.ip_address("8.8.8.8").packed + b"ABCDEF" + struct.pack(">II", 2, 200))
    got = c.datagram(ipfix(0, [(2, template(400, fields)), (400, record + long_name + b"\0\0")]), EXPORTER, 0.0)
    assert summary(got) == [("198.51.100.1", 0, 4, 400), ("198.51.100.2", 0, 2, 200)]


def test_an_exporter_is_its_address_and_domain_and_its_sequence_gaps_are_counted():
    c = Collector()
    c.datagram(ipfix(0, [(2, template(300, BASIC)), (300, basic("198.51.100.1", "8.8.8.8", 1, 2, 1, 1))]),
               b"\0" * 10 + b"\xff\xff" + EXPORTER, 0.0)                # IPv4-mapped: the same exporter
    assert summary(c.datagram(ipfix(1, [(300, basic("198.51.100.1", "8.8.8.8", 3, 4, 1, 1))]), EXPORTER, 0.0)) \
        == [("198.51.100.1", 3, 1, 1)] and c.gaps[IPFIX] == 0
    c.datagram(ipfix(5, [(300, basic("198.51.100.1", "8.8.8.8", 5, 6, 1, 1))]), EXPORTER, 0.0)     # 3 lost
    assert c.gaps[IPFIX] == 1
    assert c.datagram(ipfix(6, [(300, basic("198.51.100.1", "8.8.8.8", 5, 6, 1, 1))], domain=8), EXPORTER,
                      0.0) == []                                        # another domain: its own templates
    c.datagram(ipfix(0, [(300, basic("198.51.100.1", "8.8.8.8", 7, 8, 1, 1))]), EXPORTER, 0.0)    # restarted
    assert c.gaps[IPFIX] == 1


def test_options_teach_sampling_per_sampler():
    c = Collector()
    options = struct.pack(">HHH", 500, 3, 1) + struct.pack(">HH", 302, 4) + struct.pack(">HH", 305, 4) \
        + struct.pack(">HH", 306, 4)                                     # scope: selectorId; interval, space
    sampled = BASIC + [(302, 4)]
    c.datagram(ipfix(0, [(3, options), (500, struct.pack(">III", 9, 1, 99)), (2, template(300, sampled)),
                         (300, basic("198.51.100.1", "8.8.8.8", 1, 2, 1, 1) + struct.pack(">I", 9))]),
               EXPORTER, 0.0)
    got = c.datagram(ipfix(2, [(300, basic("198.51.100.1", "8.8.8.8", 1, 2, 1, 1) + struct.pack(">I", 9))]),
                     EXPORTER, 0.0)
    assert [r.sampling for r in got] == [100]


def test_garbage_is_counted_never_raised():
    c = Collector()
    for data in (b"", b"\x00\x0a", ipfix(0, [(2, b"\x01")]), b"\x00\x05" + b"\x00" * 30, b"\x12\x34" * 10,
                 ipfix(0, [(2, template(12, BASIC))])):
        assert c.datagram(data, EXPORTER, 0.0) == []
    assert sum(c.counts.values()) == 6 and c.counts[(IPFIX, "malformed")] == 2
