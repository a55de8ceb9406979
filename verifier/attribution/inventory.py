"""The operator's own inventory: devices with vendor, MACs and IPs.

In:  YAML (``devices:`` list) or CSV (header ``name,vendor,model,site,role,
     macs,ips,interfaces``; several values in one cell separated by spaces or
     ``;``; an interface as ``eth1`` or ``eth1:20`` for VLAN 20).
Out: ``Inventory`` answering ``lookup_mac`` / ``lookup_ip`` by longest prefix
     (MAC blocks /24, /28, /36, /48; IP prefixes of any length) and
     ``segment_devices(interface, vlan)``.

Inventory answers come first in the provider chain, so they beat OUI and ASN
answers for the same address. Vendors must be catalogue ids (or a spelling
the catalogue recognises): a typo must not turn a device into "unknown".
"""

import csv
import hashlib
import io
import ipaddress
import re

from ..config import Reader, read_text
from ..errors import ConfigError, Problem
from ..model import Answer, Evidence

MAC_PLENS = (48, 36, 28, 24)
DEVICE_KEYS = ("name", "vendor", "model", "site", "role", "macs", "ips", "interfaces")
_HEX = re.compile(r"[^0-9a-fA-F]")


class ExporterPort(tuple):
    """An inventory ``interfaces`` entry naming a flow exporter's interface:
    (exporter address bytes, ifIndex) — the device is cabled there."""

    __slots__ = ()


class Device:
    __slots__ = ("name", "vendor", "model", "site", "role", "macs", "ips", "interfaces", "ports")

    def __init__(self, name, vendor, model=None, site=None, role=None, macs=(), ips=(), interfaces=()):
        self.name, self.vendor, self.model, self.site, self.role = name, vendor, model, site, role
        self.macs, self.ips = list(macs), list(ips)
        self.interfaces = [i for i in interfaces if not isinstance(i, ExporterPort)]
        self.ports = [i for i in interfaces if isinstance(i, ExporterPort)]

    def detail(self):
        return {k: getattr(self, k) for k in ("name", "model", "site", "role") if getattr(self, k)}


def parse_mac(text):
    """``"00:11:22:33:44:55"``, ``"0011.2233.4455"`` or ``"00:11:22:3/28"`` -> (int prefix, plen)."""
    body, _, bits = text.strip().partition("/")
    digits = _HEX.sub("", body)
    plen = int(bits) if bits.isdigit() else (48 if not bits else -1)
    if plen not in MAC_PLENS or not digits or len(digits) > 12 or len(digits) * 4 < plen:
        raise ValueError(text)
    value = int(digits.ljust(12, "0")[:12], 16)
    return value >> (48 - plen), plen


class Inventory:
    name = "inventory"

    def __init__(self, devices, path, digest):
        self.devices = devices
        self.path, self.version = path, digest
        self.macs = {plen: {} for plen in MAC_PLENS}
        self.nets = {4: {}, 6: {}}                # family -> plen -> {prefix int: device}
        self.segments = {}                        # (interface, vlan or None) -> [devices]
        self.ports = {}                           # (exporter address, ifIndex) -> [devices cabled there]
        for dev in devices:
            for value, plen in dev.macs:
                self.macs[plen][value] = dev
            for net in dev.ips:
                bits = net.max_prefixlen
                self.nets[net.version].setdefault(net.prefixlen, {})[
                    int(net.network_address) >> (bits - net.prefixlen)] = dev
            for iface, vlan in dev.interfaces:
                self.segments.setdefault((iface, vlan), []).append(dev)
            for port in dev.ports:
                self.ports.setdefault(tuple(port), []).append(dev)
        self._plens = {fam: sorted(t, reverse=True) for fam, t in self.nets.items()}

    def answer(self, dev, plen=None):
        return Answer(dev.vendor, dev.name, Evidence("inventory", self.path, self.version, plen, dev.detail()),
                      device=dev)

    def lookup_mac(self, mac):
        value = int.from_bytes(mac, "big")
        for plen in MAC_PLENS:
            dev = self.macs[plen].get(value >> (48 - plen))
            if dev is not None:
                return self.answer(dev, plen)
        return None

    def lookup_ip(self, addr):
        family, bits = (4, 32) if len(addr) == 4 else (6, 128)
        value = int.from_bytes(addr, "big")
        table = self.nets[family]
        for plen in self._plens[family]:
            dev = table[plen].get(value >> (bits - plen))
            if dev is not None:
                return self.answer(dev, plen)
        return None

    def answer_by_name(self, name):
        """The device whose name is ``name`` (as LLDP/CDP announce it, case-insensitive, domain ignored)."""
        wanted = name.lower()
        for dev in self.devices:
            own = dev.name.lower()
            if own == wanted or own == wanted.split(".", 1)[0]:
                return self.answer(dev)
        return None

    def has_segment_devices(self):
        return bool(self.segments)

    def segment_devices(self, interface, vlan):
        """Devices declared as serving capture ``interface`` (and ``vlan``)."""
        out = []
        for key in dict.fromkeys(((interface, vlan), (interface, None), (None, vlan))):
            for dev in self.segments.get(key, ()):
                if dev not in out:
                    out.append(dev)
        return out

    def port_devices(self, exporter, ifindex):
        """Devices declared as cabled at flow exporter ``exporter``'s interface ``ifindex``."""
        return self.ports.get((exporter, ifindex), ())

    def describe(self):
        return {"source": "inventory", "path": self.path, "version": self.version,
                "build_date": None, "devices": len(self.devices)}


