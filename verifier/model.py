"""The small slotted records passed between stages.

Hot records (``Packet``, ``Flow``) hold ints and bytes only; strings are made
in sinks. ``PathElement`` and ``Evidence`` are built once per flow at
attribution time, so they may hold strings.
"""

import struct

from .engine import _fastpath        # the compiled module, None when setup.py could not build it

# Path element kinds (SPEC "The model")
L2_NEIGHBOR = "l2-neighbor"
SEGMENT_DEVICE = "segment-device"
TUNNEL_ENDPOINT = "tunnel-endpoint"
ROUTER_HOP = "router-hop"
REMOTE_NETWORK = "remote-network"
ENDPOINT_DEVICE = "endpoint-device"
TRANSIT_NETWORK = "transit-network"   # an AS on the selected BGP route toward the remote end (bgp/)
KINDS = (L2_NEIGHBOR, SEGMENT_DEVICE, TUNNEL_ENDPOINT, ROUTER_HOP, REMOTE_NETWORK, ENDPOINT_DEVICE, TRANSIT_NETWORK)

# Trust classes
TRUSTED, UNTRUSTED, UNKNOWN, UNATTRIBUTABLE = "trusted", "untrusted", "unknown", "unattributable"

MISSING = "missing"           # the kind blamed when a rule with roles found no element of those roles

# Verdicts
CLEAN, VIOLATION, UNVERIFIED = "CLEAN", "VIOLATION", "UNVERIFIED"
VERDICTS = (CLEAN, VIOLATION, UNVERIFIED)


class Packet:
    """One decoded frame. ``family`` 0 means not IP: ``ethertype`` (or the
    802.3 length) and ``l2_payload`` tell control-frame consumers where to look."""

    __slots__ = ("dst_mac", "src_mac", "vlan", "vlan2", "ethertype", "l2_payload",
                 "family", "src", "dst", "proto", "sport", "dport",
                 "frag_id", "frag_offset", "quote", "tunnels", "payload", "nesting")

    def __init__(self):
        self.dst_mac = self.src_mac = b""
        self.vlan = self.vlan2 = -1
        self.ethertype = 0
        self.l2_payload = 0
        self.family = 0
        self.src = self.dst = b""
        self.proto = self.sport = self.dport = 0
        self.frag_id = -1
        self.frag_offset = 0
        self.quote = None
        self.tunnels = None        # [(kind, outer src, outer dst, id)], outermost first
        self.payload = 0           # offset of a UDP packet's payload in the frame (control-plane readers)
        self.nesting = 0           # layers opened inside other layers so far (decode.MAX_NESTING bounds it)


NO_MACS = frozenset() if _fastpath is None else _fastpath.NO_MACS   # what a side that saw no MAC holds


class MacSets:
    """What ``Flow.macs_a``/``macs_b`` hold, shared between flows: a side's
    one MAC address itself (6 bytes), or a frozenset of its MACs when it has
    seen more than one (``NO_MACS`` while it has seen none);
    ``Flow.macs`` reads both as frozensets.

    A flow's sides nearly always see one MAC each, and most flows share them
    (every flow through one gateway has that gateway's MAC on its remote
    side). A set per side per flow cost ~500 bytes of every flow; a shared
    frozenset still cost ~300 where the MAC is the flow's own (a host seen
    in no other flow: a frozenset of one is 216 bytes, its table entry and
    MAC more); the MAC alone costs a reference. ``add`` gives the one value
    equal to ``current`` with ``mac`` added. The table (MACs and sets, each
    its own key) is bounded: past ``LIMIT`` it starts afresh (the values
    already handed out stay valid, only sharing with later ones is lost)."""

    LIMIT = 1 << 16

    def __init__(self):
        self.table = {}

    def add(self, current, mac):
        if current.__class__ is bytes:
            if current == mac:
                return current
            grown = frozenset((current, mac))
        elif not current:
            grown = mac
        elif mac in current:
            return current
        else:
            grown = current | {mac}
        shared = self.table.get(grown)
        if shared is None:
            if len(self.table) >= self.LIMIT:
                self.table.clear()
            shared = self.table[grown] = grown
        return shared


