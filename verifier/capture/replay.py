"""Replay a capture file at its recorded pace (or ``speed`` times faster).

Timestamps are moved to the present (first packet = start of replay), so
flows, timeouts and the metrics' rolling window behave as with live traffic.
``speed=0`` replays as fast as the pipeline can take it, keeping the
recorded timestamps (the capture clock then runs on from the last packet). Frames are handed
over in slices of at most ``SLICE`` seconds of replay time.
"""

import time

import numpy as np

from .chunk import Chunk
from .files import open_capture

SLICE = 0.05


class Replay:
    def __init__(self, path, speed=1.0, clock=time.time, sleep=time.sleep):
        self.path = path
        self.file = open_capture(path)
        self.interfaces = self.file.interfaces
        self.errors = self.file.errors
        self.speed = float(speed)
        self.clock, self.sleep = clock, sleep
        self.closed = False
        self._last = (float("-inf"), 0.0)

    def chunks(self):
        start_wall = self.clock()
        first = None
        for chunk in self.file.chunks():
            if self.closed:
                return
            if not len(chunk):
                continue
            if first is None:
                first = float(chunk.ts[0])
            if self.speed <= 0:
                self._last = (float(chunk.ts[-1]), self.clock())
                yield chunk
                continue
            due = start_wall + (chunk.ts - first) / self.speed
            i = 0
            while i < len(chunk) and not self.closed:
                wait = float(due[i]) - self.clock()
                if wait > 0:
                    self.sleep(min(wait, SLICE * 4))
                    if wait > SLICE * 4:
                        yield None           # let the caller time out flows and handle signals
                        continue
                j = int(np.searchsorted(due, self.clock() + SLICE, side="right"))
                j = max(j, i + 1)
                yield _with_ts(chunk, slice(i, j), due)
                i = j

    def now(self):
        if self.speed <= 0:
            last_ts, last_wall = self._last
            return last_ts + (self.clock() - last_wall)
        return self.clock()

    def drops(self):
        return {}

    def received(self):
        return {}

    def close(self):
        self.closed = True


def _with_ts(chunk, rows, due):
    """The rows of ``chunk`` (sharing its buffer) with replay-time timestamps."""
    return Chunk(chunk.buf, np.ascontiguousarray(due[rows]), chunk.ifx[rows], chunk.off[rows],
                 chunk.incl[rows], chunk.orig[rows])
