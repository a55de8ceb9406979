"""The vectorised fast path must give exactly what the decoder gives."""

import random

import numpy as np
import pytest

from verifier import decode as d, engine as engines
from verifier.engine import split as batch
from verifier.capture.chunk import from_frames
from verifier.craft import ETH_IPV4, ETH_IPV6, ETH_QINQ, ether, geneve, gtpu, icmp, ipv4, ipv6, tcp, udp, vxlan
from verifier.pipeline import Pipeline

# Every test runs with the compiled per-frame engine and with numpy (conftest.engine).
pytestmark = pytest.mark.usefixtures("engine")

A, B = "d4:be:d9:00:00:01", "00:00:0c:00:00:02"
ETH = np.array([True])

FAST = [
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 6, tcp(40000, 443, b"x" * 30))),
    ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:4860::8888", 17, udp(5000, 53, b"q"))),
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 17, udp(1, 2)), vlans=(20,)),
    ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:4860::8888", 6, tcp(3, 4)), vlans=(4094,)),
]
SLOW = [
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 1, icmp(8, 0))),                      # ICMP
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 17, udp(1, 2), frag=0x2000)),         # fragment
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 6, tcp(1, 2), options=b"\1\1\1\0")),  # IP options
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 6, tcp(1, 2)), vlans=((ETH_QINQ, 5), 6)),
    ether("ff:ff:ff:ff:ff:ff", A, 0x0806, b"\0" * 28),                                          # ARP
    ether(B, A, ETH_IPV6, ipv6("2001:db8::1", "2001:db8::2", 0, tcp(1, 2), ext=b"\x06\0" + b"\0" * 6)),
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 6, b"\0\1")),                         # truncated
    ether(B, A, ETH_IPV4, ipv4("198.51.100.1", "8.8.8.8", 6, tcp(1, 2))[:2] + b"\0\x14"          # total length 20
          + ipv4("198.51.100.1", "8.8.8.8", 6, tcp(1, 2))[4:]),
]


def _tunnelled(inner_v6, kind, vlans=()):
    inner = (ipv6("2001:db8:100::7", "2001:db8:203::80", 6, tcp(40000, 443, b"y" * 20)) if inner_v6
             else ipv4("198.51.100.7", "203.0.113.80", 17, udp(5000, 53, b"q")))
    if kind == "gtp":
        payload = udp(2152, 2152, gtpu(0x1234, inner))
    elif kind == "gtp+pdu":
        payload = udp(2152, 2152, gtpu(0x1234, inner, qfi=5))
    else:
        frame = ether("02:00:00:00:00:02", "02:00:00:00:00:01", ETH_IPV6 if inner_v6 else ETH_IPV4, inner)
        payload = (udp(6081, 6081, geneve(0xABCDE, frame)) if kind == "geneve"
                   else udp(49999, 8472 if inner_v6 else 4789, vxlan(77, frame)))
    return ether(B, A, ETH_IPV4, ipv4("192.0.2.10", "192.0.2.20", 17, payload), vlans=vlans)


FAST_TUNNELS = [_tunnelled(v6, kind, vlans) for v6 in (False, True) for kind in ("gtp", "gtp+pdu", "vxlan", "geneve")
                for vlans in ((), (30,))]
SLOW_TUNNELS = [
    ether(B, A, ETH_IPV4, ipv4("192.0.2.10", "192.0.2.20", 17, udp(2152, 2152, b"\x32\xff\0\x08" + b"\0" * 12))),
    ether(B, A, ETH_IPV4, ipv4("192.0.2.10", "192.0.2.20", 17,
                               udp(2152, 2152, gtpu(1, ipv4("198.51.100.7", "203.0.113.80", 1, icmp(8, 0)))))),
    ether(B, A, ETH_IPV4, ipv4("192.0.2.10", "192.0.2.20", 17, udp(6081, 6081, b"\0" * 40))),      # Geneve
    ether(B, A, ETH_IPV4, ipv4("192.0.2.10", "192.0.2.20", 17, udp(6081, 6081, geneve(         # with options
        5, ether(B, A, ETH_IPV4, ipv4("198.51.100.7", "203.0.113.80", 6, tcp(1, 2))), options=b"\0" * 8)))),
]


