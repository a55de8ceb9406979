import glob
import ipaddress
import os
import random
import re
import subprocess

import pytest

from verifier.attribution import Attributor
from verifier.attribution.asn import AsnDatabase, parse_record
from verifier.attribution.inventory import load_inventory
from verifier.attribution.oui import OuiRegistry, import_ieee
from verifier.attribution.special import is_special
from verifier.attribution.vendors import normalise
from verifier.craft import ip, mac
from verifier.errors import ConfigError

from conftest import corpus_path, need_tool

IEEE = ("oui", "ieee-20260606")


# --- vendor catalogue ---------------------------------------------------------

@pytest.mark.parametrize("org,vendor", [
    ("HUAWEI TECHNOLOGIES CO.,LTD", "huawei"), ("Huawei Device Co., Ltd.", "huawei"),
    ("zte corporation", "zte"), ("ZHONGXING TELECOM LTD.", "zte"),
    ("Nokia Solutions and Networks GmbH & Co. KG", "nokia"), ("Alcatel-Lucent", "nokia"),
    ("Ericsson AB", "ericsson"), ("Sony Ericsson Mobile Communications AB", "sony"),
    ("Huawei-3Com", "h3c"), ("Nokia Shanghai Bell Co., Ltd.", "nokia-shanghai-bell"),
    ("Cisco Systems, Inc", "cisco"), ("Intelbras", None), ("Aztech Electronics", None),
])
def test_catalogue_maps_registry_spellings(catalogue, org, vendor):
    assert catalogue.match(org) == vendor


# --- OUI ----------------------------------------------------------------------

def test_manuf_longest_prefix_beats_parent_block(oui):
    # 8C:1F:64 is an IEEE Registration Authority /24 carved into MA-S (/36)
    # blocks: scapy's own 3-byte lookup cannot name their owners (older
    # scapy answers the Authority itself, 2.8 nothing).
    from scapy.all import conf
    one, two = "8c:1f:64:00:00:01", "8c:1f:64:af:a0:01"
    a, b = oui.lookup_mac(mac(one)), oui.lookup_mac(mac(two))
    assert a.evidence.prefix_len == b.evidence.prefix_len == 36
    assert "Registration Authority" not in a.organization and a.organization != b.organization
    assert conf.manufdb._get_manuf(one) != a.organization and conf.manufdb._get_manuf(two) != b.organization


def test_manuf_answers_huawei_with_provenance(oui):
    a = oui.lookup_mac(mac("00:18:82:12:34:56"))
    assert (a.vendor, a.evidence.source, a.evidence.prefix_len) == ("huawei", "oui", 24)
    assert "scapy" in a.evidence.version


@pytest.mark.parametrize("text,why", [("02:11:22:33:44:55", "locally administered"),
                                      ("01:00:5e:00:00:fb", "group"), ("ff:ff:ff:ff:ff:ff", "group")])
def test_random_and_group_macs_are_unattributable_not_unknown(oui, text, why):
    a = oui.lookup_mac(mac(text))
    assert a.unattributable and why in a.organization and a.vendor is None


def test_elements_made_from_a_shared_answer_equal_fresh_ones(oui, catalogue):
    """MACs of one OUI block (addresses of one AS prefix) share an answer and the path builder copies the
    first element made from it (``PathElement.about``): every copy must equal
    an element built from scratch, subject aside."""
    from verifier.attribution.path import PathBuilder
    from verifier.model import ENDPOINT_DEVICE, L2_NEIGHBOR, REMOTE_NETWORK, PathElement
    from verifier.policy.load import load_policy
    policy = load_policy([os.path.join(os.path.dirname(__file__), "..", "verifier", "demo", "policy.yaml")],
                         catalogue)
    asn = AsnDatabase(os.path.join(os.path.dirname(__file__), "..", "verifier", "demo", "demo-asn.mmdb"))
    builder = PathBuilder(Attributor([oui, asn]), policy.trust)
    texts = ["00:18:82:00:00:01", "00:18:82:00:00:02", "8c:1f:64:00:00:01", "8c:1f:64:00:00:02",
             "02:11:22:33:44:55", "06:aa:bb:cc:dd:ee", "00:00:0c:01:02:03", "3c:22:fb:00:00:07"]
    slots = [s for s in PathElement.__slots__ if s not in ("subject", "_dict")]
    for kind in (L2_NEIGHBOR, ENDPOINT_DEVICE):
        for text in texts:
            got = builder._element(kind, mac(text))
            answer = oui.lookup_mac(mac(text))
            fresh = builder._from_answer(kind, text, answer, "oui")
            assert got.subject == text
            assert [getattr(got, s) for s in slots] == [getattr(fresh, s) for s in slots]
            assert got.as_dict() == fresh.as_dict()
    assert oui.lookup_mac(mac(texts[2])) is oui.lookup_mac(mac(texts[3]))       # one /36 block, one answer
    assert oui.lookup_mac(mac(texts[4])) is oui.lookup_mac(mac(texts[5]))       # randomised: one answer
    for text in ("8.8.8.8", "8.8.8.9", "202.97.33.5", "202.97.33.6"):
        got = builder._element(REMOTE_NETWORK, ip(text))
        fresh = builder._from_answer(REMOTE_NETWORK, text, asn.lookup_ip(ip(text)), "asn")
        assert got.subject == text and got.asn is not None
        assert [getattr(got, s) for s in slots] == [getattr(fresh, s) for s in slots]
    assert asn.lookup_ip(ip("8.8.8.8")) is asn.lookup_ip(ip("8.8.8.9"))           # one AS and prefix: one answer


