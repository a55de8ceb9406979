"""Community ID v1 (https://github.com/corelight/community-id-spec).

The same flow hash Zeek, Suricata and Arkime print, so a violation in our
certificate can be found in their records. Computed once per flow, in sinks.
"""

import base64
import hashlib
import struct

from .decode import ICMP, ICMP6, ICMP4_PAIRS, ICMP6_PAIRS

_PORTED = {6, 17, 132}


def community_id(flow, seed=0):
    """Return ``"1:<base64 sha1>"`` for a ``Flow``."""
    a, b, ap, bp, proto = flow.a, flow.b, flow.ap, flow.bp, flow.proto
    if proto == ICMP or proto == ICMP6:
        # Our ICMP flows store (type, counterpart-or-code) as ports already.
        pairs = ICMP4_PAIRS if proto == ICMP else ICMP6_PAIRS
        if pairs.get(ap) != bp and pairs.get(bp) != ap:
            # Not a request/reply pair: the spec hashes the sender first, so
            # undo our canonical order with the side that sent the first packet.
            (src, itype), (dst, code) = flow.endpoint(flow.origin), flow.endpoint(1 - flow.origin)
            return _hash(seed, src, dst, proto, itype, code)
    elif proto not in _PORTED:
        ap = bp = 0
    if (b, bp) < (a, ap):
        a, b, ap, bp = b, a, bp, ap
    return _hash(seed, a, b, proto, ap, bp)


def _hash(seed, a, b, proto, ap, bp):
    data = struct.pack("!H", seed) + a + b + struct.pack("!BxHH", proto, ap, bp)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()
