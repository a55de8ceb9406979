"""MAC address -> registered organization, by longest prefix (/24, /28, /36).

Data, in order of preference:

1. an IEEE registry imported with ``verifier db import-oui`` (MA-L ``oui.csv``,
   MA-M ``mam.csv``, MA-S ``oui36.csv``, ``iab.csv``), stored in the data
   directory as ``oui/registry.tsv``;
2. the Wireshark ``manuf`` table that scapy ships (``scapy.libs.manuf``),
   which carries the /28 and /36 rows. Scapy's own lookup keys on three bytes
   only and so answers MA-M/MA-S blocks with the parent /24 holder (often
   "IEEE Registration Authority"); we parse the table ourselves instead.

Locally administered (randomised) and group (multicast/broadcast) addresses
are answered as unattributable, distinct from "no registry entry".
"""

import csv
import datetime
import hashlib
import json
import os

import numpy as np

from ..errors import DataError
from ..model import Answer, Evidence

PREFIX_LENGTHS = (48, 36, 28, 24)
REGISTRY_BITS = {"MA-L": 24, "MA-M": 28, "MA-S": 36, "IAB": 36}
REGISTRY_FILE = os.path.join("oui", "registry.tsv")


class Prefixes:
    """One prefix length's rows: sorted prefixes (numpy) -> organization.

    Held as arrays rather than a dict so a parsed table loads from the cache
    in milliseconds; a lookup is one binary search (answers are cached per
    /24 by ``OuiRegistry`` anyway)."""

    __slots__ = ("keys", "index", "orgs")

    def __init__(self, keys, index, orgs):
        self.keys, self.index, self.orgs = keys, index, orgs

    @classmethod
    def from_dict(cls, rows, orgs, org_ids):
        keys = np.array(sorted(rows), np.uint64)
        index = np.array([org_ids[rows[k]] for k in keys.tolist()], np.int32)
        return cls(keys, index, orgs)

    def __len__(self):
        return len(self.keys)

    def get(self, prefix):
        i = int(self.keys.searchsorted(np.uint64(prefix)))
        if i < len(self.keys) and int(self.keys[i]) == prefix:
            return self.orgs[self.index[i]]
        return None

    def prefixes(self):
        return self.keys.tolist()


def _packed(tables):
    """{plen: {prefix: org}} -> {plen: Prefixes} sharing one organization list."""
    orgs = sorted({org for rows in tables.values() for org in rows.values()})
    org_ids = {org: i for i, org in enumerate(orgs)}
    return {plen: Prefixes.from_dict(rows, orgs, org_ids) for plen, rows in tables.items()}


class OuiRegistry:
    """Longest-prefix table. ``tables[plen]`` (a ``Prefixes``) maps
    ``mac >> (48 - plen)`` to a name."""

    name = "oui"

    def __init__(self, tables, database, version, build_date, catalogue):
        self.tables = tables
        self.database, self.version, self.build_date = database, version, build_date
        self.catalogue = catalogue
        self.entries = sum(len(t) for t in tables.values())
        # /24 prefixes carved into longer blocks must be looked up in full;
        # every other address is answered once per /24 and cached.
        self._carved = set()
        for plen in (48, 36, 28):
            self._carved.update((tables[plen].keys >> np.uint64(plen - 24)).tolist())
        self._by24 = {}
        self._blocks = {}         # (prefix length, prefix) -> answer, for blocks inside carved /24s
        self._group = Answer(None, "group address", Evidence("oui", self.database, self.version, None),
                             unattributable=True)
        self._local = Answer(None, "locally administered address",
                             Evidence("oui", self.database, self.version, None), unattributable=True)

    @classmethod
    def load(cls, catalogue, data_dir=None):
        """The imported IEEE registry when present, else scapy's manuf table."""
        if data_dir:
            path = os.path.join(data_dir, REGISTRY_FILE)
            if os.path.exists(path):
                return cls.from_registry_file(path, catalogue)
        return cls.from_manuf(catalogue, data_dir)

    @classmethod
    def from_manuf(cls, catalogue, cache_dir=None):
        """Parse scapy's manuf table; with ``cache_dir``, keep the parsed
        tables there (numpy arrays: loads in a few milliseconds, where
        parsing the text takes a few hundred)."""
        import importlib.util
        import scapy
        # Find the module without importing it: importing decodes the whole table.
        origin = importlib.util.find_spec("scapy.libs.manuf").origin
        tag = f"scapy {scapy.VERSION}"
        cache = _cache_path(cache_dir, f"manuf-{scapy.VERSION}", origin) if cache_dir else None
        tables = _read_cache(cache)
        if tables is None:
            from scapy.libs.manuf import DATA
            tables = _packed(_parse_manuf(DATA))
            _write_cache(cache, tables)
        return cls(tables, "wireshark-manuf (bundled with scapy)", tag, None, catalogue)

    @classmethod
    def from_registry_file(cls, path, catalogue):
        """The imported registry; parsed tables are cached next to it."""
        meta = {}
        try:
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            if first.startswith("#"):
                meta = json.loads(first[1:])
            cache = _cache_path(os.path.dirname(os.path.dirname(path)), "registry", path)
            tables = _read_cache(cache)
            if tables is None:
                tables = {n: {} for n in PREFIX_LENGTHS}
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("#"):
                            continue
                        prefix, plen, org = line.rstrip("\n").split("\t", 2)
                        tables[int(plen)][int(prefix, 16)] = org
                tables = _packed(tables)
                _write_cache(cache, tables)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: unreadable OUI registry ({exc}); re-run 'verifier db import-oui'") from None
        return cls(tables, "ieee-registry", meta.get("version"), meta.get("build_date"), catalogue)

    def lookup_mac(self, mac):
        """``mac``: 6 bytes. Answer, or None when no registry entry covers it."""
        if mac[0] & 0x03:
            return self._group if mac[0] & 0x01 else self._local
        value = int.from_bytes(mac, "big")
        top = value >> 24
        if top not in self._carved:
            if top in self._by24:
                return self._by24[top]
            org = self.tables[24].get(top)
            answer = None if org is None else Answer(self.catalogue.match(org), org,
                                                     Evidence("oui", self.database, self.version, 24))
            self._by24[top] = answer
            return answer
        for plen in PREFIX_LENGTHS:
            block = (plen, value >> (48 - plen))
            answer = self._blocks.get(block)
            if answer is not None:
                return answer
            org = self.tables[plen].get(block[1])
            if org is not None:
                answer = self._blocks[block] = Answer(self.catalogue.match(org), org,
                                                      Evidence("oui", self.database, self.version, plen))
                return answer
        return None

    def lookup_ip(self, addr):
        return None

    def describe(self):
        return {"source": "oui", "path": self.database, "version": self.version,
                "build_date": self.build_date, "entries": self.entries}


