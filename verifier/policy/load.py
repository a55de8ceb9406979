"""Policy files (YAML, SPEC "Policy language") -> compiled ``Policy``.

In:  one or more paths and the vendor catalogue.
Out: ``Policy``, or ``ConfigError`` listing *every* problem of every file as
     ``file:line:column: message``.

Several files merge: vendor and ASN lists are united, zones, rules and
exceptions are concatenated; a zone or rule defined twice is an error.
Cross-references (rule -> zone, exception -> rule, vendor ids) are checked
after all files are read so that a rule may name a zone from another file.
"""

import datetime
import hashlib
import ipaddress

from ..config import Reader, read_text
from ..errors import ConfigError
from ..text import ip_text
from ..model import KINDS, L2_NEIGHBOR, SEGMENT_DEVICE, TUNNEL_ENDPOINT, ROUTER_HOP, REMOTE_NETWORK
from .model import ANY_ZONE, CLEAN_PATH, UNZONED, ON_UNATTRIBUTED, Exception_, Policy, PrefixSet, Rule, Zone

TOP_KEYS = ("version", "site", "vendors", "networks", "bgp", "zones", "rules", "exceptions")
BGP_KEYS = ("peer",)
SITE_KEYS = ("name", "operator", "location", "contact")
ZONE_KEYS = ("prefixes", "vlans", "interfaces", "bgp", "description")
RULE_KEYS = ("name", "zone", "require", "kinds", "roles", "on_unattributed", "deny_vendors", "deny_asns",
             "description")
EXC_KEYS = ("rule", "match", "reason", "expires")
MATCH_KEYS = ("remote", "local", "port", "local_port", "proto", "vlan")
DEFAULT_KINDS = (L2_NEIGHBOR, SEGMENT_DEVICE, TUNNEL_ENDPOINT, ROUTER_HOP, REMOTE_NETWORK)
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}


def load_policy(paths, catalogue):
    state = _State(catalogue)
    digest = hashlib.sha256()
    for path in paths:
        reader = Reader(path)
        state.readers.append(reader)
        text = read_text(path, reader)
        if text is None:
            continue
        digest.update(text.encode())
        root = reader.compose(text)
        if root is not None:
            _read_file(reader, root, state)
    state.cross_check()
    problems = sorted((p for r in state.readers for p in r.problems),
                      key=lambda p: (paths.index(p.path) if p.path in paths else 0, p.line, p.column))
    if problems:
        raise ConfigError(problems)
    policy = Policy(list(paths), digest.hexdigest(), state.trusted, state.untrusted, state.trusted_asns,
                    state.untrusted_asns, state.network_default or "trusted", state.zones, state.rules,
                    state.exceptions)
    policy.warnings = [w for r in state.readers for w in r.warnings]
    policy.site = state.site
    policy.bgp = state.bgp_peer
    return policy


class _State:
    def __init__(self, catalogue):
        self.catalogue = catalogue
        self.readers = []
        self.trusted, self.untrusted = {}, {}          # vendor -> (reader, node)
        self.trusted_asns, self.untrusted_asns = {}, {}
        self.network_default = None
        self.site = None                                # {name, operator, ...}: printed on certificates
        self.bgp_peer = None                            # (address bytes, "file:line:column") of bgp.peer
        self.zones, self.rules, self.exceptions = {}, [], []
        self.refs = []                                  # (reader, node, kind, value)
        self.first = {}                                 # ("zone" | "rule", name) -> "file:line:column" of its definition

    def cross_check(self):
        rule_names = {r.name for r in self.rules}
        for reader, node, kind, value in self.refs:
            if kind == "zone" and value != ANY_ZONE and value not in self.zones:
                reader.error(node, f"rule names zone '{value}', which no policy file defines"
                             + _hint(value, list(self.zones) + [ANY_ZONE]))
            elif kind == "rule" and value not in rule_names:
                reader.error(node, f"exception names rule '{value}', which no policy file defines"
                             + _hint(value, rule_names))
        for vendor in set(self.trusted) & set(self.untrusted):
            reader, node = self.untrusted[vendor]
            reader.error(node, f"vendor '{vendor}' is listed as both trusted and untrusted")
        for asn in set(self.trusted_asns) & set(self.untrusted_asns):
            reader, node = self.untrusted_asns[asn]
            reader.error(node, f"AS{asn} is listed as both trusted and untrusted")


