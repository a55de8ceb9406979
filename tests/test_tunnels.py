"""Tunnel endpoints on the path: a crafted 5G N3 capture (GTP-U with the
PDU Session Container, IPv4 and IPv6 UEs) whose gNB is an untrusted
vendor's, and the other encapsulations end to end through the audit."""

import datetime

import pytest

from verifier.audit import run_audit
from verifier.craft import ETH_IPV4, PcapWriter, ether, gtpu, ipv4, ipv6, tcp, udp, vxlan
from verifier.text import ip_text
from verifier.decode import GTPU, decode

NOW = datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc)
GNB, UPF = "192.0.2.10", "192.0.2.20"
GNB_MAC, UPF_MAC = "00:1b:54:00:00:10", "00:1b:54:00:00:20"        # Cisco OUIs: trusted transport switches
UL_TEID, DL_TEID = 0x1001, 0x2002

POLICY_HEAD = """\
version: 1
vendors:
  trusted: [cisco, nokia, ericsson]
  untrusted: [huawei, zte]
zones:
  ue-pool:
    prefixes: [198.51.100.0/24, 2001:db8:100::/48]
"""
POLICY = POLICY_HEAD + """\
rules:
  - name: trusted-radio-path
    zone: ue-pool
    require: clean-path
    kinds: [tunnel-endpoint, l2-neighbor]
    on_unattributed: unverified
"""

INVENTORY = f"""\
devices:
  - name: gnb-017
    vendor: huawei
    model: BTS5900
    role: gnb
    ips: [{GNB}]
  - name: upf-1
    vendor: nokia
    role: upf
    ips: [{UPF}]
"""


def n3_frames(ue4="198.51.100.7", ue6="2001:db8:100::7", server4="203.0.113.80", server6="2001:db8:203::80"):
    """Uplink gNB->UPF and downlink UPF->gNB G-PDUs for one IPv4 and one IPv6 UE flow."""
    frames = []
    for ue, server, fam in ((ue4, server4, 4), (ue6, server6, 6)):
        for uplink in (True, False):
            src, dst = (ue, server) if uplink else (server, ue)
            ports = (40000, 443) if uplink else (443, 40000)
            inner = ipv4(src, dst, 6, tcp(*ports)) if fam == 4 else ipv6(src, dst, 6, tcp(*ports))
            teid = UL_TEID if uplink else DL_TEID
            outer_src, outer_dst = (GNB, UPF) if uplink else (UPF, GNB)
            mac_src, mac_dst = (GNB_MAC, UPF_MAC) if uplink else (UPF_MAC, GNB_MAC)
            payload = udp(2152, 2152, gtpu(teid, inner, qfi=9, uplink=uplink))
            frames.append(ether(mac_dst, mac_src, ETH_IPV4, ipv4(outer_src, outer_dst, 17, payload)))
    return frames


def test_decoder_finds_the_ue_flow_inside_the_pdu_session_container():
    pkt = decode(n3_frames()[0], 1)
    assert (pkt.family, pkt.proto, pkt.sport, pkt.dport) == (4, 6, 40000, 443)
    assert pkt.tunnels == [(GTPU, bytes([192, 0, 2, 10]), bytes([192, 0, 2, 20]), UL_TEID)]
    v6 = decode(n3_frames()[2], 1)
    assert v6.family == 6 and v6.tunnels[0][3] == UL_TEID


