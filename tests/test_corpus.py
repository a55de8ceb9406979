"""The public corpus: nothing crashes, and flows agree with tshark."""

import datetime
import glob
import html
import os

import pytest

from verifier.audit import run_audit
from verifier.sinks.html import render

from conftest import corpus_path, need_tool
from tshark_conv import (frame_totals, in_parallel, our_conversations, tshark_conversations, tshark_frames,
                         tshark_inner_frames)

NOW = datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc)
# Captures with tunnels: tshark's conversation table counts a tunnelled packet
# in the outer and in the inner conversation, we count it once, in the inner
# flow (and Teredo, L2TP, ... we do not decapsulate at all). They are compared
# frame by frame in test_tunnel_endpoints_and_inner_flows_equal_tshark instead.
# Detected per file from tshark's own protocol chains.
TUNNEL_PROTOCOLS = {"gtp", "gtpprime", "vxlan", "geneve", "gre", "teredo", "erspan", "mpls-over-udp", "ipip",
                    "nsh", "l2tp", "lisp", "udpencap", "ipv6-over-ipv4"}


def corpus_files():
    root = corpus_path("pcaps")
    return sorted(p for p in glob.glob(os.path.join(root, "*", "*")) if "/LICENSES/" not in p and
                  not p.endswith(".tsv"))


@pytest.fixture(scope="module")
def app():
    from verifier.cli import App
    return App("/nonexistent-data-dir")


def test_every_corpus_file_audits_without_an_exception(app):
    files = corpus_files() + sorted(glob.glob(os.path.join(corpus_path("malformed-tcpdump"), "*")))
    policy = app.policy([])
    attributor = app.attributor(None, [corpus_path("mmdb", "GeoLite2-ASN-Test.mmdb")])
    seen_errors = {}
    for path in files:
        result = run_audit([path], policy, attributor, NOW)          # must not raise
        cert = result.certificate
        assert result.exit_code in (0, 1, 2, 3)
        for reason, n in cert["summary"]["decode_errors"].items():
            seen_errors[reason] = seen_errors.get(reason, 0) + n
    assert len(files) > 1000
    assert seen_errors.get("unsupported-linktype") and seen_errors.get("truncated-ipv4")


def tunnelled(frames):
    from verifier.decode import TUNNEL_UDP_PORTS
    if any(fr.key and fr.key[0] == 17 and {fr.key[1][1], fr.key[2][1]} & set(TUNNEL_UDP_PORTS) for fr in frames):
        return True                     # a tunnel port tshark does not dissect by default (VXLAN on 8472)
    for chain in {tuple(fr.chain) for fr in frames}:
        if TUNNEL_PROTOCOLS & set(chain):
            return True
        ip_layers = [p for p in chain if p in ("ip", "ipv6")]
        if len(ip_layers) > 1 and "icmp" not in chain and "icmpv6" not in chain:
            return True
    return False


def test_flows_and_bytes_equal_tshark_conversations(app):
    """For every corpus capture tshark reads, without tunnels: the same TCP/UDP
    conversations with the same frame and byte totals.

    Differences by design, applied to tshark's facts before comparing (see
    tshark_conv.py): later IP fragments count toward their datagram's flow;
    an ICMP error is not a packet of the flow it quotes; a fragment whose
    first fragment is absent stays as a port-less flow (tshark drops it); a
    packet with intact ports but a malformed or capture-truncated TCP header
    stays in its flow. tshark's conversation table stops short of such
    frames, so it is checked to lie between tshark's per-frame totals without
    and with them, while our flows equal the per-frame totals exactly.
    """
    need_tool("tshark")
    policy = app.policy([])
    attributor = app.attributor(None, [])
    compared, skipped, plain_files = 0, [], []
    frames_of = in_parallel(tshark_frames, corpus_files())
    for path, frames in frames_of.items():
        theirs = frame_totals(frames)
        try:
            ours = our_conversations(path, policy, attributor)
        except Exception as exc:                       # unreadable for us: tshark must agree
            assert not theirs, (path, exc)
            continue
        if tunnelled(frames):
            skipped.append(os.path.basename(path))
            continue
        ours = {k: v for k, v in ours.items() if k in theirs or (k[1][1], k[2][1]) != (0, 0)}
        assert ours == theirs, path
        plain_files.append(path)
    for path, conv in in_parallel(tshark_conversations, plain_files).items():
        frames = frames_of[path]
        plain = frame_totals(frames, join_fragments=False)
        sure = frame_totals(frames, join_fragments=False, skip_suspect=True)
        assert {k for k, v in sure.items() if v[0]} <= set(conv) <= set(plain), path
        for key, (frames, size, exact) in conv.items():
            low = sure.get(key, (0, 0))
            assert low[0] <= frames <= plain[key][0], (path, key)
            if exact:
                assert low[1] <= size <= plain[key][1], (path, key)
        compared += 1
    assert compared > 60, compared
    assert len(skipped) <= 45, skipped


