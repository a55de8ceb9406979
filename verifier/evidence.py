"""``verifier audit --evidence DIR``: the first packets of each violating
flow the certificate lists, one classic pcap per flow, named by its
Community ID, so an auditor can open exactly what was judged in Wireshark.

Taken by a second pass over the captures, made only when the certificate
lists violations: the audit itself keeps its speed, and the pass decodes
only the frames inside some pending flow's time span (a vectorised test on
each chunk's timestamps) and ends as soon as every flow has its packets.
A frame belongs to a flow when its addresses, ports, protocol and outer VLAN
are the flow's, in either direction, within the flow's first and last
timestamps. ICMP errors quoting a flow and later IP fragments (no ports)
are not included: they are counted in the flow, but are not its packets.

Each listed violation gains ``evidence: {file, sha256, packets}``; the file
name is its Community ID made safe for file systems (``1:abc/d+e=`` ->
``1_abc_d-e=.pcap``, with ``-2``, ``-3`` ... for a second flow of the same
5-tuple). The files are subjects of the signed statement (signing.py).
"""

import hashlib
import io
import ipaddress
import os
import struct

import numpy as np

from .atomic import write_atomic
from .capture import open_capture
from .decode import decode
from .errors import CaptureError, VerifierError
from .text import epoch as _epoch

PACKETS_PER_FLOW = 20
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}
SLACK = 2e-6                     # record timestamps are ISO text to the microsecond


class _Wanted:
    """One listed violating flow and the frames found for it so far."""

    __slots__ = ("record", "ends", "vlan", "first", "last", "frames", "linktype")

    def __init__(self, record):
        self.record = record
        src, dst = ipaddress.ip_address(record["src"]).packed, ipaddress.ip_address(record["dst"]).packed
        self.ends = ((src, record["sport"]), (dst, record["dport"]))
        self.vlan = record["vlan"] if record["vlan"] is not None else -1
        self.first = _epoch(record["first_ts"]) - SLACK
        self.last = _epoch(record["last_ts"]) + SLACK
        self.frames = []             # (ts, wirelen, data)
        self.linktype = None


def collect(cert, out_dir, per_flow=PACKETS_PER_FLOW):
    """Write the evidence pcaps of ``cert``'s listed violations into
    ``out_dir`` and note each in its violation record. Returns the paths."""
    records = cert["violations"]
    if not records:
        return []
    wanted, flows = {}, []
    for record in records:
        proto = PROTOCOLS.get(record["proto"]) or (int(record["proto"]) if record["proto"].isdigit() else None)
        if proto is None:
            continue
        flow = _Wanted(record)
        flows.append(flow)
        for a, b in (flow.ends, flow.ends[::-1]):
            wanted.setdefault((proto, a, b), []).append(flow)
    pending = {id(f): f for f in flows}
    for capture in cert["captures"]:
        if not pending:
            break
        _scan(capture["path"], wanted, pending, per_flow)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise VerifierError(f"--evidence: cannot create {out_dir}: {exc.strerror or exc}") from None
    paths, names = [], set()
    for flow in flows:
        name = _file_name(flow.record["community_id"], names)
        data = _pcap(flow)
        path = os.path.join(out_dir, name)
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise VerifierError(f"--evidence: cannot write {path}: {exc.strerror or exc}") from None
        flow.record["evidence"] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(),
                                   "packets": len(flow.frames)}
        paths.append(path)
    cert["evidence"] = {"directory": out_dir, "packets_per_flow": per_flow, "files": len(paths)}
    return paths


def _scan(path, wanted, pending, per_flow):
    """One capture: decode the frames inside some pending flow's time span."""
    try:
        source = open_capture(path)
    except CaptureError:
        return                       # the certificate already records why it cannot be read
    chunks = source.chunks()
    try:
        for chunk in chunks:
            if not pending:
                return
            if not len(chunk):
                continue
            lo = min(f.first for f in pending.values())
            hi = max(f.last for f in pending.values())
            rows = np.nonzero((chunk.ts >= lo) & (chunk.ts <= hi))[0]
            if not len(rows):
                if float(chunk.ts.min()) > hi:
                    return
                continue
            linktypes = [i.linktype for i in source.interfaces]       # pcapng may add interfaces as it goes
            buf = chunk.buf
            for ts, ifx, off, incl, orig in zip(chunk.ts[rows].tolist(), chunk.ifx[rows].tolist(),
                                                chunk.off[rows].tolist(), chunk.incl[rows].tolist(),
                                                chunk.orig[rows].tolist()):
                data = buf[off:off + incl]
                _match(decode(data, linktypes[ifx]), ts, orig, data, linktypes[ifx], wanted, pending, per_flow)
    finally:
        chunks.close()                # the reader's file, closed now even when we stop early


def _match(pkt, ts, wirelen, data, linktype, wanted, pending, per_flow):
    if pkt.__class__ is str or not pkt.family or pkt.quote is not None or pkt.frag_offset:
        return
    group = wanted.get((pkt.proto, (pkt.src, pkt.sport), (pkt.dst, pkt.dport)))
    if group is None:
        return
    for flow in group:
        if flow.vlan == pkt.vlan and flow.first <= ts <= flow.last and id(flow) in pending:
            if flow.linktype is None:
                flow.linktype = linktype
            if linktype == flow.linktype:
                flow.frames.append((ts, wirelen, bytes(data)))
                if len(flow.frames) >= per_flow:
                    del pending[id(flow)]
            return


def _pcap(flow):
    """A classic pcap (microseconds) of the flow's frames."""
    out = io.BytesIO()
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, flow.linktype or 1))
    for ts, wirelen, data in flow.frames:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        out.write(struct.pack("<IIII", sec, usec, len(data), wirelen) + data)
    return out.getvalue()


def _file_name(community_id, taken):
    base = community_id.replace(":", "_").replace("/", "_").replace("+", "-")
    name, n = f"{base}.pcap", 1
    while name in taken:
        n += 1
        name = f"{base}-{n}.pcap"
    taken.add(name)
    return name


