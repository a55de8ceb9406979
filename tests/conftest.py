import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.environ.get("VERIFIER_SHARED", os.path.join(ROOT, "..", "shared")))
CORPUS = os.path.join(SHARED, "corpus")


def corpus_path(*parts):
    """A path inside ../shared/corpus, or skip the test when it is absent."""
    path = os.path.join(CORPUS, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs the shared corpus ({path} not present)")
    return path


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"needs '{name}' (installed by .ci/run)")


@pytest.fixture(scope="session")
def catalogue():
    from verifier.attribution.vendors import VendorCatalogue
    return VendorCatalogue.load()


@pytest.fixture(scope="session")
def oui(catalogue):
    from verifier.attribution.oui import OuiRegistry
    return OuiRegistry.from_manuf(catalogue)


@pytest.fixture()
def write(tmp_path):
    """write(name, text) -> path of a new file in tmp_path."""
    def _write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return _write


@pytest.fixture(params=["compiled", "numpy"])
def engine(request, monkeypatch):
    """Run a test with each per-frame engine (verifier.engine.Engine): the
    compiled module (skipped when the install could not build it) and the
    numpy passes it stands in for. Returned for the test to hand to what it
    builds, and made the default for what the test builds without naming
    one (a pipeline inside an audit or a daemon, a capture file's reader)."""
    from verifier import engine
    chosen = engine.COMPILED if request.param == "compiled" else engine.NUMPY
    if chosen is None:
        pytest.skip("verifier.engine._fastpath is not built (no C compiler or Python headers at install)")
    monkeypatch.setattr(engine, "DEFAULT", chosen)
    return chosen


def self_signed(directory):
    """(key, cert) paths of a fresh self-signed certificate for 127.0.0.1 (openssl)."""
    import subprocess
    need_tool("openssl")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert
