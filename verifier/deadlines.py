"""Open flows listed by when they could first be due: the flow table's
incremental expiry.

In:  ``add(flow, due)`` for each flow the table opens, ``due`` a lower bound
     on the time it could first end (its last time plus the idle timeout,
     or its first time plus the active one, whichever is sooner); ``take(now)``
     at each sweep.
Out: ``take`` hands back the flows whose lower bound has passed, each with
     its opening number, and forgets them; the table ends those that are
     due and lists the others again (``add(flow, due, number)``) at their
     new bound.

A sweep so costs what is due (and what moved on since it was listed, once
per timeout at most), not a walk over every open flow: at 500,000 open
flows and a sweep every few seconds a full walk read the whole table each
time. Packets never touch this: a flow's last time only grows, so a bound
listed at opening stays a bound, and a flow seen since is found not due
when its bucket comes up and listed again then.

Buckets are ``GRAIN`` seconds of time. A bucket is taken once ``now`` is
past its end, and a flow goes in the bucket two before the one its bound
falls in: taken a grain or two early, never late, whatever float rounding
does to ``last + idle`` beside the table's ``last < now - idle``. The
opening number keeps the table's order: flows one sweep ends leave in the
order they were opened (the order a walk of the table's dict gave).

Entries are not removed when a flow ends another way (renewed after idling,
shed for capacity, flushed) or is listed twice (its first time moved back:
flow export): ``take`` drops entries of flows that ended and the table
calls ``rebuild`` when the list holds more than twice its open flows, so
what is listed stays within a small multiple of the table, in amortised
constant time per flow.
"""

import heapq
import math
from array import array

GRAIN = 1.0              # seconds per bucket


class Deadlines:
    def __init__(self):
        self.buckets = {}        # bucket number -> (flows, array of their opening numbers)
        self.heap = []           # the bucket numbers in ``buckets``, smallest first
        self.listed = 0          # entries in every bucket (stale ones too)
        self.opened = 0          # the next opening number

    def __len__(self):
        return self.listed

    def add(self, flow, due, number=None):
        """List ``flow`` to be looked at once ``due`` has passed; a new flow
        (``number`` None) takes the next opening number. An infinite bound
        (no timeout) is never due: the flow is not listed."""
        if number is None:
            number = self.opened
            self.opened += 1
        if not math.isfinite(due):
            return
        at = math.floor(due / GRAIN) - 2
        bucket = self.buckets.get(at)
        if bucket is None:
            bucket = self.buckets[at] = ([], array("q"))
            heapq.heappush(self.heap, at)
        bucket[0].append(flow)
        bucket[1].append(number)
        self.listed += 1

    def take(self, now):
        """(opening number, flow) of every entry whose bucket ``now`` has
        passed, in no particular order; they are no longer listed."""
        heap, buckets, out = self.heap, self.buckets, []
        while heap and (heap[0] + 1) * GRAIN <= now:
            flows, numbers = buckets.pop(heapq.heappop(heap))
            out.extend(zip(numbers, flows))
        self.listed -= len(out)
        return out

    def rebuild(self, flows, due):
        """List anew each of ``flows`` (open flows in their opening order) at
        ``due(flow)``, numbered from 0 in that order: what was stale is gone."""
        self.buckets, self.heap, self.listed, self.opened = {}, [], 0, 0
        for flow in flows:
            self.add(flow, due(flow))
