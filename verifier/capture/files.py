"""Capture files: pcap and pcapng, optionally gzip-compressed.

In:  a path. The format is chosen by magic number, never by extension
     (public corpora hold pcapng files named ``.pcap``).
Out: ``CaptureFile`` whose ``frames()`` yields ``(ts, ifindex, wirelen, data)``
     tuples; ``interfaces[ifindex]`` gives the link type and name.

Invariant: a damaged file never raises out of ``frames()``. A corrupt header
raises ``CaptureError`` at open (the caller records it and moves on); damage
later in the file (oversize record, truncated tail, bad block) ends the walk and
is appended to ``errors`` with its byte offset, keeping every frame before it.

Files are read in chunks, not memory-mapped, so peak memory stays flat however
large the capture is.
"""

import gzip
import struct

from ..errors import CaptureError

MAX_RECORD = 262144          # libpcap's MAXIMUM_SNAPLEN; larger means corruption
CHUNK = 1 << 20

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


def open_capture(path):
    """Return a ``CaptureFile`` for ``path`` or raise ``CaptureError``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    compressed = head[:2] == GZIP_MAGIC
    if compressed:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4)
        except (OSError, EOFError) as exc:
            raise CaptureError(f"{path}: bad gzip stream: {exc}") from None
    if head in PCAP_MAGICS:
        return PcapFile(path, compressed)
    if head == PCAPNG_MAGIC:
        return PcapngFile(path, compressed)
    if len(head) < 4:
        raise CaptureError(f"{path}: file too short to be a capture ({len(head)} bytes)")
    raise CaptureError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")


class CaptureFile:
    """Common part: opening, chunked reading, error recording."""

    format = "?"

    def __init__(self, path, compressed):
        self.path = path
        self.compressed = compressed
        self.interfaces = []
        self.errors = []

    def _open(self):
        return gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb")

    def _fail(self, offset, message):
        self.errors.append(f"offset {offset}: {message}")


class PcapFile(CaptureFile):
    format = "pcap"

    def __init__(self, path, compressed):
        super().__init__(path, compressed)
        with self._open() as fh:
            head = _read_exact(fh, 24)
        if len(head) < 24:
            raise CaptureError(f"{path}: truncated pcap file header ({len(head)} of 24 bytes)")
        self._order, self._tick = PCAP_MAGICS[head[:4]]
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(self._order + "HHiIII", head[4:])
        if major != 2:
            raise CaptureError(f"{path}: unsupported pcap version {major}")
        # The upper bits of the link-type field carry FCS flags (pcap-linktype(7)).
        if network & 0x03FF0000:
            raise CaptureError(f"{path}: pcap link-type field has reserved bits set ({network:#x})")
        # Bits 26-31 carry FCS information (pcap-linktype(7)), not the link type.
        self.interfaces.append(Interface(network & 0xFFFF, None))
        self.snaplen = snaplen

    def frames(self):
        rec = struct.Struct(self._order + "IIII").unpack_from
        tick = self._tick
        try:
            fh = self._open()
        except OSError as exc:
            self._fail(0, str(exc))
            return
        with fh:
            fh.read(24)
            base = 24          # file offset of rest[0], for error messages
            rest = b""
            while True:
                try:
                    chunk = fh.read(CHUNK)
                except (OSError, EOFError) as exc:
                    self._fail(base + len(rest), f"read error: {exc}")
                    return
                if not chunk:
                    break
                buf = rest + chunk if rest else chunk
                end = len(buf)
                off = 0
                while off + 16 <= end:
                    sec, frac, incl, orig = rec(buf, off)
                    if incl > MAX_RECORD:
                        self._fail(base + off, f"record of {incl} bytes exceeds {MAX_RECORD}: file is corrupt")
                        return
                    nxt = off + 16 + incl
                    if nxt > end:
                        break
                    yield sec + frac * tick, 0, orig, buf[off + 16:nxt]
                    off = nxt
                base += off
                rest = buf[off:]
            if rest:
                self._fail(base, f"truncated record at end of file ({len(rest)} stray bytes)")


class PcapngFile(CaptureFile):
    """pcapng: sections, several interfaces each with its own link type and
    timestamp resolution; EPB, SPB and the obsolete Packet Block."""

    format = "pcapng"

    def __init__(self, path, compressed):
        super().__init__(path, compressed)
        with self._open() as fh:
            head = _read_exact(fh, 12)
        if len(head) < 12:
            raise CaptureError(f"{path}: truncated pcapng section header")
        if head[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
            raise CaptureError(f"{path}: pcapng section header has a bad byte-order magic")

    def frames(self):
        try:
            fh = self._open()
        except OSError as exc:
            self._fail(0, str(exc))
            return
        with fh:
            yield from self._walk(fh)

    def _walk(self, fh):
        order = "<"
        section = []          # this section's interfaces: (global index, tick, offset)
        base = 0
        buf = b""
        off = 0
        while True:
            if len(buf) - off < 12:
                chunk = fh.read(CHUNK)
                if not chunk:
                    if len(buf) > off:
                        self._fail(base + off, f"truncated block at end of file ({len(buf) - off} stray bytes)")
                    return
                base += off
                buf = buf[off:] + chunk
                off = 0
                continue
            btype = buf[off:off + 4]
            if btype == PCAPNG_MAGIC:
                bom = buf[off + 8:off + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self._fail(base + off, "section header with a bad byte-order magic")
                    return
                section = []
            btype_n, blen = struct.unpack_from(order + "II", buf, off)
            if blen < 12 or blen % 4 or blen > MAX_RECORD + 4096:
                self._fail(base + off, f"block of type {btype_n:#x} has an invalid length {blen}")
                return
            while len(buf) - off < blen:
                chunk = fh.read(max(CHUNK, blen))
                if not chunk:
                    self._fail(base + off, f"truncated block of type {btype_n:#x} at end of file")
                    return
                base += off
                buf = buf[off:] + chunk
                off = 0
            body = buf[off + 8:off + blen - 4]
            off += blen
            if btype_n == 0x0A0D0D0A and (len(body) < 8 or struct.unpack_from(order + "H", body, 4)[0] != 1):
                self._fail(base + off - blen, "unsupported pcapng section version")
                return
            if btype_n == 6 and len(body) >= 20:                       # Enhanced Packet Block
                ifid, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", body)
                if ifid >= len(section) or incl > len(body) - 20:
                    self._fail(base + off - blen, "packet block names an unknown interface or overruns its block")
                    continue
                index, tick, tsoff = section[ifid]
                yield ((hi << 32) | lo) * tick + tsoff, index, orig, body[20:20 + incl]
            elif btype_n == 3 and len(body) >= 4 and section:            # Simple Packet Block
                (orig,) = struct.unpack_from(order + "I", body)
                index, _tick, _tsoff = section[0]
                yield 0.0, index, orig, body[4:4 + orig]
            elif btype_n == 2 and len(body) >= 20:                       # obsolete Packet Block
                ifid, _drops, hi, lo, incl, orig = struct.unpack_from(order + "HHIIII", body)
                if ifid < len(section) and incl <= len(body) - 20:
                    index, tick, tsoff = section[ifid]
                    yield ((hi << 32) | lo) * tick + tsoff, index, orig, body[20:20 + incl]
            elif btype_n == 1 and len(body) >= 8:                        # Interface Description
                linktype, _res, _snap = struct.unpack_from(order + "HHI", body)
                name, tick, tsoff = _idb_options(body[8:], order)
                section.append((len(self.interfaces), tick, tsoff))
                self.interfaces.append(Interface(linktype, name))


def _idb_options(opts, order):
    """Return (if_name, seconds per tick, ts offset) from IDB options."""
    name, tick, tsoff = None, 1e-6, 0
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(order + "HH", opts, pos)
        value = opts[pos + 4:pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
        if code == 0:
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
