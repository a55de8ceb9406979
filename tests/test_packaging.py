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


def test_a_wheel_carries_the_compiled_module(tmp_path):
    """``pip install .`` (the README's first command) builds verifier/engine/_fastpath.c
    into the wheel where a C compiler and Python headers exist."""
    import shutil
    import subprocess
    import sys
    import sysconfig
    import zipfile

    import pytest

    if shutil.which("cc") is None or not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        pytest.skip("needs a C compiler and Python headers (installed by .ci/run)")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path), ROOT], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("verifier/engine/_fastpath") and n.endswith(".so") for n in names), names
    assert "verifier/engine/split.py" in names and "verifier/demo/policy.yaml" in names


def test_the_readme_first_command_works_with_debians_own_python(tmp_path):
    """``./scripts/demo.sh`` from a fresh copy of the tree, with Debian's
    /usr/bin/python3 (which refuses ``pip install`` outside a virtual
    environment, PEP 668) first on PATH and no environment active: it makes
    .venv, installs, audits the demo (exit 1: the demo has violations) and
    writes the report."""
    import shutil
    import subprocess

    import pytest

    if not os.path.exists("/usr/bin/python3") or not os.path.exists("/etc/debian_version"):
        pytest.skip("needs Debian's /usr/bin/python3")
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("needs a git checkout to copy the tracked files from")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        src, dst = os.path.join(ROOT, name), os.path.join(tmp_path, name)
        if name and os.path.lexists(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):                      # verifier/rules -> ../rules, as git holds it
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "violations: 7 flow(s)" in done.stdout
    assert (tmp_path / "demo-report.html").stat().st_size > 10_000
    assert (tmp_path / ".venv" / "bin" / "verifier").exists()