def chunk(frames, ts=None):
    return from_frames((ts[i] if ts else float(i), 0, len(f), f) for i, f in enumerate(frames))


def _fields(groups):
    """The fields the fast path reads back from its single group's key."""
    values = batch.fields_from_key(groups.key_bytes([0])[0], int(groups.classes[0]))
    return dict(zip(("vlan", "proto", "src", "sport", "dst", "dport", "src_mac", "dst_mac", "tunnels"), values))


@pytest.mark.parametrize("frame", FAST + FAST_TUNNELS)
def test_key_rebuilds_what_the_decoder_finds(frame):
    (groups,), slow = batch.split(chunk([frame] * 3), ETH, engine=engines.DEFAULT)
    assert len(slow) == 0 and len(groups) == 1 and groups.count.tolist() == [3]
    ours, theirs = _fields(groups), d.decode(frame, d.LT_ETHERNET)
    for field in ("dst_mac", "src_mac", "vlan", "src", "dst", "proto", "sport", "dport", "tunnels"):
        assert ours[field] == getattr(theirs, field), field


def test_fields_read_a_column_at_a_time_equal_one_key_at_a_time():
    zeros = ether("00:00:00:00:00:00", A, ETH_IPV4, ipv4("203.0.113.0", "192.0.2.0", 6, tcp(0, 0)))   # NUL bytes stay
    frames = FAST * 3 + FAST_TUNNELS + [zeros]
    random.Random(7).shuffle(frames)
    parts, slow = batch.split(chunk(frames), ETH, engine=engines.DEFAULT)
    assert len(parts) == 2 and len(slow) == 0
    for groups in parts:
        rows = np.arange(len(groups))[::-1]
        one_by_one = [batch.fields_from_key(key, cls)
                      for key, cls in zip(groups.key_bytes(rows), groups.classes[rows].tolist())]
        assert batch.fields_of(groups, rows) == one_by_one


def test_other_tunnel_frames_go_to_the_decoder():
    parts, slow = batch.split(chunk(FAST_TUNNELS + SLOW_TUNNELS), ETH, engine=engines.DEFAULT)
    assert sum(len(g) for g in parts) == len(FAST_TUNNELS)
    assert slow.tolist() == list(range(len(FAST_TUNNELS), len(FAST_TUNNELS) + len(SLOW_TUNNELS)))


def test_other_frames_go_to_the_decoder():
    frames = FAST + SLOW
    parts, slow = batch.split(chunk(frames), ETH, engine=engines.DEFAULT)
    assert sum(len(g) for g in parts) == len(FAST)
    assert slow.tolist() == list(range(len(FAST), len(frames)))


def test_non_ethernet_interfaces_are_not_grouped():
    parts, slow = batch.split(chunk(FAST), np.array([False]), engine=engines.DEFAULT)
    assert parts == [] and len(slow) == len(FAST)


def test_group_sums_and_first_rows():
    frames = [FAST[0], FAST[1], FAST[0], FAST[0]]
    (groups,), _ = batch.split(chunk(frames, ts=[1.0, 2.0, 3.0, 4.0]), ETH, engine=engines.DEFAULT)
    assert groups.first.tolist() == [0, 1] and groups.count.tolist() == [3, 1]
    assert groups.octets.tolist() == [3 * len(FAST[0]), len(FAST[1])]
    assert (groups.first_ts.tolist(), groups.last_ts.tolist()) == ([1.0, 2.0], [4.0, 2.0])


def flows_of(frames, ts, force_decoder=False, monkeypatch=None):
    from verifier.cli import App
    app = App("/nonexistent")
    out = []

    class Sink:
        def flow(self, flow, judgements):
            out.append((flow.key, tuple(flow.pkts), tuple(flow.octets), flow.first, flow.last,
                        tuple(frozenset(m) for m in flow.macs), flow.icmp_errors,
                        frozenset(flow.tunnels or ())))

    pipe = Pipeline(app.policy([]), app.attributor(None, []), [Sink()])

    class Source:
        interfaces = [type("I", (), {"linktype": 1, "name": None})()]

        def chunks(self):
            step = 97
            for i in range(0, len(frames), step):
                yield from_frames((ts[j], 0, len(frames[j]), frames[j]) for j in range(i, min(i + step, len(frames))))

    if force_decoder:
        monkeypatch.setattr("verifier.pipeline.split", lambda ch, eth, ifx=None, engine=None, port_flags=None: ([], np.arange(len(ch))))
    pipe.ingest(Source())
    pipe.finish()
    return sorted(out)


