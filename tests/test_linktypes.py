"""Link types users bring (Cisco HDLC, PPI, 802.11 with and without radiotap),
NSH and TSO frames: crafted with scapy (not our own writer), decoded, and
cross-checked field by field against tshark; then the public corpus's files
of those link types against tshark the same way."""

import glob
import os
import struct
import subprocess

import pytest
from scapy.all import IP, LLC, SNAP, TCP, UDP, Dot11, Dot11QoS, Ether, IPv6, RadioTap, raw, wrpcap
from scapy.contrib.nsh import NSH
from scapy.layers.ppi import PPI

from verifier import decode as d
from verifier.text import ip_text, mac_text
from verifier.capture import open_capture

from conftest import corpus_path, need_tool

AP, STA, GW = "00:e0:fc:00:00:01", "02:00:00:00:00:aa", "00:11:22:33:44:55"     # AP: a Huawei OUI
LOCAL, REMOTE = "198.51.100.5", "192.0.2.7"


def tcp_packet(sport=40000, dport=443):
    return IP(src=LOCAL, dst=REMOTE) / TCP(sport=sport, dport=dport)


def wlan(fcfield, addr1, addr2, addr3, body, subtype=0, qos=False):
    frame = Dot11(type=2, subtype=subtype | (8 if qos else 0), FCfield=fcfield, addr1=addr1, addr2=addr2, addr3=addr3)
    if qos:
        frame = frame / Dot11QoS()
    return frame / LLC() / SNAP() / body


def tso(frame):
    """A frame captured before segmentation offload: IPv4 total length 0."""
    return frame[:16] + b"\x00\x00" + frame[18:]


# name -> (link type, [frame bytes]); every frame carries one TCP or UDP packet
# except where the expected reason says otherwise.
CASES = {
    "radiotap_to_ds": (d.LT_RADIOTAP, [raw(RadioTap() / wlan("to_DS", AP, STA, GW, tcp_packet()))]),
    "radiotap_from_ds_qos": (d.LT_RADIOTAP, [raw(RadioTap() / wlan("from_DS", STA, AP, GW, tcp_packet(443, 40000),
                                                                   qos=True))]),
    "radiotap_tsft_fcs": (d.LT_RADIOTAP, [raw(RadioTap(present="TSFT+Flags", mac_timestamp=123456, Flags="FCS") /
                                              wlan("to_DS", AP, STA, GW, tcp_packet())) + b"\x11\x22\x33\x44"]),
    "wlan_no_radiotap_ipv6": (d.LT_IEEE802_11, [raw(wlan("to_DS", AP, STA, GW, IPv6(src="2001:db8::5",
                                                                                     dst="2001:db8:1::7") /
                                                     UDP(sport=5353, dport=53)))]),
    "ppi_wlan": (d.LT_PPI, [raw(PPI() / wlan("to_DS", AP, STA, GW, tcp_packet()))]),
    "c_hdlc": (d.LT_C_HDLC, [b"\x0f\x00\x08\x00" + raw(tcp_packet()),
                             b"\x8f\x00\x86\xdd" + raw(IPv6(src="2001:db8::5", dst="2001:db8:1::7") / UDP(sport=1,
                                                                                                            dport=2))]),
    "ppp_with_c_hdlc": (d.LT_PPP, [b"\x0f\x00\x08\x00" + raw(tcp_packet()), b"\xff\x03\x00\x21" + raw(tcp_packet())]),
    "nsh_ethernet": (d.LT_ETHERNET, [raw(Ether(src=STA, dst=GW) / NSH(spi=42, si=255, nextproto=1) / tcp_packet()),
                                     raw(Ether(src=STA, dst=GW) / NSH(nextproto=3) / Ether(src=STA, dst=AP) /
                                         tcp_packet(40001))]),
    "tso_total_length_0": (d.LT_ETHERNET, [tso(raw(Ether(src=STA, dst=GW) / tcp_packet() / (b"x" * 3000)))]),
}

FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "wlan.ra", "wlan.ta", "eth.src", "eth.dst", "_ws.malformed", "frame.protocols"]


def write(path, linktype, frames):
    wrpcap(str(path), [f for f in frames], linktype=linktype)
    return str(path)


def ours(path):
    cap = open_capture(path)
    out = []
    for _ts, ifx, _wire, data in cap.frames():
        out.append(d.decode(data, cap.interfaces[ifx].linktype))
    return out


def tshark(path):
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
           "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    rows = []
    for line in out.stdout.splitlines():
        cols = [c.split("|") for c in line.split("\t")]
        rows.append(dict(zip(FIELDS, cols)))
    return rows


def innermost(values):
    values = [v for v in values if v]
    return values[-1] if values else None


