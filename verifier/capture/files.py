"""Capture files: pcap and pcapng, optionally gzip-compressed.

In:  a path. The format is chosen by magic number, never by extension
     (public corpora hold pcapng files named ``.pcap``).
Out: ``CaptureFile`` whose ``chunks()`` yields ``Chunk`` batches (see
     chunk.py) and whose ``frames()`` yields ``(ts, ifindex, wirelen, data)``
     tuples; ``interfaces[ifindex]`` gives the link type and name.

Invariant: a damaged file never raises out of ``chunks()``. A corrupt header
raises ``CaptureError`` at open (the caller records it and moves on); damage
later in the file (oversize record, truncated tail, bad block) ends the walk and
is appended to ``errors`` with its byte offset, keeping every frame before it.

Files are read in 4 MiB pieces, not memory-mapped, so peak memory stays flat
however large the capture is. A piece's pcap records are walked in C when
the compiled module is built (verifier/engine/_fastpath.c), else found for the whole
piece at once with numpy (walk.py); pcapng blocks are walked one by one.
"""

import os
import struct

import numpy as np

from .. import engine as engines
from ..errors import CaptureError
from .chunk import Chunk, gather_u32
from .gz import GzipReader
from ..engine.walk import Scratch, record_starts

MAX_RECORD = 262144          # libpcap's MAXIMUM_SNAPLEN; larger means corruption
EPB_HEADER = 28              # pcapng Enhanced Packet Block: type, length, interface, 2 x timestamp, 2 x length
CHUNK = 4 << 20               # ~35k frames at a 128-byte snap length: numpy passes stay in cache

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


class Interface:
    __slots__ = ("linktype", "name")

    def __init__(self, linktype, name):
        self.linktype, self.name = linktype, name

    def __repr__(self):
        return f"Interface({self.linktype}, {self.name!r})"