def test_ieee_import_gives_ma_m_and_ma_s_blocks(tmp_path, catalogue):
    files = [os.path.join(corpus_path(*IEEE), f) for f in ("oui.csv", "mam.csv", "oui36.csv", "iab.csv", "cid.csv")]
    counts = import_ieee(files, str(tmp_path))
    assert counts["MA-L"] > 30000 and counts["MA-M"] > 4000 and counts["MA-S"] > 5000 and counts["CID (skipped)"]
    reg = OuiRegistry.load(catalogue, str(tmp_path))
    assert reg.database == "ieee-registry" and reg.build_date
    rows = {}
    for name in ("mam.csv", "oui36.csv"):
        with open(os.path.join(corpus_path(*IEEE), name), encoding="utf-8") as fh:
            for line in list(fh)[1:200]:
                reg_name, assignment = line.split(",", 2)[:2]
                rows[assignment] = line
    for assignment in rows:
        value = int(assignment.ljust(12, "0"), 16).to_bytes(6, "big")
        a = reg.lookup_mac(value)
        assert a.evidence.prefix_len == len(assignment) * 4


def test_ieee_import_rejects_other_csvs(tmp_path, write):
    from verifier.errors import DataError
    with pytest.raises(DataError, match="not an IEEE registry CSV"):
        import_ieee([write("x.csv", "a,b,c\n1,2,3\n")], str(tmp_path))


def test_oui_answers_agree_with_tshark(oui, catalogue):
    """Vendor ids equal tshark's eth.src.oui_resolved on every /24 answer.

    tshark's oui_resolved uses the /24 only, so MA-M/MA-S holders are
    compared as "IEEE Registration Authority" there: those MACs are checked
    to have a longer prefix on our side instead. Organization spellings may
    differ where tshark's manuf is older than scapy's (reported, not failed).
    """
    need_tool("tshark")
    from tshark_conv import in_parallel
    pairs = {}

    def resolved(path):
        return subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "eth.src", "-e",
                               "eth.src.oui_resolved"], capture_output=True, text=True).stdout
    for out in in_parallel(resolved, glob.glob(os.path.join(corpus_path("pcaps"), "*", "*"))).values():
        for line in out.splitlines():
            cols = line.split("\t")
            if len(cols) == 2 and len(cols[0]) == 17 and cols[1]:
                pairs[cols[0]] = cols[1]
    assert len(pairs) > 50
    spelled_differently = []
    for text, org in pairs.items():
        ours = oui.lookup_mac(mac(text))
        assert ours is not None and not ours.unattributable, text
        if ours.evidence.prefix_len > 24:
            assert "ieee registration authority" in normalise(org), (text, org)
            continue
        assert ours.vendor == catalogue.match(org), (text, org, ours.organization)
        if normalise(ours.organization) != normalise(org):
            spelled_differently.append((text, org, ours.organization))
    assert len(spelled_differently) <= len(pairs) // 10, spelled_differently


# --- ASN ----------------------------------------------------------------------

