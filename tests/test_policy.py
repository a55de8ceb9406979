import datetime
import os

import pytest
import yaml

from verifier.craft import ip
from verifier.errors import ConfigError
from verifier.model import (CLEAN, L2_NEIGHBOR, REMOTE_NETWORK, SEGMENT_DEVICE, TRUSTED, UNKNOWN, UNTRUSTED,
                            UNVERIFIED, VIOLATION, Answer, Evidence, Flow, PathElement, flow_key)
from verifier.policy.evaluate import evaluate
from verifier.policy.load import dump, load_policy

HERE = os.path.dirname(__file__)
TODAY = datetime.date(2026, 11, 21)
POLICY = """\
version: 1
vendors: {trusted: [cisco, nokia], untrusted: [huawei, zte]}
networks: {untrusted_asns: [4134], default: trusted}
zones:
  lan: {prefixes: [198.51.100.0/24], vlans: [20]}
  wifi: {prefixes: [203.0.113.0/25]}
rules:
  - {name: lan-clean, zone: lan, require: clean-path, kinds: [l2-neighbor, remote-network]}
  - {name: no-bad-vendors, zone: any, deny_vendors: [huawei]}
  - {name: no-prc, zone: wifi, deny_asns: [4134]}
exceptions:
  - {rule: lan-clean, match: {remote: 192.0.2.10/32, port: 53}, reason: resolver, expires: 2027-06-30}
  - {rule: no-bad-vendors, match: {proto: udp}, reason: old waiver, expires: 2026-01-01}
"""


@pytest.fixture()
def policy(write, catalogue):
    return load_policy([write("p.yaml", POLICY)], catalogue)


def test_shipped_default_policy_is_valid(catalogue):
    from verifier.cli import default_policy_path
    p = load_policy([default_policy_path()], catalogue)
    assert "protected" in p.zones and any(r.require == "clean-path" for r in p.rules)


def test_every_error_reported_at_once_with_positions(catalogue):
    path = os.path.join("tests", "data", "bad-policy.yaml")
    cwd = os.getcwd()
    os.chdir(os.path.dirname(HERE))
    try:
        with pytest.raises(ConfigError) as exc:
            load_policy([path], catalogue)
    finally:
        os.chdir(cwd)
    from verifier.attribution.vendors import DEFAULT_PATH
    with open(os.path.join(HERE, "golden", "bad-policy.txt")) as fh:       # {catalogue}: where it is installed
        golden = [line.replace("{catalogue}", os.path.abspath(DEFAULT_PATH)) for line in fh.read().splitlines()
                  if not line.endswith("error(s)")]
    assert [str(p) for p in exc.value.problems] == golden


def test_yaml_syntax_error_has_a_position(write, catalogue):
    path = write("syntax.yaml", "version: 1\nzones:\n  lan: {prefixes: [198.51.100.0/24\n")
    with pytest.raises(ConfigError) as exc:
        load_policy([path], catalogue)
    assert str(exc.value.problems[0]).startswith(f"{path}:4:1: YAML syntax")


def test_duplicate_keys_are_errors_not_last_one_wins(write, catalogue):
    path = write("dup.yaml", "version: 1\nnetworks:\n  default: trusted\n  default: unknown\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:4:3: networks: duplicate key 'default'"):
        load_policy([path], catalogue)


def test_files_merge_and_cross_reference(write, catalogue):
    zones = write("zones.yaml", "version: 1\nzones:\n  lan: {prefixes: [198.51.100.0/24]}\n")
    rules = write("rules.yaml", "version: 1\nvendors: {untrusted: [zte]}\nrules:\n"
                                "  - {name: r, zone: lan, deny_vendors: [zte]}\n")
    p = load_policy([zones, rules], catalogue)
    assert list(p.zones) == ["lan"] and p.rules[0].zone == "lan" and p.untrusted == {"zte"}
    with pytest.raises(ConfigError, match="defined twice"):
        load_policy([zones, zones], catalogue)


