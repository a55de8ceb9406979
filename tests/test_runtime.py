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


def test_the_flows_an_audit_ends_last_are_spared_only_for_a_leaving_process(tmp_path, monkeypatch):
    """runtime.spare: the console script (which leaves through os._exit) keeps
    the flows its audit ends at the end of input; in-process use frees them."""
    import datetime

    from verifier import audit, runtime
    from verifier.cli import App
    from verifier.craft import PcapWriter
    from test_batch import random_frames
    path = str(tmp_path / "few.pcap")
    with PcapWriter(path) as out:
        for i, frame in enumerate(random_frames(5, n=300)):
            out.write(1000.0 + i * 0.01, frame)
    app = App("/nonexistent")
    policy, attributor = app.policy([]), app.attributor(None, [])
    when = datetime.datetime.now(datetime.timezone.utc)
    monkeypatch.setattr(runtime, "_spared", None)
    audit.run_audit([path], policy, attributor, when)
    assert runtime._spared is None
    runtime.will_leave()
    result = audit.run_audit([path], policy, attributor, when)
    (ended,) = runtime._spared                   # all of them: the capture spans less than the idle timeout
    assert len(ended) == result.certificate["summary"]["flows"] > 10
    assert all(f.end_reason == "shutdown" for f in ended)
