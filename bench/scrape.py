#!/usr/bin/env python3
"""Scrape benchmark: /metrics latency under many concurrent scrapers and idle
connections, while the daemon is capturing — our server (verifier/daemon/
http.py) next to prometheus-client's ``start_http_server`` (what the daemon
used before) in the same run.

For each server and each load — 1, 10 and 50 scrapers, then 50 scrapers with
500 idle connections held open — a fresh ``verifier run --replay`` of the
benchmark capture (bench/gen_pcap.py --lab, 3M packets over ~60 s, replayed
at 4x: ~200k packets/s offered) serves /metrics. After it is ready, each
scraper GETs /metrics back to back for ``--seconds`` (keep-alive where the
server allows it, as Prometheus does), from a separate process running one
asyncio loop, so the client adds no threads of its own; a scrape that takes
longer than 10 s (Prometheus' default timeout) or fails counts as failed.

Reported per run: scrapes, failures, latency p50/p99/max, renders the
daemon made, and whether capture kept pace: packets the daemon accounted
during the window over packets the replay offered in it (1.0 = undisturbed).

Results go to bench/out/scrape.json. Target (issue 22): p99 < 50 ms with 50
scrapers and 500 idle connections, capture undisturbed.

Usage: python bench/scrape.py [--seconds 10] [--loads 1,10,50,50+500] [--servers ours,prometheus-client]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
CAPTURE = os.path.join(OUT, "scrape-bench.pcap")
SPEED = 4.0
TIMEOUT = 10.0
WHY = {}                      # failed scrapes by exception (client side)

# The daemon as it was: prometheus-client's WSGI server (thread per request,
# listen backlog 5, TLS handshake in the accepting thread).
OLD_SERVER = """
import threading, verifier.daemon.exporter as e
from prometheus_client import CollectorRegistry, start_http_server
def serve(daemon, addr, certfile=None, keyfile=None, client_cafile=None):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(e.DaemonCollector(daemon))
    host, port = e.split_addr(addr)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return registry, server, thread
import verifier.daemon.run as r
r.serve = serve
from verifier.cli import main
import sys
sys.argv[0] = "verifier"
main()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_capture():
    os.makedirs(OUT, exist_ok=True)
    if not os.path.exists(CAPTURE):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), CAPTURE, "--lab", "--packets", "3000000",
                        "--flows", "60000"], check=True)


def offered_rate():
    """Packets per second the replay offers: the capture's own pace times SPEED."""
    sys.path.insert(0, ROOT)
    from verifier.capture import open_capture
    first = last = None
    n = 0
    for chunk in open_capture(CAPTURE).chunks():
        first = float(chunk.ts[0]) if first is None else first
        last, n = float(chunk.ts[-1]), n + len(chunk)
    return n / (last - first) * SPEED


def start_daemon(server, port):
    head = [sys.executable, "-m", "verifier"] if server == "ours" else [sys.executable, "-c", OLD_SERVER]
    cmd = head + ["--data-dir", os.path.join(OUT, "data"), "run", "--replay", CAPTURE, "--speed", str(SPEED),
                  "--metrics-addr", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stderr:                      # wait for the ready line, not a fixed time
        if "source ready" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()   # keep draining its log
            return proc
    raise RuntimeError(f"daemon did not start: {proc.wait()}")


async def scrape_once(state, port):
    """One GET /metrics on the scraper's connection (reopened when needed)."""
    if state.get("writer") is None:
        state["reader"], state["writer"] = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = state["reader"], state["writer"]
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await (reader.readexactly(int(length.group(1))) if length else reader.read())
    if not length or head.startswith(b"HTTP/1.0") or re.search(rb"(?i)connection:\s*close", head):
        writer.close()
        state["writer"] = None
    return status, body


async def scraper(port, until, latencies, failures):
    state = {}
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            status, _body = await asyncio.wait_for(scrape_once(state, port), TIMEOUT)
            ok = status == 200
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            ok = False
            state.setdefault("why", []).append(type(exc).__name__)
            WHY[type(exc).__name__] = WHY.get(type(exc).__name__, 0) + 1
            if state.get("writer") is not None:
                state["writer"].close()
            state["writer"] = None
        if ok:
            latencies.append(time.monotonic() - started)
        else:
            failures.append(time.monotonic() - started)


async def packets(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    await writer.drain()
    text = (await reader.read()).decode()
    writer.close()
    return sum(float(m.group(1)) for m in re.finditer(r"^cleanpath_packets_total\{[^}]*\} (\S+)$", text, re.M))


async def load(port, scrapers, idle, seconds, rate):
    holders = []
    for _ in range(idle):
        holders.append(await asyncio.open_connection("127.0.0.1", port))
    before, t0 = await packets(port), time.monotonic()
    latencies, failures = [], []
    until = time.monotonic() + seconds
    await asyncio.gather(*(scraper(port, until, latencies, failures) for _ in range(scrapers)))
    after, t1 = await packets(port), time.monotonic()
    for _r, w in holders:
        w.close()
    return latencies, failures, (after - before) / ((t1 - t0) * rate), dict(WHY)


def client(port, scrapers, idle, seconds, rate, queue):
    queue.put(asyncio.run(load(port, scrapers, idle, seconds, rate)))


def run_one(server, scrapers, idle, seconds, rate):
    port = free_port()
    daemon = start_daemon(server, port)
    try:
        queue = multiprocessing.Queue()
        proc = multiprocessing.Process(target=client, args=(port, scrapers, idle, seconds, rate, queue))
        proc.start()
        latencies, failures, pace, why = queue.get()
        proc.join()
    finally:
        daemon.terminate()
        daemon.wait()
    lat = sorted(latencies)
    pick = (lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1)) if lat else (lambda q: None)
    return {"server": server, "scrapers": scrapers, "idle": idle, "scrapes": len(lat), "failed": len(failures),
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(1000 * lat[-1], 1) if lat else None,
            "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None, "capture_pace": round(pace, 3),
            "failures_by": why}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loads", default="1,10,50,50+500")
    parser.add_argument("--servers", default="ours,prometheus-client")
    args = parser.parse_args()
    ensure_capture()
    rate = offered_rate()
    print(f"replay offers {rate:,.0f} packets/s", flush=True)
    results = []
    for spec in args.loads.split(","):
        scrapers, _, idle = spec.partition("+")
        for server in args.servers.split(","):
            res = run_one(server, int(scrapers), int(idle or 0), args.seconds, rate)
            results.append(res)
            print(json.dumps(res), flush=True)
    with open(os.path.join(OUT, "scrape.json"), "w") as fh:
        json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
