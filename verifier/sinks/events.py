"""JSON lines about violating flows: ``"phase": "detected"`` the moment a flow
is first found violating while open (the daemon judges flows at first sight
and on path changes), ``"phase": "ended"`` when it ends (a violating flow, or
one detected before; with ``all_flows`` every judged flow), both with the
flow's Community ID.

Each line is the certificate's violation record (Community ID, zone, rule,
path with evidence, reasons) plus ``ts`` (when it was judged), ``phase``,
``verdict`` and ``end_reason`` (null while open), so tools that read
certificates read events too.

Output goes to stdout (``-``) or to a file rotated by size: ``events.jsonl``
becomes ``events.jsonl.1`` and so on, ``keep`` files kept. A write that
fails (a full disk, a removed directory) drops that event and counts it in
``dropped[reason]``; capture and metrics go on, and the next write tries
again (reopening the file).
"""

import errno
import json
import os
import sys
import time

from ..model import VIOLATION, counted
from ..text import iso_time
from .report import violation_record

DROP_REASONS = ("disk_full", "io_error")


class EventSink:
    def __init__(self, path, all_flows=False, max_bytes=100 << 20, keep=5, clock=time.time):
        self.path = path
        self.all_flows = all_flows
        self.max_bytes = max_bytes
        self.keep = keep
        self.clock = clock
        self.fh = None
        self.size = 0
        self.written = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    def judged(self, flow, judgements, before):
        """An open flow's verdicts changed: a zone's first violation is "detected"."""
        for j in judgements:
            if j.verdict == VIOLATION and not counted(before, j.zone):
                self._event(flow, j, "detected")

    def flow(self, flow, judgements):
        for j in judgements:
            if j.verdict == VIOLATION or self.all_flows or counted(flow.verdicts, j.zone):
                self._event(flow, j, "ended")

    def _event(self, flow, judgement, phase):
        event = {"ts": iso_time(self.clock()), "phase": phase, "verdict": judgement.verdict,
                 "end_reason": flow.end_reason}
        event.update(violation_record(flow, judgement))
        self._write(json.dumps(event, separators=(",", ":")) + "\n")

    def _write(self, line):
        data = line.encode()
        try:
            if self.fh is None:
                self._open()
            elif self.max_bytes and self.size + len(data) > self.max_bytes and self.size:
                self._rotate()
            self.fh.write(data)
            self.fh.flush()
        except OSError as exc:
            self.dropped["disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io_error"] += 1
            self._close()
            return
        self.size += len(data)
        self.written += 1

    def _open(self):
        if self.path == "-":
            self.fh = sys.stdout.buffer
            self.size = 0
            return
        self.fh = open(self.path, "ab")
        self.size = self.fh.tell()

    def _rotate(self):
        if self.path == "-" or not os.path.isfile(self.path):
            return
        self._close()
        for n in range(self.keep - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        if self.keep:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._open()

    def _close(self):
        if self.fh is not None and self.fh is not sys.stdout.buffer:
            try:
                self.fh.close()
            except OSError:
                pass
        self.fh = None

    def close(self):
        self._close()