def mac_set(held):
    """A side's MACs as ``MacSets`` holds them, as a frozenset."""
    return frozenset((held,)) if held.__class__ is bytes else held


FLOW_SLOTS = ("key", "first", "last", "pkts_a", "pkts_b", "octets_a", "octets_b", "macs_a", "macs_b",
              "origin", "end_reason", "tunnels", "entries", "verdicts", "depends", "rare")
"""``Flow``'s fields, in order: a contract. The compiled module
(verifier/engine/_fastpath.c) stores a flow's fields in C under these names
(its ``FLOW_SLOTS``); without it they are a slotted class's slots.
tests/test_fastpath.py holds the two lists equal."""

KEY_HEAD = struct.Struct(">ihhBHH")          # ifindex, VLAN, inner VLAN, protocol, a's port, b's port
_KEYS = {4: struct.Struct(">ihhBHH4s4s"), 16: struct.Struct(">ihhBHH16s16s")}


def flow_key(ifindex, vlan, vlan2, proto, a, ap, b, bp):
    """A flow's key: its fields packed in one bytes object (KEY_HEAD, then
    address ``a`` and address ``b``, 4 or 16 bytes each). One object, not a
    tuple of eight (~200 bytes less per open flow), its hash cached by
    Python; the compiled module builds the same bytes (``flow_key``)."""
    return _KEYS[len(a)].pack(ifindex, vlan, vlan2, proto, ap, bp, a, b)


def _key_field(k):
    """A property reading field ``k`` of KEY_HEAD from a flow's packed key."""
    return property(lambda flow: KEY_HEAD.unpack_from(flow.key)[k])


class FlowRare:
    """What few flows have, behind ``Flow.rare``: the ICMP errors that quoted
    the flow (how many, and the routers that sent them) and its flow-export
    records. Three slots of every flow for them made a flow 16 bytes larger."""

    __slots__ = ("icmp_errors", "hops", "exports")

    def __init__(self):
        self.icmp_errors = 0
        self.hops = None           # set of router addresses that sent ICMP errors quoting this flow
        self.exports = None        # flow-export records of it: {(protocol, exporter, domain): [side 0's, side 1's]}


def _rare(name, default):
    """A ``Flow`` property kept in its ``FlowRare`` (made when first set)."""

    def get(flow):
        rare = flow.rare
        return default if rare is None else getattr(rare, name)

    def put(flow, value):
        rare = flow.rare
        if rare is None:
            rare = flow.rare = FlowRare()
        setattr(rare, name, value)

    return property(get, put)


