"""Vendor catalogue: registry spellings -> canonical vendor ids.

In:  ``rules/vendors.yaml`` (or another file of that shape).
Out: ``VendorCatalogue.match(organization)`` -> vendor id or None, cached.

Matching normalises the spelling (lower case, every run of non-alphanumerics
becomes one space) and looks for each catalogue phrase on word boundaries;
the longest matching phrase wins (``PhraseMatcher``).
"""

import os
import re

import yaml

from ..config import SAFE_LOADER
from ..errors import DataError

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "rules", "vendors.yaml")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise(text):
    return _NON_ALNUM.sub(" ", text.lower()).strip()


class PhraseMatcher:
    """``(phrase, vendor id)`` pairs -> the id of the longest phrase found
    in a text on word boundaries. Both are normalised, so word boundaries are
    spaces: `` phrase `` inside `` text `` (no regular expressions to compile)."""

    def __init__(self, pairs):
        phrases = [(normalise(p), vid) for p, vid in pairs]
        phrases.sort(key=lambda p: -len(p[0]))
        self._phrases = [(f" {p} ", vid) for p, vid in phrases if p]

    def __call__(self, text):
        padded = f" {normalise(text)} "
        return next((vid for phrase, vid in self._phrases if phrase in padded), None)


def default_path():
    """The catalogue shipped with the package (``rules/vendors.yaml``; the
    package's ``verifier/rules`` is a link to the top-level ``rules/``)."""
    return DEFAULT_PATH


class VendorCatalogue:
    def __init__(self, vendors, path):
        self.path = path
        # How messages name the file: where it is on this machine (a pip
        # install has no rules/ folder of its own to look in).
        self.display = os.path.abspath(path)
        self.vendors = vendors                     # id -> {"name", "organizations", "descriptions"}
        self._match = PhraseMatcher((phrase, vid) for vid, entry in vendors.items()
                                    for phrase in entry.get("organizations", ()))
        self._cache = {}

    @classmethod
    def load(cls, path=None):
        path = path or default_path()
        try:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.load(fh, Loader=SAFE_LOADER)
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
            hit = self._match(organization)
            self._cache[organization] = hit
        return hit
