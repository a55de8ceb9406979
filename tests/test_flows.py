from verifier import decode as d
from verifier.craft import ETH_IPV4, ether, icmp, ip, ipv4, tcp, udp
from verifier.flows import FlowTable

C, S = "02:00:00:00:00:01", "00:00:0c:00:00:02"


def pkt(frame):
    out = d.decode(frame, d.LT_ETHERNET)
    assert not isinstance(out, str)
    return out


def up(sport=40000, payload=b"", **kw):
    return pkt(ether(S, C, ETH_IPV4, ipv4("198.51.100.5", "192.0.2.80", 6, tcp(sport, 443, payload)), **kw))


def down(dport=40000, payload=b""):
    return pkt(ether(C, S, ETH_IPV4, ipv4("192.0.2.80", "198.51.100.5", 6, tcp(443, dport, payload))))


def table(**kw):
    ended = []
    return FlowTable(ended.append, **kw), ended


def test_both_directions_share_one_flow_with_per_side_counts_and_macs():
    t, ended = table()
    f1, s1 = t.add(up(), 1.0, 0, 100)
    f2, s2 = t.add(down(), 1.5, 0, 300)
    assert f1 is f2 and s1 != s2 and len(t) == 1
    assert (f1.pkts[s1], f1.octets[s1], f1.pkts[s2], f1.octets[s2]) == (1, 100, 1, 300)
    assert f1.origin == s1 and (f1.first, f1.last) == (1.0, 1.5)
    client_side = s1
    assert f1.macs[client_side] == {bytes.fromhex("020000000001")}
    assert f1.macs[1 - client_side] == {bytes.fromhex("00000c000002")}


def test_vlan_and_interface_separate_flows():
    t, _ = table()
    a, _ = t.add(up(vlans=(20,)), 1.0, 0, 60)
    b, _ = t.add(up(vlans=(30,)), 1.0, 0, 60)
    c, _ = t.add(up(vlans=(20,)), 1.0, 1, 60)
    assert len({id(a), id(b), id(c)}) == 3


def test_idle_timeout_splits_a_flow_without_sleeping():
    t, ended = table(idle_timeout=60)
    first, _ = t.add(up(), 0.0, 0, 60)
    second, _ = t.add(up(), 61.0, 0, 60)
    assert first is not second and ended == [first] and first.end_reason == "idle"
    assert t.evictions["idle"] == 1


def test_sweep_ends_idle_and_active_flows():
    t, ended = table(idle_timeout=60, active_timeout=100)
    long_lived, _ = t.add(up(sport=1), 0.0, 0, 60)
    quiet, _ = t.add(up(sport=2), 0.0, 0, 60)
    for ts in range(10, 101, 10):
        t.add(up(sport=1), float(ts), 0, 60)
    t.sweep(101.0)
    assert {f.end_reason for f in ended} == {"idle", "active"}
    assert quiet.end_reason == "idle" and long_lived.end_reason == "active"
    assert len(t) == 0


def test_capacity_evicts_least_recently_seen_and_counts_it():
    t, ended = table(capacity=10)
    for port in range(1, 12):
        t.add(up(sport=port), float(port), 0, 60)
    assert len(t) <= 10 and t.evictions["capacity"] >= 1
    assert ended[0].ap == 1 or ended[0].bp == 1                  # the oldest went first


def test_shedding_ends_the_oldest_tenth_as_a_stable_sort_by_last_time_would():
    """_shed partitions instead of sorting the table: the same victims in the
    same order as sorted(flows, key=last)[:capacity // 10], ties in table order."""
    import random
    rnd = random.Random(5)
    t, ended = table(capacity=100)
    for port in range(1, 101):                        # last times with many ties
        t.add(up(sport=port), float(rnd.randrange(8)), 0, 60)
    want = [f.key for f in sorted(t.flows.values(), key=lambda f: f.last)[:10]]
    t.add(up(sport=1000), 9.0, 0, 60)                 # the 101st flow: over capacity
    assert [f.key for f in ended] == want and t.evictions["capacity"] == 10 and len(t) == 91


