"""The /metrics server (verifier/daemon/http.py): many clients at once share
renders, keep-alive and pipelining, bad requests, idle clients dropped, and
a stalled TLS client that holds nobody back."""

import gzip
import socket
import ssl
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter

from verifier.daemon.http import IDLE_TIMEOUT, MetricsServer

from conftest import self_signed
from lab import wait_for


@pytest.fixture()
def server():
    registry = CollectorRegistry()
    Counter("cleanpath_test", "A series to render.", registry=registry).inc(3)
    srv = MetricsServer("127.0.0.1", 0, registry)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def connect(srv):
    sock = socket.create_connection(srv.server_address, timeout=10)
    return sock


def read_response(sock, buf=b""):
    """(status, headers, body, rest of the buffer) of one response."""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("closed")
        buf += more
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    size = int(headers["content-length"])
    while len(buf) < size:
        buf += sock.recv(65536)
    return int(lines[0].split()[1]), headers, buf[:size], buf[size:]


def get(path="/metrics", extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def test_fifty_concurrent_scrapers_and_idle_connections_all_served(server):
    idle = [connect(server) for _ in range(200)]
    barrier = threading.Barrier(50)
    results = []

    def scrape():
        sock = connect(server)
        barrier.wait()
        for _ in range(5):
            sock.sendall(get())
            status, _h, body, _ = read_response(sock)
            results.append((status, b"cleanpath_test_total 3.0" in body))
        sock.close()
    threads = [threading.Thread(target=scrape) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [(200, True)] * 250
    assert server.renders < server.requests == 250          # scrapes waiting together shared renders
    for sock in idle:
        sock.close()


def test_keep_alive_pipelining_gzip_and_bad_requests(server):
    sock = connect(server)
    sock.sendall(get() + get("/metrics", "Accept-Encoding: gzip\r\n") + get("/nope") +
                 b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    status, headers, body, rest = read_response(sock)
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    status, headers, zipped, rest = read_response(sock, rest)
    assert status == 200 and headers["content-encoding"] == "gzip" and gzip.decompress(zipped) == body
    status, _h, _b, rest = read_response(sock, rest)
    assert status == 404
    status, _h, _b, rest = read_response(sock, rest)
    assert status == 405
    sock.sendall(get("/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n"))
    status, headers, body, _ = read_response(sock)
    assert headers["content-type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    sock.sendall(b"garbage\r\n\r\n")
    status, headers, _b, _ = read_response(sock)
    assert status == 400 and headers["connection"] == "close"
    assert sock.recv(10) == b""
    big = connect(server)
    big.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000)
    status, _h, _b, _ = read_response(big)
    assert status == 431


def test_silent_connections_are_dropped_after_the_idle_timeout():
    now = [0.0]
    srv = MetricsServer("127.0.0.1", 0, CollectorRegistry(), clock=lambda: now[0])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        sock = connect(srv)
        sock.sendall(get())
        assert read_response(sock)[0] == 200
        now[0] = IDLE_TIMEOUT + 5
        assert sock.recv(10) == b""              # the next sweep (within a second of real time) closed it
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_stalled_tls_handshake_holds_nobody_back(tmp_path):
    key, cert = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(cert), str(key))
    registry = CollectorRegistry()
    Counter("cleanpath_test", "A series to render.", registry=registry).inc()
    srv = MetricsServer("127.0.0.1", 0, registry, tls)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        stalled = [connect(srv) for _ in range(20)]          # TCP connected, no ClientHello ever
        plain = connect(srv)
        plain.sendall(get())                                  # not TLS: the handshake fails, the socket closes
        client = ssl.create_default_context(cafile=str(cert)).wrap_socket(connect(srv), server_hostname="127.0.0.1")
        client.sendall(get())
        status, _h, body, _ = read_response(client)
        assert status == 200 and b"cleanpath_test_total 1.0" in body
        plain.settimeout(5)
        wait_for(lambda: _closed(plain), 10, what="the plain-text client dropped")
        for s in stalled:
            s.close()
    finally:
        srv.shutdown()
        srv.server_close()


def _closed(sock):
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