def _read_file(reader, root, state):
    top = reader.mapping(root, TOP_KEYS, "policy", required=("version",))
    if "version" in top and reader.integer(top["version"], "version") not in (1, None):
        reader.error(top["version"], "unsupported policy version (this tool reads version 1)")
    if "site" in top:
        _read_site(reader, top["site"], state)
    if "vendors" in top:
        vendors = reader.mapping(top["vendors"], ("trusted", "untrusted"), "vendors")
        for cls, target in (("trusted", state.trusted), ("untrusted", state.untrusted)):
            for node in reader.seq(vendors.get(cls), f"vendors.{cls}"):
                vid = _vendor_id(reader, node, state.catalogue, f"vendors.{cls}")
                if vid:
                    target[vid] = (reader, node)
    if "networks" in top:
        nets = reader.mapping(top["networks"], ("untrusted_asns", "trusted_asns", "default"), "networks")
        for cls, target in (("untrusted_asns", state.untrusted_asns), ("trusted_asns", state.trusted_asns)):
            for node in reader.seq(nets.get(cls), f"networks.{cls}"):
                asn = reader.integer(node, f"networks.{cls}", 0, 2**32 - 1)
                if asn is not None:
                    target[asn] = (reader, node)
        if "default" in nets:
            value = reader.string(nets["default"], "networks.default", ("trusted", "unknown"))
            if value and state.network_default and value != state.network_default:
                reader.error(nets["default"], f"networks.default '{value}' contradicts another policy file")
            state.network_default = value or state.network_default
    if "bgp" in top:
        peer = _read_bgp(reader, top["bgp"], "bgp")
        if peer is not None:
            if state.bgp_peer is not None:
                reader.error(top["bgp"], f"bgp defined twice (first at {state.bgp_peer[1]})")
            else:
                state.bgp_peer = peer
    if "zones" in top:
        for name, node in reader.mapping(top["zones"], None, "zones").items():
            _read_zone(reader, name, node, state)
    for node in reader.seq(top.get("rules"), "rules"):
        _read_rule(reader, node, state)
    for node in reader.seq(top.get("exceptions"), "exceptions"):
        _read_exception(reader, node, state)


def _read_site(reader, node, state):
    """The site a certificate is about (optional; one file of the set gives it)."""
    fields = reader.mapping(node, SITE_KEYS, "site", required=("name",))
    site = {}
    for key in SITE_KEYS:
        if key in fields:
            value = reader.string(fields[key], f"site.{key}")
            if value:
                site[key] = value
    if state.site is not None:
        reader.error(node, f"site defined twice (first at {state.site_at})")
        return
    state.site, state.site_at = site, _position(reader, node)


def _read_bgp(reader, node, where):
    """``bgp: {peer: ADDRESS}``: whose routes decide (a peer of the loaded
    MRT dumps, by address) -> (address bytes, "file:line:column") or None."""
    fields = reader.mapping(node, BGP_KEYS, where, required=("peer",))
    if "peer" not in fields:
        return None
    text = reader.string(fields["peer"], f"{where}.peer")
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text).packed
    except ValueError:
        reader.error(fields["peer"], f"{where}.peer: '{text}' is not an IP address")
        return None
    return address, _position(reader, fields["peer"])


def _position(reader, node):
    problem = reader.at(node, "")
    return f"{problem.path}:{problem.line}:{problem.column}"