def test_geolite2_and_ipinfo_shapes():
    assert parse_record({"autonomous_system_number": 1221, "autonomous_system_organization": "Telstra"}) == \
        (1221, "Telstra")
    assert parse_record({"asn": "AS13335", "as_name": "Cloudflare, Inc."}) == (13335, "Cloudflare, Inc.")
    assert parse_record({"asn": "AS38803", "name": "Gtelecom"}) == (38803, "Gtelecom")
    assert parse_record({"asn": ""}) == (None, None)
    assert parse_record({"isp": "TOT"}) == (None, None)


def test_special_purpose_addresses():
    for text in ("10.1.2.3", "192.168.0.1", "100.64.0.1", "127.0.0.1", "198.51.100.7", "203.0.113.9",
                 "192.0.2.1", "224.0.0.251", "fe80::1", "2001:db8::1", "fd00::1", "ff02::1", "::1"):
        assert is_special(ip(text)), text
    for text in ("8.8.8.8", "1.1.1.1", "202.97.33.5", "2001:4860:4860::8888"):
        assert not is_special(ip(text)), text


def test_special_purpose_ranges_agree_with_ipaddress_at_their_edges_and_inside():
    import ipaddress
    import random
    from verifier.attribution.special import _V4, _V6
    nets = [ipaddress.ip_network(t) for t in _V4 + _V6]
    rnd = random.Random(7)
    addrs = []
    for net in nets:
        top = 2 ** net.max_prefixlen - 1
        first, last = int(net.network_address), int(net.broadcast_address)
        for value in (first, last, first - 1, last + 1, *(rnd.randint(first, last) for _ in range(50))):
            if 0 <= value <= top:
                addrs.append(ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value))
    addrs += [ipaddress.IPv4Address(rnd.getrandbits(32)) for _ in range(2000)]
    addrs += [ipaddress.IPv6Address((0x2001 << 112) | rnd.getrandbits(112)) for _ in range(2000)]
    for addr in addrs:
        expected = any(addr in net for net in nets if net.version == addr.version)
        assert is_special(addr.packed) == expected, addr


def mmdblookup(db, address):
    out = subprocess.run(["mmdblookup", "--file", db, "--ip", address], capture_output=True, text=True).stdout
    number = re.search(r'"autonomous_system_number":\s*(\d+)', out)
    if number:
        return int(number.group(1))
    text = re.search(r'"asn":\s*"AS(\d+)"', out)
    return int(text.group(1)) if text else None


@pytest.mark.parametrize("db", ["GeoLite2-ASN-Test.mmdb", "GeoIP2-ISP-Test.mmdb",
                                "ipinfo-sample/IPinfo_Lite-ipinfo_lite_sample.mmdb",
                                "ipinfo-sample/IP_to_ASN-ip_asn_sample.mmdb"])
def test_asn_answers_equal_mmdblookup(db):
    need_tool("mmdblookup")
    path = corpus_path("mmdb", db)
    asn = AsnDatabase(path)
    assert asn.mode == "mmap-ext"
    rnd = random.Random(3)
    addresses = []
    for n, (network, _record) in enumerate(asn.reader):
        if n % 7 == 0:
            addresses.append(network.network_address)
            addresses.append(network.network_address + rnd.randrange(network.num_addresses))
        if len(addresses) > 300:
            break
    addresses += [ipaddress.ip_address(rnd.getrandbits(32)) for _ in range(50)]
    checked = 0
    for addr in addresses:
        if addr.version == 6 and addr.ipv4_mapped or (addr.version == 6 and str(addr).startswith("::")):
            continue
        ours = asn.lookup_ip(addr.packed)
        theirs = mmdblookup(path, str(addr))
        if is_special(addr.packed):
            assert ours is None
            continue
        assert (ours.asn if ours else None) == theirs, str(addr)
        checked += 1
    assert checked >= 50


@pytest.mark.parametrize("db", ["GeoLite2-ASN-Test.mmdb", "GeoIP2-ISP-Test.mmdb",
                                "ipinfo-sample/IPinfo_Lite-ipinfo_lite_sample.mmdb",
                                "ipinfo-sample/IP_to_ASN-ip_asn_sample.mmdb", "demo"])