def test_flush_ends_everything_as_shutdown():
    t, ended = table()
    t.add(up(sport=1), 0.0, 0, 60)
    t.add(up(sport=2), 0.0, 0, 60)
    t.flush()
    assert len(ended) == 2 and {f.end_reason for f in ended} == {"shutdown"} and t.evictions["shutdown"] == 2


def test_flush_lets_each_flow_go_once_it_is_judged():
    """The memory of the flows already judged is free for the judging of the
    next (an audit's peak is its open flows, not those plus their judging).
    A flow's key is held by the flow alone once the table has let it go, so
    a judged flow still alive shows as one more reference to its key."""
    import sys

    from verifier.model import flow_key
    keys, alive, held = [], [], []
    spare = [flow_key(1, -1, -1, 6, bytes(4), 1, bytes(4), 2)]        # a key no flow holds: the base count
    base = [sys.getrefcount(k) for k in spare][0]

    def judge(flow):
        alive.append(sum(1 for k in keys if sys.getrefcount(k) > base))   # flows judged before, still held
        held.append([sys.getrefcount(k) for k in [flow.key]][0] > base)  # this one: held, and so seen
        keys.append(flow.key)

    t = FlowTable(judge)
    for port in range(1, 41):
        t.add(up(sport=port), 0.0, 4242, 60)
    assert t.flush() == 40 and len(alive) == 40
    assert max(alive) == 0 and all(held)          # only the flow being judged is still held


def frag(ident, offset, more, payload):
    flags = (0x2000 if more else 0) | offset
    return pkt(ether(S, C, ETH_IPV4, ipv4("198.51.100.5", "192.0.2.53", 17, payload, ident=ident, frag=flags)))


def test_later_fragments_join_the_first_fragments_flow():
    t, _ = table()
    f, _ = t.add(frag(7, 0, True, udp(5353, 53, b"a" * 16)), 1.0, 0, 100)
    g, _ = t.add(frag(7, 3, False, b"b" * 16), 1.1, 0, 50)
    assert f is g and f.pkts[0] + f.pkts[1] == 2 and f.octets[0] + f.octets[1] == 150


def test_fragment_before_its_first_fragment_waits_then_joins():
    t, _ = table()
    held, side = t.add(frag(8, 3, False, b"b" * 16), 1.0, 0, 50)
    assert held is None and side == -1
    f, _ = t.add(frag(8, 0, True, udp(5353, 53, b"a" * 16)), 1.1, 0, 100)
    assert f.octets[0] + f.octets[1] == 150 and (f.ap, f.bp) in ((5353, 53), (53, 5353))


def test_orphan_fragment_is_kept_as_a_portless_flow():
    t, ended = table()
    t.add(frag(9, 3, False, b"b" * 16), 1.0, 0, 50)
    t.flush()
    assert len(ended) == 1 and (ended[0].ap, ended[0].bp) == (0, 0) and sum(ended[0].octets) == 50


def test_icmp_error_joins_the_quoted_flow_and_names_the_router():
    t, _ = table()
    probe = ipv4("198.51.100.5", "192.0.2.99", 17, udp(33434, 33435, b"p" * 8), ttl=1)
    f, _ = t.add(pkt(ether(S, C, ETH_IPV4, probe)), 1.0, 0, 60)
    err = pkt(ether(C, S, ETH_IPV4, ipv4("203.0.113.254", "198.51.100.5", 1, icmp(11, 0, probe[:28]))))
    g, side = t.add(err, 1.01, 0, 70)
    assert g is f and side == -1 and f.icmp_errors == 1 and f.hops == {ip("203.0.113.254")}
    assert f.pkts[0] + f.pkts[1] == 1          # the error is not the flow's own packet


def test_icmp_error_without_its_flow_becomes_an_icmp_flow():
    t, _ = table()
    probe = ipv4("198.51.100.5", "192.0.2.99", 17, udp(1, 2))
    f, side = t.add(pkt(ether(C, S, ETH_IPV4, ipv4("203.0.113.254", "198.51.100.5", 1, icmp(3, 3, probe[:28])))),
                    1.0, 0, 70)
    assert f.proto == 1 and side >= 0
