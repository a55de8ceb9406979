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

_NETS = {4: [], 6: []}
_FIRST_BYTE = {4: bytearray(256), 6: bytearray(256)}     # 1: some range starts with this byte
for _text in _V4 + _V6:
    _net = ipaddress.ip_network(_text)
    _bits = 32 if _net.version == 4 else 128
    _NETS[_net.version].append((_net.prefixlen, int(_net.network_address) >> (_bits - _net.prefixlen)))
    _first = _net.network_address.packed[0]
    _span = 1 << max(0, 8 - _net.prefixlen)               # a /4 covers 16 first bytes
    for _b in range(_first, _first + _span):
        _FIRST_BYTE[_net.version][_b] = 1


def is_special(addr):
    """True when ``addr`` (4 or 16 packed bytes) is in a special-purpose range."""
    family = 4 if len(addr) == 4 else 6
    if not _FIRST_BYTE[family][addr[0]]:                  # most public addresses stop here
        return False
    bits = len(addr) * 8
    value = int.from_bytes(addr, "big")
    for plen, prefix in _NETS[family]:
        if value >> (bits - plen) == prefix:
            return True
    return False


def describe():
    return {"ipv4": list(_V4), "ipv6": list(_V6)}
