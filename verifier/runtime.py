"""Process settings for the long loops (``audit`` and ``run``).

CPython's cyclic garbage collector runs a generation-0 pass every 700 net
container allocations and, now and then, a full pass over every tracked
object. The pipeline allocates a few containers per flow (its key, counters,
MAC sets, cache entries) and keeps them for the flow's life, so with the
defaults the collector spent ~0.2 s of a 1M-packet audit (~12 %) walking
live flows that are not garbage. Raising the generation-0 threshold to
100,000 and freezing what start-up built (registries, policy, modules: never
garbage) brings that under 0.07 s. Cycles are still collected — the daemon
runs for months — just in fewer, larger passes.

glibc's malloc hands large blocks (the numpy temporaries of each 4 MiB
piece) back to the kernel when freed and page-faults fresh ones in for the
next piece; on a virtual machine first touches are dear (a third of the
audit's page faults). Keeping blocks up to 32 MiB in the heap and not
trimming it reuses the same pages piece after piece; peak memory is
unchanged, since the pieces are the same size.

numpy's wheels bundle OpenBLAS, which starts a worker thread per core when
numpy is imported and lets it spin waiting for work (~70 ms of CPU in a
1M-packet audit). The pipeline uses numpy for element-wise passes only,
never linear algebra, and an audit's second core is taken by the capture's
SHA-256 thread; ``quiet_start`` asks OpenBLAS for no workers unless the
user set ``OPENBLAS_NUM_THREADS``.

When the command is done, the console script leaves without tearing the
heap down (``leave``): freeing every flow, cache entry and module object one
by one (and the final collection over them) took ~0.1 s after a 1M-packet
audit, for memory the kernel reclaims at once anyway. The flows an audit
ends at the end of its input are freed as they are judged
(``FlowTable.flush``): their memory is what the judging reuses.
"""

import ctypes
import gc
import os
import sys

GEN0, GEN1, GEN2 = 100_000, 20, 100
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3         # mallopt(3) parameters


def quiet_start():
    """Call first thing: start-up (imports, YAML, registries) builds hundreds
    of thousands of long-lived objects, which the default generation-0
    threshold of 700 would scan some forty times (~30 ms); and before numpy
    is imported, so that OpenBLAS starts no spinning workers."""
    gc.set_threshold(GEN0, GEN1, GEN2)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def tune_for_throughput(finite=False):
    """Call once start-up (policy, databases) is loaded, before the packets.

    ``finite`` (an audit, not the daemon): switch the cycle collector off
    for the rest of the run. Flows, packets, paths and judgements form no
    reference cycles, so reference counting frees them as before; only the
    pipeline's own object graph is cyclic, and it lives until exit
    (tests/test_batch.py checks that an audit leaves no per-flow cyclic
    garbage). The collector would otherwise rescan every live flow's objects
    a few times (~30-50 ms on the 1M-packet bench)."""
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
    if finite:
        gc.disable()
    _keep_heap()


def _keep_heap():
    """glibc only (elsewhere a no-op): see the module docstring."""
    try:
        mallopt = ctypes.CDLL(None).mallopt          # the C library the interpreter links
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)


def leave(code):
    """End the process with ``code`` (as ``SystemExit`` gives it) once stdout
    and stderr are flushed, skipping the interpreter's teardown. For the
    console script only: by then every output file is closed and the threads
    left are daemons; tests call the click group in-process instead."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):          # a closed pipe (| head): nothing more to say
            pass
    os._exit(code)
