"""Judged flows -> the daemon's per-zone metric values (SPEC "Metrics").

``MetricsSink.judged`` runs when an open flow's verdicts change (its first
sight, a path change, a reload: pipeline.py), ``MetricsSink.flow`` once per
ended flow; both only add to plain dicts, which the exporter
(daemon/exporter.py) reads snapshots of at scrape time. A flow's violations
are counted once per (rule, vendor, kind) when first found — open or at its
end, never again; flows and bytes by verdict when they end;
``open_flows[(zone, verdict)]`` holds open flows by current verdict, and a
zone with an open violating (or, where attribution is required, unverified)
flow is not certified.
Keeping the values out of prometheus-client objects keeps the per-flow cost
to a few dict updates and lets a scrape take one consistent copy.

Labels: ``zone`` is a policy zone, or ``any`` for flows with no endpoint in
a zone (judged by ``zone: any`` rules; the policy reserves that name);
``vendor`` is a catalogue id or ``other``; ``kind`` and ``verdict`` are fixed
enums. Nothing from the traffic itself (addresses, ports, ASNs) becomes a
label value.

The rolling window behind ``cleanpath_zone_certified`` and
``cleanpath_coverage_ratio`` is a ring of time buckets per zone (wall-clock
time of judgement): a zone is certified when its window holds traffic and no
VIOLATION, and no UNVERIFIED flow where the policy requires attribution.
"""

import threading
import time

from ..model import KINDS, UNVERIFIED, VERDICTS, VIOLATION, counted
from ..policy.model import CLEAN_PATH, UNZONED

OTHER = "other"
WINDOW_BUCKETS = 60


class MetricsSink:
    def __init__(self, policy, catalogue, window=900.0, clock=time.time):
        self.catalogue = catalogue
        self.window_seconds = float(window)
        self.bucket_len = self.window_seconds / WINDOW_BUCKETS
        self.clock = clock
        self.lock = threading.Lock()          # guards the window ring (scrapes read it)
        self.flows = {}                       # (zone, verdict) -> n
        self.octets = {}
        self.violations = {}                  # (zone, rule, vendor, kind) -> n
        self.last_violation = {}              # zone -> epoch seconds
        self.open_flows = {}                  # (zone, verdict) -> open flows judged so
        self.buckets = {}                     # bucket number -> {zone: [flows, attributed, violation, unverified]}
        self.set_policy(policy)

    def set_policy(self, policy):
        """Pre-create every series at 0 (also after a reload): zone x verdict,
        and zone x rule x vendor x kind for each way a rule of the zone can
        be broken. A counter born at 0 lets ``increase()`` see its first
        violation; one born at 1 would hide it."""
        self.policy = policy
        untrusted = sorted(policy.untrusted)
        for zone in list(policy.zones) + [UNZONED]:
            for verdict in VERDICTS:
                self.flows.setdefault((zone, verdict), 0)
                self.octets.setdefault((zone, verdict), 0)
                self.open_flows.setdefault((zone, verdict), 0)
            for rule in policy.rules_for[zone if zone != UNZONED else None]:
                if rule.require == CLEAN_PATH:
                    vendors, kinds = untrusted + [OTHER], rule.kinds
                else:
                    vendors, kinds = sorted(rule.deny_vendors) + ([OTHER] if rule.deny_asns else []), KINDS
                for vendor in vendors:
                    for kind in kinds:
                        self.violations.setdefault((zone, rule.name, vendor, kind), 0)

    def judged(self, flow, judgements, before):
        """An open flow's verdicts changed (``before``: as last judged, or
        None; ``flow.verdicts`` already holds the new ones)."""
        now = self.clock()
        self._open(before, -1)
        self._open(flow.verdicts, +1)
        for j in judgements:
            self._violating(j.zone if j.zone is not None else UNZONED, j, before, now)

    def flow(self, flow, judgements):
        """A flow ended: by final verdict; violations not yet counted while it was open."""
        octets = flow.octets_a + flow.octets_b
        now = self.clock()
        before = flow.verdicts
        self._open(before, -1)
        for j in judgements:
            zone = j.zone if j.zone is not None else UNZONED
            key = (zone, j.verdict)
            self.flows[key] = self.flows.get(key, 0) + 1
            self.octets[key] = self.octets.get(key, 0) + octets
            self._violating(zone, j, before, now)
            self._window_add(now, zone, j.attributed, j.verdict)

    def _open(self, verdicts, step):
        for zone, verdict, _blamed in verdicts or ():
            key = (zone if zone is not None else UNZONED, verdict)
            self.open_flows[key] = self.open_flows.get(key, 0) + step

    def _violating(self, zone, judgement, before, now):
        """A violating judgement: the zone's last-violation time, and each
        (rule, vendor, kind) label not yet counted for this flow, once."""
        if judgement.verdict != VIOLATION:
            return
        self.last_violation[zone] = now
        done = {(rule, self._vendor(vendor), kind) for rule, vendor, kind in counted(before, judgement.zone)}
        for rule, vendor, kind in judgement.blamed():
            label = (rule, self._vendor(vendor), kind)     # no vendor (a missing role): other
            if label not in done:
                done.add(label)
                vkey = (zone,) + label
                self.violations[vkey] = self.violations.get(vkey, 0) + 1

    def _vendor(self, vendor):
        return vendor if vendor is not None and vendor in self.catalogue else OTHER

    def _window_add(self, now, zone, attributed, verdict):
        number = int(now // self.bucket_len)
        with self.lock:
            bucket = self.buckets.get(number)
            if bucket is None:
                bucket = self.buckets[number] = {}
                for old in [n for n in self.buckets if n <= number - WINDOW_BUCKETS]:
                    del self.buckets[old]
            counts = bucket.get(zone)
            if counts is None:
                counts = bucket[zone] = [0, 0, 0, 0]
            counts[0] += 1
            counts[1] += attributed
            counts[2] += verdict == VIOLATION
            counts[3] += verdict == UNVERIFIED

    def window(self):
        """zone -> (flows, attributed, violations, unverified) over the rolling window."""
        oldest = int(self.clock() // self.bucket_len) - WINDOW_BUCKETS
        totals = {zone: [0, 0, 0, 0] for zone in self.policy.zones}
        with self.lock:
            for number, bucket in self.buckets.items():
                if number <= oldest:
                    continue
                for zone, counts in bucket.items():
                    if zone in totals:
                        total = totals[zone]
                        for i in range(4):
                            total[i] += counts[i]
        return totals

    def certified(self, zone, totals):
        """1 when the zone's window or its open flows hold traffic and
        neither holds a violation (nor, where the zone requires attribution,
        an unverified flow)."""
        flows, _attributed, violations, unverified = totals
        open_flows = self.open_flows
        violations += open_flows.get((zone, VIOLATION), 0)
        unverified += open_flows.get((zone, UNVERIFIED), 0)
        flows += sum(open_flows.get((zone, v), 0) for v in VERDICTS)
        if not flows or violations:
            return 0
        if unverified and self.policy.requires_attribution(zone):
            return 0
        return 1
