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

from ..model import CLEAN, UNATTRIBUTABLE, UNKNOWN, UNTRUSTED, UNVERIFIED, VIOLATION, Judgement
from .model import CLEAN_PATH


def evaluate(policy, flow, zone, local_side, path, today):
    broken, unverified, reasons, excepted = [], [], [], []
    for rule in policy.rules_for[zone]:
        waiver = _waiver(policy, rule, flow, local_side, today)
        if waiver is not None:
            excepted.append((rule.name, waiver.reason))
            continue
        hit = False
        unsure = False
        roles = rule.roles
        found = False
        for index, el in enumerate(path):
            if roles and el.role not in roles:
                continue
            if rule.require == CLEAN_PATH and el.kind in rule.kinds:
                found = True
                if el.trust == UNTRUSTED:
                    hit = True
                    reasons.append((rule.name, index, f"{el.kind} {el.subject} is untrusted"))
                elif el.trust in (UNKNOWN, UNATTRIBUTABLE) and rule.on_unattributed != "ignore":
                    text = f"{el.kind} {el.subject} is {el.trust}"
                    reasons.append((rule.name, index, text))
                    if rule.on_unattributed == "violation":
                        hit = True
                    else:
                        unsure = True
            if el.vendor is not None and el.vendor in rule.deny_vendors:
                hit = True
                reasons.append((rule.name, index, f"{el.kind} {el.subject} is {el.vendor} equipment"))
            if el.asn is not None and el.asn in rule.deny_asns:
                hit = True
                reasons.append((rule.name, index, f"{el.kind} {el.subject} is in denied AS{el.asn}"))
        if roles and rule.require == CLEAN_PATH and not found and rule.on_unattributed != "ignore":
            reasons.append((rule.name, None, f"no {' or '.join(sorted(roles))} ({', '.join(sorted(rule.kinds))}) "
                                             "identified on the path"))
            if rule.on_unattributed == "violation":
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
