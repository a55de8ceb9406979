"""Community ID v1 against the spec's published examples."""

from verifier.communityid import community_id
from verifier.craft import ip
from verifier.model import Flow, flow_key


def flow(proto, a, ap, b, bp):
    a, b = ip(a), ip(b)
    if (b, bp) < (a, ap):
        a, ap, b, bp = b, bp, a, ap
    return Flow(flow_key(0, -1, -1, proto, a, ap, b, bp), 0.0)


def test_tcp_example_from_the_spec():
    f = flow(6, "128.232.110.120", 34855, "66.35.250.204", 80)
    assert community_id(f) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id(f, seed=1) == "1:3V71V58M3Ksw/yuFALMcW0LAHvc="


def test_direction_does_not_matter():
    assert community_id(flow(17, "192.0.2.1", 53, "192.0.2.2", 4000)) == \
        community_id(flow(17, "192.0.2.2", 4000, "192.0.2.1", 53))


def test_agrees_with_the_reference_implementation():
    import random
    communityid = __import__("pytest").importorskip("communityid")
    rnd = random.Random(1)
    ref = communityid.CommunityID()
    for _ in range(500):
        v6 = rnd.random() < 0.3
        a = "2001:db8::%x" % rnd.getrandbits(16) if v6 else "192.0.2.%d" % rnd.randrange(256)
        b = "2001:db8::%x" % rnd.getrandbits(16) if v6 else "198.51.100.%d" % rnd.randrange(256)
        proto = rnd.choice((6, 17))
        ap, bp = rnd.randrange(65536), rnd.randrange(65536)
        make = communityid.FlowTuple.make_tcp if proto == 6 else communityid.FlowTuple.make_udp
        assert community_id(flow(proto, a, ap, b, bp)) == ref.calc(make(a, b, ap, bp))


def test_icmp_echo_matches_the_reference_both_ways():
    communityid = __import__("pytest").importorskip("communityid")
    ref = communityid.CommunityID()
    want = ref.calc(communityid.FlowTuple.make_icmp("192.0.2.1", "192.0.2.2", 8, 0))
    assert want == ref.calc(communityid.FlowTuple.make_icmp("192.0.2.2", "192.0.2.1", 0, 0))
    # Our ICMP flows carry (type, counterpart type) as ports, in either order.
    assert community_id(flow(1, "192.0.2.1", 8, "192.0.2.2", 0)) == want
    assert community_id(flow(1, "192.0.2.2", 0, "192.0.2.1", 8)) == want


def test_one_way_icmp_keeps_the_senders_direction():
    communityid = __import__("pytest").importorskip("communityid")
    from verifier import decode as d
    from verifier.craft import ETH_IPV4, ether, icmp, ipv4
    from verifier.flows import FlowTable
    ref = communityid.CommunityID()
    # Sender is the higher address, so our canonical key stores it second.
    sender, receiver = "203.0.113.9", "192.0.2.1"
    for itype, code in ((3, 3), (3, 0), (11, 0)):               # code 0 is also the echo-reply type
        table = FlowTable(lambda f: None)
        pkt = d.decode(ether("02:00:00:00:00:01", "02:00:00:00:00:02", ETH_IPV4,
                             ipv4(sender, receiver, 1, icmp(itype, code))), d.LT_ETHERNET)   # nothing quoted
        flow, _ = table.add(pkt, 1.0, 0, 60)
        assert community_id(flow) == ref.calc(communityid.FlowTuple.make_icmp(sender, receiver, itype, code))
