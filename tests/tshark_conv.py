"""Helpers to compare our flows with tshark's conversations (used by tests)."""

import os
import re
import subprocess
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from verifier.text import ip_text
from verifier.pipeline import Pipeline

LINE = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)"
                  r"\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)")
UNIT = {"bytes": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
# One IP layer only: a tunnel shows up as a second ip/ipv6 layer or a tunnel protocol.
TSHARK_OPTS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-o", "tcp.desegment_tcp_streams:FALSE"]


def in_parallel(fn, paths):
    """{path: fn(path)}, one worker per core: most of a tshark run is its own
    start-up (dissector registration), and the corpus tests start hundreds."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(paths, pool.map(fn, paths)))


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


FIELDS = ["frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
          "udp.srcport", "udp.dstport", "frame.protocols", "ip.id", "ip.frag_offset", "ipv6.fraghdr.ident",
          "ipv6.fraghdr.offset", "ipv6.routing.type", "ipv6.routing.segleft", "ipv6.routing.src.addr",
          "ipv6.routing.mipv6.home_address", "ipv6.routing.srh.addr", "_ws.malformed", "frame.cap_len"]


class Frame:
    __slots__ = ("size", "chain", "key", "datagram", "later", "suspect")


def tshark_frames(path):
    """tshark's per-frame facts: one run, parsed once."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
           "-E", "separator=\t"] + TSHARK_OPTS
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if "aren't valid" in out.stderr or "Invalid -o" in out.stderr:
        raise RuntimeError(f"tshark rejected the command: {out.stderr.strip()}")
    frames = []
    for line in out.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < len(FIELDS):
            continue
        fr = Frame()
        routing = cols[14:19]
        fr.suspect = bool(re.search(r"Malformed Packet: (TCP|UDP|IPv4|IPv6)\b", cols[19])) \
            or int(cols[20].split("|")[0]) < int(cols[0].split("|")[0])
        cols = [c.split("|")[0] for c in cols]       # first occurrence: the outer header
        final = _final_destination(*routing)
        if final and cols[4]:
            cols[4] = final
        fr.size, fr.chain = int(cols[0]), cols[9].split(":")
        first_l4 = next((p for p in fr.chain if p in ("tcp", "udp", "icmp", "icmpv6")), None)
        src, dst = cols[1] or cols[3], cols[2] or cols[4]
        frag_id = cols[10] if cols[1] else cols[12]
        offset = cols[11] or cols[13]
        fr.later = bool(offset and int(offset, 0)) and first_l4 is None
        fr.datagram = (src, dst, frag_id) if frag_id else None
        fr.key = None
        if first_l4 == "tcp" and cols[5]:
            fr.key = (6,) + tuple(sorted([(src, int(cols[5])), (dst, int(cols[6]))]))
        elif first_l4 == "udp" and cols[7]:
            fr.key = (17,) + tuple(sorted([(src, int(cols[7])), (dst, int(cols[8]))]))
        frames.append(fr)
    return frames


def frame_totals(frames, join_fragments=True, skip_suspect=False):
    """Per-conversation (frames, bytes) from tshark's per-frame facts.

    Two documented differences are applied so the comparison is like for
    like: a frame whose first transport is ICMP (an error quoting a TCP/UDP
    header) is not the quoted flow's packet, and, with ``join_fragments``, a
    later IP fragment belongs to its datagram's flow (tshark, with reassembly
    off, puts only the first fragment in the conversation). ``skip_suspect``
    leaves out frames tshark may stop dissecting before its conversation tap
    (malformed at or below transport, or cut short by the capture).
    """
    totals = defaultdict(lambda: [0, 0])
    datagrams = {}
    for fr in frames:
        if fr.key is None or (skip_suspect and fr.suspect):
            continue
        totals[fr.key][0] += 1
        totals[fr.key][1] += fr.size
        if fr.datagram:
            datagrams[fr.datagram] = fr.key
    for fr in frames:
        if join_fragments and fr.later and datagrams.get(fr.datagram):
            key = datagrams[fr.datagram]
            totals[key][0] += 1
            totals[key][1] += fr.size
    return {k: tuple(v) for k, v in totals.items()}


def tshark_frame_bytes(path, **kw):
    return frame_totals(tshark_frames(path), **kw)


