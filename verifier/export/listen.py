"""Where flow exports arrive: UDP (and IPFIX over TCP) listeners, one daemon source.

In:  ``--ipfix``, ``--netflow``, ``--sflow`` HOST:PORT (any combination):
     each a UDP socket; ``--ipfix`` also a TCP listener on the same port
     (RFC 7011 10.4: messages back to back on a stream, each framed by its
     own length field).
Out: ``chunks()`` yields ``Records`` batches (the records of the datagrams
     read in one pass, with the time they were read) or None when quiet for
     a poll interval, as every daemon source does (capture/__init__.py's
     ``DaemonSource``); ``drops()`` and ``received()`` per listener.

Every listener feeds one ``decode.Collector``: what matters is the datagram's
version, not the port it came to, and an exporter is its address (IPv4-mapped
folded) and observation domain, never its source port.

Receive buffers: exporters send in bursts (a router's flow cache expiring),
and a datagram the kernel has no room for is lost, so each UDP socket asks
for ``rcvbuf`` bytes (default 8 MiB; as root ``SO_RCVBUFFORCE`` passes
``net.core.rmem_max``, else the kernel's cap applies and the start-up log
says what was granted). ``SO_RXQ_OVFL`` makes the kernel hand over, with
each datagram, how many it dropped on that socket so far: ``drops()``.
"""

import selectors
import socket
import struct
import time

from . import state
from .decode import Collector
from .records import EXPORT_INTERFACE, Records

DEFAULT_RCVBUF = 8 << 20
MAX_DATAGRAM = 65535
SAVE_EVERY = 60.0                 # seconds between saves of the templates (state.py)
BATCH = 512                       # datagrams read from one socket before the others get a turn
MAX_STREAM = 1 << 20              # an IPFIX/TCP message is at most 65535 bytes; a stream buffer stays small
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_CMSG_SPACE = socket.CMSG_SPACE(4)


