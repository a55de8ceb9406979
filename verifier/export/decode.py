"""NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) datagrams, with
their templates, read with ``struct``; sFlow v5 through sflow.py.

In:  ``Collector.datagram(data, exporter address, now)``: one UDP payload.
Out: the ``FlowRecord``s it carries, decoded as soon as their template is
     known; ``counts`` ((protocol, result) -> packets), ``records``,
     ``gaps`` and ``templates`` per protocol.

Templates are kept per (exporter address, observation domain or source id,
template id): the exporter's port is not part of it, so an exporter
restarted on another port keeps decoding. A template is compiled once into
a ``struct`` layout (fixed-length fields; a variable-length field, RFC 7011
7, is read record by record); enterprise fields (PEN) and IEs we do not read
are skipped by length. A template id reused with other fields replaces the
old one; an IPFIX withdrawal (a template of no fields) removes it (set id 2
or 3 with template id 2 or 3: every template of that kind). Data sets that
arrive before their template are held (at most ``HOLD_SETS`` per exporter,
``HOLD_SECONDS``) and decoded when it comes, else counted ``no_template``.
Options data (v9 option templates, IPFIX options templates) teach the
sampling of an exporter or of one sampler (IEs 34, 50, 305/306; 48 and 302
name the sampler). A sequence number that skips counts a gap: a gap lowers
what the export covers, it never fails a verdict.

Why our own decoder: a ``struct``-compiled template decodes ~630k IPFIX
records/s as tuples on one core here; the PyPI libraries did 12-26k/s and
scapy crashed on softflowd's options template.
"""

import struct

from . import sflow
from .sflow import SFLOW

from .records import (RAW, Damaged, READ, SAMPLER_ID, SAMPLER_RANDOM_INTERVAL, SAMPLING, SAMPLING_INTERVAL,
                      SAMPLING_PACKET_INTERVAL, SAMPLING_PACKET_SPACE, SAMPLING_POPULATION, SAMPLING_SIZE, SELECTOR_ID,
                      SYSTEM_INIT_MS, FlowRecord, fill)

V5, V9, IPFIX = "netflow-v5", "netflow-v9", "ipfix"
PROTOCOLS = (V5, V9, IPFIX, SFLOW)
RESULTS = ("ok", "malformed", "no_template", "unsupported")
HOLD_SETS, HOLD_SECONDS = 64, 30.0
MAX_EXPORTERS = 65536
TEMPLATE_LIFETIME = 1800.0             # seconds a template stays without being sent again
VARIABLE = 65535
_V5_HEADER = struct.Struct(">HHIIIIBBH")
_V5_RECORD = struct.Struct(">4s4s4sHHIIIIHHxBBBHHBBxx")
_V9_HEADER = struct.Struct(">HHIIII")
_IPFIX_HEADER = struct.Struct(">HHIII")
_SET = struct.Struct(">HH")
_INT = {1: "B", 2: "H", 4: "I", 8: "Q"}


class Template:
    """A compiled (options) template: what each record holds, and how long it is."""

    __slots__ = ("fields", "layout", "keep", "length", "options", "seen")

    def __init__(self, fields, options, now):
        self.fields = tuple(fields)                     # (IE, length, enterprise) in record order
        self.options, self.seen = options, now
        variable = any(length == VARIABLE for _ie, length, _pen in fields)
        self.keep = []                                  # (IE, read as bytes but an integer) per kept value
        fmt = ">"
        for ie, length, pen in fields:
            wanted = pen == 0 and ie in READ
            if length == VARIABLE:
                continue
            if not wanted:
                fmt += f"{length}x"
            elif ie in RAW or length not in _INT:
                fmt += f"{length}s"
                self.keep.append((ie, ie not in RAW))        # an integer of an odd width: from bytes
            else:
                fmt += _INT[length]
                self.keep.append((ie, False))
        self.layout = None if variable else struct.Struct(fmt)
        self.length = self.layout.size if self.layout is not None else None

    def records(self, data):
        """{IE: value} per record of a data set's body (padding at its end ignored)."""
        if self.layout is not None:
            size, keep = self.layout.size, self.keep
            if size == 0:
                return []
            out = []
            for at in range(0, len(data) - size + 1, size):
                values = self.layout.unpack_from(data, at)
                rec = {}
                for (ie, convert), value in zip(keep, values):
                    rec[ie] = int.from_bytes(value, "big") if convert else value
                out.append(rec)
            return out
        return self._variable(data)

    def _variable(self, data):
        out, at, end = [], 0, len(data)
        while at < end:
            rec, start = {}, at
            try:
                for ie, length, pen in self.fields:
                    if length == VARIABLE:
                        length = data[at]
                        at += 1
                        if length == 255:
                            (length,) = struct.unpack_from(">H", data, at)
                            at += 2
                    if at + length > end:
                        raise IndexError
                    if pen == 0 and ie in READ:
                        value = data[at:at + length]
                        rec[ie] = value if ie in RAW else int.from_bytes(value, "big")
                    at += length
            except IndexError:
                if start == 0:
                    raise Damaged("variable-length record cut short") from None
                break                                   # the rest is padding
            out.append(rec)
        return out