def _our_frames(path):
    """Per frame, from our decoder: (innermost TCP/UDP key or None, [(kind, outer src, outer dst)])."""
    from verifier.text import ip_text
    from verifier.capture import open_capture
    from verifier.decode import decode
    capture = open_capture(path)
    out = []
    for _ts, ifx, _wire, data in capture.frames():
        pkt = decode(data, capture.interfaces[ifx].linktype)
        if pkt.__class__ is str or not pkt.family:
            out.append((None, []))
            continue
        key = None
        if pkt.proto in (6, 17):
            key = (pkt.proto,) + tuple(sorted([(ip_text(pkt.src), pkt.sport), (ip_text(pkt.dst), pkt.dport)]))
        out.append((key, [(kind, ip_text(a), ip_text(b)) for kind, a, b, _id in pkt.tunnels or ()]))
    return out


def test_tunnel_endpoints_and_inner_flows_equal_tshark(app):
    """GTP-U, VXLAN, Geneve, GRE, ERSPAN, IP-in-IP captures of the corpus:
    frame by frame, the innermost TCP/UDP flow and the tunnel layers around
    it (kind, outer addresses) are the ones tshark dissects; per file, our
    inner flows have tshark's frame and byte totals.

    Not compared (counted, and bounded below): fragments of an outer packet
    (neither side looks inside without reassembly; we count them in the outer
    flow), tunnels we do not decapsulate (Teredo, GTP', L2TP, MPLS-in-UDP),
    frames tshark marks malformed.
    """
    need_tool("tshark")
    policy, attributor = app.policy([]), app.attributor(None, [])
    files = [p for p in corpus_files() if os.path.basename(os.path.dirname(p)) in ("gtp", "tunnels")]
    files.append(corpus_path("pcaps", "lldp_cdp", "tcpdump__erspan-type-i-4.pcap"))
    compared = tunnelled = 0
    skipped = {}
    kinds = set()
    for path in files:
        theirs, ours = tshark_inner_frames(path), _our_frames(path)
        assert len(theirs) == len(ours), path
        totals = {}
        for index, (fr, (key, tunnels)) in enumerate(zip(theirs, ours), 1):
            if fr.skip:
                skipped[fr.skip] = skipped.get(fr.skip, 0) + 1
                continue
            assert key == fr.key, (path, index)
            if key is not None:
                assert tunnels == fr.tunnels, (path, index)
                count = totals.setdefault(key, [0, 0])
                count[0] += 1
                count[1] += fr.size
            compared += 1
            tunnelled += bool(tunnels)
            kinds.update(t[0] for t in tunnels)
        if not any(fr.skip for fr in theirs):
            flows = our_conversations(path, policy, attributor)
            flows = {k: v for k, v in flows.items() if k in totals or (k[1][1], k[2][1]) != (0, 0)}
            assert flows == {k: tuple(v) for k, v in totals.items()}, path
    assert kinds == {"gtp-u", "vxlan", "geneve", "gre", "erspan", "ip-in-ip"}, kinds
    assert compared > 1300 and tunnelled > 1000, (compared, tunnelled)
    assert sum(skipped.values()) < 200, skipped


def _tshark_devices(path):
    """{(protocol, id)} of the LLDP chassis ids, CDP device ids and STP bridge/root MACs tshark dissects."""
    import subprocess
    fields = ["lldp.chassis.id.mac", "lldp.chassis.id", "lldp.chassis.id.ip4", "cdp.deviceid", "stp.bridge.hw",
              "stp.root.hw", "_ws.malformed"]
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=f", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = set()
    for line in out.splitlines():
        cols = line.split("\t") + [""] * len(fields)
        mac, other, ip4, cdp, bridge, root, malformed = cols[:7]
        if malformed:
            continue
        if mac or ip4 or other:
            found.add(("lldp", mac or ip4 or other))
        if cdp:
            found.add(("cdp", cdp))
        for stp in (bridge, root):
            if stp:
                found.add(("stp", stp))
    return found


