"""A network-namespace lab for live-capture tests (root only).

Topology (documentation ranges only; nothing leaves the namespaces)::

    [cli] 198.51.100.10, 2001:db8:100::10
      |  veth
    (bridge in the root namespace; the daemon captures on the client's port)
      |                                   |
    [gw1] MAC 00:e0:fc:.. (Huawei OUI)   [gw2] MAC 00:1b:54:.. (Cisco OUI)
      198.51.100.1, serves 203.0.113.1     198.51.100.2, serves 192.0.2.1
      and 2001:db8:203::1                  and 2001:db8:192::1

The client routes 203.0.113.0/24 and 2001:db8:203::/48 through gw1 and
192.0.2.0/24 and 2001:db8:192::/48 through gw2. Neighbour entries are
static, DAD, router solicitations and link-local addresses are off, so the
only traffic on the wire is what a test sends.
"""

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

GW1_MAC, GW2_MAC, CLI_MAC = "00:e0:fc:00:00:01", "00:1b:54:00:00:02", "02:00:00:00:00:10"

SERVER = r"""
import socket, threading, sys
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 8080)); s.listen(64)
    while True:
        c, _ = s.accept()
        data = c.recv(65536)
        c.sendall(b"ok:" + data); c.close()
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, 9999))
    while True:
        data, peer = s.recvfrom(65536); s.sendto(b"ok:" + data, peer)
for fam, addr in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    threading.Thread(target=tcp, args=(fam, addr), daemon=True).start()
    threading.Thread(target=udp, args=(fam, addr), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import socket, sys
port_base = int(sys.argv[1])
for i, dst in enumerate(sys.argv[2:]):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    t = socket.socket(fam, socket.SOCK_STREAM); t.bind(("", port_base + 2 * i)); t.settimeout(5)
    t.connect((dst, 8080)); t.sendall(b"hello"); assert t.recv(100).startswith(b"ok:"); t.close()
    u = socket.socket(fam, socket.SOCK_DGRAM); u.bind(("", port_base + 2 * i + 1)); u.settimeout(5)
    u.sendto(b"hello", (dst, 9999)); assert u.recvfrom(100)[0].startswith(b"ok:"); u.close()
print("sent", flush=True)
"""

DESTINATIONS = {"gw1": ("203.0.113.1", "2001:db8:203::1"), "gw2": ("192.0.2.1", "2001:db8:192::1")}


def require_root_netns():
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces and veth pairs")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 ('ip')")
    probe = f"cpvprobe{os.getpid() % 10000}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        pytest.skip("cannot create network namespaces here")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def sh(*args, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
    return res.stdout


class _Built:
    """A context manager that builds namespaces on entry and always tears them down."""

    def __enter__(self):
        try:
            self._build()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()