def _read_zone(reader, name, node, state):
    where = f"zone '{name}'"
    if name == ANY_ZONE:
        reader.error(node, f"'{ANY_ZONE}' is reserved for rules that apply to every flow")
        return
    if name == UNZONED:
        reader.error(node, f"'{UNZONED}' is reserved: metrics count the flows of no zone under zone=\"{UNZONED}\"")
        return
    if name in state.zones:
        reader.error(node, f"{where} is defined twice (first at {state.first[('zone', name)]})")
        return
    state.first[("zone", name)] = _position(reader, node)
    fields = reader.mapping(node, ZONE_KEYS, where, required=("prefixes",))
    prefixes = [reader.network(n, f"{where} prefixes") for n in reader.seq(fields.get("prefixes"), "prefixes")]
    vlans = [reader.integer(n, f"{where} vlans", 0, 4095) for n in reader.seq(fields.get("vlans"), "vlans")]
    ifaces = reader.strings(fields.get("interfaces"), f"{where} interfaces")
    peer = _read_bgp(reader, fields["bgp"], f"{where} bgp") if "bgp" in fields else None
    state.zones[name] = Zone(name, PrefixSet([p for p in prefixes if p]), [v for v in vlans if v is not None],
                             ifaces, peer)


def _read_rule(reader, node, state):
    fields = reader.mapping(node, RULE_KEYS, "rule", required=("name", "zone"))
    name = reader.string(fields["name"], "rule name") if "name" in fields else None
    where = f"rule '{name}'" if name else "rule"
    if name and ("rule", name) in state.first:
        reader.error(fields["name"], f"{where} is defined twice (first at {state.first[('rule', name)]})")
    elif name:
        state.first[("rule", name)] = _position(reader, fields["name"])
    zone = reader.string(fields["zone"], f"{where} zone") if "zone" in fields else None
    if zone:
        state.refs.append((reader, fields["zone"], "zone", zone))
    require = reader.string(fields["require"], f"{where} require", (CLEAN_PATH,)) if "require" in fields else None
    kinds = reader.strings(fields["kinds"], f"{where} kinds", KINDS) if "kinds" in fields else list(DEFAULT_KINDS)
    roles = reader.strings(fields["roles"], f"{where} roles") if "roles" in fields else []
    on_un = "unverified"
    if "on_unattributed" in fields:
        on_un = reader.string(fields["on_unattributed"], f"{where} on_unattributed", ON_UNATTRIBUTED) or on_un
    deny_vendors = [v for v in (_vendor_id(reader, n, state.catalogue, f"{where} deny_vendors")
                                for n in reader.seq(fields.get("deny_vendors"), "deny_vendors")) if v]
    deny_asns = [a for a in (reader.integer(n, f"{where} deny_asns", 0, 2**32 - 1)
                             for n in reader.seq(fields.get("deny_asns"), "deny_asns")) if a is not None]
    if not {"require", "deny_vendors", "deny_asns"} & set(fields):
        reader.error(node, f"{where} checks nothing: give 'require: clean-path', 'deny_vendors' or 'deny_asns'")
    for key in ("kinds", "on_unattributed"):
        if key in fields and "require" not in fields:
            reader.error(fields[key], f"{where}: '{key}' only applies with 'require: clean-path'")
    description = reader.string(fields["description"], "description") if "description" in fields else None
    if name and zone:
        mark = node.start_mark
        state.rules.append(Rule(name, zone, require, kinds, on_un, deny_vendors, deny_asns, description,
                                f"{reader.path}:{mark.line + 1}", roles))


