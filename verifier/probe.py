"""Active path probing: flow-stable (Paris-style) traceroute with scapy.

Opt-in only (``verifier trace``, ``verifier run --probe``): it sends packets.

Every probe of one trace carries the same flow identifier — addresses,
protocol, ports (UDP/TCP) or ICMP id and sequence — so per-flow load
balancers send all of them down one path, the path the traced flow takes.
Only the TTL (hop limit) changes, and, for IPv4, the IP id, which no load
balancer hashes on and which scapy uses to match each ICMP error to its
probe. Probes go one TTL at a time (``sr1``), so every answer belongs to one
hop without ambiguity, paced by a shared token bucket (``rate`` probes per
second). A trace stops at the destination, after ``gap`` silent hops in a
row, or at ``max_ttl``. Results are cached per (destination, protocol, port)
for ``cache_ttl`` seconds.
"""

import collections
import threading
import time

PROTOCOLS = ("udp", "tcp", "icmp")
DEFAULT_PORTS = {"udp": 33434, "tcp": 443, "icmp": 0}


class Hop:
    __slots__ = ("ttl", "address", "rtt", "reached")

    def __init__(self, ttl, address, rtt, reached):
        self.ttl, self.address, self.rtt, self.reached = ttl, address, rtt, reached

    def as_dict(self):
        return {"ttl": self.ttl, "address": self.address,
                "rtt_ms": round(self.rtt * 1000, 3) if self.rtt is not None else None, "reached": self.reached}


class Trace:
    def __init__(self, destination, proto, port, hops, started):
        self.destination, self.proto, self.port = destination, proto, port
        self.hops, self.started = hops, started

    @property
    def reached(self):
        return bool(self.hops) and self.hops[-1].reached


class TokenBucket:
    def __init__(self, rate, burst=None, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate)
        self.capacity = float(burst or max(1.0, rate))
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                wait = (1 - self.tokens) / self.rate
                self.sleep(wait)
                self.stamp = self.clock()
                self.tokens = 0.0
            else:
                self.tokens -= 1


class Prober:
    def __init__(self, proto="udp", port=None, max_ttl=16, timeout=1.0, gap=3, rate=20.0, cache_ttl=3600.0,
                 sport=None, clock=time.time):
        if proto not in PROTOCOLS:
            raise ValueError(f"probe protocol must be one of {', '.join(PROTOCOLS)}")
        self.proto = proto
        self.port = DEFAULT_PORTS[proto] if port is None else int(port)
        self.max_ttl, self.timeout, self.gap = int(max_ttl), float(timeout), int(gap)
        self.bucket = TokenBucket(rate)
        self.cache_ttl = float(cache_ttl)
        self.sport = sport
        self.clock = clock
        self.cache = {}
        self.probes_sent = 0

    def cached(self, destination):
        hit = self.cache.get((destination, self.proto, self.port))
        if hit is not None and self.clock() - hit.started <= self.cache_ttl:
            return hit
        return None

    def trace(self, destination):
        hit = self.cached(destination)
        if hit is not None:
            return hit
        from scapy.config import conf
        started = self.clock()
        v6 = ":" in destination
        sport = self.sport or 33434 + (sum(destination.encode()) % 20000)
        ident = (sum(destination.encode()) * 7) & 0xFFFF
        hops, silent = [], 0
        old_check = conf.checkIPID
        conf.checkIPID = True
        try:
            for ttl in range(1, self.max_ttl + 1):
                self.bucket.take()
                probe = self._probe(destination, v6, ttl, sport, ident)
                sent_at = time.monotonic()
                answer = _sr1(probe, self.timeout)
                self.probes_sent += 1
                if answer is None:
                    hops.append(Hop(ttl, None, None, False))
                    silent += 1
                    if silent >= self.gap:
                        break
                    continue
                silent = 0
                rtt = time.monotonic() - sent_at
                reached = _reached(answer, destination)
                hops.append(Hop(ttl, answer.src, rtt, reached))
                if reached:
                    break
        finally:
            conf.checkIPID = old_check
        while hops and hops[-1].address is None:
            hops.pop()                                   # trailing silence says nothing
        result = Trace(destination, self.proto, self.port, hops, started)
        self.cache[(destination, self.proto, self.port)] = result
        return result

    def _probe(self, destination, v6, ttl, sport, ident):
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
        if v6:
            # No IP id in IPv6: one probe at a time keeps answers unambiguous.
            ip = IPv6(dst=destination, hlim=ttl)
        else:
            ip = IP(dst=destination, ttl=ttl, id=(ident + ttl) & 0xFFFF)
        if self.proto == "udp":
            return ip / UDP(sport=sport, dport=self.port) / (b"\0" * 12)
        if self.proto == "tcp":
            return ip / TCP(sport=sport, dport=self.port, flags="S", seq=ident << 16)
        if v6:
            return ip / ICMPv6EchoRequest(id=ident, seq=1)
        return ip / ICMP(id=ident, seq=1)


def _sr1(probe, timeout):
    from scapy.sendrecv import sr1
    try:
        return sr1(probe, timeout=timeout, verbose=0)
    except OSError:
        return None


def _reached(answer, destination):
    """The destination answered (port unreachable, TCP, echo reply) rather than a router."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import ICMPv6TimeExceeded
    if answer.src != destination:
        return False
    if ICMP in answer and answer[ICMP].type == 11:
        return False
    if ICMPv6TimeExceeded in answer:
        return False
    return True


class ProbeService:
    """The daemon's prober: traces run on a worker thread, one destination at
    a time, never on the capture path. ``lookup`` answers from the cache and
    queues destinations it has not traced yet, so the first flow to a new
    destination is judged without probe hops and later ones with them."""

    def __init__(self, prober, zones, max_queue=1024, log=None):
        import queue
        self.prober = prober
        self.zones = frozenset(zones)            # zones whose flows' remote ends are traced
        self.queue = queue.Queue(max_queue)
        self.pending = set()
        self.traced = collections.deque(maxlen=max_queue)   # destinations traced since the pipeline last looked
        # (appended here, taken on the capture thread: deque ends are thread-safe)
        self.failures = 0
        self.log = log or (lambda text: None)
        self.thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self.thread.start()

    @property
    def probes_sent(self):
        """Probes the prober sent (what /metrics shows)."""
        return self.prober.probes_sent

    def lookup(self, address):
        """Cached trace toward ``address`` (text), or None after queueing it."""
        hit = self.prober.cached(address)
        if hit is not None:
            return hit
        if address not in self.pending and not self.queue.full():
            self.pending.add(address)
            self.queue.put_nowait(address)
        return None

    def _run(self):
        while True:
            dest = self.queue.get()
            if dest is None:
                return
            try:
                self.prober.trace(dest)
                self.traced.append(dest)
            except Exception as exc:             # scapy raises many kinds; a failed trace must not stop the rest
                self.failures += 1
                self.log(f"probe toward {dest} failed: {exc}")
            finally:
                self.pending.discard(dest)

    def close(self):
        try:
            self.queue.put_nowait(None)
        except Exception:
            pass