def test_untrusted_gnb_is_a_violation_with_the_teid_in_evidence(tmp_path, write):
    from verifier.cli import App
    pcap = tmp_path / "n3.pcap"
    with PcapWriter(str(pcap)) as w:
        for i, frame in enumerate(n3_frames()):
            w.write(1_795_000_000 + i * 0.01, frame)
    app = App(str(tmp_path / "data"))
    policy = app.policy([write("policy.yaml", POLICY)])
    attributor = app.attributor(write("inventory.yaml", INVENTORY), [])
    result = run_audit([str(pcap)], policy, attributor, NOW)
    cert = result.certificate
    assert result.exit_code == 1
    zone = cert["zones"][0]
    assert zone["flows"] == {"CLEAN": 0, "VIOLATION": 2, "UNVERIFIED": 0}
    assert {(v["src"], v["dst"]) for v in cert["violations"]} == {
        ("198.51.100.7", "203.0.113.80"), ("2001:db8:100::7", "2001:db8:203::80")}
    for v in cert["violations"]:
        assert v["rule"] == "trusted-radio-path" and v["packets"] == 2
        endpoints = {el["subject"]: el for el in v["path"] if el["kind"] == "tunnel-endpoint"}
        gnb, upf = endpoints[GNB], endpoints[UPF]
        assert gnb["vendor"] == "huawei" and gnb["trust"] == "untrusted"
        assert gnb["evidence"]["source"] == "inventory" and gnb["evidence"]["role"] == "gnb"
        assert gnb["evidence"]["tunnel"] == "gtp-u" and gnb["evidence"]["teid"] == [DL_TEID]
        assert upf["vendor"] == "nokia" and upf["trust"] == "trusted" and upf["evidence"]["teid"] == [UL_TEID]
        assert any("192.0.2.10 is untrusted" in r["text"] for r in v["reasons"])
    assert cert["summary"]["flows_by_proto"]["udp"] == 0        # the outer GTP-U is not a flow of its own


@pytest.mark.parametrize("kind", ["vxlan", "ipip"])
def test_other_encapsulations_put_their_endpoints_on_the_path(tmp_path, write, kind):
    from verifier.cli import App
    inner = ipv4("198.51.100.7", "203.0.113.80", 17, udp(5000, 53))
    if kind == "vxlan":
        payload = udp(49152, 4789, vxlan(5001, ether("02:00:00:00:00:02", "02:00:00:00:00:01", ETH_IPV4, inner)))
        outer = ipv4(GNB, UPF, 17, payload)
    else:
        outer = ipv4(GNB, UPF, 4, inner)
    pcap = tmp_path / "t.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_795_000_000, ether(UPF_MAC, GNB_MAC, ETH_IPV4, outer))
    app = App(str(tmp_path / "data"))
    policy = app.policy([write("policy.yaml", POLICY)])
    attributor = app.attributor(write("inventory.yaml", INVENTORY), [])
    cert = run_audit([str(pcap)], policy, attributor, NOW).certificate
    (v,) = cert["violations"]
    endpoints = [el for el in v["path"] if el["kind"] == "tunnel-endpoint"]
    assert {el["subject"] for el in endpoints} == {GNB, UPF}
    assert {el["evidence"]["tunnel"] for el in endpoints} == {"vxlan" if kind == "vxlan" else "ip-in-ip"}
    if kind == "vxlan":
        assert all(el["evidence"]["vni"] == [5001] for el in endpoints)


ROLE_POLICY = POLICY_HEAD + """\
rules:
  - name: trusted-radio-nodes
    zone: ue-pool
    require: clean-path
    kinds: [tunnel-endpoint]
    roles: [gNB]
    on_unattributed: violation
"""


@pytest.mark.parametrize("gnb_vendor, inventory_has_gnb, verdict, reason", [
    ("huawei", True, "VIOLATION", "tunnel-endpoint 192.0.2.10 is untrusted"),
    ("ericsson", True, "CLEAN", None),
    ("ericsson", False, "VIOLATION", "no gnb (tunnel-endpoint) identified on the path"),
])
def test_a_rule_with_roles_requires_trusted_radio_nodes(tmp_path, write, gnb_vendor, inventory_has_gnb, verdict,
                                                        reason):
    """``roles: [gnb]`` judges only the radio nodes (the UPF here is in no
    inventory: unattributed, yet not the rule's business), and a path with no
    radio node the inventory can name fails closed."""
    from verifier.cli import App
    pcap = tmp_path / "n3.pcap"
    with PcapWriter(str(pcap)) as w:
        for i, frame in enumerate(n3_frames()):
            w.write(1_795_000_000 + i * 0.01, frame)
    inventory = "devices:\n" + (f"  - {{name: gnb-017, vendor: {gnb_vendor}, role: GNB, ips: [{GNB}]}}\n"
                                if inventory_has_gnb else f"  - {{name: core-sw, vendor: cisco, ips: [{GNB}]}}\n")
    app = App(str(tmp_path / "data"))
    policy = app.policy([write("policy.yaml", ROLE_POLICY)])
    attributor = app.attributor(write("inventory.yaml", inventory), [])
    cert = run_audit([str(pcap)], policy, attributor, NOW).certificate
    assert cert["zones"][0]["flows"][verdict] == 2
    for v in cert["violations"]:
        assert v["rule"] == "trusted-radio-nodes"
        assert [r["text"] for r in v["reasons"]] == [reason]
    if inventory_has_gnb:
        assert len(cert["violations"]) == (2 if verdict == "VIOLATION" else 0)
    if verdict == "VIOLATION" and inventory_has_gnb:
        (gnb,) = [el for el in cert["violations"][0]["path"] if el["subject"] == GNB]
        assert gnb["role"] == "gnb"