def load_inventory(path, catalogue):
    """Load a YAML or CSV inventory; raise ``ConfigError`` with every problem."""
    reader = Reader(path)
    text = read_text(path, reader)
    if text is None:
        reader.raise_if_any()
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    first = text.lstrip().split("\n", 1)[0]
    if path.lower().endswith(".csv") or first.replace(" ", "").lower().startswith("name,"):
        devices = _from_csv(path, text, catalogue, reader)
    else:
        devices = _from_yaml(text, catalogue, reader)
    reader.raise_if_any()
    return Inventory(devices, path, digest)


def _from_yaml(text, catalogue, reader):
    root = reader.compose(text)
    if root is None:
        return []
    top = reader.mapping(root, ("version", "devices"), "inventory", required=("devices",))
    devices = []
    for node in reader.seq(top.get("devices"), "devices"):
        fields = reader.mapping(node, DEVICE_KEYS, "device", required=("name", "vendor"))
        name = reader.string(fields["name"], "name") if "name" in fields else None
        vendor = _vendor(reader, fields.get("vendor"), catalogue) if "vendor" in fields else None
        opt = {k: reader.string(fields[k], k) for k in ("model", "site", "role") if k in fields}
        macs = [_mac(reader, n) for n in reader.seq(fields.get("macs"), "macs")]
        ips = [reader.network(n, "ips") for n in reader.seq(fields.get("ips"), "ips")]
        ifaces = [_iface_node(reader, n) for n in reader.seq(fields.get("interfaces"), "interfaces")]
        if name and vendor:
            devices.append(Device(name, vendor, macs=[m for m in macs if m], ips=[i for i in ips if i],
                                  interfaces=[i for i in ifaces if i], **opt))
    return devices


def _vendor(reader, node, catalogue):
    text = reader.string(node, "vendor")
    if text is None:
        return None
    if text in catalogue:
        return text
    matched = catalogue.match(text)
    if matched:
        return matched
    reader.error(node, f"vendor '{text}' is not in the vendor catalogue ({catalogue.display})")
    return None


def _mac(reader, node):
    text = reader.string(node, "macs")
    if text is None:
        return None
    try:
        return parse_mac(text)
    except ValueError:
        reader.error(node, f"'{text}' is not a MAC address or a /24, /28, /36 or /48 MAC block")
        return None


def _iface_node(reader, node):
    import yaml
    if isinstance(node, yaml.MappingNode):
        fields = reader.mapping(node, ("interface", "vlan", "exporter", "ifindex"), "interfaces entry")
        if "exporter" in fields or "ifindex" in fields:
            if "interface" in fields or "vlan" in fields or not ("exporter" in fields and "ifindex" in fields):
                reader.error(node, "interfaces entry: a flow exporter's interface is {exporter: ADDRESS, "
                                   "ifindex: N}, without interface or vlan")
                return None
            net = reader.network(fields["exporter"], "exporter")
            ifindex = reader.integer(fields["ifindex"], "ifindex", 1, 0xFFFFFFFF)
            if net is None or ifindex is None:
                return None
            if net.num_addresses != 1:
                reader.error(fields["exporter"], f"exporter: '{net}' is a prefix, not one address")
                return None
            return ExporterPort((net.network_address.packed, ifindex))
        iface = reader.string(fields["interface"], "interface") if "interface" in fields else None
        vlan = reader.integer(fields["vlan"], "vlan", 0, 4095) if "vlan" in fields else None
        return (iface, vlan)
    text = reader.string(node, "interfaces")
    return _iface_text(text) if text else None


def _iface_text(text):
    name, _, vlan = text.partition(":")
    return (name or None, int(vlan) if vlan.isdigit() else None)


def _from_csv(path, text, catalogue, reader):
    devices = []
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    for col, name in enumerate(header, start=1):
        if name not in DEVICE_KEYS:
            reader.problems.append(Problem(path, 1, col, f"unknown column '{name}'"))
    for field in ("name", "vendor"):
        if field not in header:
            reader.problems.append(Problem(path, 1, 1, f"missing required column '{field}'"))
    if reader.problems:
        return []
    for lineno, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (c.strip() for c in row)))

        def err(field, message, _line=lineno):
            col = header.index(field) + 1 if field in header else 1
            reader.problems.append(Problem(path, _line, col, message))

        vendor = cells.get("vendor", "")
        vid = vendor if vendor in catalogue else catalogue.match(vendor)
        if not vid:
            err("vendor", f"vendor '{vendor}' is not in the vendor catalogue ({catalogue.display})")
        macs, ips = [], []
        for text in _split(cells.get("macs", "")):
            try:
                macs.append(parse_mac(text))
            except ValueError:
                err("macs", f"'{text}' is not a MAC address or a /24, /28, /36 or /48 MAC block")
        for text in _split(cells.get("ips", "")):
            try:
                ips.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                err("ips", f"'{text}' is not an IP address or prefix")
        ifaces = [_iface_text(t) for t in _split(cells.get("interfaces", ""))]
        if not cells.get("name"):
            err("name", "device without a name")
        elif vid:
            devices.append(Device(cells["name"], vid, cells.get("model") or None, cells.get("site") or None,
                                  cells.get("role") or None, macs, ips, ifaces))
    return devices


def _split(cell):
    return [p for p in re.split(r"[;\s]+", cell) if p]


__all__ = ["Inventory", "Device", "load_inventory", "parse_mac", "ConfigError"]
