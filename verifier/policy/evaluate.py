"""Pure verdict: (flow, zone, path) -> ``Judgement``.

VIOLATION when a rule of the zone (or a ``zone: any`` rule) is broken;
UNVERIFIED when nothing is broken but a ``require: clean-path`` rule met an
unknown or unattributable element and says ``on_unattributed: unverified``;
CLEAN otherwise. Fail closed: an element no source could attribute is never
trusted. Exceptions waive one rule for matching flows until they expire.

A rule with ``roles`` looks only at elements whose inventory role is listed
(e.g. ``gnb``: the radio nodes). Since the rule is there to require them, a
``require: clean-path`` rule with roles that finds no such element among its
kinds treats the absence like an unattributed element (``on_unattributed``):
a radio node nobody can name is not a trusted one. Such a reason has no
element index (``None``).
"""

from ..model import CLEAN, UNTRUSTED, UNVERIFIED, VIOLATION, Judgement
from .model import CLEAN_PATH


def evaluate(policy, flow, zone, local_side, path, today):
    broken, unverified, reasons, excepted = [], [], [], []
    waivable = policy.waivable
    for rule in policy.rules_for[zone]:
        if rule.name in waivable:
            waiver = _waiver(policy, rule, flow, local_side, today)
            if waiver is not None:
                excepted.append((rule.name, waiver.reason))
                continue
        hit = unsure = found = False
        roles, kinds = rule.roles, rule.kinds
        clean_path = rule.require == CLEAN_PATH
        deny_vendors, deny_asns = rule.deny_vendors, rule.deny_asns
        on_unattributed = rule.on_unattributed
        for index, el in enumerate(path):
            if roles and el.role not in roles:
                continue
            if clean_path and el.kind in kinds:
                found = True
                trust = el.trust
                if trust == UNTRUSTED:
                    hit = True
                    reasons.append((rule.name, index, f"{el.kind} {el.subject} is untrusted"))
                elif not el.known and on_unattributed != "ignore":
                    reasons.append((rule.name, index, f"{el.kind} {el.subject} is {trust}"))
                    if on_unattributed == "violation":
                        hit = True
                    else:
                        unsure = True
            if deny_vendors and el.vendor is not None and el.vendor in deny_vendors:
                hit = True
                reasons.append((rule.name, index, f"{el.kind} {el.subject} is {el.vendor} equipment"))
            if deny_asns and el.asn is not None and el.asn in deny_asns:
                hit = True
                reasons.append((rule.name, index, f"{el.kind} {el.subject} is in denied AS{el.asn}"))
        if roles and clean_path and not found and on_unattributed != "ignore":
            reasons.append((rule.name, None, f"no {' or '.join(sorted(roles))} ({', '.join(sorted(kinds))}) "
                                             "identified on the path"))
            if on_unattributed == "violation":
                hit = True
            else:
                unsure = True
        if hit:
            broken.append(rule.name)
        elif unsure:
            unverified.append(rule.name)
    if broken:
        return Judgement(zone, VIOLATION, broken, path, reasons, excepted)
    if unverified:
        return Judgement(zone, UNVERIFIED, unverified, path, reasons, excepted)
    return Judgement(zone, CLEAN, [], path, [], excepted)


def _waiver(policy, rule, flow, local_side, today):
    for exc in policy.exceptions:
        if exc.rule == rule.name and not exc.expired(today) and exc.matches(flow, local_side):
            return exc
    return None