def test_discovered_devices_equal_tshark(app):
    """LLDP, CDP and STP devices of the lldp_cdp captures (and the STP ones
    among tcpdump's): the same device identities tshark dissects, each with
    a vendor where the announcement or its chassis OUI names one."""
    need_tool("tshark")
    policy, attributor = app.policy([]), app.attributor(None, [])
    files = sorted(glob.glob(os.path.join(corpus_path("pcaps", "lldp_cdp"), "*")))
    files += [os.path.join(corpus_path("malformed-tcpdump"), n) for n in
              ("802.1w_rapid_STP.pcap", "MSTP_Intra-Region_BPDUs.pcap", "rpvstp-trunk-native-vid5.pcap")]
    total, vendors = 0, set()
    for path in files:
        cert = run_audit([path], policy, attributor, NOW, catalogue=app.catalogue).certificate
        ours = {(d["protocol"], d["id"]) for d in cert["discovered_devices"]}
        assert ours == _tshark_devices(path), path
        total += len(ours)
        vendors.update(d["vendor"] for d in cert["discovered_devices"] if d["vendor"])
        if cert["discovered_devices"]:
            page = render(cert)
            assert "Devices heard on the capture segments" in page
            assert all(html.escape(d["name"] or d["id"], quote=True) in page for d in cert["discovered_devices"])
    assert total >= 20, total
    assert {"cisco", "h3c", "hpe"} <= vendors, vendors


def test_malformed_control_and_tunnel_frames_are_counted_not_fatal(app):
    """tcpdump's crash and loop reproducers for LLDP, CDP, STP, GTP, VXLAN,
    Geneve and GRE: each is audited without an exception, well within a
    second (a hang guard, not a benchmark: the files hold a few frames)."""
    import time
    policy, attributor = app.policy([]), app.attributor(None, [])
    names = [n for n in sorted(os.listdir(corpus_path("malformed-tcpdump")))
             if any(k in n.lower() for k in ("lldp", "cdp", "stp", "gtp", "vxlan", "geneve", "gre"))]
    assert len(names) >= 30, names
    run_audit([os.path.join(corpus_path("malformed-tcpdump"), names[0])], policy, attributor, NOW,
              catalogue=app.catalogue)                  # warm-up: catalogues and caches load once
    for name in names:
        started = time.monotonic()
        result = run_audit([os.path.join(corpus_path("malformed-tcpdump"), name)], policy, attributor, NOW,
                           catalogue=app.catalogue)
        assert time.monotonic() - started < 1.0, name
        assert result.exit_code in (0, 1, 2, 3)


# GTPv2 F-TEID interface types that carry user plane (the ones we learn from).
def _tshark_control_plane(path):
    """Per frame: {(address, TEID)} of user-plane tunnel ends tshark dissects
    in GTPv2-C F-TEIDs, GTPv1-C Create/Update PDP Context (TEID Data I with
    the user-plane GSN address) and PFCP F-TEIDs / Outer Header Creations;
    None for frames tshark marks malformed."""
    import subprocess
    from verifier.control.mobile import GTPV1_ROLES, GTPV2_UP_ROLES
    fields = ["frame.number", "_ws.malformed", "gtpv2.f_teid_interface_type", "gtpv2.f_teid_v4", "gtpv2.f_teid_v6",
              "gtpv2.f_teid_gre_key", "gtpv2.f_teid_ipv4", "gtpv2.f_teid_ipv6", "gtp.message", "gtp.teid_data",
              "gtp.gsn_ipv4", "gtp.gsn_ipv6", "pfcp.f_teid_flags.ch", "pfcp.f_teid_flags.v4", "pfcp.f_teid_flags.v6",
              "pfcp.f_teid.teid", "pfcp.f_teid.ipv4_addr", "pfcp.f_teid.ipv6_addr",
              "pfcp.outer_hdr_creation.teid", "pfcp.outer_hdr_creation.ipv4", "pfcp.outer_hdr_creation.ipv6"]
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    out = subprocess.run(cmd + [a for f in fields for a in ("-e", f)], capture_output=True, text=True, timeout=300)
    frames = {}
    for line in out.stdout.splitlines():
        col = dict(zip(fields, [c.split("|") if c else [] for c in line.split("\t")]))
        number = int(col["frame.number"][0])
        if col["_ws.malformed"]:
            frames[number] = None
            continue
        types = [int(t) for t in col["gtpv2.f_teid_interface_type"]]
        facts = _pair_teids(col["gtpv2.f_teid_gre_key"], col["gtpv2.f_teid_v4"], col["gtpv2.f_teid_v6"],
                            col["gtpv2.f_teid_ipv4"], col["gtpv2.f_teid_ipv6"], listed=[True] * len(types),
                            keep=[t in GTPV2_UP_ROLES for t in types])
        messages = [int(m, 16) for m in col["gtp.message"]]
        gsns = col["gtp.gsn_ipv4"] + col["gtp.gsn_ipv6"]
        if messages and messages[0] in GTPV1_ROLES and len(gsns) >= 2:
            facts.add((gsns[1], int(col["gtp.teid_data"][0], 16) if col["gtp.teid_data"] else None))
        facts |= _pair_teids(col["pfcp.f_teid.teid"], col["pfcp.f_teid_flags.v4"], col["pfcp.f_teid_flags.v6"],
                             col["pfcp.f_teid.ipv4_addr"], col["pfcp.f_teid.ipv6_addr"],
                             listed=[ch == "0" for ch in col["pfcp.f_teid_flags.ch"]],
                             keep=[ch == "0" for ch in col["pfcp.f_teid_flags.ch"]])
        teids, v4s, v6s = (col["pfcp.outer_hdr_creation." + f] for f in ("teid", "ipv4", "ipv6"))
        if len(teids) == 1 or len(teids) == len(v4s) + len(v6s):   # each one address, or one TEID for all
            facts |= {(a, int(teids[min(i, len(teids) - 1)], 16)) for i, a in enumerate(v4s + v6s)}
        frames[number] = facts
    return frames