def parse_address(text, option):
    """(host, port) of HOST:PORT ([v6]:PORT); ValueError with the option's name."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{option}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Udp:
    def __init__(self, name, host, port, rcvbuf):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.name = name
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.granted = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2   # the kernel doubles it
        self.address = self.sock.getsockname()[:2]
        self.drops = 0
        self.received = 0

    def read(self, out, collector, now):
        datagram = collector.datagram
        for _ in range(BATCH):
            try:
                data, ancillary, _flags, peer = self.sock.recvmsg(MAX_DATAGRAM, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return False
            self.received += 1
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self.drops = struct.unpack("=I", value[:4])[0]
            out.extend(datagram(data, _packed(peer[0]), now))
        return True                         # more may be waiting

    def close(self):
        self.sock.close()


class _TcpIpfix:
    """IPFIX over TCP: a listener and its connections, each a stream of messages."""

    def __init__(self, name, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.name = name
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(16)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.streams = {}                   # socket -> [peer address bytes, buffered bytes]
        self.received = 0

    def accept(self, selector):
        try:
            conn, peer = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self.streams[conn] = [_packed(peer[0]), b""]
        selector.register(conn, selectors.EVENT_READ, (self, conn))

    def read(self, conn, selector, out, collector, now):
        state = self.streams[conn]
        try:
            data = conn.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn, selector)
            return
        buf = state[1] + data
        while len(buf) >= 4:
            version, length = struct.unpack_from(">HH", buf)
            if version != 10 or length < 16:    # not IPFIX framing: the stream cannot be resynchronised
                collector.damaged_stream()
                self.drop(conn, selector)
                return
            if len(buf) < length:
                break
            self.received += 1
            out.extend(collector.datagram(buf[:length], state[0], now))
            buf = buf[length:]
        if len(buf) > MAX_STREAM:
            self.drop(conn, selector)
            return
        state[1] = buf

    def drop(self, conn, selector):
        selector.unregister(conn)
        del self.streams[conn]
        conn.close()

    def close(self):
        for conn in list(self.streams):
            conn.close()
        self.streams.clear()
        self.sock.close()


class ExportListeners:
    """The daemon's flow-export source (capture/__init__.py's ``DaemonSource``)."""

    def __init__(self, ipfix=None, netflow=None, sflow=None, rcvbuf=DEFAULT_RCVBUF, poll_interval=0.5,
                 state_path=None, log=None):
        self.collector = Collector()
        self.state_path = state_path          # templates and sampling kept across restarts (state.py)
        self.log = log or (lambda text: None)
        self._saved = time.monotonic()
        if state_path is not None:
            try:
                held = state.load(self.collector, state_path, time.time())
            except (OSError, ValueError) as exc:
                self.log(f"flow-export state not loaded (starting without templates): {exc}")
            else:
                if held:
                    self.log(f"{held} flow-export template(s) restored from {state_path}")
        self.interfaces = [EXPORT_INTERFACE]
        self.poll_interval = poll_interval
        self.udp, self.tcp = [], []
        self.closed = False
        try:
            for name, where in (("ipfix", ipfix), ("netflow", netflow), ("sflow", sflow)):
                if where is None:
                    continue
                host, port = parse_address(where, f"--{name}")
                self.udp.append(_Udp(name, host, port, rcvbuf))
                if name == "ipfix":
                    self.tcp.append(_TcpIpfix(name, host, self.udp[-1].address[1]))
        except (OSError, ValueError):
            self.close()
            raise
        self.selector = selectors.DefaultSelector()
        for listener in self.udp:
            self.selector.register(listener.sock, selectors.EVENT_READ, (listener, None))
        for listener in self.tcp:
            self.selector.register(listener.sock, selectors.EVENT_READ, (listener, "accept"))

    def describe(self):
        """One line per listener for the start-up log."""
        out = [f"{u.name} on udp {u.address[0]}:{u.address[1]} (receive buffer {u.granted >> 10} KiB)" for u in self.udp]
        out += [f"{t.name} on tcp {t.sock.getsockname()[0]}:{t.sock.getsockname()[1]}" for t in self.tcp]
        return out

    def chunks(self):
        """Record batches as they come (None when quiet); the state is saved
        every SAVE_EVERY seconds and when the reading ends (``close``, from
        a signal handler, only stops it: the saving happens here)."""
        try:
            yield from self._batches()
        finally:
            if self.state_path is not None:
                self.save()

    def _batches(self):
        collector = self.collector
        while not self.closed:
            events = self.selector.select(self.poll_interval)
            if self.closed:
                break
            if not events:
                yield None
                continue
            now = time.time()
            out = []
            for key, _mask in events:
                listener, what = key.data
                if isinstance(listener, _Udp):
                    listener.read(out, collector, now)
                elif what == "accept":
                    listener.accept(self.selector)
                else:
                    listener.read(what, self.selector, out, collector, now)
            if out:
                yield Records(out, now)
            if self.state_path is not None and time.monotonic() - self._saved > SAVE_EVERY:
                self.save()

    def now(self):
        return time.time()

    def drops(self):
        return {f"{u.name}:{u.address[1]}": u.drops for u in self.udp}

    def received(self):
        out = {f"{u.name}:{u.address[1]}": u.received for u in self.udp}
        for t in self.tcp:
            out[f"{t.name}-tcp:{t.sock.getsockname()[1]}"] = t.received
        return out

    def save(self):
        """Templates and sampling to ``state_path`` (every SAVE_EVERY seconds, and at close)."""
        self._saved = time.monotonic()
        try:
            state.save(self.collector, self.state_path)
        except OSError as exc:
            self.log(f"flow-export state not saved: {exc.strerror or exc}")

    def close(self):
        if self.closed:
            return
        self.closed = True
        for listener in self.udp + self.tcp:
            listener.close()


def _packed(host):
    """A socket's address text as bytes (an IPv4-mapped IPv6 address folds in the Collector)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.inet_pton(family, host.split("%", 1)[0])