def agree(pkt, row):
    """Our packet's addresses, ports and link-layer neighbours equal tshark's innermost ones."""
    v6 = pkt.family == 6
    assert ip_text(pkt.src) == innermost(row["ipv6.src" if v6 else "ip.src"])
    assert ip_text(pkt.dst) == innermost(row["ipv6.dst" if v6 else "ip.dst"])
    l4 = "tcp" if pkt.proto == 6 else "udp"
    assert (str(pkt.sport), str(pkt.dport)) == (innermost(row[l4 + ".srcport"]), innermost(row[l4 + ".dstport"]))
    if row["wlan.ra"][0]:                       # 802.11: receiver and transmitter are the frame's MACs
        assert (mac_text(pkt.dst_mac), mac_text(pkt.src_mac)) == (row["wlan.ra"][0], row["wlan.ta"][0])
    elif row["eth.src"][0]:                     # the innermost Ethernet header's, as for pseudowires
        assert (mac_text(pkt.src_mac), mac_text(pkt.dst_mac)) == (row["eth.src"][-1], row["eth.dst"][-1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_link_types_decode_as_tshark_does(tmp_path, name):
    linktype, frames = CASES[name]
    path = write(tmp_path / f"{name}.pcap", linktype, frames)
    decoded = ours(path)
    assert len(decoded) == len(frames)
    for pkt in decoded:
        assert isinstance(pkt, d.Packet) and pkt.family, (name, pkt)
    need_tool("tshark")
    rows = tshark(path)
    assert len(rows) == len(frames)
    for pkt, row in zip(decoded, rows):
        assert not row["_ws.malformed"][0], (name, row)
        agree(pkt, row)


def test_the_access_point_is_the_l2_neighbor_of_a_wifi_flow(tmp_path):
    """Both directions through a Huawei AP: the AP's MAC is on the remote side
    of the flow, the station's on the local side (SPEC: l2-neighbor)."""
    from verifier.cli import App
    from verifier.pipeline import Pipeline
    frames = [raw(RadioTap() / wlan("to_DS", AP, STA, GW, tcp_packet())),
              raw(RadioTap() / wlan("from_DS", STA, AP, GW, IP(src=REMOTE, dst=LOCAL) / TCP(sport=443, dport=40000)))]
    path = write(tmp_path / "wifi.pcap", d.LT_RADIOTAP, frames)

    class Keep:
        flows = []

        def flow(self, flow, judgements):
            self.flows.append((flow, judgements))

    app = App(str(tmp_path / "data"))
    sink = Keep()
    pipe = Pipeline(app.policy([]), app.attributor(None, []), [sink])
    pipe.ingest(open_capture(path))
    pipe.finish()
    [(flow, judgements)] = sink.flows
    local = 0 if ip_text(flow.a) == LOCAL else 1
    assert {mac_text(m) for m in flow.macs[1 - local]} == {AP}
    assert {mac_text(m) for m in flow.macs[local]} == {STA}


def test_protected_and_null_frames_are_told_apart():
    protected = raw(RadioTap() / Dot11(type=2, FCfield="to_DS+protected", addr1=AP, addr2=STA, addr3=GW) / (b"\0" * 40))
    assert d.decode(protected, d.LT_RADIOTAP) == d.R_ENCRYPTED
    null = raw(RadioTap() / Dot11(type=2, subtype=4, FCfield="to_DS", addr1=AP, addr2=STA, addr3=GW))
    beacon = raw(RadioTap() / Dot11(type=0, subtype=8, addr1="ff:ff:ff:ff:ff:ff", addr2=AP, addr3=AP) / (b"\0" * 12))
    for frame in (null, beacon):
        pkt = d.decode(frame, d.LT_RADIOTAP)
        assert isinstance(pkt, d.Packet) and pkt.family == 0


def test_ppi_with_an_inner_link_type_we_do_not_read():
    frame = struct.pack("<BBHI", 0, 0, 8, 147) + b"\0" * 40
    assert d.decode(frame, d.LT_PPI) == d.R_LINKTYPE


CORPUS_LINKTYPES = {d.LT_RADIOTAP, d.LT_IEEE802_11, d.LT_C_HDLC, d.LT_PPI}


def corpus_files_of_new_linktypes():
    root = corpus_path("malformed-tcpdump")
    out = []
    for path in sorted(glob.glob(os.path.join(root, "*"))):
        try:
            cap = open_capture(path)
        except Exception:
            continue
        if {i.linktype for i in cap.interfaces} & CORPUS_LINKTYPES and cap.format == "pcap":
            out.append(path)
    return out


def test_corpus_captures_of_these_link_types_agree_with_tshark():
    """tcpdump's own captures of 802.11/radiotap and Cisco HDLC (many
    deliberately damaged, and mostly management, ISIS and SLARP frames): every
    frame tshark decodes as IP has our addresses (and ports, for TCP/UDP);
    every 802.11 data frame has tshark's receiver and transmitter as its MACs,
    and the encrypted ones are counted as such; nothing else is IP for us."""
    need_tool("tshark")
    from tshark_conv import in_parallel
    compared = {"ip": 0, "wlan-data": 0, "encrypted": 0, "not-ip": 0}
    for path, rows in in_parallel(tshark, corpus_files_of_new_linktypes()).items():
        decoded = ours(path)
        if len(rows) != len(decoded):
            continue                       # tshark stopped at damage we read past (or the reverse)
        for pkt, row in zip(decoded, rows):
            chain = row["frame.protocols"][0].split(":")
            if row["_ws.malformed"][0]:
                continue
            if "ip" in chain or "ipv6" in chain:
                assert isinstance(pkt, d.Packet) and pkt.family, (path, chain, pkt)
                v6 = "ipv6" in chain[:chain.index("ipv6") + 1] if "ipv6" in chain else False
                assert ip_text(pkt.src) == row["ipv6.src" if v6 else "ip.src"][0], path
                if ("tcp" in chain or "udp" in chain) and not pkt.frag_offset and pkt.proto in (6, 17):
                    agree(pkt, row)
                compared["ip"] += 1
            elif pkt == d.R_ENCRYPTED:
                compared["encrypted"] += 1
            else:
                assert not isinstance(pkt, d.Packet) or not pkt.family, (path, chain)
                compared["not-ip"] += 1
            if "data" in chain[2:4] and row["wlan.ra"][0] and isinstance(pkt, d.Packet):
                assert (mac_text(pkt.dst_mac), mac_text(pkt.src_mac)) == (row["wlan.ra"][0], row["wlan.ta"][0])
                compared["wlan-data"] += 1
    assert compared["ip"] >= 10 and compared["encrypted"] >= 1 and compared["not-ip"] >= 100, compared
