"""Which engine does the per-frame passes: ``compiled`` is the C module
(verifier/_fastpath.c) when setup.py could build it, else None and the
numpy passes run (batch.split_numpy, walk.record_starts,
DirectionIndex.find/add) — the same results, slower. Read at each call, so
tests set it to None to run the numpy passes (conftest.engine)."""

import os

try:
    from .. import _fastpath as compiled
except ImportError:              # no C compiler or Python headers at install
    compiled = None
if os.environ.get("CLEANPATH_ENGINE") == "numpy":     # the numpy passes, chosen at start (bench/outputs.py)
    compiled = None


def name():
    """``"compiled"`` or ``"numpy"``: what this install runs (bench/run.py reports it)."""
    return "numpy" if compiled is None else "compiled"