def random_frames(seed, n=3000):
    rnd = random.Random(seed)
    macs = ["d4:be:d9:00:00:%02x" % i for i in range(4)] + ["00:18:82:00:00:01", "00:00:0c:00:00:02"]
    frames = []
    for _ in range(n):
        kind = rnd.random()
        s, dmac = rnd.choice(macs), rnd.choice(macs)
        a, b = "198.51.100.%d" % rnd.randrange(1, 6), rnd.choice(("8.8.8.8", "1.1.1.1"))
        if rnd.random() < 0.5:
            s, dmac, a, b = dmac, s, b, a
        sp, dp = rnd.choice((1000, 2000)), rnd.choice((53, 443))
        vlans = (20,) if rnd.random() < 0.3 else ()
        if kind < 0.5:
            frames.append(ether(dmac, s, ETH_IPV4, ipv4(a, b, 6, tcp(sp, dp, b"x" * rnd.randrange(40))), vlans=vlans))
        elif kind < 0.7:
            frames.append(ether(dmac, s, ETH_IPV6, ipv6("2001:db8::%d" % rnd.randrange(3), "2001:4860::1", 17,
                                                         udp(sp, dp)), vlans=vlans))
        elif kind < 0.8:
            frames.append(ether(dmac, s, ETH_IPV4, ipv4(a, b, 1, icmp(8, 0))))
        elif kind < 0.85:
            frames.append(ether(dmac, s, ETH_IPV4, ipv4(a, b, 17, udp(sp, dp), frag=rnd.choice((0x2000, 0x0003)),
                                                        ident=rnd.randrange(3))))
        elif kind < 0.9:
            frames.append(rnd.choice(FAST_TUNNELS + SLOW_TUNNELS))
        else:
            frames.append(ether(dmac, s, 0x0806, b"\0" * 28))
    return frames


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pipeline_with_fast_path_equals_decoder_only(seed, monkeypatch):
    frames = random_frames(seed)
    ts = [1000.0 + i * 0.01 for i in range(len(frames))]
    fast = flows_of(frames, ts)
    slow = flows_of(frames, ts, force_decoder=True, monkeypatch=monkeypatch)
    assert fast == slow and len(fast) > 20


def test_idle_gaps_inside_a_chunk_keep_timeouts_exact(monkeypatch):
    frames = [FAST[0]] * 4
    ts = [0.0, 1.0, 400.0, 401.0]                   # a 399 s gap: past the 300 s idle timeout
    flows = flows_of(frames, ts)
    assert [f[1] for f in flows] in ([(2, 0), (2, 0)], [(0, 2), (0, 2)])


def test_hash_collisions_fall_back_to_the_decoder(monkeypatch):
    monkeypatch.setitem(batch._MULTS, 64, np.zeros(8, np.uint64))       # every row hashes to 0
    monkeypatch.setattr(batch, "_TAG_MULT", np.uint64(0))
    parts, slow = batch.split(chunk(FAST), ETH, engine=engines.DEFAULT)
    assert parts == [] and len(slow) == len(FAST)


def test_an_audit_leaves_no_cyclic_garbage_per_flow(tmp_path):
    """The audit runs with the cycle collector off (runtime.tune_for_throughput):
    flows, packets, paths and judgements must be freed by reference counting
    alone, on the fast path and the decoder's path alike."""
    import datetime
    import gc

    from verifier import audit
    from verifier.cli import App
    from verifier.craft import PcapWriter
    path = str(tmp_path / "mixed.pcap")
    with PcapWriter(path) as out:
        for i, frame in enumerate(random_frames(4, n=4000)):
            out.write(1000.0 + i * 0.5, frame)                 # spans idle timeouts: flows end as they go
    app = App("/nonexistent")
    policy, attributor = app.policy([]), app.attributor(None, [])
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = audit.run_audit([path], policy, attributor, datetime.datetime.now(datetime.timezone.utc))
        gc.collect()
        per_flow = [o for o in gc.garbage if type(o).__name__ in ("Flow", "Packet", "Judgement")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert result.certificate["summary"]["flows"] > 20
    assert per_flow == []
