"""Process settings of the console script (verifier/runtime.py)."""

import os
import subprocess
import sys

import pytest

_THREADS_AFTER_NUMPY = """
import os, verifier.runtime as runtime
runtime.quiet_start()
import numpy
print(len(os.listdir("/proc/self/task")), os.environ["OPENBLAS_NUM_THREADS"])
"""


def _run(env):
    out = subprocess.run([sys.executable, "-c", _THREADS_AFTER_NUMPY], env=env, capture_output=True, text=True,
                         check=True)
    threads, setting = out.stdout.split()
    return int(threads), setting


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_numpy_starts_no_blas_workers_after_quiet_start():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert _run(env) == (1, "1")


def test_quiet_start_keeps_the_users_blas_setting():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    assert _run(env)[1] == "2"
