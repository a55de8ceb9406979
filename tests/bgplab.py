"""A BGP lab in network namespaces (root only): real RIB dumps from BIRD 2.

Topology (documentation addresses and ASNs; nothing leaves the namespaces)::

    [up]  AS64500, 192.0.2.1 / 2001:db8::1
      |  veth
    [border]  AS64510, 192.0.2.2 / 2001:db8::2   protocol mrt: dumps master4 and master6 every second

``up`` announces static routes over eBGP (IPv4 and IPv6 sessions), each with
the AS path a test asks for: its export filter prepends the listed ASes, and
BIRD adds its own AS64500 in front, as a real upstream would. ``border``
learns them and writes TABLE_DUMP_V2 files (RFC 8050 ADD-PATH records with
``addpath=True``). The announced prefixes may be public ones: a route in a
namespace sends nothing anywhere.

With ``bmp=(port, policy)`` the border router is gobgpd instead, streaming
BMP (``route-monitoring-policy``: ``post-policy`` or ``local-rib``) over a
second veth pair to 203.0.113.1:port in the root namespace, where the test's
daemon listens (``BMP_STATION``); with ``bmp=(port, "post-policy", "frr")``
it is FRR (zebra and ``bgpd -M bmp``, run as Debian's ``frr`` user from a
directory of its own, as FRR's privilege drop wants)::

    [border] 203.0.113.2 --veth-- 203.0.113.1 (root namespace: verifier run --bmp)
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from lab import _Built, require_root_netns, sh

UP_AS, BORDER_AS = 64500, 64510
BMP_STATION = "203.0.113.1"


NEIGHBOUR = """[[neighbors]]
  [neighbors.config]
    neighbor-address = "{address}"
    peer-as = {asn}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{family}-unicast"
"""


def require_bird(*more):
    require_root_netns()
    for tool in ("bird", "birdc", "bgpdump") + more:
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            pytest.skip(f"needs {tool} (Debian bird2, bgpdump, gobgpd; scripts/test.sh installs them)")


def bgpdump(path, *options):
    """``bgpdump -m`` lines of a dump (Debian bgpdump), the oracle."""
    out = subprocess.run(["bgpdump", "-m", *options, path], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


class BirdLab(_Built):
    """``routes``: {prefix text: [AS, ...] to prepend behind AS64500}."""

    def __init__(self, routes, workdir, addpath=False, bmp=None):
        self.routes, self.workdir, self.addpath, self.bmp = dict(routes), str(workdir), addpath, bmp
        os.makedirs(self.workdir, exist_ok=True)
        tag = uuid.uuid4().hex[:4]
        self.ns = {"up": f"cpv-up-{tag}", "border": f"cpv-bd-{tag}"}
        self.links = {"up": f"cpvu{tag}", "border": f"cpvb{tag}", "station": f"cpvr{tag}", "router": f"cpvs{tag}"}
        self.socks = {name: os.path.join(self.workdir, f"{name}.sock") for name in self.ns}
        self.procs = {}

    def _build(self):
        up, border = self.ns["up"], self.ns["border"]
        sh("ip", "netns", "add", up)
        sh("ip", "netns", "add", border)
        sh("ip", "link", "add", self.links["up"], "type", "veth", "peer", "name", self.links["border"])
        for name, v4, v6 in (("up", "192.0.2.1", "2001:db8::1"), ("border", "192.0.2.2", "2001:db8::2")):
            ns, link = self.ns[name], self.links[name]
            sh("ip", "link", "set", link, "netns", ns)
            sh("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", ns=ns)
            sh("ip", "addr", "add", v4 + "/24", "dev", link, ns=ns)
            sh("ip", "-6", "addr", "add", v6 + "/64", "dev", link, "nodad", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "link", "set", link, "up", ns=ns)
        if self.bmp is None:
            self._start("border", self._border_config())
        else:
            station, router = self.links["station"], self.links["router"]
            sh("ip", "link", "add", station, "type", "veth", "peer", "name", router, "netns", border)
            sh("ip", "addr", "add", BMP_STATION + "/30", "dev", station)
            sh("ip", "link", "set", station, "up")
            sh("ip", "addr", "add", "203.0.113.2/30", "dev", router, ns=border)
            sh("ip", "link", "set", router, "up", ns=border)
            if len(self.bmp) > 2 and self.bmp[2] == "frr":
                self.start_frr()
            else:
                self.start_gobgp()
        self._start("up", self._up_config())

    def start_frr(self):
        """zebra and bgpd (with its BMP module) as the border router. Its
        sessions are passive: BIRD connects (every second until it can), so
        the two never collide."""
        import pwd
        port, policy = self.bmp[:2]
        self.frr_dir = tempfile.mkdtemp(prefix="cpv-frr-")
        user = pwd.getpwnam("frr")
        os.chown(self.frr_dir, user.pw_uid, user.pw_gid)
        conf = {"zebra": "hostname border\n",
                "bgpd": f"""frr defaults traditional