def test_dump_is_plain_yaml(policy):
    text = yaml.safe_dump(dump(policy))
    data = yaml.safe_load(text)
    assert data["zones"]["lan"]["vlans"] == [20] and data["rules"][0]["kinds"] == ["l2-neighbor", "remote-network"]


def test_zone_matching_uses_prefix_and_vlan(policy):
    assert policy.zone_of(ip("198.51.100.7"), 20, -1, None) == "lan"
    assert policy.zone_of(ip("198.51.100.7"), 30, -1, None) is None
    assert policy.zone_of(ip("203.0.113.5"), -1, -1, "eth9") == "wifi"
    assert policy.zone_of(ip("203.0.113.200"), -1, -1, None) is None
    assert policy.zones_of(ip("198.51.100.7"), ip("203.0.113.5"), 20, -1, "eth9") == ("lan", "wifi")
    assert policy.zones_of(ip("203.0.113.5"), ip("198.51.100.7"), 30, -1, None) == ("wifi", None)


def test_trust_classes(policy):
    ev = Evidence("oui", "db", "v", 24)
    assert policy.trust(Answer("cisco", "Cisco", ev)) == TRUSTED
    assert policy.trust(Answer("huawei", "Huawei", ev)) == UNTRUSTED
    assert policy.trust(Answer("apple", "Apple", ev)) == UNKNOWN               # attributed, on no list
    assert policy.trust(None) == UNKNOWN
    assert policy.trust(Answer(None, "x", ev, unattributable=True)) == "unattributable"
    assert policy.trust(Answer(None, "CHINANET", ev, asn=4134)) == UNTRUSTED
    assert policy.trust(Answer(None, "Google", ev, asn=15169)) == TRUSTED      # networks.default


def element(kind, trust, vendor=None, asn=None):
    return PathElement(kind, "x", vendor, None, asn, trust, Evidence("oui", None, None, None))


def lan_flow(remote="8.8.8.8", port=443, proto=6):
    a, b = ip("198.51.100.7"), ip(remote)
    return Flow(flow_key(0, 20, -1, proto, a, 50000, b, port), 0.0)


def test_clean_when_every_element_is_trusted(policy):
    j = evaluate(policy, lan_flow(), "lan", 0, [element(L2_NEIGHBOR, TRUSTED, "cisco"),
                                                element(REMOTE_NETWORK, TRUSTED, asn=15169)], TODAY)
    assert j.verdict == CLEAN and j.rules == []


def test_unknown_is_never_clean(policy):
    j = evaluate(policy, lan_flow(), "lan", 0, [element(L2_NEIGHBOR, UNKNOWN)], TODAY)
    assert j.verdict == UNVERIFIED and j.rules == ["lan-clean"]


def test_kinds_outside_the_rule_are_not_required(policy):
    j = evaluate(policy, lan_flow(), "lan", 0, [element(SEGMENT_DEVICE, UNKNOWN)], TODAY)
    assert j.verdict == CLEAN


def test_untrusted_element_and_denied_vendor_are_violations(policy):
    j = evaluate(policy, lan_flow(), "lan", 0, [element(L2_NEIGHBOR, UNTRUSTED, "huawei")], TODAY)
    assert j.verdict == VIOLATION and j.rules == ["lan-clean", "no-bad-vendors"]
    assert any("huawei equipment" in text for _, _, text in j.reasons)


def test_deny_asns_in_its_zone(policy):
    flow = Flow(flow_key(0, -1, -1, 6, ip("203.0.113.5"), 5000, ip("202.97.33.5"), 443), 0.0)
    j = evaluate(policy, flow, "wifi", 0, [element(REMOTE_NETWORK, UNTRUSTED, asn=4134)], TODAY)
    assert j.verdict == VIOLATION and j.rules == ["no-prc"]


@pytest.mark.parametrize("mode,verdict", [("violation", VIOLATION), ("ignore", CLEAN), ("unverified", UNVERIFIED)])
def test_on_unattributed(write, catalogue, mode, verdict):
    p = load_policy([write("m.yaml", f"version: 1\nzones: {{lan: {{prefixes: [198.51.100.0/24]}}}}\nrules:\n"
                                     f"  - {{name: r, zone: lan, require: clean-path, on_unattributed: {mode}}}\n")],
                    catalogue)
    assert evaluate(p, lan_flow(), "lan", 0, [element(L2_NEIGHBOR, "unattributable")], TODAY).verdict == verdict


