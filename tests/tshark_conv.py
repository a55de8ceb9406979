"""Helpers to compare our flows with tshark's conversations (used by tests)."""

import re
import subprocess
from collections import defaultdict

from verifier.attribution.path import ip_text
from verifier.pipeline import Pipeline

LINE = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)"
                  r"\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)")
UNIT = {"bytes": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
# One IP layer only: a tunnel shows up as a second ip/ipv6 layer or a tunnel protocol.
TSHARK_OPTS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-o", "tcp.desegment_tcp_streams:FALSE"]


def tshark_conversations(path):
    """{(proto, ep1, ep2): (frames, bytes, exact)} with endpoints as 'ip:port' sorted."""
    out = subprocess.run(["tshark", "-n", "-r", path, "-q", "-z", "conv,tcp", "-z", "conv,udp"] + TSHARK_OPTS,
                         capture_output=True, text=True, timeout=120)
    convs, proto = {}, None
    for line in out.stdout.splitlines():
        if line.startswith("TCP Conversations"):
            proto = 6
        elif line.startswith("UDP Conversations"):
            proto = 17
        m = LINE.match(line)
        if m and proto:
            a, ap, b, bp = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            frames, size, unit = int(m.group(11)), int(m.group(12)), m.group(13)
            key = (proto,) + tuple(sorted([(a, ap), (b, bp)]))
            prev = convs.get(key, (0, 0, True))
            convs[key] = (prev[0] + frames, prev[1] + size * UNIT[unit], prev[2] and unit == "bytes")
    return convs


def tshark_frame_bytes(path):
    """Exact per-conversation (frames, bytes) from tshark's per-frame fields.

    Two documented differences are applied to tshark's raw facts so the
    comparison is like for like: a frame whose first transport is ICMP (an
    error quoting a TCP/UDP header) is not the quoted flow's packet, and a
    later IP fragment belongs to its datagram's flow (tshark, with reassembly
    off, puts only the first fragment in the conversation).
    """
    fields = ["frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
              "udp.srcport", "udp.dstport", "frame.protocols", "ip.id", "ip.frag_offset", "ipv6.fraghdr.ident",
              "ipv6.fraghdr.offset"]
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=f", "-E", "separator=\t"] + TSHARK_OPTS
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if "aren't valid" in out.stderr or "Invalid -o" in out.stderr:
        raise RuntimeError(f"tshark rejected the command: {out.stderr.strip()}")
    totals = defaultdict(lambda: [0, 0])
    datagrams, later = {}, []
    for line in out.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < len(fields):
            continue
        chain = cols[9].split(":")
        first_l4 = next((p for p in chain if p in ("tcp", "udp", "icmp", "icmpv6")), None)
        src, dst = cols[1] or cols[3], cols[2] or cols[4]
        frag_id = cols[10] if cols[1] else cols[12]
        offset = int(cols[11] or cols[13] or 0, 0) if (cols[11] or cols[13]) else 0
        if offset and first_l4 is None:
            later.append(((src, dst, frag_id), int(cols[0])))
            continue
        if first_l4 not in ("tcp", "udp"):
            continue
        if first_l4 == "tcp" and cols[5]:
            proto, sp, dp = 6, cols[5], cols[6]
        elif first_l4 == "udp" and cols[7]:
            proto, sp, dp = 17, cols[7], cols[8]
        else:
            continue
        key = (proto,) + tuple(sorted([(src, int(sp)), (dst, int(dp))]))
        totals[key][0] += 1
        totals[key][1] += int(cols[0])
        if frag_id:
            datagrams[(src, dst, frag_id)] = key
    for dgram, size in later:
        key = datagrams.get(dgram)
        if key is not None:
            totals[key][0] += 1
            totals[key][1] += size
    return {k: tuple(v) for k, v in totals.items()}


class Collect:
    def __init__(self):
        self.flows = []

    def flow(self, flow, judgements):
        self.flows.append(flow)


def our_conversations(path, policy, attributor):
    """Our TCP/UDP flows summed per address/port pair (tshark ignores VLAN and interface)."""
    from verifier.capture import open_capture
    sink = Collect()
    pipe = Pipeline(policy, attributor, [sink], idle_timeout=1e12, active_timeout=1e12)
    pipe.ingest(open_capture(path))
    pipe.finish()
    convs = defaultdict(lambda: [0, 0])
    for f in sink.flows:
        if f.proto not in (6, 17):
            continue
        key = (f.proto,) + tuple(sorted([(ip_text(f.a), f.ap), (ip_text(f.b), f.bp)]))
        convs[key][0] += f.pkts[0] + f.pkts[1]
        convs[key][1] += f.octets[0] + f.octets[1]
    return {k: tuple(v) for k, v in convs.items()}