hostname border
router bgp {BORDER_AS}
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as {UP_AS}
 neighbor 192.0.2.1 passive
 neighbor 2001:db8::1 remote-as {UP_AS}
 neighbor 2001:db8::1 passive
 address-family ipv6 unicast
  neighbor 2001:db8::1 activate
 exit-address-family
 bmp targets station
  bmp monitor ipv4 unicast {policy}
  bmp monitor ipv6 unicast {policy}
  bmp connect {BMP_STATION} port {port} min-retry 100 max-retry 1000
 exit
"""}
        for name, text in conf.items():
            path = os.path.join(self.frr_dir, f"{name}.conf")
            with open(path, "w") as fh:
                fh.write(text)
            os.chown(path, user.pw_uid, user.pw_gid)
        common = ["-z", os.path.join(self.frr_dir, "zserv.api"), "--vty_socket", self.frr_dir]
        for name, extra in (("zebra", []), ("bgpd", ["-M", "bmp"])):
            self.procs[f"frr-{name}"] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns["border"], f"/usr/lib/frr/{name}", "-f",
                 os.path.join(self.frr_dir, f"{name}.conf"), "-i", os.path.join(self.frr_dir, f"{name}.pid")]
                + common + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if name == "zebra":
                deadline = time.monotonic() + 20
                while not os.path.exists(os.path.join(self.frr_dir, "zserv.api")):
                    if time.monotonic() > deadline:
                        raise RuntimeError("zebra did not start")
                    time.sleep(0.1)

    def start_gobgp(self):
        """gobgpd as the border router, its BMP toward the station (again, after ``stop_border``)."""
        port, policy = self.bmp[:2]
        path = os.path.join(self.workdir, "gobgp.toml")
        neighbours = "".join(NEIGHBOUR.format(address=address, family=family, asn=UP_AS)
                             for address, family in (("192.0.2.1", "ipv4"), ("2001:db8::1", "ipv6")))
        with open(path, "w") as fh:
            fh.write(f"""[global.config]
  as = {BORDER_AS}
  router-id = "192.0.2.2"
{neighbours}[[bmp-servers]]
  [bmp-servers.config]
    address = "{BMP_STATION}"
    port = {port}
    route-monitoring-policy = "{policy}"
