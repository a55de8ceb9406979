"""Vendor catalogue: registry spellings -> canonical vendor ids.

In:  ``rules/vendors.yaml`` (or another file of that shape).
Out: ``VendorCatalogue.match(organization)`` -> vendor id or None, cached.

Matching normalises the spelling (lower case, every run of non-alphanumerics
becomes one space) and looks for each catalogue phrase on word boundaries;
the longest matching phrase wins.
"""

import os
import re

import yaml

from ..errors import DataError

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "rules", "vendors.yaml")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise(text):
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def default_path():
    """The catalogue shipped with the package (``rules/vendors.yaml``; the
    package's ``verifier/rules`` is a link to the top-level ``rules/``)."""
    return DEFAULT_PATH


class VendorCatalogue:
    def __init__(self, vendors, path):
        self.path = path
        # How messages name the file: the shipped catalogue by its repo path.
        self.display = "rules/vendors.yaml" if os.path.abspath(path) == os.path.abspath(DEFAULT_PATH) else path
        self.vendors = vendors                     # id -> {"name", "organizations", "descriptions"}
        phrases = []
        for vid, entry in vendors.items():
            for phrase in entry.get("organizations", ()):
                phrases.append((normalise(phrase), vid))
        phrases.sort(key=lambda p: -len(p[0]))
        self._patterns = [(re.compile(r"\b" + re.escape(p) + r"\b"), vid) for p, vid in phrases if p]
        self._cache = {}

    @classmethod
    def load(cls, path=None):
        path = path or default_path()
        try:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: cannot load vendor catalogue: {exc}") from None
        vendors = (doc or {}).get("vendors")
        if not isinstance(vendors, dict) or not vendors:
            raise DataError(f"{path}: vendor catalogue has no 'vendors' mapping")
        return cls({str(k): (v or {}) for k, v in vendors.items()}, path)

    @property
    def ids(self):
        return tuple(self.vendors)

    def __contains__(self, vendor_id):
        return vendor_id in self.vendors

    def match(self, organization):
        """Canonical id for a registry's organization name, or None."""
        if not organization:
            return None
        hit = self._cache.get(organization, False)
        if hit is False:
            text = normalise(organization)
            hit = next((vid for pat, vid in self._patterns if pat.search(text)), None)
            self._cache[organization] = hit
        return hit
