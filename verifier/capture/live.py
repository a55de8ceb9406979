"""Live capture from Linux packet sockets, a ring of blocks at a time.

In:  interface names and an optional BPF filter.
Out: ``chunks()`` yields a ``Chunk`` per filled ring block (hundreds of
     frames), or ``None`` when ``poll_interval`` passes without traffic so the
     caller can time flows out and handle signals. ``drops()`` gives the
     kernel's drop counters per interface.

The socket is scapy's ``L2ListenSocket`` (it compiles the BPF filter with
libpcap, attaches it, sets promiscuous mode and binds), and scapy never
dissects a frame: on that socket we map a TPACKET_V3 receive ring, the
mechanism libpcap itself uses. The kernel fills whole blocks of frames while
Python is busy elsewhere, so the per-frame cost in Python is one header
read, and a burst waits in the ring instead of being dropped. Timestamps
come from the kernel (nanoseconds). VLAN tags the NIC or veth stripped into
metadata are put back into the frame, as libpcap does, so zones by VLAN work.

Kernel drops (``PACKET_STATISTICS``) are read after every block and on
``drops()``; the kernel resets them on each read, so they are summed here.
"""

import mmap
import select
import struct
import time

import numpy as np

from ..errors import CaptureError
from .chunk import Chunk
from .files import Interface

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
ETH_P_8021Q = 0x8100

BLOCK_SIZE = 1 << 20            # 1 MiB blocks
BLOCK_COUNT = 64                # 64 MiB ring per interface: ~0.25 s of 1 Gbit/s line rate
FRAME_SIZE = 1 << 11            # only a hint for TPACKET_V3 (frames are variable length)
RETIRE_MS = 50                  # the kernel hands over a partly filled block after this


class LiveInterfaces:
    """One ring per interface; ``chunks()`` serves whichever has a full block."""

    def __init__(self, names, bpf_filter=None, promisc=True, poll_interval=0.5,
                 block_size=BLOCK_SIZE, block_count=BLOCK_COUNT):
        self.interfaces = [Interface(1, name) for name in names]
        self.poll_interval = poll_interval
        self.rings = []
        try:
            for index, name in enumerate(names):
                self.rings.append(_Ring(index, name, bpf_filter, promisc, block_size, block_count))
        except CaptureError:
            self.close()
            raise
        self.kernel_drops = dict.fromkeys(names, 0)
        self.kernel_packets = dict.fromkeys(names, 0)
        self.closed = False

    def chunks(self):
        poller = select.poll()
        by_fd = {}
        for ring in self.rings:
            poller.register(ring.fd, select.POLLIN | select.POLLERR)
            by_fd[ring.fd] = ring
        timeout_ms = int(self.poll_interval * 1000)
        while not self.closed:
            produced = False
            for ring in self.rings:
                for chunk in ring.ready_blocks():
                    produced = True
                    yield chunk
            if not produced:
                events = poller.poll(timeout_ms)
                if not events:
                    yield None
            self._read_stats()

    def _read_stats(self):
        for ring in self.rings:
            packets, drops = ring.stats()
            self.kernel_packets[ring.name] += packets
            self.kernel_drops[ring.name] += drops

    def drops(self):
        if not self.closed:
            self._read_stats()
        return dict(self.kernel_drops)

    def received(self):
        return dict(self.kernel_packets)

    def now(self):
        return time.time()

    def close(self):
        self.closed = True
        for ring in self.rings:
            ring.close()


class _Ring:
    def __init__(self, index, name, bpf_filter, promisc, block_size, block_count):
        import importlib
        from scapy.arch.linux import L2ListenSocket
        importlib.import_module("scapy.layers.l2")     # registers Ethernet, so scapy can name the link type
        from scapy.error import Scapy_Exception
        self.index, self.name = index, name
        try:
            self.sock = L2ListenSocket(iface=name, filter=bpf_filter, promisc=promisc)
        except (OSError, ValueError, Scapy_Exception) as exc:
            raise CaptureError(f"cannot capture on {name}: {_reason(exc)}") from None
        raw = self.sock.ins
        try:
            raw.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            req = struct.pack("7I", block_size, block_count, FRAME_SIZE,
                              block_size * block_count // FRAME_SIZE, RETIRE_MS, 0, 0)
            raw.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.map = mmap.mmap(raw.fileno(), block_size * block_count, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            self.sock.close()
            raise CaptureError(f"cannot map a capture ring on {name}: {_reason(exc)}") from None
        self.fd = raw.fileno()
        self.block_size, self.block_count = block_size, block_count
        self.next_block = 0
        raw.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)   # reset what scapy's set-up counted

    def ready_blocks(self):
        """Yield a Chunk per block the kernel has handed over, in ring order."""
        mm = self.map
        while True:
            base = self.next_block * self.block_size
            status, num, first = struct.unpack_from("III", mm, base + 8)
            if not status & TP_STATUS_USER:
                return
            chunk = self._block_chunk(mm, base, num, first) if num else None
            mm[base + 8:base + 12] = b"\0\0\0\0"            # give the block back to the kernel
            self.next_block = (self.next_block + 1) % self.block_count
            if chunk is not None:
                yield chunk

    def _block_chunk(self, mm, base, num, first):
        """Copy one block's used bytes out of the ring and index its frames."""
        used = struct.unpack_from("I", mm, base + 20)[0]
        buf = mm[base:base + min(used, self.block_size)]
        ts, off, incl, orig, tagged = [], [], [], [], []
        pos = first
        unpack = struct.unpack_from
        for _ in range(num):
            nxt, sec, nsec, snap, wire, status, mac = unpack("IIIIIIH", buf, pos)
            ts.append(sec + nsec * 1e-9)
            off.append(pos + mac)
            incl.append(snap)
            orig.append(wire)
            if status & TP_STATUS_VLAN_VALID:
                tagged.append((len(off) - 1, pos, status))
            pos += nxt
        if tagged:
            buf = _reinsert_tags(buf, tagged, off, incl, orig)
        return Chunk(buf, np.array(ts, np.float64), np.full(num, self.index, np.int64),
                     np.array(off, np.int64), np.array(incl, np.int64), np.array(orig, np.int64))

    def stats(self):
        try:
            packets, drops, _freeze = struct.unpack(
                "III", self.sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        except OSError:
            return 0, 0
        return packets, drops

    def close(self):
        try:
            self.map.close()
        except (AttributeError, BufferError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _reinsert_tags(buf, tagged, off, incl, orig):
    """Frames whose 802.1Q tag the kernel moved into metadata get it back
    (rebuilt copies appended to the buffer; the lists are updated in place)."""
    out = bytearray(buf)
    for i, hdr, status in tagged:
        tci, tpid = struct.unpack_from("IH", buf, hdr + 32)
        if not status & TP_STATUS_VLAN_TPID_VALID:
            tpid = ETH_P_8021Q
        start, n = off[i], incl[i]
        frame = buf[start:start + n]
        off[i] = len(out)
        out += frame[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + frame[12:]
        incl[i] = n + 4
        orig[i] += 4
    return bytes(out)


def _reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + ("" if exc.errno != 1 else " (needs root or CAP_NET_RAW)")
    return str(exc) or exc.__class__.__name__

