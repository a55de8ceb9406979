"""A gzip stream that keeps what a damaged file still holds.

In:  a path to a gzip file (one member or several, as ``cat a.gz b.gz``).
Out: ``GzipReader.read(n)``: up to ``n`` decompressed bytes, ``b""`` at the
     end; it never raises. When the stream is damaged — a corrupt deflate
     block, a failed CRC or length check, a file cut short, bytes after the
     last member that are not another member — reading ends there and
     ``damage`` says what and where: ``(compressed offset, decompressed
     offset, message)``.

Invariant: every byte zlib can produce before the damage is returned.
Python's ``gzip`` module raises from the ``read`` call that meets the damage
and drops everything that call had decompressed (up to a whole 4 MiB piece
of a capture). Here compressed input goes to ``zlib`` in small slices; when
a slice fails, it is fed again a byte at a time from a copy of the
decompressor taken before it, so the output stops exactly where zlib found
the damage.
"""

import zlib

SLICE = 64 << 10             # compressed bytes per decompress call
_GZIP = 16 + zlib.MAX_WBITS  # zlib parses the gzip header and checks its trailer (CRC-32, length)


class GzipReader:
    def __init__(self, path):
        self._fh = open(path, "rb")          # OSError to the caller, as open() would
        self._z = zlib.decompressobj(_GZIP)
        self._begun = False                  # the current member has taken input
        self._members = 0                    # members finished
        self._out = bytearray()              # decompressed, not yet returned
        self._pending = b""                  # compressed bytes not yet taken by zlib
        self._at = 0                         # compressed offset of _pending's first byte
        self._done = False
        self.damage = None
        self.produced = 0                    # decompressed bytes returned so far

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._fh.close()

    def read(self, n=-1):
        while (n < 0 or len(self._out) < n) and not self._done:
            self._step(SLICE if n < 0 else max(SLICE, n - len(self._out)))
        take = len(self._out) if n < 0 else min(n, len(self._out))
        out = bytes(self._out[:take])
        del self._out[:take]
        self.produced += take
        return out

    def _step(self, want):
        """Decompress one slice of input into at most ``want`` more bytes."""
        if not self._pending:
            try:
                self._pending = self._fh.read(SLICE)
            except OSError as exc:
                self._stop(f"read error: {exc}")
                return
            if not self._pending:
                if self._begun:
                    self._stop("gzip stream cut short (no end-of-stream marker)")
                self._done = True
                return
        if not self._begun and not self._member_follows():
            return
        feed = self._pending
        saved = self._z.copy()
        try:
            out = self._z.decompress(feed, want)
        except zlib.error:
            self._z = saved
            self._bytewise(feed)
            return
        z = self._z
        rest = z.unused_data if z.eof else z.unconsumed_tail     # at a member's end both name the same bytes
        self._took(len(feed) - len(rest), out)

    def _member_follows(self):
        """Between members: more input must be another member; zero padding
        (tape blocks, ``dd``) is skipped, anything else is damage."""
        pending = self._pending
        if pending[:1] == b"\x1f":
            return True
        if not pending.strip(b"\0"):
            self._at += len(pending)
            self._pending = b""
            return False
        self._stop(f"bytes after gzip member {self._members} are not another gzip member")
        return False

    def _bytewise(self, feed):
        """Feed ``feed`` one byte at a time from the state before it, keeping
        every output byte, until zlib rejects a byte: that is the damage."""
        z = self._z
        for i in range(len(feed)):
            try:
                out = z.decompress(feed[i:i + 1])
            except zlib.error as exc:
                self._took(i, b"")
                self._stop(_describe(exc))
                return
            self._out += out
            if z.eof:
                self._took(i + 1, b"")
                return
        self._took(len(feed), b"")

    def _took(self, used, out):
        """zlib took ``used`` bytes of ``_pending`` and gave ``out``."""
        self._out += out
        self._at += used
        self._pending = self._pending[used:]
        self._begun = self._begun or used > 0
        if self._z.eof:                      # a member ended: the next one starts afresh
            self._members += 1
            self._z = zlib.decompressobj(_GZIP)
            self._begun = False

    def _stop(self, message):
        self.damage = (self._at, self.produced + len(self._out), message)
        self._done = True


def _describe(exc):
    text = str(exc)
    if "incorrect data check" in text:
        return "gzip CRC check failed"
    if "incorrect length check" in text:
        return "gzip length check failed"
    return f"corrupt gzip data ({text.split(': ', 1)[-1]})"
