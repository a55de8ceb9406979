"""Open flows listed by when they could first be due: the flow table's
incremental expiry.

In:  ``add_new(flows, dues)`` for the flows the table opened since it last
     looked, each ``due`` a lower bound on the time it could first end (its
     last time plus the idle timeout, or its first time plus the active one,
     whichever is sooner); ``take(now)`` at each sweep.
Out: ``take`` hands back the flows whose lower bound has passed, with
     their opening numbers, and forgets them; the table ends those that are
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
shed for capacity): ``take`` drops entries of flows that ended, and the
table lists its open flows anew in a fresh ``Deadlines`` when the entries
outnumber them by more than a quarter (flows.FlowTable._prune, after each
shed and sweep), so ended flows are not kept alive for long, in amortised
constant time per flow.
"""

import heapq
import math
from array import array

import numpy as np

GRAIN = 1.0              # seconds per bucket


class Deadlines:
    def __init__(self):
        self.buckets = {}        # bucket number -> (flows, array of their opening numbers)
        self.heap = []           # the bucket numbers in ``buckets``, smallest first
        self.listed = 0          # entries in every bucket (stale ones too)
        self.opened = 0          # the next opening number

    def __len__(self):
        return self.listed

    def add(self, flow, due, number):
        """List ``flow`` (opening number ``number``) to be looked at once
        ``due`` has passed. An infinite bound (no timeout) is never due: the
        flow is not listed."""
        if not math.isfinite(due):
            return
        bucket = self._bucket(math.floor(due / GRAIN) - 2)
        bucket[0].append(flow)
        bucket[1].append(number)
        self.listed += 1

    def add_new(self, flows, dues):
        """``add`` for each of ``flows`` (new, in opening order) at ``dues``
        (an array, one bound each), in whole-array steps: a sweep after a
        burst of new flows lists them at a fraction of ``add``'s cost each."""
        n = len(flows)
        numbers = np.arange(self.opened, self.opened + n, dtype=np.int64)
        self.opened += n
        finite = np.isfinite(dues)
        if not finite.all():
            flows = [f for f, ok in zip(flows, finite.tolist()) if ok]
            dues, numbers = dues[finite], numbers[finite]
        if not len(flows):
            return
        at = np.floor(dues / GRAIN).astype(np.int64) - 2
        order = np.argsort(at, kind="stable")
        at, numbers = at[order], numbers[order]
        ordered = [flows[k] for k in order.tolist()]
        starts = np.flatnonzero(np.diff(at)) + 1
        for lo, hi in zip([0] + starts.tolist(), starts.tolist() + [len(at)]):
            bucket = self._bucket(int(at[lo]))
            bucket[0].extend(ordered[lo:hi])
            bucket[1].frombytes(numbers[lo:hi].tobytes())
        self.listed += len(ordered)

    def _bucket(self, at):
        """Bucket ``at`` (flows, their numbers), made and queued if new."""
        bucket = self.buckets.get(at)
        if bucket is None:
            bucket = self.buckets[at] = ([], array("q"))
            heapq.heappush(self.heap, at)
        return bucket

    def take(self, now):
        """(flows, their opening numbers) of every entry whose bucket
        ``now`` has passed, in no particular order; no longer listed."""
        heap, buckets = self.heap, self.buckets
        flows, numbers = [], array("q")
        while heap and (heap[0] + 1) * GRAIN <= now:
            held, held_numbers = buckets.pop(heapq.heappop(heap))
            flows.extend(held)
            numbers.extend(held_numbers)
        self.listed -= len(flows)
        return flows, numbers
