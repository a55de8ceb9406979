"""Special-purpose address ranges (IANA IPv4/IPv6 special-purpose registries).

Addresses here are local or reserved: they are never looked up in an ASN
database, and a flow's endpoint in them produces no ``remote-network``
element (the equipment behind it is learned from MACs and inventory instead).
"""

import socket

_V4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
       "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
       "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"]
_V6 = ["::/128", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
       "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8"]

# First byte -> None (no range starts so), True (a range of /8 or shorter
# covers it) or a dict: second byte -> True (a range of /16 or shorter), or
# the longer ranges to check as (prefix length, prefix). One or two lookups
# decide most addresses; built from a few hundred entries at import (~0.1 ms).
_TABLES = {4: [None] * 256, 16: [None] * 256}
for _text in _V4 + _V6:
    _addr, _, _plen = _text.partition("/")
    _packed = socket.inet_pton(socket.AF_INET6 if ":" in _addr else socket.AF_INET, _addr)
    _plen, _first = int(_plen), _TABLES[len(_packed)]
    if _plen <= 8:
        for _b in range(_packed[0], _packed[0] + (1 << (8 - _plen))):
            _first[_b] = True
        continue
    if _first[_packed[0]] is None:
        _first[_packed[0]] = {}
    _second = _first[_packed[0]]
    if _plen <= 16:
        for _b in range(_packed[1], _packed[1] + (1 << (16 - _plen))):
            _second[_b] = True
    elif _second.get(_packed[1]) is not True:
        _prefix = int.from_bytes(_packed, "big") >> (len(_packed) * 8 - _plen)
        _second[_packed[1]] = _second.get(_packed[1], ()) + ((_plen, _prefix),)


def is_special(addr):
    """True when ``addr`` (4 or 16 packed bytes) is in a special-purpose range."""
    hit = _TABLES[len(addr)][addr[0]]
    if hit is None or hit is True:
        return hit is True
    hit = hit.get(addr[1])
    if hit is None or hit is True:
        return hit is True
    bits = len(addr) * 8
    value = int.from_bytes(addr, "big")
    for plen, prefix in hit:
        if value >> (bits - plen) == prefix:
            return True
    return False


def describe():
    return {"ipv4": list(_V4), "ipv6": list(_V6)}