HUAWEI_GNB_MAC = "00:e0:fc:00:00:10"       # a Huawei OUI


@pytest.mark.parametrize("outer", [4, 6])
def test_an_on_link_tunnel_endpoint_is_attributed_by_the_mac_arp_or_ndp_bound(tmp_path, write, outer):
    """No inventory: the gNB's address is a documentation one (no ASN), but
    ARP (IPv4) or a neighbour advertisement (IPv6) on the segment binds it to
    a Huawei MAC, so the tunnel endpoint is Huawei by OUI, with the binding in
    evidence. The UPF was never announced: it stays unknown."""
    from verifier.cli import App
    from verifier.craft import ETH_ARP, ETH_IPV6, arp, neighbour_advert
    gnb, upf = ("192.0.2.10", "192.0.2.20") if outer == 4 else ("2001:db8:5::10", "2001:db8:5::20")
    inner = ipv4("198.51.100.7", "203.0.113.80", 6, tcp(40000, 443))
    gpdu = udp(2152, 2152, gtpu(UL_TEID, inner, qfi=9))
    if outer == 4:
        announce = ether("ff:ff:ff:ff:ff:ff", HUAWEI_GNB_MAC, ETH_ARP,
                         arp(1, HUAWEI_GNB_MAC, gnb, "00:00:00:00:00:00", upf))
        data = ether(UPF_MAC, HUAWEI_GNB_MAC, ETH_IPV4, ipv4(gnb, upf, 17, gpdu))
    else:
        announce = ether(UPF_MAC, HUAWEI_GNB_MAC, ETH_IPV6,
                         ipv6(gnb, upf, 58, neighbour_advert(gnb, HUAWEI_GNB_MAC), hlim=255))
        data = ether(UPF_MAC, HUAWEI_GNB_MAC, ETH_IPV6, ipv6(gnb, upf, 17, gpdu))
    pcap = tmp_path / "n3.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_795_000_000, announce)
        w.write(1_795_000_001, data)
    app = App(str(tmp_path / "data"))
    policy = app.policy([write("policy.yaml", POLICY.replace("tunnel-endpoint, l2-neighbor", "tunnel-endpoint"))])
    cert = run_audit([str(pcap)], policy, app.attributor(None, []), NOW).certificate
    (v,) = [v for v in cert["violations"] if v["dst"] == "203.0.113.80"]
    endpoints = {el["subject"]: el for el in v["path"] if el["kind"] == "tunnel-endpoint"}
    g = endpoints[gnb]
    assert (g["vendor"], g["trust"], g["evidence"]["source"]) == ("huawei", "untrusted", "oui")
    assert g["evidence"]["mac"] == HUAWEI_GNB_MAC
    assert g["evidence"]["mac_learned_from"] == ("arp" if outer == 4 else "ndp")
    assert endpoints[upf]["trust"] == "unknown" and "mac" not in (endpoints[upf]["evidence"] or {})