class Exporter:
    """What one (exporter address, domain) has told us."""

    def __init__(self, protocol):
        self.protocol = protocol
        self.templates = {}             # template id -> Template
        self.held = []                  # (arrived, template id, body) of data sets before their template
        self.next_seq = None
        self.last_seq = None            # the last message's sequence number (sequence())
        self.boot = None                # epoch seconds of the exporter's boot (v9 header)
        self.sampling = {}              # sampler id (None: the exporter's own) -> one in N


class Collector:
    def __init__(self):
        self.exporters = {}             # (address, domain, protocol) -> Exporter
        self.counts = {}                # (protocol, result) -> datagrams
        self.records = dict.fromkeys(PROTOCOLS, 0)
        self.gaps = dict.fromkeys(PROTOCOLS, 0)
        self.sflow = sflow.Reader(self)
        self.last_seen = {}             # (protocol, source address) -> when its last datagram that decoded came

    def templates(self, protocol):
        return sum(len(e.templates) for (_a, _d, p), e in self.exporters.items() if p == protocol)

    def datagram(self, data, address, now):
        """The flow records of one datagram (none when it does not decode)."""
        address = _folded(address)
        version = struct.unpack_from(">H", data)[0] if len(data) >= 2 else 0
        if version == 0 and data[2:4] == b"\x00\x05":     # sFlow's version is 32 bits wide
            version = SFLOW
        protocol = {5: V5, 9: V9, 10: IPFIX, SFLOW: SFLOW}.get(version)
        if protocol is None:
            self._count("other", "unsupported")
            return []
        try:
            if protocol is SFLOW:
                out = self.sflow.read(data, now)
                self._count(SFLOW, "ok")
            else:
                out = (self._v5 if version == 5 else self._v9 if version == 9 else self._ipfix)(data, address, now)
        except (Damaged, struct.error, IndexError):
            self._count(protocol, "malformed")
            return []
        self.records[protocol] += len(out)
        seen = self.last_seen
        if len(seen) < MAX_EXPORTERS or (protocol, address) in seen:     # spoofed sources cannot grow it unbounded
            seen[(protocol, address)] = now
        return out

    def damaged_stream(self):
        """An IPFIX/TCP stream that lost its framing (listen.py closes it)."""
        self._count(IPFIX, "malformed")

    def _count(self, protocol, result):
        key = (protocol, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def exporter(self, address, domain, protocol):
        key = (address, domain, protocol)
        found = self.exporters.get(key)
        if found is None:
            found = self.exporters[key] = Exporter(protocol)
        return found

    def sequence(self, exporter, protocol, seq, advance):
        """Count a gap when ``seq`` is not the one expected (a restart, far
        behind, starts afresh); ``advance``: what this datagram adds.

        RFC 7011 numbers an IPFIX message by the data records sent before
        it; softflowd numbers it by the records up to and including its own
        (its first message of 14 records is number 14). Both readings are
        taken: a message numbered the last one's number plus its own records
        is no gap either, so an exporter of either kind shows gaps only
        where records went missing."""
        expected = exporter.next_seq
        if expected is not None and seq != expected and 0 < (seq - expected) & 0xFFFFFFFF < 1 << 31 \
                and seq != (exporter.last_seq + advance) & 0xFFFFFFFF:
            self.gaps[protocol] += 1
        exporter.last_seq = seq
        exporter.next_seq = (seq + advance) & 0xFFFFFFFF

    # --- NetFlow v5 -----------------------------------------------------------

    def _v5(self, data, address, now):
        _v, count, uptime, secs, nsecs, seq, _etype, engine_id, sampling = _V5_HEADER.unpack_from(data)
        if len(data) < _V5_HEADER.size + count * _V5_RECORD.size:
            raise Damaged("v5: fewer records than its header counts")
        exporter = self.exporter(address, engine_id, V5)
        self.sequence(exporter, V5, seq, count)
        boot = secs + nsecs / 1e9 - uptime / 1000.0
        interval = sampling & 0x3FFF or 1
        out = []
        for k in range(count):
            (src, dst, hop, in_if, out_if, pkts, octets, first, last, sport, dport, _flags, proto, _tos, src_as,
             dst_as, _sm, _dm) = _V5_RECORD.unpack_from(data, _V5_HEADER.size + k * _V5_RECORD.size)
            rec = FlowRecord(V5, address, engine_id)
            rec.src, rec.dst, rec.next_hop, rec.in_if, rec.out_if = src, dst, hop, in_if, out_if
            rec.packets, rec.octets, rec.sport, rec.dport, rec.proto = pkts, octets, sport, dport, proto
            rec.first, rec.last = boot + first / 1000.0, boot + last / 1000.0
            rec.src_as, rec.dst_as, rec.sampling = src_as or None, dst_as or None, interval
            out.append(rec)
        self._count(V5, "ok")
        return out

    # --- NetFlow v9 and IPFIX --------------------------------------------------

    def _v9(self, data, address, now):
        _v, _count, uptime, secs, seq, source = _V9_HEADER.unpack_from(data)
        exporter = self.exporter(address, source, V9)
        self.sequence(exporter, V9, seq, 1)              # v9 counts export packets
        exporter.boot = secs - uptime / 1000.0
        return self._sets(data, _V9_HEADER.size, len(data), exporter, address, source, now, V9, secs)[0]

    def _ipfix(self, data, address, now):
        _v, length, export_time, seq, domain = _IPFIX_HEADER.unpack_from(data)
        if length > len(data) or length < _IPFIX_HEADER.size:
            raise Damaged("IPFIX: message length past the datagram")
        exporter = self.exporter(address, domain, IPFIX)
        out, counted = self._sets(data, _IPFIX_HEADER.size, length, exporter, address, domain, now, IPFIX,
                                  export_time)
        if counted is None:                               # a set we could not count: no gap can be told
            exporter.next_seq = None
        else:
            self.sequence(exporter, IPFIX, seq, counted)    # IPFIX counts data records, options too
        return out

    def _sets(self, data, at, end, exporter, address, domain, now, protocol, export_time):
        """(the flow records of a message's sets, how many data records it
        held: options ones too; None when a set waits for its template)."""
        out, missing, counted = [], False, 0
        template_sets = (0, 1) if protocol == V9 else (2, 3)
        while at + 4 <= end:
            set_id, length = _SET.unpack_from(data, at)
            if length < 4 or at + length > end:
                raise Damaged(f"{protocol}: set length past the message")
            body = data[at + 4:at + length]
            at += length
            if set_id in template_sets:
                self._templates(body, set_id == template_sets[1], exporter, now, protocol)
                out += self._release(exporter, address, domain, now, export_time)
            elif set_id >= 256:
                template = exporter.templates.get(set_id)
                if template is not None and now - template.seen > TEMPLATE_LIFETIME:
                    del exporter.templates[set_id]
                    template = None
                if template is None:
                    self._hold(exporter, set_id, body, now)
                    missing, counted = True, None
                    continue
                flows, records = self._data(template, body, exporter, address, domain, export_time)
                out += flows
                counted = counted + records if counted is not None else None
        self._count(protocol, "no_template" if missing and not out else "ok")
        return out, counted

    def _templates(self, body, options, exporter, now, protocol):
        at, end = 0, len(body)
        while at + 4 <= end:
            if protocol == V9 and options:
                tid, scope_len, option_len = struct.unpack_from(">HHH", body, at)
                at += 6
                fields = []
                for _ in range((scope_len + option_len) // 4):
                    ie, length = struct.unpack_from(">HH", body, at)
                    at += 4
                    fields.append((ie if len(fields) >= scope_len // 4 else -ie - 1, length, 0))
                exporter.templates[tid] = Template(fields, True, now)
                if end - at < 6:                          # what is left is padding
                    break
                continue
            tid, count = struct.unpack_from(">HH", body, at)
            at += 4
            scope = 0
            if options and protocol == IPFIX:
                if count:
                    (scope,) = struct.unpack_from(">H", body, at)
                    at += 2
            if count == 0 and protocol == IPFIX:           # a withdrawal
                if tid in (2, 3):
                    exporter.templates = {k: t for k, t in exporter.templates.items() if t.options != options}
                else:
                    exporter.templates.pop(tid, None)
                continue
            fields = []
            for k in range(count):
                ie, length = struct.unpack_from(">HH", body, at)
                at += 4
                pen = 0
                if protocol == IPFIX and ie & 0x8000:
                    (pen,) = struct.unpack_from(">I", body, at)
                    at += 4
                    ie &= 0x7FFF
                if at > end:
                    raise Damaged(f"{protocol}: template past its set")
                fields.append((ie if k >= scope else -ie - 1, length, pen))   # scope fields: negative, not read
            if tid < 256:
                raise Damaged(f"{protocol}: template id {tid} below 256")
            exporter.templates[tid] = Template(fields, options, now)

    def _hold(self, exporter, tid, body, now):
        held = exporter.held
        held.append((now, tid, body))
        while len(held) > HOLD_SETS or (held and now - held[0][0] > HOLD_SECONDS):
            held.pop(0)

    def _release(self, exporter, address, domain, now, export_time):
        """Held data sets whose template has just come."""
        out, kept = [], []
        for arrived, tid, body in exporter.held:
            if now - arrived > HOLD_SECONDS:
                continue                                  # waited too long: it stays counted no_template
            template = exporter.templates.get(tid)
            if template is not None:
                out += self._data(template, body, exporter, address, domain, export_time)[0]
            else:
                kept.append((arrived, tid, body))
        exporter.held = kept
        return out

    def _data(self, template, body, exporter, address, domain, export_time):
        """(the flow records of a data set, how many data records it held)."""
        records = template.records(body)
        if template.options:
            for fields in records:
                self._options(fields, exporter)
            return [], len(records)
        out = []
        sampling = exporter.sampling
        for fields in records:
            rec = fill(FlowRecord(exporter.protocol, address, domain), fields, exporter.boot, export_time)
            sampler = fields.get(SAMPLER_ID, fields.get(SELECTOR_ID))
            rec.sampling = sampling.get(sampler, sampling.get(None, 1)) if sampler is not None else \
                fields.get(SAMPLING_INTERVAL) or sampling.get(None, 1)
            out.append(rec)
        return out, len(records)

    def _options(self, fields, exporter):
        """What an options record teaches: the exporter's boot time (IPFIX
        systemInitTimeMilliseconds, for uptime-based flow times) and the
        sampling, per sampler (or the exporter's own)."""
        if SYSTEM_INIT_MS in fields:
            exporter.boot = fields[SYSTEM_INIT_MS] / 1000.0
        if not SAMPLING & set(fields):
            return
        interval = fields.get(SAMPLING_INTERVAL) or fields.get(SAMPLER_RANDOM_INTERVAL)
        if interval is None and SAMPLING_PACKET_INTERVAL in fields:
            interval = (fields[SAMPLING_PACKET_INTERVAL] + fields.get(SAMPLING_PACKET_SPACE, 0)) \
                // max(1, fields[SAMPLING_PACKET_INTERVAL])
        if interval is None and SAMPLING_POPULATION in fields:
            interval = fields[SAMPLING_POPULATION] // max(1, fields.get(SAMPLING_SIZE, 1))
        if interval:
            exporter.sampling[fields.get(SAMPLER_ID, fields.get(SELECTOR_ID))] = interval


def _folded(address):
    """An exporter's address as bytes, IPv4-mapped IPv6 folded to IPv4."""
    if len(address) == 16 and address[:12] == b"\0" * 10 + b"\xff\xff":
        return address[12:]
    return address
