"""Metadata lives in setup.cfg; this file only declares the optional C module.

``verifier.engine._fastpath`` does the per-frame passes (pcap record walk, frame
classification and grouping) in C. It is optional: without a C compiler and
Python headers the install still succeeds and the same numpy code runs, with
the same results, slower (see verifier/engine/_fastpath.c).
"""

import hashlib

from setuptools import Extension, setup

# The module carries the SHA-256 of the source it was built from
# (``_fastpath.SOURCE_SHA256``): a failed rebuild of an optional extension only
# warns and leaves the old one in place, and tests/test_fastpath.py then says
# the built module is stale instead of testing old C.
with open("verifier/engine/_fastpath.c", "rb") as fh:
    SOURCE = hashlib.sha256(fh.read()).hexdigest()

setup(ext_modules=[Extension("verifier.engine._fastpath", ["verifier/engine/_fastpath.c"], optional=True,
                             define_macros=[("SOURCE_SHA256", f'"{SOURCE}"')],
                             extra_compile_args=["-O2", "-ffp-contract=off"])])
