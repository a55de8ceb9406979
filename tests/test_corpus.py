"""The public corpus: nothing crashes, and flows agree with tshark."""

import datetime
import glob
import os

import pytest

from verifier.audit import run_audit

from conftest import corpus_path, need_tool
from tshark_conv import frame_totals, our_conversations, tshark_conversations, tshark_frames

NOW = datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc)
# Encapsulations we do not decode yet (path discovery issue): tshark counts the
# inner flows, we count the outer UDP/IP flow. Detected per file from tshark's
# own protocol chains, so the list cannot silently grow.
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
    compared, skipped = 0, []
    for path in corpus_files():
        frames = tshark_frames(path)
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
        conv = tshark_conversations(path)
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