def _read_exception(reader, node, state):
    fields = reader.mapping(node, EXC_KEYS, "exception", required=("rule", "reason"))
    rule = reader.string(fields["rule"], "exception rule") if "rule" in fields else None
    if rule:
        state.refs.append((reader, fields["rule"], "rule", rule))
    reason = reader.string(fields["reason"], "exception reason") if "reason" in fields else None
    expires = None
    if "expires" in fields:
        text = reader.string(fields["expires"], "exception expires")
        try:
            expires = datetime.date.fromisoformat(text) if text else None
        except ValueError:
            reader.error(fields["expires"], f"exception expires: '{text}' is not a date (YYYY-MM-DD)")
    match = reader.mapping(fields["match"], MATCH_KEYS, "exception match") if "match" in fields else {}

    def listed(key, parse):
        node_ = match.get(key)
        if node_ is None:
            return []
        items = reader.seq(node_, key) if node_.id == "sequence" else [node_]
        return [v for v in (parse(n) for n in items) if v is not None]

    remote = listed("remote", lambda n: reader.network(n, "match remote"))
    local = listed("local", lambda n: reader.network(n, "match local"))
    ports = listed("port", lambda n: reader.integer(n, "match port", 0, 65535))
    lports = listed("local_port", lambda n: reader.integer(n, "match local_port", 0, 65535))
    vlans = listed("vlan", lambda n: reader.integer(n, "match vlan", 0, 4095))
    protos = listed("proto", lambda n: _proto(reader, n))
    if rule and reason:
        mark = node.start_mark
        state.exceptions.append(Exception_(rule, PrefixSet(remote), PrefixSet(local), ports, lports, protos,
                                           vlans, reason, expires, f"{reader.path}:{mark.line + 1}"))


def _proto(reader, node):
    text = reader.string(node, "match proto")
    if text is None:
        return None
    if text.isdigit() and int(text) < 256:
        return int(text)
    if text.lower() in PROTOS:
        return PROTOS[text.lower()]
    reader.error(node, f"match proto: '{text}' is not one of {', '.join(PROTOS)} or a protocol number")
    return None


def _vendor_id(reader, node, catalogue, where):
    text = reader.string(node, where)
    if text is None:
        return None
    if text not in catalogue:
        reader.error(node, f"{where}: unknown vendor id '{text}'{_hint(text, catalogue.ids)}; "
                           f"ids are defined in {catalogue.display}")
        return None
    return text


def _hint(word, choices):
    import difflib
    hits = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{hits[0]}'?)" if hits else ""


def dump(policy):
    """The effective policy as plain data (``verifier policy check --dump``)."""
    return {
        "version": 1,
        "files": policy.files, "sha256": policy.sha256,
        **({"site": policy.site} if policy.site else {}),
        "vendors": {"trusted": sorted(policy.trusted), "untrusted": sorted(policy.untrusted)},
        "networks": {"untrusted_asns": sorted(policy.untrusted_asns), "trusted_asns": sorted(policy.trusted_asns),
                     "default": policy.network_default},
        **({"bgp": {"peer": ip_text(policy.bgp[0])}} if policy.bgp else {}),
        "zones": {z.name: {"prefixes": z.prefixes.texts, "vlans": sorted(z.vlans),
                           "interfaces": sorted(z.interfaces),
                           **({"bgp": {"peer": ip_text(z.bgp[0])}} if z.bgp else {})} for z in policy.zones.values()},
        "rules": [{"name": r.name, "zone": r.zone, "require": r.require,
                   "kinds": sorted(r.kinds) if r.require else [], "roles": sorted(r.roles),
                   "on_unattributed": r.on_unattributed if r.require else None,
                   "deny_vendors": sorted(r.deny_vendors), "deny_asns": sorted(r.deny_asns),
                   "defined_at": r.where} for r in policy.rules],
        "exceptions": [dict(e.describe(), match={
            "remote": e.remote.texts, "local": e.local.texts, "port": sorted(e.ports),
            "local_port": sorted(e.local_ports), "proto": sorted(e.protos), "vlan": sorted(e.vlans)})
            for e in policy.exceptions],
    }


__all__ = ["load_policy", "dump", "ConfigError"]
