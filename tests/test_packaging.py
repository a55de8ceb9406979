"""A regular (non-editable) install must carry every module and data file."""

import os

from setuptools import find_packages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_module_directory_is_a_package():
    found = set(find_packages(ROOT, include=["verifier", "verifier.*"]))
    for folder, _dirs, files in os.walk(os.path.join(ROOT, "verifier"), followlinks=True):
        if "__pycache__" in folder or not any(f.endswith(".py") for f in files):
            continue
        name = os.path.relpath(folder, ROOT).replace(os.sep, ".")
        assert name in found, f"{name} has modules but no __init__.py: a regular install would drop it"


def test_data_files_are_declared():
    with open(os.path.join(ROOT, "setup.cfg")) as fh:
        cfg = fh.read()
    assert "verifier.rules = *.yaml" in cfg
    for pattern in ("*.pcap", "*.mmdb", "*.yaml"):
        assert pattern in cfg.split("verifier.demo =")[1].split("\n")[0]