class Lab(_Built):
    def __init__(self):
        tag = uuid.uuid4().hex[:4]
        self.tag = tag
        self.ns = {name: f"cpv-{name}-{tag}" for name in ("cli", "gw1", "gw2")}
        self.bridge = f"cpvbr{tag}"
        self.capture_if = f"cpvc{tag}"          # root-side port of the client's link
        self.ports = {"cli": self.capture_if, "gw1": f"cpvg1{tag}", "gw2": f"cpvg2{tag}"}
        self.servers = []

    def _build(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self._quiet_root(self.bridge)
        macs = {"cli": CLI_MAC, "gw1": GW1_MAC, "gw2": GW2_MAC}
        addrs = {"cli": ("198.51.100.10", "2001:db8:100::10"), "gw1": ("198.51.100.1", "2001:db8:100::1"),
                 "gw2": ("198.51.100.2", "2001:db8:100::2")}
        for name, ns in self.ns.items():
            sh("ip", "netns", "add", ns)
            for key in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.addr_gen_mode=1", ns=ns)
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.router_solicitations=0", ns=ns)
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0", ns=ns)
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.forwarding=0", ns=ns)
            port = self.ports[name]
            sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._quiet_root(port)
            sh("ip", "link", "set", port, "master", self.bridge)
            sh("ip", "link", "set", port, "up")
            sh("ip", "link", "set", "eth0", "address", macs[name], ns=ns)
            sh("ip", "addr", "add", addrs[name][0] + "/24", "dev", "eth0", ns=ns)
            sh("ip", "-6", "addr", "add", addrs[name][1] + "/64", "dev", "eth0", "nodad", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("ip", "link", "set", self.bridge, "up")
        cli = self.ns["cli"]
        for gw in ("gw1", "gw2"):
            v4, v6 = DESTINATIONS[gw]
            ns = self.ns[gw]
            sh("ip", "addr", "add", v4 + "/32", "dev", "lo", ns=ns)
            sh("ip", "-6", "addr", "add", v6 + "/128", "dev", "lo", ns=ns)
            net4 = v4.rsplit(".", 1)[0] + ".0/24"
            net6 = v6.rsplit(":", 2)[0] + "::/48"
            sh("ip", "route", "add", net4, "via", addrs[gw][0], ns=cli)
            sh("ip", "-6", "route", "add", net6, "via", addrs[gw][1], ns=cli)
            sh("ip", "neigh", "replace", addrs[gw][0], "lladdr", macs[gw], "dev", "eth0", "nud", "permanent", ns=cli)
            sh("ip", "-6", "neigh", "replace", addrs[gw][1], "lladdr", macs[gw], "dev", "eth0", "nud", "permanent",
               ns=cli)
            sh("ip", "neigh", "replace", addrs["cli"][0], "lladdr", CLI_MAC, "dev", "eth0", "nud", "permanent", ns=ns)
            sh("ip", "-6", "neigh", "replace", addrs["cli"][1], "lladdr", CLI_MAC, "dev", "eth0", "nud", "permanent",
               ns=ns)
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, v4, v6],
                                    stdout=subprocess.PIPE, text=True)
            self.servers.append(proc)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"lab server in {gw} did not start")

    @staticmethod
    def _quiet_root(ifname):
        """Root-namespace lab interfaces carry no IPv6 of their own (no MLD, no RS)."""
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"], capture_output=True)

    def send(self, port_base=40000, gateways=("gw1", "gw2")):
        """One TCP exchange and one UDP exchange per destination, IPv4 and IPv6.

        Source ports are fixed (port_base + n) so flows are known in advance."""
        dsts = [a for gw in gateways for a in DESTINATIONS[gw]]
        out = sh(sys.executable, "-c", CLIENT, str(port_base), *dsts, ns=self.ns["cli"])
        assert "sent" in out
        return dsts

    def close(self):
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for port in self.ports.values():
            subprocess.run(["ip", "link", "del", port], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


LAB_POLICY = """\
version: 1
vendors:
  trusted: [cisco]
  untrusted: [huawei, zte]
zones:
  embassy-lan:
    prefixes: [198.51.100.0/24, 2001:db8:100::/48]
rules:
  - name: embassy-clean-path
    zone: embassy-lan
    require: clean-path
    kinds: [l2-neighbor]
    on_unattributed: unverified
  - name: no-untrusted-vendors
    zone: any
    deny_vendors: [huawei, zte]
"""


def wait_for(predicate, timeout=30.0, every=0.25, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class RouterChain(_Built):
    """client - r1 - r2 - r3 - server, each link its own veth pair and /30
    (documentation ranges), routers forwarding; r2's MAC has a Huawei OUI.
    ICMP rate limits are off so every probe gets its answer."""

    LINKS = [("cli", "r1", "198.51.100.1", "198.51.100.2"), ("r1", "r2", "198.51.100.5", "198.51.100.6"),
             ("r2", "r3", "198.51.100.9", "198.51.100.10"), ("r3", "srv", "203.0.113.1", "203.0.113.2")]
    MACS = {"r1": "00:1b:54:00:01:01", "r2": "00:e0:fc:00:02:02", "r3": "00:1b:54:00:03:03"}
    SERVER = "203.0.113.2"

    def __init__(self):
        tag = uuid.uuid4().hex[:4]
        self.ns = {n: f"cpv-{n}-{tag}" for n in ("cli", "r1", "r2", "r3", "srv")}

    def _build(self):
        for name, ns in self.ns.items():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", ns=ns)
            sh("sysctl", "-qw", "net.ipv4.ip_forward=" + ("1" if name.startswith("r") else "0"), ns=ns)
        for i, (left, right, laddr, raddr) in enumerate(self.LINKS):
            lif, rif = f"l{i}a", f"l{i}b"
            sh("ip", "link", "add", lif, "netns", self.ns[left], "type", "veth", "peer", "name", rif,
               "netns", self.ns[right])
            for ns, ifname, addr in ((self.ns[left], lif, laddr), (self.ns[right], rif, raddr)):
                sh("ip", "addr", "add", addr + "/30", "dev", ifname, ns=ns)
                sh("ip", "link", "set", ifname, "up", ns=ns)
            if right in self.MACS:
                sh("ip", "link", "set", rif, "down", ns=self.ns[right])
                sh("ip", "link", "set", rif, "address", self.MACS[right], ns=self.ns[right])
                sh("ip", "link", "set", rif, "up", ns=self.ns[right])
        route = lambda ns, net, via: sh("ip", "route", "add", net, "via", via, ns=self.ns[ns])  # noqa: E731
        route("cli", "default", "198.51.100.2")
        route("r1", "203.0.113.0/30", "198.51.100.6")
        route("r1", "198.51.100.8/30", "198.51.100.6")
        route("r2", "203.0.113.0/30", "198.51.100.10")
        route("r2", "198.51.100.0/30", "198.51.100.5")
        route("r3", "198.51.100.0/29", "198.51.100.9")
        route("srv", "default", "203.0.113.1")

    def run(self, name, *cmd):
        return subprocess.run(["ip", "netns", "exec", self.ns[name], *cmd], capture_output=True, text=True,
                              timeout=120)

    def close(self):
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
