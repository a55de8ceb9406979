"""LLDP, CDP, STP and ARP frames -> facts: the bounded parsers of the
segment's control frames (attribution/discovery.py keeps what they teach).

Our own parsers, not scapy's layers: each is a bounded walk over one frame
(every TLV must fit in what is left, at most ``MAX_TLVS`` of them), so a
malformed frame ends its own parse (None, or an exception the caller
counts), never hangs. In: the frame's bytes and the offset of the
protocol's payload; out: a list of facts (dicts) or None.

- LLDP (ethertype 0x88cc): chassis id (a MAC when subtype 4), port id, TTL,
  system name and description, management addresses;
- CDP (SNAP 00000c/2000): device id, platform, software version, port,
  addresses; hold time as TTL;
- STP/RSTP/MSTP (LLC 42/42): the sending bridge's MAC and the root bridge's
  MAC, both as devices (``role`` bridge / root), max age as TTL;
- ARP (Ethernet/IPv4): the sender's (MAC, address) pair.
"""

import ipaddress
import struct

ET_LLDP = 0x88CC
MAX_TLVS = 256
LLDP_DEFAULT_TTL, CDP_DEFAULT_TTL, STP_DEFAULT_TTL = 120, 180, 20
CDP_SNAP = b"\xaa\xaa\x03\x00\x00\x0c\x20\x00"
STP_LLC = b"\x42\x42\x03"
ARP_ETHERNET_IPV4 = b"\x00\x01\x08\x00\x06\x04"    # htype 1, ptype 0x0800, hlen 6, plen 4


def parse_arp(data, pos):
    """The sender's (MAC, IPv4 address) of an Ethernet/IPv4 ARP message, or
    None when it is not one or is cut short."""
    if data[pos:pos + 6] != ARP_ETHERNET_IPV4 or len(data) < pos + 28:
        return None
    return data[pos + 8:pos + 14], data[pos + 14:pos + 18]


def _text(raw):
    return raw.decode("utf-8", "replace").strip("\x00").strip() or None


def parse_lldp(data, pos):
    fact = {"ttl": LLDP_DEFAULT_TTL, "addresses": []}
    chassis = None
    for _ in range(MAX_TLVS):
        if pos + 2 > len(data):
            break
        head = struct.unpack_from("!H", data, pos)[0]
        ttype, length = head >> 9, head & 0x1FF
        pos += 2
        if pos + length > len(data):
            return None
        value = data[pos:pos + length]
        pos += length
        if ttype == 0:
            break
        if ttype == 1 and length >= 2:
            subtype, ident = value[0], value[1:]
            if subtype == 4 and len(ident) == 6:
                fact["chassis_mac"] = ident
                chassis = ident.hex(":")
            elif subtype == 5 and len(ident) >= 5 and ident[0] in (1, 2):
                chassis = _address(ident[0], ident[1:])
            else:
                chassis = _text(ident) or ident.hex()
        elif ttype == 2 and length >= 2:
            fact["port"] = value[1:].hex(":") if value[0] == 3 and length == 7 else _text(value[1:])
        elif ttype == 3 and length >= 2:
            fact["ttl"] = struct.unpack_from("!H", value)[0]
        elif ttype == 5:
            fact["name"] = _text(value)
        elif ttype == 6:
            fact["description"] = _text(value)
        elif ttype == 8 and length >= 2:
            alen = value[0]
            if 2 <= alen <= len(value) - 1:
                addr = _address(value[1], value[2:1 + alen])
                if addr:
                    fact["addresses"].append(addr)
    if chassis is None:
        return None
    fact["id"] = chassis
    return [fact]


def parse_cdp(data, pos):
    if pos + 4 > len(data):
        return None
    fact = {"ttl": data[pos + 1] or CDP_DEFAULT_TTL, "addresses": []}
    pos += 4
    for _ in range(MAX_TLVS):
        if pos + 4 > len(data):
            break
        ttype, length = struct.unpack_from("!HH", data, pos)
        if length < 4 or pos + length > len(data):
            return None
        value = data[pos + 4:pos + length]
        pos += length
        if ttype == 0x0001:
            fact["name"] = _text(value)
        elif ttype in (0x0002, 0x0016):
            fact["addresses"].extend(_cdp_addresses(value))
        elif ttype == 0x0003:
            fact["port"] = _text(value)
        elif ttype == 0x0005:
            fact["software"] = _text(value)
            fact["description"] = fact["software"]
        elif ttype == 0x0006:
            fact["platform"] = _text(value)
    if not fact.get("name"):
        return None
    fact["id"] = fact["name"]
    return [fact]


def _cdp_addresses(value):
    out = []
    if len(value) < 4:
        return out
    count = struct.unpack_from("!I", value)[0]
    pos = 4
    for _ in range(min(count, 16)):
        if pos + 2 > len(value):
            break
        ptype, plen = value[pos], value[pos + 1]
        proto = value[pos + 2:pos + 2 + plen]
        pos += 2 + plen
        if pos + 2 > len(value):
            break
        alen = struct.unpack_from("!H", value, pos)[0]
        addr = value[pos + 2:pos + 2 + alen]
        pos += 2 + alen
        if ptype == 1 and proto == b"\xcc" and len(addr) == 4:
            out.append(str(ipaddress.IPv4Address(addr)))
        elif ptype == 2 and len(addr) == 16:
            out.append(str(ipaddress.IPv6Address(addr)))
    return out


def parse_stp(data, pos):
    if pos + 4 > len(data) or data[pos:pos + 2] != b"\x00\x00":
        return None
    bpdu_type = data[pos + 3]
    if bpdu_type == 0x80:                             # topology change notification: no ids
        return []
    if pos + 35 > len(data):
        return None
    root, bridge = data[pos + 5:pos + 13], data[pos + 17:pos + 25]
    max_age = struct.unpack_from("!H", data, pos + 29)[0] // 256 or STP_DEFAULT_TTL
    facts = [{"id": bridge[2:].hex(":"), "chassis_mac": bridge[2:], "role": "bridge", "ttl": max_age * 3}]
    if root[2:] != bridge[2:]:
        facts.append({"id": root[2:].hex(":"), "chassis_mac": root[2:], "role": "root", "ttl": max_age * 3})
    return facts


def _address(family, raw):
    if family == 1 and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if family == 2 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return None
