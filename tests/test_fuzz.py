"""The fuzz harness (tests/fuzz.py): a short seeded run in every suite run,
every input that ever failed replayed, and the harness itself shown to catch
what it is for."""

import os

import pytest

import fuzz

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
RUN = 2500                         # inputs of the short run (issue 22: >= 2,000)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    return fuzz.Fuzzer(seed=20261202, corpus=SHARED, workdir=str(tmp_path_factory.mktemp("fuzz")))


def test_a_short_seeded_run_finds_nothing(fuzzer):
    done, failures = fuzzer.run(count=RUN)
    assert done == RUN
    assert not failures, [(name, error) for name, _data, error in failures[:10]]


def test_every_kept_regression_input_passes(fuzzer):
    runners = {name: runner for name, _w, _seeds, runner in fuzzer.plan()}
    kept = fuzz.regressions()
    assert len(kept) >= 5                       # the reproductions of issue 22's classes at least
    for target, data, name in kept:
        assert fuzz.run_one(runners[target], data) is None, name
        if target == "capture":
            assert fuzz.run_one(runners[target], data, numpy=True) is None, name


def test_the_harness_records_escapes_and_slow_inputs(fuzzer, monkeypatch, tmp_path):
    def broken(data):
        raise IndexError("boom")
    assert "IndexError: boom" in fuzz.run_one(broken, b"x")
    monkeypatch.setattr(fuzz, "REGRESSIONS", str(tmp_path))
    monkeypatch.setattr(fuzz, "LIMIT", -1.0)               # every input is "slow"
    done, failures = fuzzer.run(count=3)
    assert done == 3 and len(failures) == 3 and all(e.startswith("slow") for _n, _d, e in failures)
    assert len(os.listdir(tmp_path)) == len({(n, d) for n, d, _e in failures})


def test_mutations_are_reproducible_from_the_seed(tmp_path):
    a = fuzz.Fuzzer(seed=5, corpus=None, workdir=str(tmp_path / "a"))
    b = fuzz.Fuzzer(seed=5, corpus=None, workdir=str(tmp_path / "b"))
    first = [(n, d) for (n, _r, d), _ in zip(a.inputs(), range(200))]
    second = [(n, d) for (n, _r, d), _ in zip(b.inputs(), range(200))]
    assert first == second and len({d for _n, d in first}) > 150