""")
        self.procs["border"] = subprocess.Popen(["ip", "netns", "exec", self.ns["border"], "gobgpd", "-f", path,
                                                 "-t", "toml"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                text=True)

    def stop_border(self):
        for name in [n for n in self.procs if n == "border" or n.startswith("frr-")]:
            proc = self.procs.pop(name)
            proc.terminate()
            proc.wait(timeout=10)

    def announce(self, routes):
        """``up`` announces ``routes`` from now on (a reconfiguration: the routes gone are withdrawn)."""
        self.routes = dict(routes)
        self._write("up", self._up_config())
        self.birdc("up", "configure")

    def birdc(self, name, *command):
        out = subprocess.run(["birdc", "-s", self.socks[name], *command], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"birdc {' '.join(command)}: {out.stdout} {out.stderr}")
        return out.stdout

    def _up_config(self):
        v4 = [p for p in self.routes if ":" not in p] or ["192.0.2.128/25"]   # a static protocol needs one route
        v6 = [p for p in self.routes if ":" in p] or ["2001:db8:ffff::/48"]
        lines = ["router id 192.0.2.1;", "protocol device {}",
                 "protocol static s4 { ipv4; " + " ".join(f"route {p} blackhole;" for p in v4) + " }",
                 "protocol static s6 { ipv6; " + " ".join(f"route {p} blackhole;" for p in v6) + " }",
                 "filter announce {"]
        for prefix, path in self.routes.items():
            prepends = " ".join(f"bgp_path.prepend({asn});" for asn in reversed(path))
            lines.append(f"  if net = {prefix} then {{ {prepends} }}")
        lines += ['  if net = 192.0.2.128/25 || net = 2001:db8:ffff::/48 then reject;',
                  '  if proto = "s4" || proto = "s6" then accept;', "  reject;", "}",
                  f"protocol bgp b4 {{ local 192.0.2.1 as {UP_AS}; neighbor 192.0.2.2 as {BORDER_AS}; "
                  "connect retry time 1; ipv4 { import none; export filter announce; }; }",
                  f"protocol bgp b6 {{ local 2001:db8::1 as {UP_AS}; neighbor 2001:db8::2 as {BORDER_AS}; "
                  "connect retry time 1; ipv6 { import none; export filter announce; }; }"]
        return "\n".join(lines) + "\n"

    def _border_config(self):
        dump = os.path.join(self.workdir, "rib-%N-%s.mrt")
        addpath = " always add path on;" if self.addpath else ""
        return "\n".join([
            "router id 192.0.2.2;", "protocol device {}",
            f"protocol bgp b4 {{ local 192.0.2.2 as {BORDER_AS}; neighbor 192.0.2.1 as {UP_AS}; "
            "ipv4 { import all; export none; }; }",
            f"protocol bgp b6 {{ local 2001:db8::2 as {BORDER_AS}; neighbor 2001:db8::1 as {UP_AS}; "
            "ipv6 { import all; export none; }; }",
            f'protocol mrt {{ table "master*"; filename "{dump}"; period 1;{addpath} }}']) + "\n"

    def _write(self, name, config):
        path = os.path.join(self.workdir, f"{name}.conf")
        with open(path, "w") as fh:
            fh.write(config)
        return path

    def _start(self, name, config):
        path = self._write(name, config)
        # -f: in the foreground, so the lab owns the process and ends it
        self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.ns[name], "bird", "-f", "-c", path,
                                             "-s", self.socks[name]], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True)

    def dumps(self, timeout=60.0):
        """(IPv4 dump, IPv6 dump): the first files BIRD wrote that hold every
        announced route (bgpdump's count), waited for, never slept on blindly."""
        want = {"4": sum(":" not in p for p in self.routes), "6": sum(":" in p for p in self.routes)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {}
            for table, count in want.items():
                names = sorted((n for n in os.listdir(self.workdir) if n.startswith(f"rib-master{table}-")),
                               reverse=True)
                for name in names[1:3]:            # the newest may still be being written
                    path = os.path.join(self.workdir, name)
                    if len(bgpdump(path)) == count:
                        found[table] = path
                        break
            if len(found) == 2:
                return found["4"], found["6"]
            for proc in self.procs.values():
                if proc.poll() is not None:
                    raise RuntimeError(f"bird exited: {proc.stderr.read()}")
            time.sleep(0.2)
        raise TimeoutError("BIRD wrote no dump holding every route: " + self.show())

    def show(self):
        return subprocess.run(["birdc", "-s", self.socks["border"], "show", "route", "all"], capture_output=True,
                              text=True).stdout

    def close(self):
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.links["station"]], capture_output=True)
        if getattr(self, "frr_dir", None):
            shutil.rmtree(self.frr_dir, ignore_errors=True)