class _FlowBehaviour:
    """A bidirectional flow. Side 0 is ``a`` (the key's first endpoint).

    Its fields (``ifindex``, ``vlan``, ``vlan2``, ``proto``, ``a``, ``ap``,
    ``b``, ``bp``, ``family``) are read from the packed ``key``; per-side
    counters are two slots each (``pkts_a``/``pkts_b``...), read as pairs
    through ``pkts``, ``octets`` and ``macs``. A flow is the table's biggest
    cost (issue 21: memory per open flow), so it holds no list of its own.

    ``macs[side]`` holds the MAC addresses adjacent to that side at the
    capture point: the source MAC of frames it sent and the destination MAC of
    frames sent to it, as a frozenset. The slots hold them as ``MacSets``
    gives them (one MAC, or a frozenset shared with other flows), so they
    are replaced, never changed in place.

    ``icmp_errors``, ``hops`` and ``exports`` read and write ``rare`` (a
    ``FlowRare``, None until one is set).

    Its fields (``FLOW_SLOTS``) are stored in C when the compiled module is
    built (verifier/engine/_fastpath.c, ``Flow``: the slotted object and its
    times, counters, handle and lone MACs, ~320 bytes a flow, became one
    128-byte object) and this class's methods and
    properties are added to that type; else in ``_SlottedFlow``. Both read
    and write the same values.
    """

    __slots__ = ()
    icmp_errors, hops, exports = _rare("icmp_errors", 0), _rare("hops", None), _rare("exports", None)

    def unpacked(self):
        """(ifindex, vlan, vlan2, proto, ap, bp, a, b) in one step: for a
        reader of several fields (each property unpacks the key anew)."""
        key = self.key
        return _KEYS[(len(key) - KEY_HEAD.size) >> 1].unpack(key)

    ifindex, vlan, vlan2, ap, bp = (_key_field(k) for k in (0, 1, 2, 4, 5))

    @property
    def proto(self):
        return self.key[8]

    @property
    def family(self):
        return 4 if len(self.key) == KEY_HEAD.size + 8 else 6

    @property
    def a(self):
        key = self.key
        return key[KEY_HEAD.size:KEY_HEAD.size + ((len(key) - KEY_HEAD.size) >> 1)]

    @property
    def b(self):
        key = self.key
        return key[KEY_HEAD.size + ((len(key) - KEY_HEAD.size) >> 1):]

    @property
    def pkts(self):
        return (self.pkts_a, self.pkts_b)

    @property
    def octets(self):
        return (self.octets_a, self.octets_b)

    @property
    def macs(self):
        return (mac_set(self.macs_a), mac_set(self.macs_b))

    def count(self, side, pkts, octets):
        """Add ``pkts`` packets of ``octets`` bytes sent by ``side``."""
        if side:
            self.pkts_b += pkts
            self.octets_b += octets
        else:
            self.pkts_a += pkts
            self.octets_a += octets

    def endpoint(self, side):
        return (self.a, self.ap) if side == 0 else (self.b, self.bp)


class _SlottedFlow(_FlowBehaviour):
    """``Flow`` where the compiled module is not built: its fields as slots."""

    __slots__ = FLOW_SLOTS

    def __init__(self, key, ts):
        self.key = key
        self.first = self.last = ts
        self.pkts_a = self.pkts_b = self.octets_a = self.octets_b = 0
        self.macs_a = self.macs_b = NO_MACS
        self.origin = 0            # the side that sent the first packet seen
        self.end_reason = None
        self.tunnels = None        # set of (kind, outer src, outer dst, id) the flow was carried in
        self.entries = None        # handle of its fast-path entries not folded in yet (Directions.entries_of)
        self.verdicts = None       # while open, as last judged (the daemon): ((zone, verdict, blames), ...)
        self.depends = None        # while open (the daemon): the outside facts its path depends on (dependents.py)
        self.rare = None           # FlowRare: ICMP errors and export records, for the few flows with any


def _compiled_flow():
    """The compiled module's ``Flow`` with ``_FlowBehaviour``'s methods and
    properties added, or None when the module is not built."""
    if _fastpath is None:
        return None
    stored = _fastpath.Flow
    for name, value in vars(_FlowBehaviour).items():
        if name not in ("__slots__", "__module__", "__qualname__"):
            setattr(stored, name, value)
    return stored


Flow = _compiled_flow() or _SlottedFlow


class Evidence:
    """Where an attribution came from: source, database, version, matched prefix."""

    __slots__ = ("source", "database", "version", "prefix_len", "detail")

    def __init__(self, source, database, version, prefix_len, detail=None):
        self.source, self.database, self.version = source, database, version
        self.prefix_len, self.detail = prefix_len, detail

    def adding(self, detail, source=None):
        """A copy with ``detail`` added to this evidence's (and ``source`` instead, if given)."""
        return Evidence(source or self.source, self.database, self.version, self.prefix_len,
                        {**self.detail, **detail} if self.detail else detail)

    def as_dict(self):
        out = {"source": self.source, "database": self.database,
               "version": self.version, "prefix_len": self.prefix_len}
        if self.detail:
            out.update(self.detail)
        return out


