"""verifier/series.py owns every cleanpath_* name: the code names no other,
the README documents each, and what deploy/ queries (alerts, dashboards)
exists."""

import glob
import os
import re

from verifier import series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {s.name for s in series.ALL}


def _exposed(name):
    """A queried name back to its series: counters gain _total on the wire."""
    return name[:-len("_total")] if name.endswith("_total") else name


def test_no_module_but_series_spells_a_series_name():
    spelled = {}
    for path in glob.glob(os.path.join(ROOT, "verifier", "**", "*.py"), recursive=True):
        if path.endswith("series.py"):
            continue
        for name in re.findall(r"[\"'](cleanpath_[a-z_]+)[\"']", open(path).read()):
            spelled.setdefault(name, []).append(os.path.relpath(path, ROOT))
    spelled.pop("cleanpath_audit", None)          # the Pushgateway job and textfile name, not a series
    assert spelled == {}


def test_every_series_is_documented_and_unique():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert len(NAMES) == len(series.ALL)
    assert [s.name for s in series.ALL if s.name not in readme] == []
    assert all(s.kind in (series.COUNTER, series.GAUGE) and not s.name.endswith("_total") for s in series.ALL)


def test_what_deploy_queries_is_a_declared_series():
    queried = set()
    for path in glob.glob(os.path.join(ROOT, "deploy", "**", "*"), recursive=True):
        if os.path.isfile(path) and path.endswith((".yml", ".yaml", ".json")):
            queried.update(re.findall(r"\bcleanpath_[a-z_]+", open(path).read()))
    queried.discard("cleanpath_audit")            # job name
    assert queried and {q for q in queried if _exposed(q) not in NAMES} == set()