def test_exception_waives_its_rule_until_it_expires(policy):
    path = [element(L2_NEIGHBOR, UNKNOWN)]
    j = evaluate(policy, lan_flow("192.0.2.10", 53, 17), "lan", 0, path, TODAY)
    assert j.verdict == CLEAN and j.excepted == [("lan-clean", "resolver")]
    assert evaluate(policy, lan_flow("192.0.2.10", 80, 6), "lan", 0, path, TODAY).verdict == UNVERIFIED
    later = datetime.date(2027, 7, 1)
    assert evaluate(policy, lan_flow("192.0.2.10", 53, 17), "lan", 0, path, later).verdict == UNVERIFIED


def test_expired_exception_no_longer_applies(policy):
    path = [element(L2_NEIGHBOR, UNTRUSTED, "huawei")]
    j = evaluate(policy, lan_flow(proto=17), "lan", 0, path, TODAY)
    assert "no-bad-vendors" in j.rules


def test_roles_load_dump_and_reject_a_non_list(write, catalogue):
    base = "version: 1\nzones:\n  ue: {prefixes: [198.51.100.0/24]}\nrules:\n"
    p = load_policy([write("r.yaml", base + "  - {name: radio, zone: ue, require: clean-path, "
                                           "kinds: [tunnel-endpoint], roles: [gNB, upf]}\n")], catalogue)
    assert p.rules[0].roles == {"gnb", "upf"} and dump(p)["rules"][0]["roles"] == ["gnb", "upf"]
    with pytest.raises(ConfigError, match=r"bad.yaml:5:\d+: .*roles"):
        load_policy([write("bad.yaml", base + "  - {name: radio, zone: ue, require: clean-path, roles: gnb}\n")],
                    catalogue)


def test_roles_limit_a_deny_rule_to_those_devices(write, catalogue):
    p = load_policy([write("r.yaml", "version: 1\nzones:\n  ue: {prefixes: [198.51.100.0/24]}\nrules:\n"
                                     "  - {name: no-huawei-radio, zone: ue, deny_vendors: [huawei], roles: [gnb]}\n")],
                    catalogue)
    flow = Flow(flow_key(0, -1, -1, 6, ip("198.51.100.7"), 1000, ip("203.0.113.9"), 443), 0.0)
    ev = Evidence("inventory", "inv.yaml", None, 32)
    router = PathElement(L2_NEIGHBOR, "r1", "huawei", "Huawei", None, UNTRUSTED, ev, role="router")
    gnb = PathElement(SEGMENT_DEVICE, "g1", "huawei", "Huawei", None, UNTRUSTED, ev, role="gnb")
    assert evaluate(p, flow, "ue", 0, [router], TODAY).verdict == CLEAN
    j = evaluate(p, flow, "ue", 0, [router, gnb], TODAY)
    assert j.verdict == VIOLATION and j.reasons == [("no-huawei-radio", 1, "segment-device g1 is huawei equipment")]