class Answer:
    """One attribution source's answer about one MAC or IP address.

    ``vendor`` is the canonical vendor id (or None), ``organization`` the
    source's own spelling, ``asn`` set for network answers. ``unattributable``
    marks addresses that cannot be attributed by nature (randomised MACs).
    """

    __slots__ = ("vendor", "organization", "asn", "evidence", "unattributable", "device")

    def __init__(self, vendor, organization, evidence, asn=None, unattributable=False, device=None):
        self.vendor, self.organization, self.evidence = vendor, organization, evidence
        self.asn, self.unattributable, self.device = asn, unattributable, device


class PathElement:
    """One piece of equipment or network a flow is known to cross.

    ``cls`` is a small int shared by every element with the same kind, trust,
    vendor, ASN and role: all a policy looks at but the subject. Paths whose
    elements have the same classes in the same order get the same verdict
    (policy/evaluate.py's ``Verdicts`` keys on it)."""

    __slots__ = ("kind", "subject", "vendor", "organization", "asn", "trust", "evidence", "role", "known",
                 "equipment", "cls", "_dict")

    def __init__(self, kind, subject, vendor, organization, asn, trust, evidence, role=None):
        self.kind, self.subject = kind, subject
        self.vendor, self.organization, self.asn = vendor, organization, asn
        self.trust, self.evidence = trust, evidence
        self.role = role              # the inventory's role for the device (lower case), e.g. "gnb", "upf"
        self.known = trust != UNKNOWN and trust != UNATTRIBUTABLE      # some source attributed it
        # The zone x vendor matrix counts equipment, not carriers: its column, or None for a network. The
        # zone's own devices (endpoint-device) have columns of their own: they are not crossed on the way.
        self.equipment = None if asn is not None and not vendor else \
            DEVICE_COLUMN + (vendor or "unattributed") if kind == ENDPOINT_DEVICE else (vendor or "unattributed")
        self.cls = _element_class((kind, trust, vendor, asn, role))
        self._dict = None

    def about(self, subject):
        """The same attribution about another subject (another MAC of the same
        OUI block, address of the same AS prefix): a copy without recomputing
        what derives from it."""
        return self._copy(PathElement, subject)

    def restated(self, detail):
        """This element as one flow saw it: the same attribution and class,
        its evidence with ``detail`` added (a tunnel's TEIDs, say). Elements
        are shared, so never changed in place; the merged evidence is made
        when first read (``Restated``)."""
        el = self._copy(Restated, self.subject)
        el._detail = detail
        return el

    def _copy(self, cls, subject):
        """A ``cls`` holding this element's attribution, class and evidence, about ``subject``."""
        el = _new_element(cls)
        el.kind, el.subject, el.vendor, el.organization, el.asn = \
            self.kind, subject, self.vendor, self.organization, self.asn
        el.trust, el.role, el.known = self.trust, self.role, self.known
        el.equipment, el.cls, el._dict = self.equipment, self.cls, None
        _EVIDENCE.__set__(el, self.evidence)          # the slot itself, past a Restated's property
        return el

    def as_dict(self):
        """Plain form for reports; elements are shared between flows, so it is
        built once and must not be modified by callers."""
        if self._dict is None:
            out = {"kind": self.kind, "subject": self.subject, "vendor": self.vendor,
                   "organization": self.organization, "trust": self.trust,
                   "evidence": self.evidence.as_dict() if self.evidence else None}
            if self.asn is not None:
                out["asn"] = self.asn
            if self.role is not None:
                out["role"] = self.role
            self._dict = out
        return self._dict


_ELEMENT_CLASSES = {}     # (kind, trust, vendor, asn, role) -> PathElement.cls, a small int
MAX_ELEMENT_CLASSES = 1 << 16