def open_capture(path, engine=None):
    """Return a ``CaptureFile`` for ``path`` or raise ``CaptureError``.
    ``engine`` walks a pcap file's records (default: engine.DEFAULT)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    compressed = head[:2] == GZIP_MAGIC
    if compressed:
        try:
            with GzipReader(path) as fh:
                head = fh.read(4)
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror or exc}") from None
        if len(head) < 4 and fh.damage:
            raise CaptureError(f"{path}: bad gzip stream: {fh.damage[2]} at compressed byte {fh.damage[0]}")
    if head in PCAP_MAGICS:
        return PcapFile(path, compressed, engine or engines.DEFAULT)
    if head == PCAPNG_MAGIC:
        return PcapngFile(path, compressed)
    if len(head) < 4:
        raise CaptureError(f"{path}: file too short to be a capture ({len(head)} bytes)")
    raise CaptureError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")


class CaptureFile:
    """Common part: opening, error recording, frames() over chunks()."""

    format = "?"
    positional = True                   # a file read at offsets (a pipe is not)

    def __init__(self, path, compressed):
        self.path = path
        self.compressed = compressed
        self.interfaces = []
        self.errors = []
        self.position = 0               # bytes of the (uncompressed) stream consumed
        self._cut = False               # the gzip stream ended at damage (already recorded)

    def _open(self):
        return GzipReader(self.path) if self.compressed else open(self.path, "rb")

    def _fail(self, offset, message):
        self.errors.append(f"offset {offset}: {message}")

    def _pieces(self, start):
        """Yield ``(buf, eof)`` after the file header (``start`` bytes): ``buf``
        holds the stream from ``self.position`` on, which the caller moves
        past what it took (``_consumed``); ``eof``: nothing follows ``buf``.
        A plain file is read with ``os.pread`` from that offset, so a record
        cut at a piece's end is read again with the next piece rather than
        copied in front of it (a 4 MiB copy a piece); a gzip stream or a pipe
        carries the cut tail over. Read errors end the file; so does a
        damaged gzip stream, after every byte decompressed before the damage
        (gz.py), which is recorded with both offsets."""
        self.position = start
        if self.positional and not self.compressed:
            yield from self._preads()
            return
        try:
            fh = self._open()
        except OSError as exc:
            self._fail(0, str(exc))
            return
        with fh:
            fh.read(start)
            rest, base = b"", start
            while True:
                try:
                    more = fh.read(CHUNK)
                except OSError as exc:
                    self._fail(self.position, f"read error: {exc}")
                    return
                buf = rest + more if rest else more
                damage = None if more else getattr(fh, "damage", None)
                if damage is not None:
                    at, produced, message = damage
                    self._fail(produced, f"{message} at compressed byte {at}: the records before it are kept")
                    self._cut = True
                yield buf, not more
                if not more:
                    return
                rest, base = buf[self.position - base:], self.position

    def _preads(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            self._fail(0, str(exc))
            return
        size = CHUNK
        try:
            while True:
                at = self.position
                try:
                    buf = os.pread(fd, size, at)
                except OSError as exc:
                    self._fail(at, f"read error: {exc}")
                    return
                eof = len(buf) < size
                yield buf, eof
                if eof:
                    return
                # Nothing taken: a record longer than the piece (the walks bound records), read more of it.
                size = CHUNK if self.position > at else 2 * size
        finally:
            os.close(fd)

    def _consumed(self, buf, off, eof, what):
        """After walking ``buf`` up to ``off``: the next piece starts there;
        at the end of the file a tail is damage."""
        self.position += off
        if eof and off < len(buf) and not self._cut:    # a cut gzip stream is reported as such
            self._fail(self.position, f"truncated {what} at end of file ({len(buf) - off} stray bytes)")

    def frames(self):
        for chunk in self.chunks():
            yield from chunk.frames()


class PcapFile(CaptureFile):
    format = "pcap"

    def __init__(self, path, compressed, engine=None):
        super().__init__(path, compressed)
        self._c = (engine or engines.DEFAULT).c        # the compiled record walk, or None: numpy's
        with self._open() as fh:
            head = _read_exact(fh, 24)
        if len(head) < 24:
            raise CaptureError(f"{path}: truncated pcap file header ({len(head)} of 24 bytes)")
        self._order, self._tick = PCAP_MAGICS[head[:4]]
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(self._order + "HHiIII", head[4:])
        if major != 2:
            raise CaptureError(f"{path}: unsupported pcap version {major}")
        if network & 0x03FF0000:
            raise CaptureError(f"{path}: pcap link-type field has reserved bits set ({network:#x})")
        # Bits 26-31 carry FCS information (pcap-linktype(7)), not the link type.
        self.interfaces.append(Interface(network & 0xFFFF, None))
        self.snaplen = snaplen

    def chunks(self):
        scratch = Scratch()
        for buf, eof in self._pieces(24):      # buf: from file offset self.position on
            if self._c is not None:
                chunk, off, oversize = self._walked(buf)
            else:
                starts, off, oversize = record_starts(buf, self._order, MAX_RECORD, scratch)
                chunk = self._chunk(buf, starts) if len(starts) else None
            if chunk is not None:
                yield chunk
            if oversize:
                incl = struct.unpack_from(self._order + "I", buf, off + 8)[0]
                self._fail(self.position + off, f"record of {incl} bytes exceeds {MAX_RECORD}: file is corrupt")
                return
            self._consumed(buf, off, eof, "record")

    def _walked(self, buf):
        """(Chunk or None, stop, oversize) by the compiled walk: same records, same timestamps."""
        walk = self._c.pcap_records
        off, ts, incl, orig, stop, oversize = walk(buf, self._order == ">", self._tick, MAX_RECORD)
        if not off:
            return None, stop, oversize
        off = np.frombuffer(off, np.int64)
        chunk = Chunk(buf, np.frombuffer(ts), np.zeros(len(off), np.int64), off, np.frombuffer(incl, np.int64),
                      np.frombuffer(orig, np.int64))
        return chunk, stop, bool(oversize)

    def _chunk(self, buf, starts):
        starts = np.asarray(starts, np.int64)
        sec, frac, incl, orig = gather_u32(buf, starts, 4, self._order).T
        return Chunk(buf, sec + frac * self._tick, np.zeros(len(starts), np.int64), starts + 16, incl, orig)


class PcapngFile(CaptureFile):
    """pcapng: sections, several interfaces each with its own link type and
    timestamp resolution; Enhanced, Simple and the obsolete Packet Blocks."""

    format = "pcapng"

    def __init__(self, path, compressed):
        super().__init__(path, compressed)
        with self._open() as fh:
            head = _read_exact(fh, 12)
        if len(head) < 12:
            raise CaptureError(f"{path}: truncated pcapng section header")
        if head[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
            raise CaptureError(f"{path}: pcapng section header has a bad byte-order magic")

    def chunks(self):
        self._order = "<"
        self._section = []             # this section's interfaces: (global index, tick, ts offset)
        for buf, eof in self._pieces(0):
            off, broken = 0, False
            epbs, extra = [], []
            end = len(buf)
            while off + 12 <= end:
                if buf[off:off + 4] == PCAPNG_MAGIC:
                    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(buf[off + 8:off + 12])
                    if order is None:
                        self._fail(self.position + off, "section header with a bad byte-order magic")
                        broken = True
                        break
                    if epbs or extra:          # frames of the old section use its interfaces
                        yield self._chunk(buf, epbs, extra)
                        epbs, extra = [], []
                    self._order, self._section = order, []
                btype, blen = struct.unpack_from(self._order + "II", buf, off)
                if blen < 12 or blen % 4 or blen > MAX_RECORD + 4096:
                    self._fail(self.position + off, f"block of type {btype:#x} has an invalid length {blen}")
                    broken = True
                    break
                if off + blen > end:
                    break
                if btype == 6:
                    if blen < EPB_HEADER + 4:
                        self._fail(self.position + off, f"enhanced packet block of {blen} bytes is shorter "
                                                        f"than its {EPB_HEADER + 4}-byte header and trailer")
                        broken = True
                        break
                    epbs.append(off)
                elif not self._other_block(buf, off, btype, blen, extra):
                    broken = True
                    break
                off += blen
            if epbs or extra:
                yield self._chunk(buf, epbs, extra)
            if broken:
                return
            self._consumed(buf, off, eof, "block")

    def _other_block(self, buf, off, btype, blen, extra):
        """Section, interface and rare packet blocks. False ends the file."""
        order = self._order
        body = buf[off + 8:off + blen - 4]
        if btype == 0x0A0D0D0A:
            if len(body) < 8 or struct.unpack_from(order + "H", body, 4)[0] != 1:
                self._fail(self.position + off, "unsupported pcapng section version")
                return False
        elif btype == 1 and len(body) >= 8:                          # Interface Description
            linktype, _res, _snap = struct.unpack_from(order + "HHI", body)
            name, tick, tsoff = _idb_options(body[8:], order)
            self._section.append((len(self.interfaces), tick, tsoff))
            self.interfaces.append(Interface(linktype, name))
        elif btype == 3 and len(body) >= 4 and self._section:         # Simple Packet Block
            (orig,) = struct.unpack_from(order + "I", body)
            extra.append((0.0, self._section[0][0], off + 12, min(orig, len(body) - 4), orig))
        elif btype == 2 and len(body) >= 20:                          # obsolete Packet Block
            ifid, _drops, hi, lo, incl, orig = struct.unpack_from(order + "HHIIII", body)
            if ifid < len(self._section) and incl <= len(body) - 20:
                index, tick, tsoff = self._section[ifid]
                extra.append((((hi << 32) | lo) * tick + tsoff, index, off + 28, incl, orig))
        return True

    def _chunk(self, buf, epbs, extra):
        section = self._section
        if epbs:
            rows = gather_u32(buf, np.asarray(epbs, np.int64), 7, self._order)
            _type, blen, ifid, hi, lo, incl, orig = rows.T
            good = (ifid < len(section)) & (incl <= blen - 32)
            if not good.all():
                for bad in np.flatnonzero(~good).tolist():
                    self._fail(self.position + epbs[bad],
                               "packet block names an unknown interface or overruns its block")
                rows, ifid, hi, lo, incl, orig = rows[good], ifid[good], hi[good], lo[good], incl[good], orig[good]
                epbs = [e for e, g in zip(epbs, good.tolist()) if g]
            table = np.asarray(section if section else [(0, 0.0, 0)], np.float64)
            ifid_c = np.minimum(ifid, len(table) - 1)
            ts = ((hi << 32) | lo) * table[ifid_c, 1] + table[ifid_c, 2]
            ifx = table[ifid_c, 0].astype(np.int64)
            off = np.asarray(epbs, np.int64) + EPB_HEADER
        else:
            ts = ifx = off = incl = orig = np.zeros(0, np.int64)
        if extra:
            ets, eifx, eoff, eincl, eorig = (np.asarray(col) for col in zip(*extra))
            ts = np.concatenate([ts, ets.astype(np.float64)])
            ifx, off = np.concatenate([ifx, eifx]), np.concatenate([off, eoff])
            incl, orig = np.concatenate([incl, eincl]), np.concatenate([orig, eorig])
        return Chunk(buf, np.asarray(ts, np.float64), ifx.astype(np.int64), off.astype(np.int64),
                     incl.astype(np.int64), orig.astype(np.int64))


def _idb_options(opts, order):
    """Return (if_name, seconds per tick, ts offset) from IDB options."""
    name, tick, tsoff = None, 1e-6, 0
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(order + "HH", opts, pos)
        value = opts[pos + 4:pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
        if code == 0 or len(value) < length:       # the end, or an option that overruns its block
            break
        if code == 2:
            name = value.decode("utf-8", "replace").rstrip("\0") or None
        elif code == 9 and length >= 1:
            res = value[0]
            tick = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0 ** -res
        elif code == 14 and length == 8:
            (tsoff,) = struct.unpack(order + "q", value)
    return name, tick, tsoff


def _read_exact(fh, n):
    try:
        return fh.read(n)
    except (OSError, EOFError):
        return b""


class PcapngStream(PcapngFile):
    """pcapng arriving on a pipe (dumpcap ``-w -``): ``chunks()`` yields
    frames as soon as their blocks are complete; a read returns whatever the
    pipe holds, so a quiet link does not hold back the packets already read."""

    positional = False

    def __init__(self, fh, name):
        CaptureFile.__init__(self, name, False)
        self._fh = fh

    def _open(self):
        return self._fh
