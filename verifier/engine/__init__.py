"""The packet engine: the passes that run per frame or per flow direction.

    walk.py        pcap records of a piece of a file -> a Chunk's columns
    frames.py      the fast frame classes, declared once (tests, keys, fields)
    split.py       a Chunk -> per-direction groups + rows left to the decoder
    directions.py  the direction index: known directions' counters in numpy
    _fastpath.c    the same passes in C (optional; same results, faster)

An ``Engine`` is one way to run them: ``COMPILED`` (the C module, when
setup.py could build it) or ``NUMPY`` (the reference). It is chosen once —
``DEFAULT``: the compiled one when built, unless ``CLEANPATH_ENGINE=numpy``
at start (bench/outputs.py) — and handed to what runs the passes (the
pipeline, the direction index, a capture file's reader), which keep it;
nothing reads a module switch per call. Tests construct the one they test
(conftest.engine).
"""

import os

try:
    from . import _fastpath
except ImportError:              # no C compiler or Python headers at install
    _fastpath = None


class Engine:
    """``c``: the compiled module, or None for the numpy passes."""

    __slots__ = ("name", "c")

    def __init__(self, name, c):
        self.name, self.c = name, c

    def __repr__(self):
        return f"<engine {self.name}>"


NUMPY = Engine("numpy", None)
COMPILED = Engine("compiled", _fastpath) if _fastpath is not None else None
DEFAULT = NUMPY if COMPILED is None or os.environ.get("CLEANPATH_ENGINE") == "numpy" else COMPILED


def name():
    """``"compiled"`` or ``"numpy"``: what this install runs by default (bench/run.py reports it)."""
    return DEFAULT.name
