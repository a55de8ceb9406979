"""IP address -> autonomous system, from MaxMind-format databases.

Two record shapes are understood, told apart per record so mixed sources work:

- MaxMind GeoLite2-ASN / GeoIP2-ISP: ``autonomous_system_number`` (int) and
  ``autonomous_system_organization``;
- IPinfo (Lite, ASN): ``asn`` as a string ``"AS13335"`` with ``as_name`` or
  ``name``. An empty ``asn`` is no answer.

Readers are opened with ``MODE_MMAP_EXT`` (the C extension, ~20x faster than
the pure-Python modes); if the extension is missing we fall back and say so in
``describe()``. Special-purpose addresses are never looked up. Equal answers
(same AS, organization and matched prefix length) are one shared object, so
the path builder makes their elements from one model (attribution/path.py).
"""

import datetime
import os

import maxminddb

from ..errors import DataError
from ..model import Answer, Evidence
from ..text import ip_text
from .special import is_special

_MISSING = object()


class AsnDatabase:
    name = "asn"

    def __init__(self, path):
        self.path = path
        try:
            self.reader = maxminddb.open_database(path, maxminddb.MODE_MMAP_EXT)
            self.mode = "mmap-ext"
        except (ImportError, ValueError):
            self.reader = self._open_fallback(path)
            self.mode = "python (C extension missing: slow)"
        except (OSError, maxminddb.InvalidDatabaseError) as exc:
            raise DataError(f"{path}: cannot open MaxMind database: {exc}") from None
        meta = self.reader.metadata()
        self.database = meta.database_type
        self.build_date = datetime.datetime.fromtimestamp(meta.build_epoch, datetime.timezone.utc) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
        self.version = f"{os.path.basename(path)} built {self.build_date}"
        self.ip_version = meta.ip_version
        self._answers = {}        # (asn, organization, prefix length) -> the one answer with them
        self._blocks = {}         # an address's /24 or /48 -> answer, for blocks inside one tree prefix

    @staticmethod
    def _open_fallback(path):
        try:
            return maxminddb.open_database(path, maxminddb.MODE_MMAP)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise DataError(f"{path}: cannot open MaxMind database: {exc}") from None

    def lookup_mac(self, mac):
        return None

    def lookup_ip(self, addr):
        """``addr``: 4 or 16 packed bytes. Answer with ``asn`` set, or None.

        Every address of the prefix the tree matched has the same record, so
        when that prefix holds the address's whole /24 (IPv4) or /48 (IPv6)
        the answer is kept for the block: the busy networks of a capture
        are read from the database once, not once per address."""
        if is_special(addr):
            return None
        size = len(addr)
        if size == 16 and self.ip_version == 4:
            return None
        block_bits = 24 if size == 4 else 48
        block = addr[:block_bits // 8]
        answer = self._blocks.get(block, _MISSING)
        if answer is not _MISSING:
            return answer
        try:
            record, plen = self.reader.get_with_prefix_len(ip_text(addr))
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None                  # a damaged tree answers nothing for this address
        answer = self._answer(record, plen)
        if plen <= block_bits:
            if len(self._blocks) >= 100_000:
                self._blocks.clear()
            self._blocks[block] = answer
        return answer

    def _answer(self, record, plen):
        if not isinstance(record, dict):
            return None
        asn, org = parse_record(record)
        if asn is None:
            return None
        key = (asn, org, plen)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= 100_000:
                self._answers.clear()
            answer = self._answers[key] = Answer(None, org, Evidence("asn", self.database, self.version, plen),
                                                 asn=asn)
        return answer

    def describe(self):
        return {"source": "asn", "path": self.path, "version": self.database,
                "build_date": self.build_date, "mode": self.mode}

    def close(self):
        self.reader.close()


def parse_record(record):
    """(asn int or None, organization) from a GeoLite2/GeoIP2-ISP or IPinfo record."""
    number = record.get("autonomous_system_number")
    if isinstance(number, int):
        return number, record.get("autonomous_system_organization") or record.get("organization")
    text = record.get("asn")
    if isinstance(text, str) and text[:2].upper() == "AS" and text[2:].isdigit():
        return int(text[2:]), record.get("as_name") or record.get("name")
    if isinstance(text, int):
        return text, record.get("as_name") or record.get("name")
    return None, None
