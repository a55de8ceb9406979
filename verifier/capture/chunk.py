"""A batch of captured frames that share one buffer.

Sources hand the pipeline ``Chunk``s rather than one frame at a time: the
per-frame facts are numpy arrays (timestamp, interface, frame offset in
``buf``, captured and wire length), so the fast path can classify and group a
whole batch without a Python step per packet. ``frames()`` gives the same
data one frame at a time for code that wants it.

numpy is a dependency for this reason alone: a Python loop per packet tops
out near 0.6M packets/s on two cores. For the common frames there is no
Python step per packet at all — record starts (walk.py), classification and
grouping (engine/split.py) are whole-chunk numpy passes, or one C pass each where
the compiled module is built (verifier/engine/_fastpath.c) — so the remaining
Python work is per flow direction and per flow; ``bench/`` measures the result.
"""

import numpy as np


class Chunk:
    __slots__ = ("buf", "ts", "ifx", "off", "incl", "orig")

    def __init__(self, buf, ts, ifx, off, incl, orig):
        self.buf = buf                      # bytes holding every frame of the chunk
        self.ts = ts                        # float64 seconds
        self.ifx = ifx                      # int64 interface index (into the source's interfaces)
        self.off = off                      # int64 offset of each frame in buf
        self.incl = incl                    # int64 captured length
        self.orig = orig                    # int64 length on the wire

    def __len__(self):
        return len(self.off)

    def frames(self):
        """Yield ``(ts, ifindex, wirelen, data)`` per frame."""
        buf = self.buf
        for ts, ifx, off, incl, orig in zip(self.ts.tolist(), self.ifx.tolist(), self.off.tolist(),
                                            self.incl.tolist(), self.orig.tolist()):
            yield ts, ifx, orig, buf[off:off + incl]


def gather_u32(buf, offsets, fields, order):
    """``fields`` consecutive 32-bit integers at each offset -> (n, fields) int64 array."""
    if not len(offsets):
        return np.zeros((0, fields), np.int64)
    raw = np.frombuffer(buf, np.uint8)
    width = 4 * fields
    # One ``width``-byte record at every byte offset: gathering records is a
    # copy per row, ~2x cheaper than fancy-indexing a sliding window's rows.
    records = np.ndarray((len(raw) - width + 1,), np.dtype((np.void, width)), buffer=raw, strides=(1,))
    return records[offsets].view(order + "u4").reshape(len(offsets), fields).astype(np.int64)


def from_frames(frames):
    """Build one Chunk from ``(ts, ifindex, wirelen, data)`` tuples (slow sources, tests)."""
    parts, ts, ifx, off, incl, orig = [], [], [], [], [], []
    pos = 0
    for t, i, w, data in frames:
        parts.append(data)
        ts.append(t)
        ifx.append(i)
        off.append(pos)
        incl.append(len(data))
        orig.append(w)
        pos += len(data)
    return Chunk(b"".join(parts), np.asarray(ts, np.float64), np.asarray(ifx, np.int64),
                 np.asarray(off, np.int64), np.asarray(incl, np.int64), np.asarray(orig, np.int64))