def _final_destination(rtype, segleft, rh0_addrs, home, srh_addrs):
    """Wireshark's conversation key follows a routing header to its final hop."""
    rtype, segleft = rtype.split("|")[0], segleft.split("|")[0]
    if not rtype or segleft in ("", "0"):
        return None
    if rtype == "0" and rh0_addrs:
        return rh0_addrs.split("|")[-1]
    if rtype == "2" and home:
        return home.split("|")[0]
    if rtype == "4" and srh_addrs:
        return srh_addrs.split("|")[0]
    return None


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


TRANSPORTS = ("tcp", "udp")
IP_LAYERS = ("ip", "ipv6")
TSHARK_TUNNELS = {"gtp": "gtp-u", "vxlan": "vxlan", "geneve": "geneve", "gre": "gre", "erspan": "erspan"}
NOT_DECAPSULATED = {"teredo", "gtpprime", "l2tp", "lisp", "nsh", "mpls-over-udp", "udpencap"}


class InnerFrame:
    __slots__ = ("key", "size", "tunnels", "skip")


def tshark_inner_frames(path):
    """Per frame, as tshark dissects it: the innermost TCP/UDP key (None when
    the innermost packet is not TCP/UDP), the frame length, and the tunnel
    layers around that packet as (kind, outer src, outer dst). VXLAN is
    also dissected on UDP 8472 (Linux's original port), as we do. ``skip`` names why a frame cannot
    be compared: a fragment (neither side looks inside), a tunnel we do not
    decapsulate, or a malformed frame."""
    fields = ["frame.len", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport",
              "tcp.dstport", "udp.srcport", "udp.dstport", "ip.flags.mf", "ip.frag_offset", "gtp.message",
              "_ws.malformed", "ipv6.fraghdr.ident"]
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
           "-E", "separator=\t", "-d", "udp.port==8472,vxlan"] + TSHARK_OPTS
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    frames = []
    for line in out.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < len(fields):
            continue
        occ = [c.split("|") if c else [] for c in cols]
        chain = cols[1].split(":")
        fr = InnerFrame()
        fr.size, fr.key, fr.tunnels, fr.skip = int(cols[0]), None, [], None
        if any(x in ("1", "True") for x in occ[10]) or any(x not in ("", "0") for x in occ[11]) or occ[14]:
            fr.skip = "fragment"
        elif NOT_DECAPSULATED & set(chain):
            fr.skip = "tunnel not decapsulated"
        elif cols[13]:
            fr.skip = "malformed"
        counts = {"ip": 0, "ipv6": 0, "tcp": 0, "udp": 0}
        current, best = None, None
        prev = None
        for layer in chain:
            if layer in IP_LAYERS:
                if prev in IP_LAYERS:
                    fr.tunnels.append(("ip-in-ip",) + _addrs(occ, current))
                current = (layer, counts[layer])
                counts[layer] += 1
                outside = list(fr.tunnels)        # the tunnels around this IP header
                best = None                       # an inner IP header: an outer transport is not the flow
            elif layer in ("icmp", "icmpv6"):
                break
            elif layer in TRANSPORTS and current is not None:
                best = (layer, counts[layer], current, outside)
                counts[layer] += 1
            elif layer in TSHARK_TUNNELS and current is not None:
                kind = TSHARK_TUNNELS[layer]
                if kind == "gtp-u" and "0xff" not in occ[12]:
                    break                         # GTP signalling, not a G-PDU
                if kind == "erspan" and fr.tunnels and fr.tunnels[-1][0] == "gre":
                    fr.tunnels.pop()              # GRE carrying ERSPAN: one layer for us
                fr.tunnels.append((kind,) + _addrs(occ, current))
            prev = layer
        fr.tunnels = best[3] if best is not None else []
        if best is not None:
            l4, l4i, (ipl, ipi), _outside = best
            base, ports = (2 if ipl == "ip" else 4), (6 if l4 == "tcp" else 8)
            try:
                src, dst = occ[base][ipi], occ[base + 1][ipi]
                sp, dp = int(occ[ports][l4i]), int(occ[ports + 1][l4i])
                fr.key = (6 if l4 == "tcp" else 17,) + tuple(sorted([(src, sp), (dst, dp)]))
            except (IndexError, ValueError):
                fr.skip = fr.skip or "fields missing"
        frames.append(fr)
    return frames


def _addrs(occ, current):
    layer, index = current
    base = 2 if layer == "ip" else 4
    try:
        return occ[base][index], occ[base + 1][index]
    except IndexError:
        return None, None
