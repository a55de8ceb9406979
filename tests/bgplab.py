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
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from lab import require_root_netns, sh

UP_AS, BORDER_AS = 64500, 64510


def require_bird():
    require_root_netns()
    for tool in ("bird", "birdc", "bgpdump"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            pytest.skip(f"needs {tool} (Debian bird2, bgpdump; scripts/test.sh installs them)")


def bgpdump(path, *options):
    """``bgpdump -m`` lines of a dump (Debian bgpdump), the oracle."""
    out = subprocess.run(["bgpdump", "-m", *options, path], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


class BirdLab:
    """``routes``: {prefix text: [AS, ...] to prepend behind AS64500}."""

    def __init__(self, routes, workdir, addpath=False):
        self.routes, self.workdir, self.addpath = dict(routes), str(workdir), addpath
        tag = uuid.uuid4().hex[:4]
        self.ns = {"up": f"cpv-up-{tag}", "border": f"cpv-bd-{tag}"}
        self.links = {"up": f"cpvu{tag}", "border": f"cpvb{tag}"}
        self.socks = {name: os.path.join(self.workdir, f"{name}.sock") for name in self.ns}
        self.procs = []

    def __enter__(self):
        try:
            self._build()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

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
        self._start("up", self._up_config())
        self._start("border", self._border_config())

    def _up_config(self):
        v4 = [p for p in self.routes if ":" not in p]
        v6 = [p for p in self.routes if ":" in p]
        lines = ["router id 192.0.2.1;", "protocol device {}",
                 "protocol static s4 { ipv4; " + " ".join(f"route {p} blackhole;" for p in v4) + " }",
                 "protocol static s6 { ipv6; " + " ".join(f"route {p} blackhole;" for p in v6) + " }",
                 "filter announce {"]
        for prefix, path in self.routes.items():
            prepends = " ".join(f"bgp_path.prepend({asn});" for asn in reversed(path))
            lines.append(f"  if net = {prefix} then {{ {prepends} }}")
        lines += ['  if proto = "s4" || proto = "s6" then accept;', "  reject;", "}",
                  f"protocol bgp b4 {{ local 192.0.2.1 as {UP_AS}; neighbor 192.0.2.2 as {BORDER_AS}; "
                  "ipv4 { import none; export filter announce; }; }",
                  f"protocol bgp b6 {{ local 2001:db8::1 as {UP_AS}; neighbor 2001:db8::2 as {BORDER_AS}; "
                  "ipv6 { import none; export filter announce; }; }"]
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

    def _start(self, name, config):
        path = os.path.join(self.workdir, f"{name}.conf")
        with open(path, "w") as fh:
            fh.write(config)
        # -f: in the foreground, so the lab owns the process and ends it
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", self.ns[name], "bird", "-f", "-c", path,
                                            "-s", self.socks[name]], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True))

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
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"bird exited: {proc.stderr.read()}")
            time.sleep(0.2)
        raise TimeoutError("BIRD wrote no dump holding every route: " + self.show())

    def show(self):
        return subprocess.run(["birdc", "-s", self.socks["border"], "show", "route", "all"], capture_output=True,
                              text=True).stdout

    def close(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