def test_pfcp_teaches_the_gnb_role_a_roles_rule_needs(tmp_path, write):
    """The inventory names the gNB's vendor but no role; the SMF's PFCP
    Session Establishment toward the UPF (seen on the same tap) says which
    end of the N3 tunnel is the radio node, so ``roles: [gnb]`` finds it."""
    from verifier.cli import App
    from verifier.craft import pfcp_session_establishment
    smf = "192.0.2.30"
    pfcp = ether(UPF_MAC, GNB_MAC, ETH_IPV4, ipv4(smf, UPF, 17, udp(8805, 8805, pfcp_session_establishment(
        7, UPF, UL_TEID, GNB, DL_TEID))))
    pcap = tmp_path / "n3.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_795_000_000, pfcp)
        for i, frame in enumerate(n3_frames()):
            w.write(1_795_000_001 + i * 0.01, frame)
    inventory = f"devices:\n  - {{name: radio-17, vendor: huawei, ips: [{GNB}]}}\n"
    app = App(str(tmp_path / "data"))
    policy = app.policy([write("policy.yaml", ROLE_POLICY)])
    cert = run_audit([str(pcap)], policy, app.attributor(write("inventory.yaml", inventory), []), NOW).certificate
    assert cert["zones"][0]["flows"]["VIOLATION"] == 2
    assert [(n["address"], n["role"], n["learned_from"], n["teids"]) for n in cert["tunnel_nodes"]] == [
        (GNB, "gnb", "pfcp", [DL_TEID]), (UPF, "upf", "pfcp", [UL_TEID])]
    for v in cert["violations"]:
        assert [r["text"] for r in v["reasons"]] == ["tunnel-endpoint 192.0.2.10 is untrusted"]
        endpoints = {el["subject"]: el for el in v["path"] if el["kind"] == "tunnel-endpoint"}
        gnb, upf = endpoints[GNB], endpoints[UPF]
        assert (gnb["role"], gnb["vendor"], gnb["evidence"]["source"]) == ("gnb", "huawei", "inventory")
        assert gnb["evidence"]["role_learned_from"] == "pfcp" and gnb["evidence"]["role_teids"] == [DL_TEID]
        assert upf["role"] == "upf" and upf["evidence"]["role_teids"] == [UL_TEID]


def test_crafted_pfcp_dissects_in_tshark_as_we_read_it(tmp_path):
    """The crafted message is real PFCP: tshark finds the same F-TEID, Outer
    Header Creation and interfaces."""
    import subprocess
    from conftest import need_tool
    from verifier.control.mobile import parse_pfcp
    from verifier.craft import pfcp_session_establishment
    need_tool("tshark")
    msg = pfcp_session_establishment(7, UPF, UL_TEID, GNB, DL_TEID)
    pcap = tmp_path / "pfcp.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_795_000_000, ether(UPF_MAC, GNB_MAC, ETH_IPV4, ipv4("192.0.2.30", UPF, 17, udp(8805, 8805, msg))))
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "pfcp.f_teid.teid",
                          "-e", "pfcp.f_teid.ipv4_addr", "-e", "pfcp.outer_hdr_creation.teid",
                          "-e", "pfcp.outer_hdr_creation.ipv4", "-e", "_ws.malformed"],
                         capture_output=True, text=True, check=True).stdout.split("\t")
    assert [int(out[0], 16), out[1], int(out[2], 16), out[3], out[4].strip()] == [UL_TEID, UPF, DL_TEID, GNB, ""]
    assert {(ip_text(a), t, r) for a, t, r in parse_pfcp(msg, 0)} == {(UPF, UL_TEID, "upf"), (GNB, DL_TEID, "gnb")}