def _element_class(attribution):
    """``PathElement.cls``: a small int per attribution (what verdicts are
    kept by: policy/evaluate.py), numbered once per process, so a reload
    that sees the same vendors and networks numbers nothing new. Past
    ``MAX_ELEMENT_CLASSES`` (a BGP feed naming ever new ASNs) the
    attribution tuple is its own class: equal to itself, never to a number,
    so verdict keys stay exact and the table stops growing."""
    cls = _ELEMENT_CLASSES.get(attribution)
    if cls is None:
        if len(_ELEMENT_CLASSES) >= MAX_ELEMENT_CLASSES:
            return attribution
        cls = _ELEMENT_CLASSES[attribution] = len(_ELEMENT_CLASSES)
    return cls
_new_element = object.__new__
_EVIDENCE = PathElement.evidence          # the slot itself, under Restated's property


class Restated(PathElement):
    """``PathElement.restated``: evidence detail of one flow's own, merged
    into the shared element's evidence when first read. Most flows' evidence
    never is (the certificate lists violating flows only), and a tunnelled
    flow has two such elements."""

    __slots__ = ("_detail",)

    @property
    def evidence(self):
        ev = _EVIDENCE.__get__(self)
        detail = self._detail
        if detail is not None:
            ev = ev.adding(detail)
            _EVIDENCE.__set__(self, ev)
            self._detail = None
        return ev

    @evidence.setter
    def evidence(self, value):
        _EVIDENCE.__set__(self, value)
        self._detail = None


class Judgement:
    """A flow's verdict for one zone: the path, the deciding rules, the reasons.

    ``reasons`` are (rule, element index or None, text). A judgement made by
    ``policy.evaluate`` shares its ``outcome`` (verdict, rules, reason
    templates, vendors) with every flow whose path has the same element
    classes; its reason texts, which name the flow's own elements, are made
    when first read. ``rules`` may be shared: do not modify it."""

    __slots__ = ("zone", "verdict", "rules", "path", "excepted", "outcome", "_reasons")

    def __init__(self, zone, verdict, rules, path, reasons, excepted=(), outcome=None):
        self.zone, self.verdict, self.rules = zone, verdict, rules
        self.path, self._reasons, self.excepted = path, reasons, excepted
        self.outcome = outcome

    @property
    def reasons(self):
        if self._reasons is None:
            self._reasons = self.outcome.reasons_for(self.path)
        return self._reasons

    @property
    def attributed(self):
        """Every element attributed, and no required role left unidentified
        (a reason without an element index)."""
        if self.outcome is not None:
            return self.outcome.attributed
        return attributed(self.path, self.reasons)

    def blamed(self):
        """(rule, vendor or None, kind) of each element a deciding rule's
        reason names; a rule with roles that found no such element blames
        (rule, None, ``MISSING``). Empty unless VIOLATION."""
        if self.verdict != VIOLATION:
            return frozenset()
        path = self.path
        return frozenset((rule, None, MISSING) if index is None else (rule, path[index].vendor, path[index].kind)
                         for rule, index, _text in self.reasons if rule in self.rules)

    @property
    def vendors(self):
        """The equipment columns of the zone x vendor matrix this path counts in."""
        return self.outcome.vendors if self.outcome is not None else equipment(self.path)


def attributed(path, reasons):
    for el in path:
        if not el.known:
            return False
    for _rule, index, _text in reasons:
        if index is None:
            return False
    return True


DEVICE_COLUMN = "device:"      # prefix of the matrix columns of a zone's own devices (endpoint-device)


def equipment(path):
    """Distinct ``equipment`` of a path's elements (carriers have none), in path order."""
    return tuple(dict.fromkeys(el.equipment for el in path if el.equipment is not None))


def counted(verdicts, zone):
    """What a flow's ``verdicts`` (as last judged open, or None) blamed in
    ``zone`` so far: the (rule, vendor, kind) triples already reported."""
    if verdicts:
        for z, _verdict, blamed in verdicts:
            if z == zone:
                return blamed
    return frozenset()