def _parse_manuf(text):
    tables = {n: {} for n in PREFIX_LENGTHS}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        prefix = parts[0].strip()
        org = (parts[2] if len(parts) > 2 else parts[1]).strip()
        hexpart, _, bits = prefix.partition("/")
        digits = hexpart.replace(":", "").replace("-", "").replace(".", "")
        plen = int(bits) if bits else len(digits) * 4
        if plen not in tables:
            continue
        value = int(digits.ljust(12, "0"), 16)
        tables[plen][value >> (48 - plen)] = org
    return tables


def _cache_path(data_dir, name, source):
    """Cache file for tables parsed from ``source``: named by its size and
    modification time, so a changed source is parsed again."""
    stat = os.stat(source)
    return os.path.join(data_dir, "cache", f"{name}-{stat.st_size}-{stat.st_mtime_ns}.npz")


def _read_cache(path):
    if not path or not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            orgs = bytes(z["orgs"]).decode("utf-8").split("\n")
            return {plen: Prefixes(z[f"keys{plen}"], z[f"index{plen}"], orgs) for plen in PREFIX_LENGTHS}
    except (OSError, EOFError, ValueError, KeyError, UnicodeDecodeError):
        return None


def _write_cache(path, tables):
    """Best effort: a read-only data directory just means parsing each time."""
    if not path:
        return
    orgs = tables[PREFIX_LENGTHS[0]].orgs
    arrays = {"orgs": np.frombuffer("\n".join(orgs).encode("utf-8"), np.uint8)}
    for plen, table in tables.items():
        arrays[f"keys{plen}"], arrays[f"index{plen}"] = table.keys, table.index
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


def import_ieee(csv_paths, data_dir):
    """Merge IEEE registry CSVs into ``data_dir/oui/registry.tsv`` atomically.

    Returns counts per registry. CID rows are skipped: a Company ID is not a
    MAC address block.
    """
    rows, counts, digests, mtimes = {}, {}, [], []
    for path in csv_paths:
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                data = fh.read()
            mtimes.append(os.path.getmtime(path))
        except OSError as exc:
            raise DataError(f"{path}: {exc.strerror or exc}") from None
        digests.append(hashlib.sha256(data.encode()).hexdigest()[:16])
        reader = csv.reader(data.splitlines())
        header = next(reader, None)
        if not header or [h.strip() for h in header[:3]] != ["Registry", "Assignment", "Organization Name"]:
            raise DataError(f"{path}: not an IEEE registry CSV (expected a 'Registry,Assignment,"
                            "Organization Name' header)")
        for lineno, row in enumerate(reader, start=2):
            if len(row) < 3:
                continue
            registry, assignment, org = row[0].strip(), row[1].strip(), row[2].strip()
            if registry == "CID":
                counts["CID (skipped)"] = counts.get("CID (skipped)", 0) + 1
                continue
            bits = REGISTRY_BITS.get(registry)
            if bits is None or len(assignment) * 4 != bits:
                raise DataError(f"{path}:{lineno}:1: unknown registry row {registry!r} {assignment!r}")
            rows[(int(assignment, 16), bits)] = org
            counts[registry] = counts.get(registry, 0) + 1
    if not rows:
        raise DataError("no registry rows imported")
    target = os.path.join(data_dir, REGISTRY_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {"version": f"ieee-import {now:%Y-%m-%dT%H:%M:%SZ} ({'+'.join(digests)})",
            "build_date": datetime.datetime.fromtimestamp(max(mtimes), datetime.timezone.utc).date().isoformat(),
            "files": [os.path.basename(p) for p in csv_paths], "counts": counts}
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("#" + json.dumps(meta) + "\n")
        for (value, bits), org in sorted(rows.items()):
            fh.write(f"{value:x}\t{bits}\t{org}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return counts