def _pair_teids(teids, v4flags, v6flags, v4s, v6s, listed, keep):
    """(address, TEID) of F-TEIDs listed field by field: each F-TEID's flags
    say which addresses it carries. ``listed`` per F-TEID: whether tshark
    lists a TEID and addresses for it (a PFCP CHOOSE one has none);
    ``keep``: whether it is a user-plane tunnel end."""
    out = set()
    teid_at, a4, a6 = iter(teids), iter(v4s), iter(v6s)
    for shown, wanted, f4, f6 in zip(listed, keep, v4flags, v6flags):
        if not shown:
            continue
        teid = int(next(teid_at), 16)
        addrs = ([next(a4)] if f4 == "1" else []) + ([next(a6)] if f6 == "1" else [])
        if wanted:
            out |= {(a, teid) for a in addrs}
    return out


def test_control_plane_tunnel_ends_equal_tshark(app):
    """GTPv1-C, GTPv2-C and PFCP messages of the corpus: frame by frame, the
    user-plane tunnel ends (address, TEID) we learn are ones tshark
    dissects, and on the captures of real exchanges all of them.

    scapy's PFCP test capture is fuzz-like: it puts F-TEIDs and Outer Header
    Creations inside groups TS 29.244 never places them (Query URR, Remove
    URR, ...) and into node messages; tshark dissects any IE anywhere, we
    read them only where the specification puts them (a PDR's PDI, Created
    PDR, a FAR's forwarding parameters, traffic endpoints). There ours must
    be a subset, and the difference is counted."""
    need_tool("tshark")
    from verifier.attribution.mobile import CONTROL_UDP_PORTS, ControlPlane
    from verifier.text import ip_text
    from verifier.capture import open_capture
    from verifier.decode import decode
    files = sorted(glob.glob(os.path.join(corpus_path("pcaps", "gtp"), "*")))
    compared = learned = out_of_place = 0
    for path in files:
        theirs = _tshark_control_plane(path)
        fuzzed = os.path.basename(path) == "scapy__pfcp.pcap"
        capture = open_capture(path)
        for number, (ts, ifx, _wire, data) in enumerate(capture.frames(), 1):
            pkt = decode(data, capture.interfaces[ifx].linktype)
            if pkt.__class__ is str or pkt.proto != 17 or not ({pkt.sport, pkt.dport} & CONTROL_UDP_PORTS):
                continue
            plane = ControlPlane()
            plane(ts, data, pkt.payload, pkt.sport, pkt.dport)         # never raises, malformed or not
            if theirs.get(number) is None:
                continue                               # malformed to tshark: ours only has to survive it
            ours = {(ip_text(n.address), t) for n in plane.nodes.values() for t in (n.teids or {None})}
            if fuzzed:
                assert ours <= theirs[number], (path, number)
                out_of_place += len(theirs[number] - ours)
            else:
                assert ours == theirs[number], (path, number)
            compared += 1
            learned += len(ours)
    assert compared >= 20 and learned >= 5, (compared, learned)
    print(f"compared {compared} messages, learned {learned} tunnel ends, {out_of_place} out-of-place ones skipped")
