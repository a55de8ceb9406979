"""``audit --evidence DIR`` (issue 19): each listed violating flow's first
packets as a pcap named by its Community ID, checked with tshark, hashed in
the certificate and signed with it."""

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import need_tool
from lab import LAB_POLICY
from verifier.craft import ETH_IPV4, PcapWriter, ether, icmp, ipv4, tcp, udp, vxlan
from verifier.evidence import _epoch

HUAWEI, CISCO, CLIENT = "00:e0:fc:00:00:01", "00:1b:54:00:00:02", "02:00:00:00:00:10"
LOCAL, REMOTE = "198.51.100.10", "203.0.113.1"
T0 = 1_795_000_000.0


def frames():
    """A long violating TCP flow (50 packets), the same 5-tuple again after
    the idle timeout (a second flow), a violating flow inside VXLAN, an ICMP
    error quoting the first flow, and a clean flow through the Cisco gateway."""
    out = []
    for k in range(25):
        out.append((T0 + k * 0.1, ether(HUAWEI, CLIENT, ETH_IPV4, ipv4(LOCAL, REMOTE, 6, tcp(40000, 443)))))
        out.append((T0 + k * 0.1 + 0.05, ether(CLIENT, HUAWEI, ETH_IPV4, ipv4(REMOTE, LOCAL, 6, tcp(443, 40000)))))
    quoted = ipv4(LOCAL, REMOTE, 6, tcp(40000, 443))[:28]
    out.append((T0 + 1.0, ether(CLIENT, HUAWEI, ETH_IPV4, ipv4("192.0.2.1", LOCAL, 1, icmp(11, 0, quoted, 0, 0)))))
    for k in range(3):
        out.append((T0 + 100 + k, ether(HUAWEI, CLIENT, ETH_IPV4, ipv4(LOCAL, REMOTE, 6, tcp(40000, 443)))))
    inner = ether(HUAWEI, "02:00:00:00:00:21", ETH_IPV4, ipv4("198.51.100.20", REMOTE, 17, udp(5353, 53)))
    for k in range(4):
        out.append((T0 + 2 + k, ether(HUAWEI, CLIENT, ETH_IPV4,
                                      ipv4("192.0.2.10", "192.0.2.20", 17, udp(49152, 4789, vxlan(5001, inner))))))
    for k in range(5):
        out.append((T0 + 3 + k, ether(CISCO, CLIENT, ETH_IPV4, ipv4(LOCAL, "192.0.2.1", 6, tcp(40001, 443)))))
    return sorted(out, key=lambda f: f[0])


def run(tmp_path, *extra, policy=LAB_POLICY):
    pcap = tmp_path / "in.pcap"
    with PcapWriter(str(pcap)) as w:
        for ts, frame in frames():
            w.write(ts, frame)
    (tmp_path / "policy.yaml").write_text(policy)
    done = subprocess.run([sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "data"), "audit", str(pcap),
                           "--policy", str(tmp_path / "policy.yaml"), "--idle-timeout", "30",
                           "--json", str(tmp_path / "cert.json"), "-q", *extra], capture_output=True, text=True)
    return done, (json.loads((tmp_path / "cert.json").read_text()) if (tmp_path / "cert.json").exists() else None)


def tshark_frames(path):
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=l", "-e", "frame.time_epoch",
                          "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport",
                          "-e", "udp.dstport", "-d", "udp.port==4789,vxlan"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_each_violating_flow_gets_its_first_packets_as_a_pcap_tshark_reads(tmp_path):
    need_tool("tshark")
    done, cert = run(tmp_path, "--evidence", str(tmp_path / "ev"), "--evidence-packets", "20")
    assert done.returncode == 1, done.stderr
    listed = cert["violations"]
    assert len(listed) == 3 and cert["evidence"]["files"] == 3
    names = [v["evidence"]["file"] for v in listed]
    assert len(set(names)) == 3
    first_cid = listed[0]["community_id"]
    assert names.count(first_cid.replace(":", "_").replace("/", "_").replace("+", "-") + ".pcap") == 1
    assert any(n.endswith("-2.pcap") for n in names)                 # the same 5-tuple's second flow
    for v in listed:
        got = tshark_frames(tmp_path / "ev" / v["evidence"]["file"])
        # (The ICMP error quoting the first flow adds to its icmp_errors, not to its packets.)
        assert len(got) == v["evidence"]["packets"] == min(v["packets"], 20), v
        ends = {(v["src"], str(v["sport"])), (v["dst"], str(v["dport"]))}
        for ts, src, dst, tsp, tdp, usp, udp_ in got:
            sport, dport = (tsp, tdp) if v["proto"] == "tcp" else (usp, udp_)
            assert {(src, sport), (dst, dport)} == ends
        assert abs(float(got[0][0]) - _epoch(v["first_ts"])) < 2e-6
        assert hashlib.sha256((tmp_path / "ev" / v["evidence"]["file"]).read_bytes()).hexdigest() == \
            v["evidence"]["sha256"]


def test_evidence_files_are_signed_with_the_certificate(tmp_path):
    subprocess.run([sys.executable, "-m", "verifier", "keygen", "--out", str(tmp_path / "k")], check=True,
                   capture_output=True)
    done, cert = run(tmp_path, "--evidence", str(tmp_path / "ev"), "--html", str(tmp_path / "r.html"),
                     "--sign-key", str(tmp_path / "k"))
    assert done.returncode == 1, done.stderr
    verify = [sys.executable, "-m", "verifier", "verify", str(tmp_path / "cert.json"), "--key", str(tmp_path / "k.pub")]
    ok = subprocess.run(verify, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.count("ev/") == 3, ok.stdout
    assert cert["violations"][0]["evidence"]["file"] in (tmp_path / "r.html").read_text()
    victim = tmp_path / "ev" / cert["violations"][1]["evidence"]["file"]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    bad = subprocess.run(verify, capture_output=True, text=True)
    assert bad.returncode == 1 and "was changed" in bad.stdout


def test_no_violation_no_second_pass_and_no_directory(tmp_path):
    clean = LAB_POLICY.replace("untrusted: [huawei, zte]", "untrusted: [zte]").replace(
        "trusted: [cisco]", "trusted: [cisco, huawei]").replace("deny_vendors: [huawei, zte]", "deny_vendors: [zte]")
    done, cert = run(tmp_path, "--evidence", str(tmp_path / "ev"), policy=clean)
    assert cert["summary"]["violations"] == 0, done.stderr
    assert not (tmp_path / "ev").exists() and "evidence" not in cert


@pytest.mark.parametrize("per_flow", [1, 5])
def test_the_packet_limit_holds(tmp_path, per_flow):
    done, cert = run(tmp_path, "--evidence", str(tmp_path / "ev"), "--evidence-packets", str(per_flow))
    assert all(v["evidence"]["packets"] == min(per_flow, v["packets"]) for v in cert["violations"])