def test_answers_kept_per_block_equal_the_trees(db):
    """AsnDatabase keeps one answer for a whole /24 (IPv4) or /48 (IPv6)
    when the prefix the tree matched holds it: asked block-mates one after
    another, in blocks one prefix holds and in blocks split between longer
    prefixes, every address answers what its own tree lookup does."""
    demo = os.path.join(os.path.dirname(__file__), "..", "verifier", "demo", "demo-asn.mmdb")
    asn = AsnDatabase(demo if db == "demo" else corpus_path("mmdb", db))
    rnd = random.Random(4)
    addresses = []
    for n, (network, _record) in enumerate(asn.reader):
        if n > 2000:
            break
        base = network.network_address
        kind = type(base)
        host_bits = base.max_prefixlen - (24 if base.version == 4 else 48)
        start = int(base) >> host_bits << host_bits
        addresses += [kind(start + rnd.randrange(1 << host_bits)) for _ in range(3)] + [base]
    split = checked = 0
    for addr in addresses:
        got = asn.lookup_ip(addr.packed)
        if is_special(addr.packed) or (addr.version == 6 and asn.ip_version == 4):
            assert got is None
            continue
        record, plen = asn.reader.get_with_prefix_len(str(addr))
        assert got is asn._answer(record, plen), str(addr)
        split += plen > (24 if addr.version == 4 else 48)
        checked += 1
    assert checked >= 20 and asn._blocks
    assert split or not db.startswith("Geo")             # MaxMind's test trees split blocks


def test_broken_database_is_a_clear_error():
    from verifier.errors import DataError
    with pytest.raises(DataError, match="cannot open MaxMind database"):
        AsnDatabase(corpus_path("mmdb", "GeoIP2-City-Test-Invalid-Node-Count.mmdb"))


def test_databases_in_precedence_order(oui):
    geolite = AsnDatabase(corpus_path("mmdb", "GeoLite2-ASN-Test.mmdb"))
    ipinfo = AsnDatabase(corpus_path("mmdb", "ipinfo-sample", "IP_to_ASN-ip_asn_sample.mmdb"))
    first = Attributor([oui, ipinfo, geolite]).ip(ip("1.0.0.1"))
    assert first.evidence.database == ipinfo.database and first.asn == 13335
    assert Attributor([oui, geolite, ipinfo]).ip(ip("1.0.0.1")).evidence.database == "GeoLite2-ASN"


# --- inventory ----------------------------------------------------------------

INVENTORY = """\
devices:
  - name: core-sw
    vendor: cisco
    model: C9300
    role: switch
    macs: ["00:18:82:00:00:01", "70:b3:d5:12:30:00/36"]
    ips: [192.0.2.1, 198.51.100.0/28]
    interfaces: [{interface: eth1, vlan: 20}, eth2]
"""


def test_inventory_yaml_beats_oui_and_asn(write, catalogue, oui):
    inv = load_inventory(write("inv.yaml", INVENTORY), catalogue)
    att = Attributor([inv, oui], inv)
    a = att.mac(mac("00:18:82:00:00:01"))            # a Huawei OUI, but the inventory says Cisco
    assert (a.vendor, a.evidence.source, a.evidence.prefix_len) == ("cisco", "inventory", 48)
    assert att.mac(mac("70:b3:d5:12:3f:ff")).evidence.prefix_len == 36
    assert att.mac(mac("00:18:82:00:00:02")).vendor == "huawei"
    assert att.ip(ip("198.51.100.9")).evidence.prefix_len == 28
    assert [d.name for d in inv.segment_devices("eth1", 20)] == ["core-sw"]
    assert [d.name for d in inv.segment_devices("eth2", None)] == ["core-sw"]
    assert inv.segment_devices("eth1", 30) == []


def test_inventory_csv(write, catalogue):
    inv = load_inventory(write("inv.csv", "name,vendor,macs,ips,interfaces\n"
                                          "gw,Huawei Technologies,00:11:22:33:44:55;00:11:22:33:44:56,"
                                          "192.0.2.9,eth1:30\n"), catalogue)
    assert inv.devices[0].vendor == "huawei" and len(inv.devices[0].macs) == 2
    assert inv.lookup_ip(ip("192.0.2.9")).device.name == "gw"


def test_inventory_errors_have_positions(write, catalogue):
    path = write("bad.yaml", "devices:\n  - name: x\n    vendor: hauwei\n    macs: [zz:zz]\n    colour: red\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(path, catalogue)
    text = str(exc.value)
    assert f"{path}:3:13: vendor 'hauwei' is not in the vendor catalogue" in text
    assert f"{path}:4:12: 'zz:zz' is not a MAC address" in text
    assert f"{path}:5:5: device: unknown key 'colour'" in text