def test_control_plane_reader_survives_damaged_messages():
    """Truncated and bit-flipped GTPv1-C, GTPv2-C and PFCP messages are
    counted as malformed or teach nothing wrong-shaped; nothing raises."""
    import random
    import struct
    from verifier.attribution.mobile import ControlPlane
    from verifier.craft import pfcp_session_establishment
    f_teid = struct.pack("!BHB", 87, 9, 0) + bytes([0x81]) + struct.pack("!I", 5) + bytes([192, 0, 2, 1])  # S1-U SGW
    bearer = struct.pack("!BHB", 93, len(f_teid), 0) + f_teid
    gtpv2 = struct.pack("!BBHI", 0x48, 32, len(bearer) + 8, 1) + b"\x00\x00\x01\x00" + bearer
    gsn = struct.pack("!BH", 133, 4) + bytes([192, 0, 2, 2])
    ies = b"\x10" + struct.pack("!I", 9) + gsn + gsn
    gtpv1 = struct.pack("!BBHI", 0x32, 16, len(ies) + 4, 0) + b"\x00\x01\x00\x00" + ies
    pfcp = pfcp_session_establishment(1, "192.0.2.20", 7, "192.0.2.10", 8)
    messages = ((gtpv2, 2123), (gtpv1, 2123), (pfcp, 8805))
    clean = ControlPlane()
    for msg, port in messages:
        clean(0.0, msg, 0, port, port)
    assert {a: n.role for a, n in clean.nodes.items()} == {
        bytes([192, 0, 2, 1]): "sgw", bytes([192, 0, 2, 2]): "sgsn", bytes([192, 0, 2, 20]): "upf",
        bytes([192, 0, 2, 10]): "gnb"}
    assert not any(clean.errors.values())
    rnd = random.Random(5)
    plane = ControlPlane()
    for msg, port in messages:
        for _ in range(2000):
            bad = bytearray(msg[:rnd.randrange(len(msg) + 1)])
            for _ in range(rnd.randrange(4)):
                if bad:
                    bad[rnd.randrange(len(bad))] = rnd.randrange(256)
            plane(0.0, bytes(bad), 0, port, port)
    assert all(plane.errors[p] > 0 for p in plane.errors)
    assert all(len(a) in (4, 16) for a in plane.nodes)


def test_tunnel_endpoints_follow_what_arp_and_the_control_plane_teach_later(oui, catalogue):
    """The path builder keeps each tunnel endpoint's element per address and
    segment, but a MAC binding ARP teaches later, or a role PFCP teaches
    later, shows in the next flow's path. Each flow's TEIDs are its own
    evidence; the element the flows share keeps none."""
    import os
    from verifier.attribution import Attributor
    from verifier.attribution.discovery import SegmentDiscovery
    from verifier.attribution.mobile import ControlPlane
    from verifier.attribution.path import PathBuilder
    from verifier.craft import ETH_ARP, arp, pfcp_session_establishment
    from verifier.model import TUNNEL_ENDPOINT, Flow, flow_key
    from verifier.policy.load import load_policy
    policy = load_policy([os.path.join(os.path.dirname(__file__), "..", "verifier", "demo", "policy.yaml")],
                         catalogue)
    discovery, plane = SegmentDiscovery(Attributor([oui]), catalogue), ControlPlane()
    builder = PathBuilder(Attributor([oui]), policy.trust, discovery, plane)
    packed = {GNB: bytes([192, 0, 2, 10]), UPF: bytes([192, 0, 2, 20])}

    def endpoints(teid):
        flow = Flow(flow_key(0, -1, -1, 6, bytes([198, 51, 100, 7]), 40000, bytes([203, 0, 113, 80]), 443), 1.0)
        flow.tunnels = {(GTPU, packed[GNB], packed[UPF], teid)}
        return {el.subject: el for el in builder.build(flow, 0, None) if el.kind == TUNNEL_ENDPOINT}

    first = endpoints(11)
    assert first[GNB].vendor is None and first[GNB].role is None and first[UPF].evidence.as_dict()["teid"] == [11]
    frame = ether("ff:ff:ff:ff:ff:ff", HUAWEI_GNB_MAC, ETH_ARP, arp(1, HUAWEI_GNB_MAC, GNB, "00:00:00:00:00:00", UPF))
    discovery(2.0, 0, decode(frame, 1), frame)
    second = endpoints(12)
    assert (second[GNB].vendor, second[GNB].trust) == ("huawei", "untrusted")
    assert second[GNB].as_dict()["evidence"]["mac_learned_from"] == "arp" and second[GNB].role is None
    plane(3.0, pfcp_session_establishment(7, UPF, UL_TEID, GNB, DL_TEID), 0, 8805, 8805)
    third = endpoints(13)
    assert (third[GNB].role, third[GNB].vendor, third[UPF].role) == ("gnb", "huawei", "upf")
    assert [e[UPF].as_dict()["evidence"]["teid"] for e in (first, second, third)] == [[11], [12], [13]]
    assert third[GNB].cls == builder._endpoints[(packed[GNB], 0, -1)].cls != second[GNB].cls != first[GNB].cls
    assert all("teid" not in (el.evidence.detail or {}) for el in builder._endpoints.values())
