"""Special-purpose address ranges (IANA IPv4/IPv6 special-purpose registries).

Addresses here are local or reserved: they are never looked up in an ASN
database, and a flow's endpoint in them produces no ``remote-network``
element (the equipment behind it is learned from MACs and inventory instead).
"""

import ipaddress

_V4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
       "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
       "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"]
_V6 = ["::/128", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
       "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8"]

# First two bytes -> True (a range covers every address starting so), or the
# longer ranges starting so, as (prefix length, prefix) to check: one dict
# lookup decides most addresses (~0.2 us; a scan of every range took ~1 us).
_BY_TOP = {4: {}, 6: {}}
for _text in _V4 + _V6:
    _net = ipaddress.ip_network(_text)
    _top = int(_net.network_address.packed[:2].hex(), 16)
    _table = _BY_TOP[_net.version]
    if _net.prefixlen <= 16:
        for _t in range(_top, _top + (1 << (16 - _net.prefixlen))):
            _table[_t.to_bytes(2, "big")] = True
    else:
        _bits = 32 if _net.version == 4 else 128
        _key = _top.to_bytes(2, "big")
        if _table.get(_key) is not True:
            _table[_key] = _table.get(_key, ()) + ((_net.prefixlen, int(_net.network_address) >> (_bits - _net.prefixlen)),)
_BY_LEN = {4: _BY_TOP[4], 16: _BY_TOP[6]}


def is_special(addr):
    """True when ``addr`` (4 or 16 packed bytes) is in a special-purpose range."""
    hit = _BY_LEN[len(addr)].get(addr[:2])
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
