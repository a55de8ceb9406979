"""The HTTP(S) server behind /metrics, built for many scrapers at once.

In:  an address, the daemon's ``CollectorRegistry``, optionally an
     ``ssl.SSLContext``.
Out: ``MetricsServer``: ``serve_forever()`` in a thread, ``shutdown()``,
     ``server_close()``.

prometheus-client's own server was measured here (issue 22; bench/scrape.py
re-measures it beside this one) at a scrape p99 of ~1 s with 10 concurrent
scrapers and ~2 s with 50, with failed scrapes: Python's ``socketserver``
listens with a backlog of 5, so connections beyond that lose their SYN and
the client retries after 1 s, then 2 s; its TLS handshake runs in the
accepting thread, so one slow client holds every other back; and each scrape
renders the whole exposition again, in its own thread, all of them and the
capture taking turns at the GIL. A thread per connection that renders once
for everyone waiting still loses to the GIL: each of 50 threads waits for
the interpreter after every blocking call (~5 ms each, the switch interval).

So this is one thread and one ``selectors`` loop for every connection:

- listen backlog 1,024 (the kernel caps it at ``somaxconn``);
- non-blocking sockets throughout, TLS handshakes included: a silent or slow
  client costs a selector entry, and is dropped after ``IDLE_TIMEOUT``;
- HTTP/1.1 keep-alive (Prometheus keeps its connections), pipelining;
- the requests that are complete after one wait of the loop are answered
  from one render per exposition format (and one gzip of it), made after
  they arrived: 50 concurrent scrapers cost one render, not 50, and none is
  served state older than its request;
- one write per response (headers and body together; no Nagle), so a
  keep-alive client's delayed ACK never stalls it.
"""

import errno
import gzip
import selectors
import socket
import ssl
import threading
import time

from prometheus_client.exposition import choose_encoder

IDLE_TIMEOUT = 30.0           # seconds a connection may stay silent (between scrapes, or stalled)
MAX_HEAD = 16 << 10           # bytes of request line and headers
BACKLOG = 1024
_AGAIN = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "handshaking", "last", "close_after")

    def __init__(self, sock, handshaking, now):
        self.sock, self.handshaking, self.last = sock, handshaking, now
        self.inbuf, self.outbuf = bytearray(), b""
        self.close_after = False


class MetricsServer:
    def __init__(self, host, port, registry, tls=None, clock=time.monotonic):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.registry, self.tls, self.clock = registry, tls, clock
        self.renders = 0                       # expositions rendered (tests, bench)
        self.requests = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._conns = {}
        self._stop = False
        self._stopped = threading.Event()

    # --- lifecycle ------------------------------------------------------------

    def serve_forever(self):
        try:
            next_sweep = self.clock() + 1.0
            while not self._stop:
                ready = []
                for key, mask in self._selector.select(timeout=1.0):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._wake_r.recv(64)
                    else:
                        self._event(key.data, mask, ready)
                if ready:
                    self._answer(ready)
                now = self.clock()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 1.0
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._stopped.set()

    def shutdown(self):
        """Stop the loop and wait for it (from another thread)."""
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._stopped.wait(5)

    def server_close(self):
        for sock in (self.socket, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    # --- connections ----------------------------------------------------------

    def _accept(self):
        for _ in range(BACKLOG):
            try:
                sock, _addr = self.socket.accept()
            except _AGAIN:
                return
            except OSError as exc:             # EMFILE and the like: try again at the next event
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Conn(sock, self.tls is not None, self.clock())
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _event(self, conn, mask, ready):
        conn.last = self.clock()
        try:
            if conn.handshaking:
                conn.sock.do_handshake()
                conn.handshaking = False
                if not conn.outbuf:                # a handshake that wanted to write: back to reading
                    self._want(conn, selectors.EVENT_READ)
            if mask & selectors.EVENT_WRITE and conn.outbuf:
                self._flush(conn)
                return
            while True:
                data = conn.sock.recv(65536)
                if not data:
                    self._close(conn)
                    return
                conn.inbuf += data
                if not (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                    break
        except ssl.SSLWantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
            return
        except _AGAIN:
            pass
        except (OSError, ValueError):          # reset, a failed handshake (no or a bad client certificate)
            self._close(conn)
            return
        if b"\r\n\r\n" in conn.inbuf:
            ready.append(conn)
        elif len(conn.inbuf) > MAX_HEAD:
            self._respond(conn, 431, b"request head too large\n", "text/plain", close=True)

    def _answer(self, ready):
        """Every complete request of this round, from one render per format."""
        bodies = {}
        for conn in ready:
            while conn.sock is not None and not conn.close_after:
                head, sep, rest = bytes(conn.inbuf).partition(b"\r\n\r\n")
                if not sep:
                    break
                conn.inbuf = bytearray(rest)
                self._request(conn, head, bodies)

    def _request(self, conn, head, bodies):
        self.requests += 1
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._respond(conn, 400, b"bad request\n", "text/plain", close=True)
            return
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if method not in ("GET", "HEAD"):
            self._respond(conn, 405, b"only GET\n", "text/plain", close=close)
            return
        if target.split("?", 1)[0] not in ("/metrics", "/"):
            self._respond(conn, 404, b"only /metrics here\n", "text/plain", close=close)
            return
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        zipped = "gzip" in headers.get("accept-encoding", "")
        key = (content_type, zipped)
        if key not in bodies:
            if (content_type, False) not in bodies:
                try:
                    bodies[(content_type, False)] = encoder(self.registry)
                    self.renders += 1
                except Exception as exc:      # noqa: BLE001 - a collector bug is a 500, not a dead server
                    bodies[(content_type, False)] = exc
            plain = bodies[(content_type, False)]
            if zipped:
                bodies[key] = plain if isinstance(plain, Exception) else gzip.compress(plain, 1)
        body = bodies[key]
        if isinstance(body, Exception):
            self._respond(conn, 500, f"metrics could not be rendered: {type(body).__name__}\n".encode(),
                          "text/plain", close=close)
            return
        self._respond(conn, 200, body, content_type, close=close, encoding="gzip" if zipped else None,
                      head_only=method == "HEAD")

    def _respond(self, conn, status, body, content_type, close=False, encoding=None, head_only=False):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large", 500: "Internal Server Error"}[status]
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        if encoding:
            head.append(f"Content-Encoding: {encoding}")
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if head_only else body)
        conn.outbuf = conn.outbuf + data if conn.outbuf else data
        conn.close_after = conn.close_after or close
        self._flush(conn)

    def _flush(self, conn):
        try:
            while conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                conn.outbuf = conn.outbuf[sent:]
        except _AGAIN:
            self._want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
            return
        except (OSError, ValueError):
            self._close(conn)
            return
        if conn.close_after:
            self._close(conn)
        else:
            self._want(conn, selectors.EVENT_READ)

    def _want(self, conn, events):
        if conn.sock is not None:
            self._selector.modify(conn.sock, events, conn)

    def _sweep(self, now):
        for conn in [c for c in self._conns.values() if now - c.last > IDLE_TIMEOUT]:
            self._close(conn)

    def _close(self, conn):
        if conn.sock is None:
            return
        self._conns.pop(conn.sock.fileno(), None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.sock = None
