"""Metadata lives in setup.cfg; this file only declares the optional C module.

``verifier._fastpath`` does the per-frame passes (pcap record walk, frame
classification and grouping) in C. It is optional: without a C compiler and
Python headers the install still succeeds and the same numpy code runs, with
the same results, slower (see verifier/_fastpath.c).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("verifier._fastpath", ["verifier/_fastpath.c"], optional=True,
                             extra_compile_args=["-O2", "-ffp-contract=off"])])
