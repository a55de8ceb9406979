"""AS paths: decoded from BGP attributes, interned, and read as carriers.

In:  the value of an AS_PATH (attribute 2) or AS4_PATH (17) attribute, with
     2- or 4-byte AS numbers (RFC 4271, RFC 6793).
Out: a path as a tuple of segments ``((type, (asn, ...)), ...)``;
     ``merge_as4`` rebuilds a 2-byte speaker's path from its AS4_PATH;
     ``carriers(path)`` gives (transit ASes in order, origin AS or None).

A path's first AS is the neighbour the route was learned from (the carrier
nearest to us), its last the origin. Prepends (an AS repeated) are one
carrier; every AS of an AS_SET counts (an aggregate: any of them may carry
the traffic); confederation segments (RFC 5065) are member ASes inside the
neighbouring confederation, not carriers, and are left out.
"""

import struct

AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET = 1, 2, 3, 4
SEGMENT_TYPES = (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET)
AS_TRANS = 23456                      # what a 2-byte speaker shows for a 4-byte AS (RFC 6793)


class PathError(ValueError):
    """An AS_PATH value that does not decode (its reason is the message)."""


def decode(value, size):
    """Segments of an AS_PATH/AS4_PATH ``value`` (bytes) with ``size``-byte
    AS numbers; raises ``PathError`` on a damaged value."""
    segments = []
    at, end = 0, len(value)
    while at < end:
        if at + 2 > end:
            raise PathError("AS path segment header cut short")
        kind, count = value[at], value[at + 1]
        if kind not in SEGMENT_TYPES:
            raise PathError(f"unknown AS path segment type {kind}")
        at += 2
        if at + count * size > end:
            raise PathError("AS path segment longer than its attribute")
        numbers = struct.unpack_from(">%d%s" % (count, "I" if size == 4 else "H"), value, at)
        segments.append((kind, numbers))
        at += count * size
    return tuple(segments)


def encode(path):
    """The 4-byte wire encoding of a decoded path (as TABLE_DUMP_V2 and
    4-byte BGP speakers send it): the key paths are interned by."""
    out = bytearray()
    for kind, numbers in path:
        out += bytes((kind, len(numbers)))
        out += struct.pack(">%dI" % len(numbers), *numbers)
    return bytes(out)


def length(path):
    """The path length route selection counts (RFC 4271 9.1.2.2: a set
    counts one, confederation segments nothing)."""
    total = 0
    for kind, numbers in path:
        if kind == AS_SEQUENCE:
            total += len(numbers)
        elif kind == AS_SET:
            total += 1
    return total


def merge_as4(path, as4_path):
    """A 2-byte speaker's AS_PATH with the 4-byte numbers of its AS4_PATH
    (RFC 6793 4.2.3): the AS4_PATH replaces the path's tail; when it is the
    longer one it is ignored."""
    if not as4_path:
        return path
    have, want = length(path), length(as4_path)
    if want > have:
        return path
    keep, head = have - want, []
    for kind, numbers in path:
        if keep <= 0:
            break
        if kind == AS_SEQUENCE:
            take = numbers[:keep]
            head.append((kind, take))
            keep -= len(take)
        elif kind == AS_SET:
            head.append((kind, numbers))
            keep -= 1
        else:
            head.append((kind, numbers))
    return tuple(head) + tuple(as4_path)


def carriers(path):
    """(transit ASes in path order, origin AS or None). The origin is the
    last AS of a path that ends in a sequence; a path ending in an AS_SET
    (an aggregate) has none, and the set's members are carriers. Each AS
    appears once, where it first appears."""
    flat, origin = [], None
    for kind, numbers in path:
        if kind == AS_SEQUENCE:
            flat.extend(numbers)
        elif kind == AS_SET:
            flat.extend(sorted(numbers))
    if path and path[-1][0] == AS_SEQUENCE and path[-1][1]:
        origin = flat.pop()
    seen, transit = {origin}, []
    for asn in flat:
        if asn not in seen:
            seen.add(asn)
            transit.append(asn)
    return tuple(transit), origin


def text(path):
    """The path as bgpdump and routers print it: ``64500 {64501,64502} (65001)``."""
    parts = []
    for kind, numbers in path:
        if kind == AS_SEQUENCE:
            parts.extend(str(n) for n in numbers)
        elif kind == AS_SET:
            parts.append("{" + ",".join(str(n) for n in numbers) + "}")
        elif kind == AS_CONFED_SEQUENCE:
            parts.append("(" + " ".join(str(n) for n in numbers) + ")")
        else:
            parts.append("[" + ",".join(str(n) for n in numbers) + "]")
    return " ".join(parts)
