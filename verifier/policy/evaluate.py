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

A verdict depends on the flow only through the exceptions that waive rules
for it; the rest depends on the zone and the path's element classes
(``PathElement.cls``: kind, trust, vendor, ASN, role). ``Verdicts`` keeps one
``Outcome`` per (zone, waivers, classes) and reuses it for every flow whose
path has that shape, so a busy capture's flows cost a dict lookup each, and
the reason texts (which name the flow's own elements) are made only for
judgements someone reads the reasons of.
"""

from ..model import CLEAN, UNTRUSTED, UNVERIFIED, VIOLATION, Judgement, attributed, equipment
from .model import CLEAN_PATH

MEMO_LIMIT = 100_000          # outcomes kept; a daemon's distinct path shapes rarely come near


def evaluate(policy, flow, zone, local_side, path, today):
    """The judgement of one flow's path in ``zone`` (``local_side``: the
    flow side inside the zone, None when the flow has no zone)."""
    return Verdicts(policy).judge(flow, zone, local_side, path, today)


class Verdicts:
    """``evaluate`` for one policy, remembering outcomes by path shape."""

    def __init__(self, policy):
        self.policy = policy
        self._waivable = {zone: [r for r in rules if r.name in policy.waivable]
                          for zone, rules in policy.rules_for.items()}
        self._memo = {}

    def judge(self, flow, zone, local_side, path, today):
        excepted = []
        waivable = self._waivable[zone]
        if waivable:
            for rule in waivable:
                waiver = _waiver(self.policy, rule, flow, local_side, today)
                if waiver is not None:
                    excepted.append((rule.name, waiver.reason))
        key = (zone, tuple(excepted) if excepted else (), tuple([el.cls for el in path]))
        outcome = self._memo.get(key)
        if outcome is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            outcome = self._memo[key] = _outcome(self.policy, zone, {name for name, _ in excepted}, path)
        return Judgement(zone, outcome.verdict, outcome.rules, path, None, excepted, outcome)


class Outcome:
    """What the policy decides for one path shape: verdict, deciding rules,
    reason templates (rule, element index, the text after the element's
    kind and subject; index None: the whole text), whether every element
    was attributed, and the path's equipment columns."""

    __slots__ = ("verdict", "rules", "templates", "attributed", "vendors")

    def __init__(self, verdict, rules, templates, path):
        self.verdict, self.rules, self.templates = verdict, rules, templates
        self.attributed = attributed(path, templates)          # templates index elements as reasons do
        self.vendors = equipment(path)

    def reasons_for(self, path):
        return [(rule, index, f"{path[index].kind} {path[index].subject} {text}" if index is not None else text)
                for rule, index, text in self.templates]


def _outcome(policy, zone, waived, path):
    broken, unverified, reasons = [], [], []
    for rule in policy.rules_for[zone]:
        if rule.name in waived:
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
                    reasons.append((rule.name, index, "is untrusted"))
                elif not el.known and on_unattributed != "ignore":
                    reasons.append((rule.name, index, f"is {trust}"))
                    if on_unattributed == "violation":
                        hit = True
                    else:
                        unsure = True
            if deny_vendors and el.vendor is not None and el.vendor in deny_vendors:
                hit = True
                reasons.append((rule.name, index, f"is {el.vendor} equipment"))
            if deny_asns and el.asn is not None and el.asn in deny_asns:
                hit = True
                reasons.append((rule.name, index, f"is in denied AS{el.asn}"))
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
        return Outcome(VIOLATION, broken, reasons, path)
    if unverified:
        return Outcome(UNVERIFIED, unverified, reasons, path)
    return Outcome(CLEAN, [], [], path)


def _waiver(policy, rule, flow, local_side, today):
    for exc in policy.exceptions:
        if exc.rule == rule.name and not exc.expired(today) and exc.matches(flow, local_side):
            return exc
    return None