def test_remembered_outcomes_give_each_flow_its_own_reasons(policy):
    """``Verdicts`` reuses one outcome per path shape; every judgement must
    still equal a fresh evaluation, with reason texts naming its own elements."""
    import random
    from verifier.policy.evaluate import Verdicts
    rnd = random.Random(7)
    verdicts = Verdicts(policy)
    shapes = [(L2_NEIGHBOR, TRUSTED, "cisco", None), (L2_NEIGHBOR, UNTRUSTED, "huawei", None),
              (L2_NEIGHBOR, UNKNOWN, None, None), (SEGMENT_DEVICE, UNKNOWN, None, None),
              (REMOTE_NETWORK, TRUSTED, None, 15169), (REMOTE_NETWORK, UNTRUSTED, None, 4134)]
    flows = [lan_flow(), lan_flow("192.0.2.10", 53, 17), lan_flow("192.0.2.10", 80, 6)]
    reused = 0
    for n in range(400):
        path = [PathElement(kind, f"el{n}-{i}", vendor, None, asn, trust, Evidence("oui", None, None, None))
                for i, (kind, trust, vendor, asn) in enumerate(rnd.choices(shapes, k=rnd.randint(1, 3)))]
        flow, zone = rnd.choice(flows), rnd.choice(["lan", "wifi", None])
        side = 0 if zone else None
        before = len(verdicts._memo)
        got = verdicts.judge(flow, zone, side, path, TODAY)
        reused += len(verdicts._memo) == before
        fresh = evaluate(policy, flow, zone, side, path, TODAY)
        assert (got.verdict, got.rules, got.reasons, got.excepted, got.attributed, got.vendors) == \
               (fresh.verdict, fresh.rules, fresh.reasons, fresh.excepted, fresh.attributed, fresh.vendors)
        assert all(f"el{n}-{index}" in text for _rule, index, text in got.reasons)
    assert reused > 100                      # shapes repeat: many judgements reuse an outcome


def test_element_classes_stop_growing_past_their_bound_and_verdicts_stay_exact(policy, monkeypatch):
    """Past ``MAX_ELEMENT_CLASSES`` (a BGP feed naming ever new ASNs) an
    element's class is its attribution itself: the registry stops growing,
    equal attributions still share a class and remembered verdicts are the
    fresh ones."""
    from verifier import model
    from verifier.policy.evaluate import Verdicts
    monkeypatch.setattr(model, "MAX_ELEMENT_CLASSES", len(model._ELEMENT_CLASSES))
    held = len(model._ELEMENT_CLASSES)
    ev = Evidence("asn", None, None, None)
    paths = [[PathElement(REMOTE_NETWORK, f"n{k}", None, None, 4_200_000_000 + k % 3, trust, ev)]
             for k in range(12) for trust in (TRUSTED, UNTRUSTED)]
    assert len(model._ELEMENT_CLASSES) == held
    assert paths[0][0].cls == paths[6][0].cls != paths[2][0].cls != paths[1][0].cls
    verdicts, flow = Verdicts(policy), lan_flow()
    for path in paths:
        got, fresh = verdicts.judge(flow, "lan", 0, path, TODAY), evaluate(policy, flow, "lan", 0, path, TODAY)
        assert (got.verdict, got.rules, got.reasons) == (fresh.verdict, fresh.rules, fresh.reasons)
    assert len(verdicts._memo) == 6                  # three ASNs x two trusts


def test_a_prefix_with_host_bits_loads_with_a_positioned_warning(tmp_path, catalogue):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nzones:\n  z:\n    prefixes: [203.0.113.5/25]\nrules:\n"
                    "  - name: r\n    zone: z\n    deny_vendors: [huawei]\n")
    policy = load_policy([str(path)], catalogue)
    assert [str(w) for w in policy.warnings] == [
        f"{path}:4:16: zone 'z' prefixes: '203.0.113.5/25' has host bits set; read as 203.0.113.0/25"]


def test_the_metrics_unzoned_label_is_a_reserved_zone_name_and_site_is_one_block(write, catalogue):
    path = write("p.yaml", "version: 1\nsite: {name: A}\nzones:\n  unzoned: {prefixes: [192.0.2.0/24]}\n")
    other = write("q.yaml", "version: 1\nsite: {name: B, operator: C}\n")
    with pytest.raises(ConfigError) as err:
        load_policy([path, other], catalogue)
    text = "\n".join(str(p) for p in err.value.problems)
    assert f"{path}:4:12: 'unzoned' is reserved" in text
    assert f"{other}:2:7: site defined twice (first at {path}:2:7)" in text
    ok = load_policy([write("r.yaml", "version: 1\nsite: {name: Lisbon, operator: IT}\n")], catalogue)
    assert ok.site == {"name": "Lisbon", "operator": "IT"} and dump(ok)["site"] == ok.site
